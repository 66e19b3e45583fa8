//! Boxes between the model's frame and the page's: Qwen3-VL answers in coordinates relative to
//! the image it saw, 0–1000 on each axis (some answers use 0–999; values outside are clamped,
//! swapped corners are put in order). The image it saw is the page (or a tile of it) resized to
//! the pixel budget, and, for photos, turned upright by the EXIF orientation; a box goes back
//! through the tile offset to the upright page, and through the inverse orientation to the
//! pixels as stored in the file.

/// The relative scale of Qwen3-VL's coordinates.
pub const RELATIVE_SCALE: f64 = 1000.0;

/// A box in pixels, `x1 <= x2`, `y1 <= y2`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PixelBox {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

impl PixelBox {
    pub fn width(&self) -> f64 {
        self.x2 - self.x1
    }

    pub fn height(&self) -> f64 {
        self.y2 - self.y1
    }

    pub fn area(&self) -> f64 {
        self.width().max(0.0) * self.height().max(0.0)
    }

    /// Intersection over union; 0 for boxes without area.
    pub fn iou(&self, other: &PixelBox) -> f64 {
        let inter = self.intersection(other);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    /// Share of this box's area inside `other` (1 when contained).
    pub fn inside(&self, other: &PixelBox) -> f64 {
        let a = self.area();
        if a <= 0.0 {
            0.0
        } else {
            self.intersection(other) / a
        }
    }

    fn intersection(&self, o: &PixelBox) -> f64 {
        let w = (self.x2.min(o.x2) - self.x1.max(o.x1)).max(0.0);
        let h = (self.y2.min(o.y2) - self.y1.max(o.y1)).max(0.0);
        w * h
    }

    /// Rounded to whole pixels (hOCR and most consumers take integers).
    pub fn rounded(&self) -> [i64; 4] {
        [self.x1.round() as i64, self.y1.round() as i64, self.x2.round() as i64, self.y2.round() as i64]
    }
}

/// A box as the model wrote it, relative 0–1000, with what had to be repaired.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelativeBox {
    /// Clamped into 0–1000 and ordered.
    pub coords: [f64; 4],
    /// A value lay outside 0–1000.
    pub clamped: bool,
    /// Corners came as (x2, y2, x1, y1) or mixed.
    pub swapped: bool,
}

impl RelativeBox {
    /// Repairs `[x1, y1, x2, y2]` as written; `None` when a value is not a finite number.
    pub fn repair(raw: [f64; 4]) -> Option<Self> {
        if raw.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let clamped = raw.iter().any(|v| !(0.0..=RELATIVE_SCALE).contains(v));
        let c = raw.map(|v| v.clamp(0.0, RELATIVE_SCALE));
        let swapped = c[0] > c[2] || c[1] > c[3];
        Some(Self { coords: [c[0].min(c[2]), c[1].min(c[3]), c[0].max(c[2]), c[1].max(c[3])], clamped, swapped })
    }
}

/// Where the image the model saw lies on the (upright) page: a tile's offset and size in page
/// pixels (the whole page for an untiled one).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Region {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

impl Region {
    /// The whole of a `width` × `height` page.
    pub fn page(width: u32, height: u32) -> Self {
        Self { x: 0.0, y: 0.0, width: width as f64, height: height as f64 }
    }

    /// The model's relative box in upright page pixels. The resize to the pixel budget scales
    /// both axes to the same relative frame, so it drops out.
    pub fn to_page(&self, b: &RelativeBox) -> PixelBox {
        let [x1, y1, x2, y2] = b.coords;
        let sx = self.width / RELATIVE_SCALE;
        let sy = self.height / RELATIVE_SCALE;
        PixelBox { x1: self.x + x1 * sx, y1: self.y + y1 * sy, x2: self.x + x2 * sx, y2: self.y + y2 * sy }
    }
}

/// The EXIF orientation of a photo (tag 0x0112, values 1–8): how the stored pixels must be
/// turned to be upright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    /// 1
    Upright,
    /// 2
    FlipHorizontal,
    /// 3
    Rotate180,
    /// 4
    FlipVertical,
    /// 5: transposed (flip over the main diagonal).
    Transpose,
    /// 6: turn 90° clockwise to view.
    Rotate90,
    /// 7: flip over the anti-diagonal.
    Transverse,
    /// 8: turn 270° clockwise (90° anticlockwise) to view.
    Rotate270,
}

impl Orientation {
    /// From the EXIF value; other values mean upright (what viewers do).
    pub fn from_exif(v: u16) -> Self {
        match v {
            2 => Self::FlipHorizontal,
            3 => Self::Rotate180,
            4 => Self::FlipVertical,
            5 => Self::Transpose,
            6 => Self::Rotate90,
            7 => Self::Transverse,
            8 => Self::Rotate270,
            _ => Self::Upright,
        }
    }

    /// The EXIF value.
    pub fn exif(self) -> u8 {
        match self {
            Self::Upright => 1,
            Self::FlipHorizontal => 2,
            Self::Rotate180 => 3,
            Self::FlipVertical => 4,
            Self::Transpose => 5,
            Self::Rotate90 => 6,
            Self::Transverse => 7,
            Self::Rotate270 => 8,
        }
    }

    /// Whether width and height trade places when the image is turned upright.
    pub fn swaps_axes(self) -> bool {
        matches!(self, Self::Transpose | Self::Rotate90 | Self::Transverse | Self::Rotate270)
    }

