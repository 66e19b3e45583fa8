//! What the model is shown each step: the `computer_use` (or `mobile_use`) tool declared in the
//! system turn the way the Qwen3-VL cookbooks declare it (`qwen_agent`'s function-call prompt,
//! which the Qwen3 chat templates print from `tools`), and one user turn with the goal, the steps
//! so far (what was done, what was refused and why) and the last screenshots, the current one
//! last.

use image::RgbImage;
use serde_json::{json, Value};

use super::action::Tool;
use super::screen::GRID;

/// One step's question.
pub struct Turn {
    pub tool: Tool,
    pub goal: String,
    /// One line per earlier step, oldest first.
    pub history: Vec<String>,
    /// The last screenshots, oldest first; the last is the screen now.
    pub screenshots: Vec<RgbImage>,
}

/// The tool declaration (an OpenAI-style function, as the templates take `tools`).
pub fn tool_declaration(tool: Tool) -> Value {
    let res = GRID as u32;
    match tool {
        Tool::ComputerUse => json!({
            "type": "function",
            "function": {
                "name": "computer_use",
                "description": format!(
                    "Use a mouse and keyboard to interact with a computer, and take screenshots.\n\
                     * This is an interface to a desktop GUI. You do not have access to a terminal or applications menu. You must click on desktop icons to start applications.\n\
                     * Some applications may take time to start or process actions, so you may need to wait and take successive screenshots to see the results of your actions.\n\
                     * The screen's resolution is {res}x{res}.\n\
                     * Whenever you intend to move the cursor to click on an element like an icon, you should consult a screenshot to determine the coordinates of the element before moving the cursor.\n\
                     * Make sure to click any buttons, links, icons, etc with the cursor tip in the center of the element. Don't click boxes on their edges unless asked."
                ),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "action": {
                            "type": "string",
                            "description": "The action to perform: key (press keys together), type (type a string), mouse_move, left_click, left_click_drag (drag to coordinate), right_click, middle_click, double_click, triple_click, scroll, hscroll, wait, terminate (end the task with a status), answer (answer a question in the task).",
                            "enum": super::action::COMPUTER_ACTIONS,
                        },
                        "keys": {"type": "array", "description": "Required only by action=key."},
                        "text": {"type": "string", "description": "Required only by action=type and action=answer."},
                        "coordinate": {"type": "array", "description": format!("(x, y) on the {res}x{res} screen: where to move or click, or the end of a drag.")},
                        "pixels": {"type": "number", "description": "How far to scroll (positive up or left). Required only by action=scroll and action=hscroll."},
                        "time": {"type": "number", "description": "Seconds to wait. Required only by action=wait."},
                        "status": {"type": "string", "description": "The task's status. Required only by action=terminate.", "enum": ["success", "failure"]},
                    },
                    "required": ["action"],
                },
            },
        }),
        Tool::MobileUse => json!({
            "type": "function",
            "function": {
                "name": "mobile_use",
                "description": format!(
                    "Use a touchscreen to interact with a mobile device, and take screenshots.\n\
                     * This is an interface to a mobile device with touchscreen. You can perform actions like clicking, typing, swiping, etc.\n\
                     * Some applications may take time to start or process actions, so you may need to wait and take successive screenshots to see the results of your actions.\n\
                     * The screen's resolution is {res}x{res}.\n\
                     * Make sure to click any buttons, links, icons, etc with the cursor tip in the center of the element. Don't click boxes on their edges unless asked."
                ),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "action": {
                            "type": "string",
                            "description": "The action to perform: key, click, long_press, swipe, type, system_button (Back, Home, Menu, Enter), open (an app), wait, terminate, answer.",
                            "enum": super::action::MOBILE_ACTIONS,
                        },
                        "coordinate": {"type": "array", "description": "(x, y): where to click or long-press, or where a swipe starts."},
                        "coordinate2": {"type": "array", "description": "(x, y): where a swipe ends."},
                        "text": {"type": "string", "description": "Required only by action=key, action=type, action=open and action=answer."},
                        "time": {"type": "number", "description": "Seconds. Required only by action=long_press and action=wait."},
                        "button": {"type": "string", "description": "Required only by action=system_button.", "enum": super::action::SYSTEM_BUTTONS},
                        "status": {"type": "string", "description": "Required only by action=terminate.", "enum": ["success", "failure"]},
                    },
                    "required": ["action"],
                },
            },
        }),
    }
}

/// The user turn's text before the screenshots.
pub fn user_text(turn: &Turn) -> String {
    let mut s = format!("The user query: {}\n", turn.goal);
    if !turn.history.is_empty() {
        s.push_str("Task progress (You have done the following operation on the current device): ");
        for (i, h) in turn.history.iter().enumerate() {
            s.push_str(&format!("Step {}: {h}; ", i + 1));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "Look at the screenshot and make exactly one call of {} for the next step; call it with \
         action \"terminate\" when the task is done or cannot be done.",
        turn.tool.name()
    ));
    s
}

/// The conversation of a turn in the chat format, with one image part per screenshot (labelled).
pub fn messages(turn: &Turn) -> Value {
    let mut content = vec![json!({"type": "text", "text": user_text(turn)})];
    let n = turn.screenshots.len();
    for i in 0..n {
        let label =
            if i + 1 == n { "The screen now:".to_string() } else { format!("The screen {} step(s) ago:", n - 1 - i) };
        content.push(json!({"type": "text", "text": label}));
        content.push(json!({"type": "image", "image": format!("screenshot-{i}")}));
    }
    json!([{"role": "user", "content": content}])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_turn_carries_goal_history_and_screenshots_in_order() {
        let turn = Turn {
            tool: Tool::ComputerUse,
            goal: "Open the file".into(),
            history: vec!["left_click at [10, 20]: done".into(), "refused: no tool call".into()],
            screenshots: vec![RgbImage::new(4, 4), RgbImage::new(4, 4)],
        };
        let text = user_text(&turn);
        assert!(text.starts_with("The user query: Open the file\n"));
        assert!(text.contains("Step 1: left_click at [10, 20]: done; Step 2: refused: no tool call; "));
        let m = messages(&turn);
        let parts = m[0]["content"].as_array().unwrap();
        assert_eq!(parts.len(), 5);
        assert_eq!(parts[1]["text"], "The screen 1 step(s) ago:");
        assert_eq!(parts[3]["text"], "The screen now:");
        assert_eq!(parts[4]["type"], "image");
        let decl = tool_declaration(Tool::ComputerUse);
        assert!(decl["function"]["description"].as_str().unwrap().contains("The screen's resolution is 1000x1000."));
        assert_eq!(decl["function"]["parameters"]["properties"]["action"]["enum"].as_array().unwrap().len(), 14);
    }
}
