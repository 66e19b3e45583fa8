//! An X11 display the agent sees and drives: screenshots with `GetImage` on the root window, and
//! mouse and keyboard through the XTEST extension (the events reach applications as if a person
//! made them). Pure Rust (`x11rb`), no Xlib. The display is only ever the one named explicitly;
//! `$DISPLAY` is never read here.

use image::RgbImage;
use x11rb::connection::Connection;
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::xproto::{self, ConnectionExt as _, ImageFormat, ImageOrder};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

use super::keys::{char_keysym, key_keysym, SHIFT_L};
use super::screen::Rect;

/// XTEST event types (the core protocol's event codes).
const KEY_PRESS: u8 = xproto::KEY_PRESS_EVENT;
const KEY_RELEASE: u8 = xproto::KEY_RELEASE_EVENT;
const BUTTON_PRESS: u8 = xproto::BUTTON_PRESS_EVENT;
const BUTTON_RELEASE: u8 = xproto::BUTTON_RELEASE_EVENT;
const MOTION: u8 = xproto::MOTION_NOTIFY_EVENT;

/// A connection to one X display.
pub struct X11Display {
    conn: RustConnection,
    name: String,
    root: xproto::Window,
    width: u32,
    height: u32,
    min_keycode: u8,
    /// Keysyms per keycode, from `min_keycode` on.
    keymap: Vec<Vec<u32>>,
}

fn x_err(display: &str, what: &str, e: impl std::fmt::Display) -> String {
    format!("X display {display}: {what}: {e}")
}

impl X11Display {
    /// Connects to `display` (`:99`), which must offer XTEST.
    pub fn connect(display: &str) -> Result<Self, String> {
        if display.trim().is_empty() {
            return Err("no X display given: name one explicitly (--display :99)".into());
        }
        let (conn, screen) = RustConnection::connect(Some(display)).map_err(|e| x_err(display, "cannot connect", e))?;
        let root_info = &conn.setup().roots[screen];
        let (root, width, height) =
            (root_info.root, u32::from(root_info.width_in_pixels), u32::from(root_info.height_in_pixels));
        conn.xtest_get_version(2, 2)
            .map_err(|e| x_err(display, "XTEST", e))?
            .reply()
            .map_err(|e| x_err(display, "the XTEST extension is missing (input cannot be sent)", e))?;
        let (min_keycode, max_keycode) = (conn.setup().min_keycode, conn.setup().max_keycode);
        let map = conn
            .get_keyboard_mapping(min_keycode, max_keycode - min_keycode + 1)
            .map_err(|e| x_err(display, "keyboard mapping", e))?
            .reply()
            .map_err(|e| x_err(display, "keyboard mapping", e))?;
        let per = usize::from(map.keysyms_per_keycode).max(1);
        let keymap = map.keysyms.chunks(per).map(<[u32]>::to_vec).collect();
        Ok(Self { conn, name: display.to_string(), root, width, height, min_keycode, keymap })
    }

    /// The whole screen.
    pub fn screen(&self) -> Rect {
        Rect { x: 0, y: 0, width: self.width, height: self.height }
    }

    /// The monitors (RandR), primary first; the whole screen when RandR reports none.
    pub fn monitors(&self) -> Vec<Rect> {
        let reply = self.conn.randr_get_monitors(self.root, true).ok().and_then(|c| c.reply().ok());
        let mut monitors: Vec<(bool, Rect)> = reply
            .map(|r| {
                r.monitors
                    .iter()
                    .filter(|m| m.width > 0 && m.height > 0)
                    .map(|m| {
                        let rect = Rect {
                            x: i32::from(m.x),
                            y: i32::from(m.y),
                            width: u32::from(m.width),
                            height: u32::from(m.height),
                        };
                        (m.primary, rect)
                    })
                    .collect()
            })
            .unwrap_or_default();
        // A monitor spanning others (the whole screen listed beside virtual monitors) is not one.
        let all: Vec<Rect> = monitors.iter().map(|m| m.1).collect();
        let spans_others = |r: &Rect| {
            all.iter().any(|o| {
                o != r
                    && o.x >= r.x
                    && o.y >= r.y
                    && o.x + o.width as i32 <= r.x + r.width as i32
                    && o.y + o.height as i32 <= r.y + r.height as i32
            })
        };
        monitors.retain(|(_, r)| !spans_others(r));
        monitors.sort_by_key(|(primary, r)| (!primary, r.x, r.y));
        if monitors.is_empty() {
            return vec![self.screen()];
        }
        monitors.into_iter().map(|(_, r)| r).collect()
    }

