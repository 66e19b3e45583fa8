//! Results as files people use: JSON (events with start/end seconds, text, window, confidence),
//! SRT and WebVTT subtitles (each event a cue; instants get a short cue so players show them),
//! and a Markdown report.

use super::events::Event;

/// How long an instantaneous event stays on screen as a subtitle, seconds.
pub const INSTANT_CUE_S: f64 = 2.0;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Srt,
    Vtt,
    Markdown,
}

impl Format {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(Self::Json),
            "srt" => Ok(Self::Srt),
            "vtt" | "webvtt" => Ok(Self::Vtt),
            "md" | "markdown" => Ok(Self::Markdown),
            other => Err(format!("format {other:?}: json, srt, vtt or md")),
        }
    }
}

/// `events` (sorted) in `format`; `title` heads the Markdown report.
pub fn render(events: &[Event], format: Format, title: &str) -> String {
    match format {
        Format::Json => {
            serde_json::to_string_pretty(&serde_json::json!({"events": events})).expect("events serialise") + "\n"
        }
        Format::Srt => events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let (a, b) = cue(e);
                format!("{}\n{} --> {}\n{}\n\n", i + 1, clock(a, ','), clock(b, ','), one_line(&e.text))
            })
            .collect(),
        Format::Vtt => {
            let mut s = String::from("WEBVTT\n\n");
            for e in events {
                let (a, b) = cue(e);
                s.push_str(&format!("{} --> {}\n{}\n\n", clock(a, '.'), clock(b, '.'), one_line(&e.text)));
            }
            s
        }
        Format::Markdown => {
            let mut s = format!("# {title}\n\n| time | event |\n|---|---|\n");
            for e in events {
                let when =
                    if e.end > e.start { format!("{}–{}", short(e.start), short(e.end)) } else { short(e.start) };
                s.push_str(&format!("| {when} | {} |\n", one_line(&e.text).replace('|', "\\|")));
            }
            if events.is_empty() {
                s.push_str("| – | nothing found |\n");
            }
            s
        }
    }
}

fn cue(e: &Event) -> (f64, f64) {
    (e.start, if e.end > e.start { e.end } else { e.start + INSTANT_CUE_S })
}

/// `hh:mm:ss,mmm` (SRT) or `hh:mm:ss.mmm` (WebVTT).
fn clock(t: f64, sep: char) -> String {
    let ms = (t.max(0.0) * 1000.0).round() as u64;
    format!("{:02}:{:02}:{:02}{sep}{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

/// `m:ss` or `h:mm:ss` with tenths when not whole.
fn short(t: f64) -> String {
    let tenths = (t.max(0.0) * 10.0).round() as u64;
    let (s, f) = (tenths / 10, tenths % 10);
    let frac = if f > 0 { format!(".{f}") } else { String::new() };
    if s >= 3600 {
        format!("{}:{:02}:{:02}{frac}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}{frac}", s / 60, s % 60)
    }
}

/// Cues and table cells are one line: newlines become spaces; a blank line would end an SRT cue.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<Event> {
        vec![
            Event {
                start: 62.5,
                end: 65.0,
                text: "a person\nenters".into(),
                window: 2,
                confidence: Some(0.8),
                clamped: false,
            },
            Event {
                start: 3723.25,
                end: 3723.25,
                text: "door | closes".into(),
                window: 9,
                confidence: None,
                clamped: true,
            },
        ]
    }

    #[test]
    fn subtitles_and_report_carry_exact_times() {
        let srt = render(&events(), Format::Srt, "t");
        assert_eq!(
            srt,
            "1\n00:01:02,500 --> 00:01:05,000\na person enters\n\n2\n01:02:03,250 --> 01:02:05,250\ndoor | closes\n\n"
        );
        let vtt = render(&events(), Format::Vtt, "t");
        assert!(vtt.starts_with("WEBVTT\n\n00:01:02.500 --> 00:01:05.000\na person enters\n\n"), "{vtt}");
        let md = render(&events(), Format::Markdown, "Who enters");
        assert!(
            md.starts_with("# Who enters\n\n| time | event |\n|---|---|\n| 1:02.5–1:05 | a person enters |\n"),
            "{md}"
        );
        assert!(md.contains("| 1:02:03.3 | door \\| closes |"), "{md}");
        let json: serde_json::Value = serde_json::from_str(&render(&events(), Format::Json, "t")).unwrap();
        assert_eq!(json["events"][0]["start"], 62.5);
        assert_eq!(json["events"][0]["confidence"], 0.8);
        assert_eq!(json["events"][1]["clamped"], true);
        assert!(json["events"][0].get("clamped").is_none());
        assert_eq!(Format::parse("webvtt"), Ok(Format::Vtt));
        assert!(Format::parse("docx").unwrap_err().contains("json, srt"));
    }
}
