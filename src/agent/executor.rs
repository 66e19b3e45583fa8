//! Where actions happen: an X11 display (XTEST), or — for runs that only look — nowhere. An
//! action reaches an executor with its points already mapped to root pixels and checked.

use std::time::Duration;

use image::RgbImage;

use super::action::{Action, Button};
use super::screen::Rect;
use super::x11::X11Display;

/// An action with its grid points mapped to root pixels, in the order of [`Action::points`].
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub action: Action,
    pub points: Vec<(i32, i32)>,
}

/// A screen to look at and act on.
pub trait Executor {
    /// The area screenshots show and the grid spans.
    fn area(&self) -> Rect;
    fn capture(&mut self) -> Result<RgbImage, String>;
    /// Performs the action; an error ends the run (the log says why).
    fn execute(&mut self, placed: &Placed) -> Result<(), String>;
}

/// Wheel steps per scrolled pixel: one notch of a wheel scrolls about three lines, ~50 pixels.
const PIXELS_PER_NOTCH: i32 = 50;
/// Pause between the clicks of a double or triple click (well inside any double-click time).
const CLICK_GAP: Duration = Duration::from_millis(60);
/// How long a drag holds the button at each end, so applications see a press, a move and a release.
const DRAG_HOLD: Duration = Duration::from_millis(50);

/// An X11 screen (or one monitor of it).
pub struct X11Executor {
    display: X11Display,
    area: Rect,
}

impl X11Executor {
    /// `monitor`: which RandR monitor (0 = the primary), or the whole screen.
    pub fn open(display: &str, monitor: Option<usize>) -> Result<Self, String> {
        let d = X11Display::connect(display)?;
        let area = match monitor {
            None => d.screen(),
            Some(i) => {
                let monitors = d.monitors();
                *monitors.get(i).ok_or_else(|| {
                    format!("display {display} has {} monitor(s); --monitor {i} does not exist", monitors.len())
                })?
            }
        };
        Ok(Self { display: d, area })
    }

    fn click(&self, button: u8, count: u8) -> Result<(), String> {
        for i in 0..count {
            if i > 0 {
                std::thread::sleep(CLICK_GAP);
            }
            self.display.button(button, true)?;
            self.display.button(button, false)?;
        }
        Ok(())
    }
}

impl Executor for X11Executor {
    fn area(&self) -> Rect {
        self.area
    }

    fn capture(&mut self) -> Result<RgbImage, String> {
        self.display.capture(&self.area)
    }

    fn execute(&mut self, placed: &Placed) -> Result<(), String> {
        let d = &self.display;
        let first = placed.points.first().copied();
        match &placed.action {
            Action::Key { keys } => d.keys(keys),
            Action::Type { text } => d.type_text(text),
            Action::MouseMove { .. } => d.move_to(first.ok_or("no point")?),
            Action::Click { button, count, .. } => {
                d.move_to(first.ok_or("no point")?)?;
                let b = match button {
                    Button::Left => 1,
                    Button::Middle => 2,
                    Button::Right => 3,
                };
                self.click(b, *count)
            }
            Action::Drag { from, .. } => {
                let (start, end) = match (from, placed.points.as_slice()) {
                    (Some(_), [a, b]) => (Some(*a), *b),
                    (None, [b]) => (None, *b),
                    _ => return Err("a drag needs its end point".into()),
                };
                if let Some(s) = start {
                    d.move_to(s)?;
                }
                d.button(1, true)?;
                std::thread::sleep(DRAG_HOLD);
                d.move_to(end)?;
                std::thread::sleep(DRAG_HOLD);
                d.button(1, false)
            }
            Action::Scroll { pixels, horizontal, .. } => {
                if let Some(p) = first {
                    d.move_to(p)?;
                }
                // Buttons 4/5 scroll up/down, 6/7 left/right; positive pixels scroll up (left).
                let button = match (*horizontal, *pixels >= 0) {
                    (false, true) => 4,
                    (false, false) => 5,
                    (true, true) => 6,
                    (true, false) => 7,
                };
                let notches = (pixels.unsigned_abs() as i32 + PIXELS_PER_NOTCH - 1) / PIXELS_PER_NOTCH;
                self.click(button, notches.clamp(1, 100) as u8)
            }
            Action::Wait { seconds } => {
                std::thread::sleep(Duration::from_secs_f64(*seconds));
                Ok(())
            }
            Action::Terminate { .. } | Action::Answer { .. } => Ok(()),
            a @ (Action::LongPress { .. }
            | Action::Swipe { .. }
            | Action::SystemButton { .. }
            | Action::Open { .. }) => Err(format!("{} is a phone action; an X11 display cannot perform it", a.kind())),
        }
    }
}
