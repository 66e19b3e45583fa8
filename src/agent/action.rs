//! The model's answer as one typed action. Qwen3-VL, asked as a computer-use agent, answers with
//! a thought and a call of the `computer_use` (or `mobile_use`) tool in the Qwen3 format:
//!
//! ```text
//! <tool_call>
//! {"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [512, 300]}}
//! </tool_call>
//! ```
//!
//! Coordinates are on a 0–1000 grid over the screenshot (the cookbook declares the screen as
//! 1000×1000). Anything that is not exactly one well-formed call of a known action with the
//! fields it needs is refused with a reason the model is told; nothing is guessed.

use serde_json::{Map, Value};

use crate::protocol::tool_calls::{Segment, ToolCallSplitter};

/// A point on the model's 0–1000 grid.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GridPoint {
    pub x: f64,
    pub y: f64,
}

/// Mouse buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Button {
    Left,
    Middle,
    Right,
}

/// What the model asked for.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Press keys together (`["ctrl", "c"]`), released in reverse order.
    Key {
        keys: Vec<String>,
    },
    /// Type text.
    Type {
        text: String,
    },
    MouseMove {
        at: GridPoint,
    },
    /// Click `count` times (double click 2, triple 3).
    Click {
        at: GridPoint,
        button: Button,
        count: u8,
    },
    /// Press at `from`, move to `to`, release (`left_click_drag` drags from the pointer's place
    /// when no start is given).
    Drag {
        from: Option<GridPoint>,
        to: GridPoint,
    },
    /// Scroll by `pixels` (positive: up, or left for `hscroll`), at a point when given.
    Scroll {
        at: Option<GridPoint>,
        pixels: i32,
        horizontal: bool,
    },
    Wait {
        seconds: f64,
    },
    /// The goal is reached (or not): the run ends.
    Terminate {
        success: bool,
    },
    /// The model's answer to a question in the goal: the run ends with it.
    Answer {
        text: String,
    },
    // mobile_use
    LongPress {
        at: GridPoint,
        seconds: f64,
    },
    Swipe {
        from: GridPoint,
        to: GridPoint,
    },
    SystemButton {
        button: String,
    },
    Open {
        app: String,
    },
}

/// The action names of each tool, as the cookbooks declare them.
pub const COMPUTER_ACTIONS: [&str; 14] = [
    "key",
    "type",
    "mouse_move",
    "left_click",
    "left_click_drag",
    "right_click",
    "middle_click",
    "double_click",
    "triple_click",
    "scroll",
    "hscroll",
    "wait",
    "terminate",
    "answer",
];
pub const MOBILE_ACTIONS: [&str; 10] =
    ["key", "click", "long_press", "swipe", "type", "system_button", "open", "wait", "terminate", "answer"];
/// `mobile_use`'s system buttons.
pub const SYSTEM_BUTTONS: [&str; 4] = ["Back", "Home", "Menu", "Enter"];

/// Longest wait the model may ask for, seconds (a longer one is refused, not shortened).
pub const MAX_WAIT_S: f64 = 30.0;
/// Longest text one `type` may carry.
pub const MAX_TYPE_CHARS: usize = 2000;
/// Most keys pressed together.
pub const MAX_KEYS: usize = 6;

/// Which tool the agent declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tool {
    ComputerUse,
    MobileUse,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::ComputerUse => "computer_use",
            Tool::MobileUse => "mobile_use",
        }
    }

    pub fn actions(self) -> &'static [&'static str] {
        match self {
            Tool::ComputerUse => &COMPUTER_ACTIONS,
            Tool::MobileUse => &MOBILE_ACTIONS,
        }
    }
}