    /// A screenshot of `area` (root pixels) as RGB.
    pub fn capture(&self, area: &Rect) -> Result<RgbImage, String> {
        let d = &self.name;
        let reply = self
            .conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                self.root,
                area.x as i16,
                area.y as i16,
                area.width as u16,
                area.height as u16,
                !0,
            )
            .map_err(|e| x_err(d, "screenshot", e))?
            .reply()
            .map_err(|e| x_err(d, "screenshot (the display may have gone away)", e))?;
        let setup = self.conn.setup();
        let format = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == reply.depth)
            .ok_or_else(|| x_err(d, "screenshot", format!("no pixel format for depth {}", reply.depth)))?;
        let visual = setup
            .roots
            .iter()
            .flat_map(|s| &s.allowed_depths)
            .flat_map(|dp| &dp.visuals)
            .find(|v| v.visual_id == reply.visual)
            .ok_or_else(|| x_err(d, "screenshot", "the root window's visual is unknown"))?;
        let bpp = usize::from(format.bits_per_pixel);
        if bpp != 32 && bpp != 24 && bpp != 16 {
            return Err(x_err(d, "screenshot", format!("{bpp} bits per pixel is not supported (16, 24, 32 are)")));
        }
        let pad = usize::from(format.scanline_pad).max(8);
        let stride = (area.width as usize * bpp).div_ceil(pad) * pad / 8;
        let (w, h) = (area.width as usize, area.height as usize);
        if reply.data.len() < stride * h {
            return Err(x_err(d, "screenshot", "the server sent less image data than the size needs"));
        }
        let lsb = setup.image_byte_order == ImageOrder::LSB_FIRST;
        let channel = |pixel: u32, mask: u32| -> u8 {
            if mask == 0 {
                return 0;
            }
            let shift = mask.trailing_zeros();
            let bits = (mask >> shift).count_ones();
            let v = (pixel & mask) >> shift;
            // Scaled to 8 bits (5- and 6-bit channels of 16-bit visuals).
            ((v * 255 + ((1 << bits) - 1) / 2) / ((1 << bits) - 1)) as u8
        };
        let bytes = bpp / 8;
        let mut out = RgbImage::new(area.width, area.height);
        for (y, row) in reply.data.chunks(stride).take(h).enumerate() {
            for x in 0..w {
                let px = &row[x * bytes..x * bytes + bytes];
                let pixel = px.iter().enumerate().fold(0u32, |acc, (i, b)| {
                    let shift = if lsb { 8 * i } else { 8 * (bytes - 1 - i) };
                    acc | (u32::from(*b) << shift)
                });
                out.put_pixel(
                    x as u32,
                    y as u32,
                    image::Rgb([
                        channel(pixel, visual.red_mask),
                        channel(pixel, visual.green_mask),
                        channel(pixel, visual.blue_mask),
                    ]),
                );
            }
        }
        Ok(out)
    }

    fn fake(&self, kind: u8, detail: u8, x: i16, y: i16) -> Result<(), String> {
        self.conn.xtest_fake_input(kind, detail, 0, self.root, x, y, 0).map_err(|e| x_err(&self.name, "input", e))?;
        Ok(())
    }

    /// Sends what was queued and waits until the server has handled it (a round trip), so an
    /// action is done when this returns.
    pub fn sync(&self) -> Result<(), String> {
        self.conn.flush().map_err(|e| x_err(&self.name, "input", e))?;
        self.conn
            .get_input_focus()
            .map_err(|e| x_err(&self.name, "input", e))?
            .reply()
            .map_err(|e| x_err(&self.name, "input (the display may have gone away)", e))?;
        Ok(())
    }

    pub fn move_to(&self, (x, y): (i32, i32)) -> Result<(), String> {
        self.fake(MOTION, 0, x as i16, y as i16)?;
        self.sync()
    }

    /// Presses (or releases) mouse button `button` (1 left, 2 middle, 3 right, 4–7 wheel).
    pub fn button(&self, button: u8, press: bool) -> Result<(), String> {
        self.fake(if press { BUTTON_PRESS } else { BUTTON_RELEASE }, button, 0, 0)?;
        self.sync()
    }

    /// The pointer's position on the root window.
    pub fn pointer(&self) -> Result<(i32, i32), String> {
        let r = self
            .conn
            .query_pointer(self.root)
            .map_err(|e| x_err(&self.name, "pointer", e))?
            .reply()
            .map_err(|e| x_err(&self.name, "pointer", e))?;
        Ok((i32::from(r.root_x), i32::from(r.root_y)))
    }

    /// The keycode and whether Shift is needed for `keysym`, from the keyboard map.
    fn keycode(&self, keysym: u32) -> Option<(u8, bool)> {
        self.keymap.iter().enumerate().find_map(|(i, syms)| {
            let code = self.min_keycode + i as u8;
            match syms.iter().position(|s| *s == keysym) {
                Some(0) => Some((code, false)),
                Some(1) => Some((code, true)),
                _ => None,
            }
        })
    }

    /// Presses `keysyms` together and releases them in reverse order.
    pub fn chord(&self, keysyms: &[u32]) -> Result<(), String> {
        let mut codes = Vec::new();
        for &sym in keysyms {
            let (code, shift) = self
                .keycode(sym)
                .ok_or_else(|| format!("the keyboard of display {} has no key for keysym {sym:#x}", self.name))?;
            if shift {
                let (sc, _) = self.keycode(SHIFT_L).ok_or("the keyboard has no Shift key")?;
                codes.push(sc);
            }
            codes.push(code);
        }
        for &c in &codes {
            self.fake(KEY_PRESS, c, 0, 0)?;
        }
        for &c in codes.iter().rev() {
            self.fake(KEY_RELEASE, c, 0, 0)?;
        }
        self.sync()
    }

    /// Presses the keys named (`["ctrl", "c"]`).
    pub fn keys(&self, names: &[String]) -> Result<(), String> {
        let syms = names.iter().map(|n| key_keysym(n)).collect::<Result<Vec<_>, _>>()?;
        self.chord(&syms)
    }

    /// Types `text` character by character.
    pub fn type_text(&self, text: &str) -> Result<(), String> {
        for c in text.chars() {
            let sym = char_keysym(c);
            if self.keycode(sym).is_none() {
                return Err(format!("the keyboard of display {} cannot type {c:?}", self.name));
            }
            self.chord(&[sym])?;
        }
        Ok(())
    }
}

