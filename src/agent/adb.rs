//! An Android device through `adb` (Debian's `adb` package): screenshots with `screencap`, and
//! the `mobile_use` actions through `input` (tap, swipe, text, keyevent) and `monkey` (open an
//! app by package name). Every call is a child process with a time limit; a missing `adb`, no
//! device, or several devices without `--serial` are errors that say so.

use std::process::Command;
use std::time::Duration;

use image::RgbImage;
use omnid_codecs::child::{run_with_limit, ChildError};

use super::action::Action;
use super::executor::{Executor, Placed};
use super::screen::Rect;

/// Longest one adb call may take (a screenshot of a slow device takes about a second).
const ADB_TIMEOUT: Duration = Duration::from_secs(20);

/// A device reached through adb.
pub struct AdbExecutor {
    adb: String,
    serial: String,
    area: Rect,
}

fn run(adb: &str, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = run_with_limit(Command::new(adb).args(args), ADB_TIMEOUT).map_err(|e| match e {
        ChildError::NotInstalled => {
            format!("{adb} is not installed (Debian package adb); phones are driven through it")
        }
        ChildError::Spawn(e) | ChildError::Wait(e) => format!("cannot run {adb}: {e}"),
        ChildError::TimedOut => format!("adb {} took longer than {} s; stopped", args.join(" "), ADB_TIMEOUT.as_secs()),
    })?;
    if !out.success {
        return Err(format!("adb {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(out.stdout)
}

/// `adb shell input text` takes %s for spaces and needs the shell's special characters escaped.
fn input_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' ' => "%s".to_string(),
            c if "\\'\"`$&|;<>()*?~#![]{}".contains(c) => format!("\\{c}"),
            c => c.to_string(),
        })
        .collect()
}

impl AdbExecutor {
    /// Opens the device `serial`, or the only one attached. `adb` names the program (tests
    /// point it at a stand-in).
    pub fn open(adb: &str, serial: Option<&str>) -> Result<Self, String> {
        let list = String::from_utf8_lossy(&run(adb, &["devices"])?).into_owned();
        let devices: Vec<&str> = list
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once('\t'))
            .filter(|(_, state)| state.trim() == "device")
            .map(|(s, _)| s)
            .collect();
        let serial = match (serial, devices.as_slice()) {
            (Some(s), _) if devices.contains(&s) => s.to_string(),
            (Some(s), _) => return Err(format!("no Android device {s} attached (attached: {})", devices.join(", "))),
            (None, []) => return Err("no Android device attached (adb devices lists none ready)".into()),
            (None, [one]) => one.to_string(),
            (None, many) => {
                return Err(format!("{} devices attached: choose one with --serial ({})", many.len(), many.join(", ")))
            }
        };
        let mut me = Self { adb: adb.to_string(), serial, area: Rect { x: 0, y: 0, width: 1, height: 1 } };
        let shot = me.capture()?;
        me.area = Rect { x: 0, y: 0, width: shot.width(), height: shot.height() };
        Ok(me)
    }

    fn shell(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-s", &self.serial, "shell"];
        all.extend_from_slice(args);
        run(&self.adb, &all).map(|_| ())
    }
}

impl Executor for AdbExecutor {
    fn area(&self) -> Rect {
        self.area
    }

    fn capture(&mut self) -> Result<RgbImage, String> {
        let png = run(&self.adb, &["-s", &self.serial, "exec-out", "screencap", "-p"])?;
        image::load_from_memory_with_format(&png, image::ImageFormat::Png)
            .map(|i| i.to_rgb8())
            .map_err(|e| format!("the device's screenshot does not decode: {e}"))
    }

    fn execute(&mut self, placed: &Placed) -> Result<(), String> {
        let p = |i: usize| placed.points.get(i).copied().ok_or("a point is missing");
        let s = |v: i32| v.to_string();
        match &placed.action {
            Action::Click { .. } => {
                let (x, y) = p(0)?;
                self.shell(&["input", "tap", &s(x), &s(y)])
            }
            Action::LongPress { seconds, .. } => {
                let (x, y) = p(0)?;
                let ms = ((seconds * 1000.0) as i32).max(500).to_string();
                self.shell(&["input", "swipe", &s(x), &s(y), &s(x), &s(y), &ms])
            }
            Action::Swipe { .. } => {
                let ((x1, y1), (x2, y2)) = (p(0)?, p(1)?);
                self.shell(&["input", "swipe", &s(x1), &s(y1), &s(x2), &s(y2), "300"])
            }
            Action::Type { text } => self.shell(&["input", "text", &input_text(text)]),
            Action::Key { keys } => {
                for k in keys {
                    let code = format!("KEYCODE_{}", k.to_ascii_uppercase());
                    self.shell(&["input", "keyevent", &code])?;
                }
                Ok(())
            }
            Action::SystemButton { button } => {
                let code = format!("KEYCODE_{}", button.to_ascii_uppercase());
                self.shell(&["input", "keyevent", &code])
            }
            Action::Open { app } => {
                // A package name (com.android.settings): started through its launcher intent.
                if !app.contains('.') || !app.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_') {
                    return Err(format!("open {app:?}: give the app's package name (e.g. com.android.settings)"));
                }
                self.shell(&["monkey", "-p", app, "-c", "android.intent.category.LAUNCHER", "1"])
            }
            Action::Wait { seconds } => {
                std::thread::sleep(Duration::from_secs_f64(*seconds));
                Ok(())
            }
            Action::Terminate { .. } | Action::Answer { .. } => Ok(()),
            a => Err(format!("{} is a desktop action; a phone cannot perform it", a.kind())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_the_device_shell() {
        assert_eq!(input_text("a b&c"), "a%sb\\&c");
        assert_eq!(input_text("it's"), "it\\'s");
    }
}
