//! Pages larger than the model's pixel budget are read in tiles: the budget would otherwise
//! shrink a large scan until its text is a few pixels high. Tiles overlap so that a line cut by
//! one tile's border is whole in its neighbour; the same line read twice is merged afterwards.

use super::geometry::{PixelBox, Region};

/// Overlap of neighbouring tiles, pixels: a few lines of body text at 300 dpi.
pub const TILE_OVERLAP_PX: f64 = 96.0;

/// The tiles of a `width` × `height` page, each at most `max_pixels`, row by row; the whole page
/// when it fits.
pub fn plan_tiles(width: u32, height: u32, max_pixels: u64) -> Vec<Region> {
    let (w, h) = (width as f64, height as f64);
    let budget = max_pixels as f64;
    if w * h <= budget || budget <= 0.0 {
        return vec![Region::page(width, height)];
    }
    let (mut cols, mut rows) = (1usize, 1usize);
    let side = |n: usize, len: f64| if n == 1 { len } else { (len + (n - 1) as f64 * TILE_OVERLAP_PX) / n as f64 };
    // Split the longer tile side until a tile fits (the overlap makes tiles a little larger
    // than an even split; a tile never shrinks below twice the overlap).
    while side(cols, w) * side(rows, h) > budget {
        let (tw, th) = (side(cols, w), side(rows, h));
        if tw >= th && tw > 2.0 * TILE_OVERLAP_PX {
            cols += 1;
        } else if th > 2.0 * TILE_OVERLAP_PX {
            rows += 1;
        } else {
            break;
        }
    }
    let (tw, th) = (side(cols, w), side(rows, h));
    let mut tiles = Vec::with_capacity(cols * rows);
    for r in 0..rows {
        for c in 0..cols {
            let x = (c as f64 * (tw - TILE_OVERLAP_PX)).min(w - tw).max(0.0);
            let y = (r as f64 * (th - TILE_OVERLAP_PX)).min(h - th).max(0.0);
            tiles.push(Region { x, y, width: tw.min(w), height: th.min(h) });
        }
    }
    tiles
}

/// A line located on the page, with the tile it was read in.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PageLine {
    pub text: String,
    pub bbox: PixelBox,
    pub tile: usize,
    /// The model's box was clamped into its frame or had its corners swapped.
    pub repaired: bool,
}

/// Lines read twice (by overlapping tiles) merged: boxes that overlap (IoU ≥ 0.5, or one
/// mostly inside the other) with texts where one contains the other become the longer text
/// over the union of the boxes. The result is in reading order (top to bottom, left to right
/// within a line's height).
pub fn merge_tiles(mut lines: Vec<PageLine>) -> Vec<PageLine> {
    lines.sort_by_key(|l| std::cmp::Reverse(l.text.chars().count()));
    let mut kept: Vec<PageLine> = Vec::with_capacity(lines.len());
    for l in lines {
        let twin = kept.iter_mut().find(|k| {
            k.tile != l.tile
                && (k.bbox.iou(&l.bbox) >= 0.5 || l.bbox.inside(&k.bbox) >= 0.7 || k.bbox.inside(&l.bbox) >= 0.7)
                && contains_words(&k.text, &l.text)
        });
        match twin {
            Some(k) => {
                k.bbox = PixelBox {
                    x1: k.bbox.x1.min(l.bbox.x1),
                    y1: k.bbox.y1.min(l.bbox.y1),
                    x2: k.bbox.x2.max(l.bbox.x2),
                    y2: k.bbox.y2.max(l.bbox.y2),
                };
            }
            None => kept.push(l),
        }
    }
    reading_order(&mut kept);
    kept
}

/// Whether the words of `short` appear in `long`, in order (a line cut by a tile border reads
/// as a part of the whole line).
fn contains_words(long: &str, short: &str) -> bool {
    let norm = |s: &str| s.split_whitespace().map(|w| w.to_lowercase()).collect::<Vec<_>>().join(" ");
    let (l, s) = (norm(long), norm(short));
    !s.is_empty() && (l.contains(&s) || s.contains(&l))
}

/// Top to bottom; boxes whose vertical centres lie within half a line of the first box of a
/// band are one line, read left to right. (Grouped in bands first: a pairwise "same line"
/// comparison is not a total order and must not drive a sort.)
pub fn reading_order(lines: &mut Vec<PageLine>) {
    let centre = |l: &PageLine| (l.bbox.y1 + l.bbox.y2) / 2.0;
    lines.sort_by(|a, b| centre(a).total_cmp(&centre(b)).then(a.bbox.x1.total_cmp(&b.bbox.x1)));
    let mut bands: Vec<Vec<PageLine>> = Vec::new();
    for l in lines.drain(..) {
        match bands.last_mut() {
            Some(band) if (centre(&l) - centre(&band[0])).abs() <= band[0].bbox.height().min(l.bbox.height()) / 2.0 => {
                band.push(l)
            }
            _ => bands.push(vec![l]),
        }
    }
    for mut band in bands {
        band.sort_by(|a, b| a.bbox.x1.total_cmp(&b.bbox.x1));
        lines.extend(band);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, b: [f64; 4], tile: usize) -> PageLine {
        PageLine { text: text.into(), bbox: PixelBox { x1: b[0], y1: b[1], x2: b[2], y2: b[3] }, tile, repaired: false }
    }

    #[test]
    fn a_page_within_budget_is_one_tile_and_a_large_one_is_covered_with_overlap() {
        assert_eq!(plan_tiles(1000, 800, 1_000_000), [Region::page(1000, 800)]);
        // An A4 scan at 300 dpi against a 1 Mpx budget.
        let (w, h) = (2480u32, 3508u32);
        let tiles = plan_tiles(w, h, 1_000_000);
        assert!(tiles.len() >= 9, "{}", tiles.len());
        for t in &tiles {
            assert!(t.width * t.height <= 1_000_000.0, "{t:?}");
            assert!(t.x >= 0.0 && t.y >= 0.0 && t.x + t.width <= w as f64 + 1e-9 && t.y + t.height <= h as f64 + 1e-9);
        }
        // Every pixel is in some tile, and neighbours share the overlap.
        for (px, py) in [(0.0, 0.0), (2479.0, 3507.0), (1240.0, 1754.0), (900.0, 3000.0)] {
            assert!(tiles.iter().any(|t| px >= t.x && px < t.x + t.width && py >= t.y && py < t.y + t.height));
        }
        let (a, b) = (tiles[0], tiles[1]);
        assert!((a.x + a.width - b.x - TILE_OVERLAP_PX).abs() < 1e-9, "{a:?} {b:?}");
    }

    #[test]
    fn lines_read_twice_are_merged_and_ordered() {
        let lines = vec![
            line("world", [520.0, 100.0, 700.0, 130.0], 1),
            line("Hello world", [100.0, 100.0, 700.0, 130.0], 0),
            line("second line", [100.0, 160.0, 500.0, 190.0], 0),
            line("right column", [800.0, 98.0, 1000.0, 128.0], 1),
            // Same place, different text: two things, both kept.
            line("other", [100.0, 160.0, 500.0, 190.0], 1),
        ];
        let merged = merge_tiles(lines);
        let texts: Vec<&str> = merged.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["Hello world", "right column", "second line", "other"]);
        assert_eq!(merged[0].bbox, PixelBox { x1: 100.0, y1: 100.0, x2: 700.0, y2: 130.0 });
    }
}
