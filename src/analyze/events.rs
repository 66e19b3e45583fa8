//! Timed events from what the model wrote about one window. Qwen models answer temporal
//! questions as lines like `00:12.50 - 00:15.00: a person enters` (also `[mm:ss - mm:ss]`,
//! `hh:mm:ss`, `12.5s`, `<12.5 seconds>`), or as JSON (`[{"start": …, "end": …, "event": …}]`,
//! `{"time": "00:12 - 00:15", "description": …}`, `{"timestamp": 12.5, …}`), often inside a code
//! fence and with prose around it. Nothing is dropped silently: what does not parse as an event
//! is returned as unparsed text, and times outside the window are clamped and flagged.

use std::sync::OnceLock;

use regex::Regex;

use crate::prompt::fence::strip_fence;
use serde_json::Value;

use super::windows::Window;

/// An event on the video's clock.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// The window it came from (the first one, after merging).
    pub window: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The model's times fell outside the window and were clamped into it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clamped: bool,
}

/// How the model's times relate to the video's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimeBase {
    /// The model was told the window's absolute times (positions or timestamp text).
    Absolute,
    /// The model saw the window as a clip starting at 0.
    Relative,
}

/// What one window's answer gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub events: Vec<Event>,
    /// Lines (or JSON items) that held no event, kept for the report.
    pub unparsed: Vec<String>,
}

/// Slack for times the model places just outside its window (rounding, the last frame).
const EDGE_TOLERANCE_S: f64 = 1.0;

/// Parses `answer`, the model's text for window `w`.
pub fn parse_events(answer: &str, w: &Window, base: TimeBase) -> Parsed {
    let body = strip_fence(answer);
    let mut out = Parsed::default();
    if let Some(items) = json_items(body) {
        for item in items {
            match json_event(&item) {
                Some((start, end, text, confidence)) => push(&mut out, w, base, start, end, text, confidence),
                None => out.unparsed.push(item.to_string()),
            }
        }
        return out;
    }
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line_event(line) {
            Some((start, end, text)) => push(&mut out, w, base, start, end, text, None),
            None => out.unparsed.push(line.to_string()),
        }
    }
    out
}

fn push(out: &mut Parsed, w: &Window, base: TimeBase, start: f64, end: f64, text: String, confidence: Option<f64>) {
    let offset = match base {
        TimeBase::Absolute => 0.0,
        TimeBase::Relative => w.start,
    };
    let (mut s, mut e) = (start + offset, end.max(start) + offset);
    let outside = s < w.start - EDGE_TOLERANCE_S || e > w.end + EDGE_TOLERANCE_S;
    if outside && (e < w.start - EDGE_TOLERANCE_S || s > w.end + EDGE_TOLERANCE_S) {
        // Wholly outside the window: the model did not see it; kept as text, not as an event.
        out.unparsed.push(format!("{text} (at {s:.2}–{e:.2} s, outside the window {:.2}–{:.2} s)", w.start, w.end));
        return;
    }
    s = s.clamp(w.start, w.end);
    e = e.clamp(s, w.end);
    out.events.push(Event { start: s, end: e, text, window: w.index, confidence, clamped: outside });
}

/// JSON array items, or the single object, when the text holds JSON (possibly amid prose).
fn json_items(s: &str) -> Option<Vec<Value>> {
    let start = s.find(['[', '{'])?;
    let candidate = &s[start..];
    // The longest prefix that parses: prose may follow the JSON.
    let mut de = serde_json::Deserializer::from_str(candidate).into_iter::<Value>();
    match de.next()? {
        Ok(Value::Array(items)) => Some(items),
        Ok(v @ Value::Object(_)) => match v.get("events").and_then(Value::as_array) {
            Some(items) => Some(items.clone()),
            None => Some(vec![v]),
        },
        _ => None,
    }
}