    /// A point of the upright image (`uw` × `uh`) in stored pixels.
    pub fn to_stored(self, (x, y): (f64, f64), (uw, uh): (f64, f64)) -> (f64, f64) {
        match self {
            Self::Upright => (x, y),
            Self::FlipHorizontal => (uw - x, y),
            Self::Rotate180 => (uw - x, uh - y),
            Self::FlipVertical => (x, uh - y),
            Self::Transpose => (y, x),
            // Turned 90° clockwise to view: upright (x, y) came from stored (y, uw - x).
            Self::Rotate90 => (y, uw - x),
            Self::Transverse => (uh - y, uw - x),
            Self::Rotate270 => (uh - y, x),
        }
    }

    /// A box of the upright image (`uw` × `uh`) in stored pixels.
    pub fn box_to_stored(self, b: &PixelBox, upright: (f64, f64)) -> PixelBox {
        let (ax, ay) = self.to_stored((b.x1, b.y1), upright);
        let (bx, by) = self.to_stored((b.x2, b.y2), upright);
        PixelBox { x1: ax.min(bx), y1: ay.min(by), x2: ax.max(bx), y2: ay.max(by) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_boxes_are_repaired_and_mapped_through_the_tile() {
        let b = RelativeBox::repair([600.0, 700.0, 100.0, -20.0]).unwrap();
        assert_eq!(b.coords, [100.0, 0.0, 600.0, 700.0]);
        assert!(b.clamped && b.swapped);
        assert!(RelativeBox::repair([1.0, f64::NAN, 2.0, 3.0]).is_none());
        let ok = RelativeBox::repair([0.0, 0.0, 1000.0, 500.0]).unwrap();
        assert!(!ok.clamped && !ok.swapped);
        // A 2000x1000 page: the model's frame spans it whatever size it was resized to.
        assert_eq!(Region::page(2000, 1000).to_page(&ok), PixelBox { x1: 0.0, y1: 0.0, x2: 2000.0, y2: 500.0 });
        // The right half as a tile, offset on the page.
        let tile = Region { x: 1000.0, y: 0.0, width: 1000.0, height: 1000.0 };
        let half = RelativeBox::repair([100.0, 200.0, 300.0, 400.0]).unwrap();
        assert_eq!(tile.to_page(&half), PixelBox { x1: 1100.0, y1: 200.0, x2: 1300.0, y2: 400.0 });
    }

    #[test]
    fn boxes_go_back_through_every_orientation() {
        // A stored 300x200 image; a marker box at stored (10..40, 20..60).
        let stored = PixelBox { x1: 10.0, y1: 20.0, x2: 40.0, y2: 60.0 };
        let (sw, sh) = (300.0, 200.0);
        // Where each orientation shows it upright (applied by hand), and the way back.
        let cases = [
            (Orientation::Upright, (sw, sh), PixelBox { x1: 10.0, y1: 20.0, x2: 40.0, y2: 60.0 }),
            (Orientation::FlipHorizontal, (sw, sh), PixelBox { x1: 260.0, y1: 20.0, x2: 290.0, y2: 60.0 }),
            (Orientation::Rotate180, (sw, sh), PixelBox { x1: 260.0, y1: 140.0, x2: 290.0, y2: 180.0 }),
            (Orientation::FlipVertical, (sw, sh), PixelBox { x1: 10.0, y1: 140.0, x2: 40.0, y2: 180.0 }),
            (Orientation::Transpose, (sh, sw), PixelBox { x1: 20.0, y1: 10.0, x2: 60.0, y2: 40.0 }),
            // 90° clockwise: stored (x, y) shows at (sh - y, x).
            (Orientation::Rotate90, (sh, sw), PixelBox { x1: 140.0, y1: 10.0, x2: 180.0, y2: 40.0 }),
            (Orientation::Transverse, (sh, sw), PixelBox { x1: 140.0, y1: 260.0, x2: 180.0, y2: 290.0 }),
            // 90° anticlockwise: stored (x, y) shows at (y, sw - x).
            (Orientation::Rotate270, (sh, sw), PixelBox { x1: 20.0, y1: 260.0, x2: 60.0, y2: 290.0 }),
        ];
        for (o, upright, shown) in cases {
            assert_eq!(o.swaps_axes(), upright != (sw, sh), "{o:?}");
            assert_eq!(o.box_to_stored(&shown, upright), stored, "{o:?}");
        }
        assert_eq!(Orientation::from_exif(6), Orientation::Rotate90);
        for v in 1..=8u16 {
            assert_eq!(u16::from(Orientation::from_exif(v).exif()), v);
        }
        assert_eq!(Orientation::from_exif(0), Orientation::Upright);
    }

    #[test]
    fn overlap_measures() {
        let a = PixelBox { x1: 0.0, y1: 0.0, x2: 10.0, y2: 10.0 };
        let b = PixelBox { x1: 5.0, y1: 0.0, x2: 15.0, y2: 10.0 };
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-12);
        let inner = PixelBox { x1: 2.0, y1: 2.0, x2: 4.0, y2: 4.0 };
        assert_eq!(inner.inside(&a), 1.0);
        assert_eq!(a.iou(&PixelBox { x1: 20.0, y1: 20.0, x2: 30.0, y2: 30.0 }), 0.0);
        assert_eq!(b.rounded(), [5, 0, 15, 10]);
    }
}