impl Action {
    /// The action's name as the tool declares it (what allowlists name).
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Key { .. } => "key",
            Action::Type { .. } => "type",
            Action::MouseMove { .. } => "mouse_move",
            Action::Click { button: Button::Left, count: 1, .. } => "left_click",
            Action::Click { button: Button::Left, count: 2, .. } => "double_click",
            Action::Click { button: Button::Left, .. } => "triple_click",
            Action::Click { button: Button::Right, .. } => "right_click",
            Action::Click { button: Button::Middle, .. } => "middle_click",
            Action::Drag { .. } => "left_click_drag",
            Action::Scroll { horizontal: false, .. } => "scroll",
            Action::Scroll { horizontal: true, .. } => "hscroll",
            Action::Wait { .. } => "wait",
            Action::Terminate { .. } => "terminate",
            Action::Answer { .. } => "answer",
            Action::LongPress { .. } => "long_press",
            Action::Swipe { .. } => "swipe",
            Action::SystemButton { .. } => "system_button",
            Action::Open { .. } => "open",
        }
    }

    /// The grid points the action touches (checked against the screen and forbidden regions).
    pub fn points(&self) -> Vec<GridPoint> {
        match self {
            Action::MouseMove { at } | Action::Click { at, .. } | Action::LongPress { at, .. } => vec![*at],
            Action::Drag { from, to } => from.iter().copied().chain([*to]).collect(),
            Action::Swipe { from, to } => vec![*from, *to],
            Action::Scroll { at, .. } => at.iter().copied().collect(),
            _ => vec![],
        }
    }

    /// The action as JSON for logs: `{"kind": "left_click", "click": {…fields}}`.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("an action serialises");
        if let Value::Object(m) = &mut v {
            m.insert("kind".into(), Value::String(self.kind().into()));
        } else {
            v = serde_json::json!({"kind": self.kind()});
        }
        v
    }

    /// Whether the run ends with this action.
    pub fn ends_run(&self) -> bool {
        matches!(self, Action::Terminate { .. } | Action::Answer { .. })
    }
}

/// The action in a model's answer, or why there is none.
pub fn parse_answer(answer: &str, tool: Tool) -> Result<Action, String> {
    let mut splitter = ToolCallSplitter::new();
    let mut segments = splitter.push(answer);
    segments.extend(splitter.finish());
    let mut calls = Vec::new();
    for seg in segments {
        match seg {
            Segment::Call(c) => calls.push(c),
            Segment::Malformed { problem, .. } => return Err(format!("the tool call is malformed: {problem}")),
            Segment::Text(_) => {}
        }
    }
    let call = match calls.as_slice() {
        [] => {
            return Err(format!(
                "no tool call: answer with exactly one <tool_call> of {} (use \"terminate\" when done)",
                tool.name()
            ))
        }
        [c] => c,
        more => return Err(format!("{} tool calls: make exactly one per step", more.len())),
    };
    if call.name != tool.name() {
        return Err(format!("unknown tool {:?}: the only tool is {}", call.name, tool.name()));
    }
    let args: Map<String, Value> =
        serde_json::from_str(&call.arguments).map_err(|e| format!("the arguments are not a JSON object: {e}"))?;
    parse_arguments(&args, tool)
}

