//! Function calling in the Qwen3 chat format (the Qwen3-Omni and Qwen3-VL chat templates): the
//! tools are listed in the system turn, and the model calls one by writing
//!
//! ```text
//! <tool_call>
//! {"name": "get_weather", "arguments": {"city": "Paris"}}
//! </tool_call>
//! ```
//!
//! (`<tool_call>` and `</tool_call>` are ordinary, non-special tokens, so they reach the decoded
//! text). [`ToolCallSplitter`] separates such blocks from the text of a streamed answer, holding
//! back only what could still be the start of a marker; [`function_tool`] normalises the tool
//! declarations of both APIs to the shape the templates print.

use serde_json::Value;

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

/// A call the model made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub name: String,
    /// The arguments as JSON text (an object), as the APIs carry them.
    pub arguments: String,
}

/// A piece of a streamed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Ordinary text.
    Text(String),
    Call(ToolCall),
    /// A `<tool_call>` block that is not a valid call (or never closed), with the reason: kept as
    /// text so nothing the model wrote is dropped, and flagged.
    Malformed {
        text: String,
        problem: String,
    },
}

/// Splits streamed text into text and tool calls.
#[derive(Debug, Default)]
pub struct ToolCallSplitter {
    /// Text not yet handed out: a possible marker prefix, or the body of an open call.
    held: String,
    in_call: bool,
    /// Whether any call has begun (a spoken answer stops voicing from there).
    seen_call: bool,
    /// Only whitespace since the last call ended: the template's layout between calls.
    after_call: bool,
}

impl ToolCallSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// True once a `<tool_call>` marker has been seen.
    pub fn seen_call(&self) -> bool {
        self.seen_call
    }

    /// Takes the next piece of text; returns what is now certain.
    pub fn push(&mut self, text: &str) -> Vec<Segment> {
        self.held.push_str(text);
        let mut out = Vec::new();
        loop {
            if self.in_call {
                let Some(end) = self.held.find(CLOSE) else { break };
                let body: String = self.held[..end].to_string();
                self.held.drain(..end + CLOSE.len());
                self.in_call = false;
                self.after_call = true;
                out.push(match parse_call(&body) {
                    Ok(call) => Segment::Call(call),
                    Err(problem) => Segment::Malformed { text: format!("{OPEN}{body}{CLOSE}"), problem },
                });
            } else if let Some(start) = self.held.find(OPEN) {
                let before = self.held[..start].to_string();
                self.text(before, &mut out);
                self.held.drain(..start + OPEN.len());
                self.in_call = true;
                self.seen_call = true;
            } else {
                // Hand out everything except a tail that could begin a marker.
                let keep = partial_marker_len(&self.held);
                let cut = self.held.len() - keep;
                let text: String = self.held.drain(..cut).collect();
                self.text(text, &mut out);
                break;
            }
        }
        out
    }

    /// Hands out text, except whitespace right after a call (the layout between calls).
    fn text(&mut self, text: String, out: &mut Vec<Segment>) {
        if text.is_empty() || (self.after_call && text.trim().is_empty()) {
            return;
        }
        self.after_call = false;
        out.push(Segment::Text(text));
    }

    /// The answer has ended: what is still held.
    pub fn finish(&mut self) -> Vec<Segment> {
        let rest = std::mem::take(&mut self.held);
        if self.in_call {
            self.in_call = false;
            return vec![Segment::Malformed {
                text: format!("{OPEN}{rest}"),
                problem: "the answer ended inside a <tool_call> block".into(),
            }];
        }
        let mut out = Vec::new();
        self.text(rest, &mut out);
        out
    }
}

/// Length of the longest suffix of `s` that is a proper prefix of `<tool_call>`.
fn partial_marker_len(s: &str) -> usize {
    (1..OPEN.len())
        .rev()
        .find(|&n| s.len() >= n && s.is_char_boundary(s.len() - n) && OPEN.starts_with(&s[s.len() - n..]))
        .unwrap_or(0)
}

/// Parses a call body: `{"name": …, "arguments": {…}}` (arguments may also be JSON text).
pub fn parse_call(body: &str) -> Result<ToolCall, String> {
    let v: Value = serde_json::from_str(body.trim()).map_err(|e| format!("the call is not JSON ({e})"))?;
    let name =
        v.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()).ok_or("the call has no \"name\"")?.to_string();
    let arguments = match v.get("arguments") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) => {
            let parsed: Value =
                serde_json::from_str(s).map_err(|e| format!("\"arguments\" is a string that is not JSON ({e})"))?;
            if !parsed.is_object() {
                return Err("\"arguments\" is not an object".into());
            }
            s.clone()
        }
        Some(a @ Value::Object(_)) => a.to_string(),
        Some(_) => return Err("\"arguments\" is not an object".into()),
    };
    Ok(ToolCall { name, arguments })
}

/// A declared tool in the shape the chat templates print (`{"type": "function", "function":
/// {"name", "description", "parameters"}}`, what transformers passes), from either API's shape:
/// Chat Completions nests the function, Realtime declares it flat. `Err` names the problem.
pub fn function_tool(tool: &Value) -> Result<Value, String> {
    let kind = tool.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "function" {
        return Err(format!("tool type {kind:?}: only \"function\" tools are supported"));
    }
    let f = tool.get("function").unwrap_or(tool);
    let name = f.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("tool name {name:?}: 1–64 characters of a–z, A–Z, 0–9, _ and -"));
    }
    let mut function = serde_json::Map::new();
    function.insert("name".into(), Value::String(name.into()));
    if let Some(d) = f.get("description") {
        if !d.is_string() {
            return Err(format!("tool {name:?}: description must be a string"));
        }
        function.insert("description".into(), d.clone());
    }
    match f.get("parameters") {
        None | Some(Value::Null) => {}
        Some(p @ Value::Object(_)) => {
            function.insert("parameters".into(), p.clone());
        }
        Some(_) => return Err(format!("tool {name:?}: parameters must be a JSON Schema object")),
    }
    Ok(serde_json::json!({"type": "function", "function": function}))
}