/// `(start, end, text, confidence)` of one JSON item.
fn json_event(v: &Value) -> Option<(f64, f64, String, Option<f64>)> {
    let text = ["event", "description", "text", "caption", "label", "content", "summary"]
        .iter()
        .find_map(|k| v.get(k).and_then(Value::as_str))
        .unwrap_or("")
        .trim()
        .to_string();
    let time = |k: &str| v.get(k).and_then(json_time);
    let (start, end) =
        if let (Some(s), Some(e)) = (time("start").or(time("start_time")), time("end").or(time("end_time"))) {
            (s, e)
        } else if let Some(t) = ["time", "timestamp", "timestamps", "time_range"].iter().find_map(|k| v.get(k)) {
            match t {
                Value::String(s) => span(s).or_else(|| parse_time(s).map(|x| (x, x)))?,
                Value::Array(a) if a.len() == 2 => (json_time(&a[0])?, json_time(&a[1])?),
                other => json_time(other).map(|x| (x, x))?,
            }
        } else {
            return None;
        };
    let confidence = v.get("confidence").and_then(Value::as_f64).filter(|c| (0.0..=1.0).contains(c));
    (!text.is_empty()).then_some((start, end, text, confidence))
}

fn json_time(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite() && *x >= 0.0),
        Value::String(s) => parse_time(s),
        _ => None,
    }
}

/// One time: `hh:mm:ss(.f)`, `mm:ss(.f)`, `ss(.f)` with an optional `s` / `sec` / `seconds`, in
/// optional angle brackets (Qwen3-VL's `<12.5 seconds>`).
pub fn parse_time(s: &str) -> Option<f64> {
    let t = s.trim().trim_start_matches('<').trim_end_matches('>').trim();
    let t = t.trim_end_matches("seconds").trim_end_matches("second").trim_end_matches("secs").trim_end_matches("sec");
    let t = t.trim_end_matches('s').trim();
    if t.is_empty() {
        return None;
    }
    let parts: Vec<&str> = t.split(':').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit() || c == '.')) {
        return None;
    }
    let mut total = 0.0;
    for (i, p) in parts.iter().enumerate() {
        let v: f64 = p.parse().ok()?;
        // Minutes and seconds fields above 59 are not clock times (the first field may be anything).
        if i > 0 && v >= 60.0 {
            return None;
        }
        total = total * 60.0 + v;
    }
    Some(total)
}

const TIME: &str = r"<?\d{1,2}(?::\d{1,2}){0,2}(?:\.\d+)?\s*(?:s|sec|secs|seconds?)?>?";

fn span_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(&format!(
            r"^\s*[\[(]?\s*(?P<a>{TIME})\s*(?:-|–|—|to|~)\s*(?P<b>{TIME})\s*[\])]?\s*[:,\-–—]?\s*(?P<text>.*)$"
        ))
        .expect("a valid pattern")
    })
}

fn point_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(&format!(r"^\s*[\[(]?\s*(?P<a>{TIME})\s*[\])]?\s*[:,\-–—]\s*(?P<text>.+)$"))
            .expect("a valid pattern")
    })
}

/// `start - end` anywhere a range is the whole string (`"00:12 - 00:15"`).
fn span(s: &str) -> Option<(f64, f64)> {
    let c = span_re().captures(s)?;
    if !c["text"].trim().is_empty() {
        return None;
    }
    Some((parse_time(&c["a"])?, parse_time(&c["b"])?))
}

