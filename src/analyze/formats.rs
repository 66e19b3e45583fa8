//! Results as files people use: JSON (events with start/end seconds, text, window, confidence),
//! SRT and WebVTT subtitles (each event a cue; instants get a short cue so players show them),
//! and a Markdown report.

use super::events::Event;
use super::store::{JobRecord, WindowRecord};

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

/// A job's result as the formats show it.
#[derive(Debug, Clone, Default)]
pub struct Report<'a> {
    /// The video's name.
    pub title: &'a str,
    pub task: &'a str,
    /// Merged events, sorted.
    pub events: &'a [Event],
    pub summary: Option<&'a str>,
    /// What the model wrote that held no event, by window: kept, never dropped silently.
    pub notes: Vec<(usize, String)>,
    pub windows: usize,
    pub window_s: Option<f64>,
}

impl<'a> Report<'a> {
    /// The report of a stored job and its windows.
    pub fn of_job(job: &'a JobRecord, windows: &[WindowRecord], events: &'a [Event]) -> Self {
        Self {
            title: &job.spec.title,
            task: &job.spec.task,
            events,
            summary: job.summary.as_deref(),
            notes: windows.iter().flat_map(|w| w.unparsed.iter().map(|l| (w.index, l.clone()))).collect(),
            windows: job.windows_total.unwrap_or(windows.len()),
            window_s: job.window_s,
        }
    }
}

/// `report` in `format`: subtitles carry the events only; JSON and Markdown carry the task,
/// the summary and the notes too.
pub fn render(report: &Report, format: Format) -> String {
    let events = report.events;
    match format {
        Format::Json => {
            let mut v = serde_json::json!({
                "video": report.title,
                "task": report.task,
                "windows": report.windows,
                "window_s": report.window_s,
                "events": events,
                "notes": report.notes.iter().map(|(w, t)| serde_json::json!({"window": w, "text": t})).collect::<Vec<_>>(),
            });
            if let Some(s) = report.summary {
                v["summary"] = s.into();
            }
            serde_json::to_string_pretty(&v).expect("a report serialises") + "\n"
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
            let mut s =
                format!("# {}\n\n**Task:** {}\n\n| time | event |\n|---|---|\n", report.title, one_line(report.task));
            for e in events {
                let when =
                    if e.end > e.start { format!("{}–{}", short(e.start), short(e.end)) } else { short(e.start) };
                s.push_str(&format!("| {when} | {} |\n", one_line(&e.text).replace('|', "\\|")));
            }
            if events.is_empty() {
                s.push_str("| – | nothing found |\n");
            }
            if let Some(summary) = report.summary {
                s.push_str(&format!("\n## Summary\n\n{}\n", summary.trim()));
            }
            if !report.notes.is_empty() {
                s.push_str("\n## Other text from the model\n\n");
                for (w, t) in &report.notes {
                    s.push_str(&format!("- window {w}: {}\n", one_line(t)));
                }
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

    fn report<'a>(events: &'a [Event], title: &'a str) -> Report<'a> {
        Report {
            title,
            task: "who enters?",
            events,
            summary: Some("one person"),
            notes: vec![(3, "hm".into())],
            windows: 10,
            window_s: Some(60.0),
        }
    }

    #[test]
    fn subtitles_and_report_carry_exact_times() {
        let events = events();
        let render = |e: &[Event], f: Format, title: &str| super::render(&report(e, title), f);
        let srt = render(&events, Format::Srt, "t");
        assert_eq!(
            srt,
            "1\n00:01:02,500 --> 00:01:05,000\na person enters\n\n2\n01:02:03,250 --> 01:02:05,250\ndoor | closes\n\n"
        );
        let vtt = render(&events, Format::Vtt, "t");
        assert!(vtt.starts_with("WEBVTT\n\n00:01:02.500 --> 00:01:05.000\na person enters\n\n"), "{vtt}");
        let md = render(&events, Format::Markdown, "Who enters");
        assert!(
            md.starts_with("# Who enters\n\n**Task:** who enters?\n\n| time | event |\n|---|---|\n| 1:02.5–1:05 | a person enters |\n"),
            "{md}"
        );
        assert!(md.contains("| 1:02:03.3 | door \\| closes |"), "{md}");
        assert!(md.contains("## Summary\n\none person\n") && md.contains("- window 3: hm\n"), "{md}");
        let json: serde_json::Value = serde_json::from_str(&render(&events, Format::Json, "t")).unwrap();
        assert_eq!((json["summary"].as_str(), json["windows"].as_u64()), (Some("one person"), Some(10)));
        assert_eq!(json["notes"][0]["window"], 3);
        assert_eq!(json["events"][0]["start"], 62.5);
        assert_eq!(json["events"][0]["confidence"], 0.8);
        assert_eq!(json["events"][1]["clamped"], true);
        assert!(json["events"][0].get("clamped").is_none());
        assert_eq!(Format::parse("webvtt"), Ok(Format::Vtt));
        assert!(Format::parse("docx").unwrap_err().contains("json, srt"));
    }
}
