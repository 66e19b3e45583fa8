//! Key names as agents write them (`ctrl`, `Return`, `pagedown`, `F5`, `a`) and characters as X
//! keysyms (X11's `keysymdef.h`).

pub const SHIFT_L: u32 = 0xffe1;

/// The keysym of a named key; one character names itself.
pub fn key_keysym(name: &str) -> Result<u32, String> {
    let lower = name.trim().to_ascii_lowercase();
    let sym = match lower.as_str() {
        "ctrl" | "control" | "control_l" | "ctrl_l" => 0xffe3,
        "control_r" | "ctrl_r" => 0xffe4,
        "shift" | "shift_l" => SHIFT_L,
        "shift_r" => 0xffe2,
        "alt" | "alt_l" | "option" => 0xffe9,
        "alt_r" | "altgr" => 0xffea,
        "super" | "super_l" | "win" | "windows" | "meta" | "cmd" | "command" => 0xffeb,
        "enter" | "return" | "kp_enter" => 0xff0d,
        "tab" => 0xff09,
        "escape" | "esc" => 0xff1b,
        "backspace" | "back_space" => 0xff08,
        "delete" | "del" => 0xffff,
        "insert" | "ins" => 0xff63,
        "home" => 0xff50,
        "end" => 0xff57,
        "left" | "arrowleft" => 0xff51,
        "up" | "arrowup" => 0xff52,
        "right" | "arrowright" => 0xff53,
        "down" | "arrowdown" => 0xff54,
        "pageup" | "page_up" | "prior" | "pgup" => 0xff55,
        "pagedown" | "page_down" | "next" | "pgdn" => 0xff56,
        "space" => 0x20,
        "menu" => 0xff67,
        "print" | "printscreen" => 0xff61,
        "pause" => 0xff13,
        "capslock" | "caps_lock" => 0xffe5,
        _ => {
            if let Some(n) =
                lower.strip_prefix('f').and_then(|n| n.parse::<u32>().ok()).filter(|n| (1..=24).contains(n))
            {
                return Ok(0xffbe + n - 1);
            }
            let mut chars = name.trim().chars();
            return match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(char_keysym(c)),
                _ => Err(format!("unknown key {name:?}")),
            };
        }
    };
    Ok(sym)
}

/// The keysym of a character: Latin-1 maps to itself, the rest of Unicode to 0x01000000 +
/// its code point; control characters to their keys.
pub fn char_keysym(c: char) -> u32 {
    match c {
        '\n' | '\r' => 0xff0d,
        '\t' => 0xff09,
        c if (' '..='~').contains(&c) || ('\u{a0}'..='\u{ff}').contains(&c) => c as u32,
        c => 0x0100_0000 + c as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_characters() {
        assert_eq!(key_keysym("Ctrl"), Ok(0xffe3));
        assert_eq!(key_keysym("Return"), Ok(0xff0d));
        assert_eq!(key_keysym("F5"), Ok(0xffc2));
        assert_eq!(key_keysym("a"), Ok(0x61));
        assert_eq!(key_keysym("A"), Ok(0x41));
        assert!(key_keysym("hyperdrive").unwrap_err().contains("unknown key"));
        assert_eq!(char_keysym('é'), 0xe9);
        assert_eq!(char_keysym('€'), 0x0100_20ac);
        assert_eq!(char_keysym('\n'), 0xff0d);
    }
}