/// `(start, end, text)` of one line: a range or a single time, then the description.
fn line_event(line: &str) -> Option<(f64, f64, String)> {
    let line = line.trim_start_matches(['-', '*', '•']).trim();
    if let Some(c) = span_re().captures(line) {
        let text = c["text"].trim().to_string();
        if let (Some(a), Some(b)) = (parse_time(&c["a"]), parse_time(&c["b"])) {
            if !text.is_empty() {
                return Some((a, b, text));
            }
        }
    }
    let c = point_re().captures(line)?;
    let t = parse_time(&c["a"])?;
    Some((t, t, c["text"].trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window { index: 2, start: 60.0, end: 90.0 };

    fn spans(p: &Parsed) -> Vec<(f64, f64, &str)> {
        p.events.iter().map(|e| (e.start, e.end, e.text.as_str())).collect()
    }

    #[test]
    fn clock_times_in_every_notation() {
        assert_eq!(parse_time("01:02.50"), Some(62.5));
        assert_eq!(parse_time("1:02:03"), Some(3723.0));
        assert_eq!(parse_time("12.5s"), Some(12.5));
        assert_eq!(parse_time("<12.5 seconds>"), Some(12.5));
        assert_eq!(parse_time("75"), Some(75.0));
        assert_eq!(parse_time("1:75"), None, "seconds above 59 are not a clock time");
        assert_eq!(parse_time("abc"), None);
        assert_eq!(parse_time(""), None);
    }

    #[test]
    fn qwen_lines_with_absolute_times() {
        let answer = "Here is what happens:\n01:02.50 - 01:05.00: a person enters the room\n[01:10 - 01:12] the light turns off\n- 01:20: a door closes\nThat is all.";
        let p = parse_events(answer, &W, TimeBase::Absolute);
        assert_eq!(
            spans(&p),
            [
                (62.5, 65.0, "a person enters the room"),
                (70.0, 72.0, "the light turns off"),
                (80.0, 80.0, "a door closes")
            ]
        );
        assert_eq!(p.unparsed, ["Here is what happens:", "That is all."]);
        assert!(p.events.iter().all(|e| e.window == 2 && !e.clamped));
    }

    #[test]
    fn relative_times_are_shifted_into_the_window() {
        let p = parse_events("00:02.5 - 00:05: a person enters", &W, TimeBase::Relative);
        assert_eq!(spans(&p), [(62.5, 65.0, "a person enters")]);
    }

    #[test]
    fn json_in_a_fence_with_prose_and_the_time_key() {
        let answer = "Sure!\n```json\n[{\"start\": \"01:02\", \"end\": 65.5, \"event\": \"enters\", \"confidence\": 0.8},\n {\"time\": \"01:10 - 01:12\", \"description\": \"lights off\"},\n {\"timestamp\": 80, \"text\": \"door\"},\n {\"note\": \"no time here\"}]\n```\nHope this helps.";
        let p = parse_events(answer, &W, TimeBase::Absolute);
        assert_eq!(spans(&p), [(62.0, 65.5, "enters"), (70.0, 72.0, "lights off"), (80.0, 80.0, "door")]);
        assert_eq!(p.events[0].confidence, Some(0.8));
        assert_eq!(p.unparsed.len(), 1, "the item without a time is kept as text");
        // An object with an events list, and truncated JSON falls back to lines.
        let p = parse_events("{\"events\": [{\"time\": [61, 62], \"event\": \"x\"}]}", &W, TimeBase::Absolute);
        assert_eq!(spans(&p), [(61.0, 62.0, "x")]);
        let p = parse_events("[{\"start\": 61, \"end\": 6", &W, TimeBase::Absolute);
        assert!(p.events.is_empty() && p.unparsed.len() == 1);
    }

    #[test]
    fn times_outside_the_window_are_clamped_or_set_aside() {
        let p = parse_events("00:59.5 - 01:03: starts just before\n02:00 - 02:05: far after", &W, TimeBase::Absolute);
        assert_eq!(spans(&p), [(60.0, 63.0, "starts just before")]);
        assert!(!p.events[0].clamped, "within the edge tolerance");
        let p = parse_events("00:58 - 01:03: starts before", &W, TimeBase::Absolute);
        assert!(p.events[0].clamped && p.events[0].start == 60.0);
        let p = parse_events("02:00 - 02:05: far after", &W, TimeBase::Absolute);
        assert!(p.events.is_empty());
        assert!(p.unparsed[0].contains("outside the window"), "{:?}", p.unparsed);
    }
}