/// The action of a call's arguments.
pub fn parse_arguments(args: &Map<String, Value>, tool: Tool) -> Result<Action, String> {
    let action = args.get("action").and_then(Value::as_str).ok_or("\"action\" is missing or not a string")?;
    if !tool.actions().contains(&action) {
        return Err(format!("unknown action {action:?}: {} takes {}", tool.name(), tool.actions().join(", ")));
    }
    let point = |key: &str| -> Result<GridPoint, String> {
        let v = args.get(key).ok_or_else(|| format!("{action}: \"{key}\" is missing"))?;
        let xy: Vec<f64> = v
            .as_array()
            .filter(|a| a.len() == 2)
            .and_then(|a| a.iter().map(Value::as_f64).collect())
            .ok_or_else(|| format!("{action}: \"{key}\" must be [x, y] numbers, got {v}"))?;
        if !xy.iter().all(|c| c.is_finite()) {
            return Err(format!("{action}: \"{key}\" is not finite"));
        }
        Ok(GridPoint { x: xy[0], y: xy[1] })
    };
    let optional_point = |key: &str| if args.contains_key(key) { point(key).map(Some) } else { Ok(None) };
    let text = |key: &str| -> Result<String, String> {
        args.get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{action}: \"{key}\" must be a string"))
    };
    let seconds = |key: &str| -> Result<f64, String> {
        let s = args.get(key).and_then(Value::as_f64).ok_or_else(|| format!("{action}: \"{key}\" must be seconds"))?;
        if !(0.0..=MAX_WAIT_S).contains(&s) {
            return Err(format!("{action}: {s} s is outside 0–{MAX_WAIT_S} s"));
        }
        Ok(s)
    };
    let click = |button, count| Ok(Action::Click { at: point("coordinate")?, button, count });
    match action {
        "key" => {
            let keys: Vec<String> = match args.get("keys").or_else(|| args.get("text")) {
                Some(Value::Array(a)) => a.iter().map(|k| k.as_str().map(str::to_string)).collect::<Option<_>>(),
                // mobile_use names one key in "text"; a "ctrl+c" string is split as people write it.
                Some(Value::String(s)) => Some(s.split('+').map(|k| k.trim().to_string()).collect()),
                _ => None,
            }
            .filter(|k: &Vec<String>| !k.is_empty() && k.iter().all(|k| !k.is_empty()))
            .ok_or_else(|| format!("{action}: \"keys\" must be a list of key names"))?;
            if keys.len() > MAX_KEYS {
                return Err(format!("{action}: {} keys at once; at most {MAX_KEYS}", keys.len()));
            }
            // A desktop key must be one the keyboard layer knows (a phone's key names are
            // Android key codes, checked by the device).
            if tool == Tool::ComputerUse {
                if let Some(e) = keys.iter().find_map(|k| super::keys::key_keysym(k).err()) {
                    return Err(format!("{action}: {e}"));
                }
            }
            Ok(Action::Key { keys })
        }
        "type" => {
            let t = text("text")?;
            if t.chars().count() > MAX_TYPE_CHARS {
                return Err(format!("type: more than {MAX_TYPE_CHARS} characters at once"));
            }
            Ok(Action::Type { text: t })
        }
        "mouse_move" => Ok(Action::MouseMove { at: point("coordinate")? }),
        "left_click" | "click" => click(Button::Left, 1),
        "double_click" => click(Button::Left, 2),
        "triple_click" => click(Button::Left, 3),
        "right_click" => click(Button::Right, 1),
        "middle_click" => click(Button::Middle, 1),
        "left_click_drag" => {
            // The cookbook's drag takes the end as "coordinate" (from the pointer's place); a
            // start may come as "start_coordinate" or "coordinate2" holds the end.
            if args.contains_key("coordinate2") {
                Ok(Action::Drag { from: Some(point("coordinate")?), to: point("coordinate2")? })
            } else {
                Ok(Action::Drag { from: optional_point("start_coordinate")?, to: point("coordinate")? })
            }
        }
        "scroll" | "hscroll" => {
            let pixels = args
                .get("pixels")
                .and_then(Value::as_f64)
                .filter(|p| p.is_finite() && p.abs() <= 10_000.0)
                .ok_or_else(|| format!("{action}: \"pixels\" must be a number of at most 10000"))?;
            Ok(Action::Scroll {
                at: optional_point("coordinate")?,
                pixels: pixels as i32,
                horizontal: action == "hscroll",
            })
        }
        "wait" => Ok(Action::Wait { seconds: seconds("time")? }),
        "terminate" => match args.get("status").and_then(Value::as_str) {
            Some("success") => Ok(Action::Terminate { success: true }),
            Some("failure") => Ok(Action::Terminate { success: false }),
            _ => Err("terminate: \"status\" must be \"success\" or \"failure\"".into()),
        },
        "answer" => Ok(Action::Answer { text: text("text")? }),
        "long_press" => Ok(Action::LongPress { at: point("coordinate")?, seconds: seconds("time")? }),
        "swipe" => Ok(Action::Swipe { from: point("coordinate")?, to: point("coordinate2")? }),
        "system_button" => {
            let b = text("button")?;
            if !SYSTEM_BUTTONS.contains(&b.as_str()) {
                return Err(format!("system_button: {b:?} is not one of {}", SYSTEM_BUTTONS.join(", ")));
            }
            Ok(Action::SystemButton { button: b })
        }
        "open" => Ok(Action::Open { app: text("text")? }),
        other => Err(format!("unknown action {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(args: &str) -> String {
        format!("I will click it.\n<tool_call>\n{{\"name\": \"computer_use\", \"arguments\": {args}}}\n</tool_call>")
    }

    #[test]
    fn calls_become_typed_actions() {
        let a = parse_answer(&call(r#"{"action": "left_click", "coordinate": [512, 300.5]}"#), Tool::ComputerUse);
        assert_eq!(a, Ok(Action::Click { at: GridPoint { x: 512.0, y: 300.5 }, button: Button::Left, count: 1 }));
        let a = parse_answer(&call(r#"{"action": "key", "keys": ["ctrl", "a"]}"#), Tool::ComputerUse).unwrap();
        assert_eq!(a, Action::Key { keys: vec!["ctrl".into(), "a".into()] });
        assert_eq!(a.kind(), "key");
        let a = parse_answer(&call(r#"{"action": "triple_click", "coordinate": [1, 2]}"#), Tool::ComputerUse).unwrap();
        assert_eq!(a.kind(), "triple_click");
        let a = parse_answer(&call(r#"{"action": "terminate", "status": "success"}"#), Tool::ComputerUse).unwrap();
        assert!(a.ends_run());
        let a = parse_answer(&call(r#"{"action": "scroll", "pixels": -300}"#), Tool::ComputerUse).unwrap();
        assert_eq!(a, Action::Scroll { at: None, pixels: -300, horizontal: false });
        let swipe = r#"<tool_call>{"name": "mobile_use", "arguments": {"action": "swipe", "coordinate": [500, 800], "coordinate2": [500, 200]}}</tool_call>"#;
        assert_eq!(parse_answer(swipe, Tool::MobileUse).unwrap().points().len(), 2);
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        let refused = |a: &str| parse_answer(a, Tool::ComputerUse).unwrap_err();
        assert!(refused("I think I am done.").contains("no tool call"));
        assert!(refused(&call(r#"{"action": "explode"}"#)).contains("unknown action \"explode\""));
        assert!(refused(&call(r#"{"action": "left_click"}"#)).contains("\"coordinate\" is missing"));
        assert!(refused(&call(r#"{"action": "left_click", "coordinate": [1]}"#)).contains("[x, y]"));
        assert!(refused(&call(r#"{"action": "wait", "time": 3600}"#)).contains("outside"));
        assert!(refused(&call(r#"{"action": "terminate"}"#)).contains("status"));
        assert!(refused(&call(r#"{"action": "key", "keys": ["ctrl", "hyperdrive"]}"#)).contains("unknown key"));
        assert!(refused("<tool_call>{\"name\": \"computer_use\", \"arguments\": {\"action\"").contains("malformed"));
        let two = format!("{}{}", call(r#"{"action": "wait", "time": 1}"#), call(r#"{"action": "wait", "time": 1}"#));
        assert!(refused(&two).contains("2 tool calls"));
        let other = r#"<tool_call>{"name": "shell", "arguments": {"cmd": "rm -rf /"}}</tool_call>"#;
        assert!(refused(other).contains("unknown tool"));
        let swipe = call(r#"{"action": "swipe", "coordinate": [1, 2], "coordinate2": [3, 4]}"#);
        assert!(refused(&swipe).contains("unknown action \"swipe\""), "a mobile action on the computer tool");
    }
}