/// How the model may use the tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides (the tools are in the prompt).
    Auto,
    /// No calls: the tools are left out of the prompt.
    None,
}

/// Parses `tool_choice`. Forcing a call (`"required"`, a named function) needs constrained
/// decoding, which omnid does not do; it is refused rather than silently ignored.
pub fn tool_choice(v: Option<&Value>) -> Result<ToolChoice, String> {
    match v {
        None | Some(Value::Null) => Ok(ToolChoice::Auto),
        Some(Value::String(s)) if s == "auto" => Ok(ToolChoice::Auto),
        Some(Value::String(s)) if s == "none" => Ok(ToolChoice::None),
        Some(other) => {
            Err(format!("tool_choice {other}: only \"auto\" and \"none\" are supported (forcing a call is not)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&str]) -> Vec<Segment> {
        let mut s = ToolCallSplitter::new();
        let mut out: Vec<Segment> = pieces.iter().flat_map(|p| s.push(p)).collect();
        out.extend(s.finish());
        // Merge adjacent text for comparison (the split points of text are not part of the contract).
        let mut merged: Vec<Segment> = Vec::new();
        for seg in out {
            match (merged.last_mut(), seg) {
                (Some(Segment::Text(a)), Segment::Text(b)) => a.push_str(&b),
                (_, seg) => merged.push(seg),
            }
        }
        merged
    }

    fn call(name: &str, args: &str) -> Segment {
        Segment::Call(ToolCall { name: name.into(), arguments: args.into() })
    }

    #[test]
    fn calls_are_found_whatever_the_piece_boundaries() {
        let answer = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
        let want = vec![Segment::Text("Let me check.\n".into()), call("get_weather", "{\"city\":\"Paris\"}")];
        assert_eq!(run(&[answer]), want);
        // Every split into two pieces, and one character at a time.
        for cut in 1..answer.len() {
            assert_eq!(run(&[&answer[..cut], &answer[cut..]]), want, "cut at {cut}");
        }
        let chars: Vec<String> = answer.chars().map(String::from).collect();
        assert_eq!(run(&chars.iter().map(String::as_str).collect::<Vec<_>>()), want);
    }

    #[test]
    fn text_that_only_looks_like_a_marker_is_text() {
        assert_eq!(
            run(&["a <tool", "_cal", "l is <b>x</b> <tool"]),
            vec![Segment::Text("a <tool_cal".to_string() + "l is <b>x</b> <tool")]
        );
        assert_eq!(run(&["no calls here"]), vec![Segment::Text("no calls here".into())]);
    }

    #[test]
    fn two_calls_and_string_arguments() {
        let answer = "<tool_call>\n{\"name\": \"a\", \"arguments\": \"{\\\"x\\\": 1}\"}\n</tool_call>\n<tool_call>\n{\"name\": \"b\"}\n</tool_call>";
        assert_eq!(run(&[answer]), vec![call("a", "{\"x\": 1}"), call("b", "{}")]);
    }

    #[test]
    fn broken_calls_are_kept_as_text_and_flagged() {
        let got = run(&["<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": }\n</tool_call>done"]);
        assert!(
            matches!(&got[0], Segment::Malformed { text, problem } if text.contains("\"x\": }") && problem.contains("not JSON")),
            "{got:?}"
        );
        assert_eq!(got[1], Segment::Text("done".into()));
        let got = run(&["<tool_call>\n{\"name\": \"a\", \"argu"]);
        assert!(matches!(&got[0], Segment::Malformed { problem, .. } if problem.contains("ended inside")), "{got:?}");
        assert!(
            matches!(&run(&["<tool_call>{\"arguments\": {}}</tool_call>"])[0], Segment::Malformed { problem, .. } if problem.contains("no \"name\""))
        );
        assert!(matches!(
            &run(&["<tool_call>{\"name\": \"a\", \"arguments\": [1]}</tool_call>"])[0],
            Segment::Malformed { .. }
        ));
    }

    #[test]
    fn tools_of_both_apis_normalise_to_the_template_shape() {
        let chat = serde_json::json!({"type": "function", "function": {"name": "get_weather", "description": "d", "parameters": {"type": "object"}}});
        let realtime = serde_json::json!({"type": "function", "name": "get_weather", "description": "d", "parameters": {"type": "object"}});
        assert_eq!(function_tool(&chat).unwrap(), chat);
        assert_eq!(function_tool(&realtime).unwrap(), chat);
        assert!(function_tool(&serde_json::json!({"type": "code_interpreter"}))
            .unwrap_err()
            .contains("only \"function\""));
        assert!(function_tool(&serde_json::json!({"type": "function", "name": "has space"}))
            .unwrap_err()
            .contains("tool name"));
        assert!(function_tool(&serde_json::json!({"type": "function", "name": "f", "parameters": "x"})).is_err());
        assert_eq!(tool_choice(Some(&serde_json::json!("none"))), Ok(ToolChoice::None));
        assert!(tool_choice(Some(&serde_json::json!("required"))).unwrap_err().contains("not"));
    }
}
