//! The screen the agent works on and the model's 0–1000 grid over it. The model sees a
//! screenshot of one area (a whole X screen, or one monitor of it, resized by the processor) and
//! answers on a grid of 0–1000 over that picture; a point maps to the area's own pixels and then
//! by the area's offset to the root window's (a second monitor starts at x = 1920, say). X11
//! coordinates are device pixels, so a HiDPI scale factor changes nothing here: the screenshot
//! and the pointer use the same pixels.

use super::action::GridPoint;

/// The grid's extent (Qwen3-VL's cookbooks declare the screen as 1000×1000).
pub const GRID: f64 = 1000.0;

/// A rectangle of the root window, pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub fn contains(&self, (px, py): (i32, i32)) -> bool {
        px >= self.x && py >= self.y && px < self.x + self.width as i32 && py < self.y + self.height as i32
    }

    /// Parses `X,Y,WxH` (`--forbid 0,0,200x40`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: write a region as X,Y,WIDTHxHEIGHT (e.g. 0,0,200x40)");
        let mut parts = s.split(',');
        let x = parts.next().and_then(|v| v.trim().parse().ok()).ok_or_else(bad)?;
        let y = parts.next().and_then(|v| v.trim().parse().ok()).ok_or_else(bad)?;
        let (w, h) = parts.next().and_then(|v| v.trim().split_once('x')).ok_or_else(bad)?;
        let (width, height) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
        if parts.next().is_some() || width == 0 || height == 0 {
            return Err(bad());
        }
        Ok(Rect { x, y, width, height })
    }
}

/// A grid point in root-window pixels, or why it is not on the screen. Values a little outside
/// 0–1000 are not clamped: an off-screen point is refused and the model told.
pub fn to_screen(p: GridPoint, area: &Rect) -> Result<(i32, i32), String> {
    if !(0.0..=GRID).contains(&p.x) || !(0.0..=GRID).contains(&p.y) {
        return Err(format!("[{}, {}] is off the screen: coordinates go from 0 to {GRID}", p.x, p.y));
    }
    // The grid's 1000 is the area's right/bottom edge; the last pixel is width - 1.
    let px = ((p.x / GRID * area.width as f64) as i32).min(area.width as i32 - 1);
    let py = ((p.y / GRID * area.height as f64) as i32).min(area.height as i32 - 1);
    Ok((area.x + px, area.y + py))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_points_land_on_the_area_with_its_offset() {
        let second = Rect { x: 1920, y: 0, width: 1280, height: 1024 };
        assert_eq!(to_screen(GridPoint { x: 500.0, y: 500.0 }, &second), Ok((2560, 512)));
        assert_eq!(to_screen(GridPoint { x: 0.0, y: 0.0 }, &second), Ok((1920, 0)));
        assert_eq!(to_screen(GridPoint { x: 1000.0, y: 1000.0 }, &second), Ok((3199, 1023)));
        assert!(to_screen(GridPoint { x: 1000.5, y: 3.0 }, &second).unwrap_err().contains("off the screen"));
        assert!(to_screen(GridPoint { x: -1.0, y: 3.0 }, &second).is_err());
        assert_eq!(Rect::parse("10, 20,300x40"), Ok(Rect { x: 10, y: 20, width: 300, height: 40 }));
        assert!(Rect::parse("10,20,0x40").is_err() && Rect::parse("10,20").is_err());
        assert!(second.contains((1920, 0)) && !second.contains((3200, 5)));
    }
}