/// The stop hotkey: Ctrl+Alt+Escape, grabbed on the root window so it reaches omnid whatever
/// window has the focus. The model may not press it (`Policy::stop_keys`).
pub const STOP_KEYS: [&str; 3] = ["ctrl", "alt", "Escape"];

/// Watches for the stop hotkey on its own connection and sets `stop` when it is pressed; ends
/// when `done` is set. An error when the key cannot be grabbed (another client holds it): the
/// run then has Ctrl-C only.
pub fn watch_stop_key(
    display: &str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, String> {
    use std::sync::atomic::Ordering;
    use x11rb::protocol::xproto::{GrabMode, ModMask};
    use x11rb::protocol::Event;

    let d = X11Display::connect(display)?;
    let escape = key_keysym("Escape")?;
    let (code, _) = d.keycode(escape).ok_or("the keyboard has no Escape key")?;
    let base = ModMask::CONTROL | ModMask::M1;
    // The grab must also hold with Caps Lock and Num Lock (Mod2) on.
    for extra in [ModMask::from(0u16), ModMask::LOCK, ModMask::M2, ModMask::LOCK | ModMask::M2] {
        d.conn
            .grab_key(false, d.root, base | extra, code, GrabMode::ASYNC, GrabMode::ASYNC)
            .map_err(|e| x_err(display, "stop key", e))?
            .check()
            .map_err(|e| x_err(display, "the stop key Ctrl+Alt+Escape is taken by another program", e))?;
    }
    std::thread::Builder::new()
        .name("omnid-agent-stop-key".into())
        .spawn(move || {
            while !done.load(Ordering::Relaxed) {
                match d.conn.poll_for_event() {
                    Ok(Some(Event::KeyPress(_))) => stop.store(true, Ordering::Relaxed),
                    Ok(Some(_)) => {}
                    Ok(None) => std::thread::sleep(std::time::Duration::from_millis(50)),
                    Err(_) => return, // the display went away; the run notices on its own
                }
            }
        })
        .map_err(|e| format!("cannot start the stop-key thread: {e}"))
}
