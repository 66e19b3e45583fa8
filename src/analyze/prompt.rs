//! What the model is asked: per window, the task with the answer format the event parser reads
//! (Qwen's `start - end: description` lines) and how its times are counted; after the windows,
//! an optional pass that summarises their merged events.

use super::events::{Event, TimeBase};
use super::windows::Window;

/// The question about one window.
pub fn window_prompt(task: &str, w: &Window, base: TimeBase) -> String {
    let task = task.trim();
    let clock = match base {
        TimeBase::Absolute => format!(
            "This clip shows {} to {} of a longer video; the timestamps between its frames are times in the whole video. \
             Give times in seconds of the whole video, as those timestamps count them.",
            clock(w.start),
            clock(w.end)
        ),
        TimeBase::Relative => format!(
            "This clip is {:.1} seconds of a longer video. Give times in seconds from the start of this clip.",
            w.duration()
        ),
    };
    format!(
        "{clock}\nTask: {task}\nAnswer with one line per matching moment, written as `start - end: description` \
         (for example `3.5 - 7.0: a person enters`). If nothing in this clip matches, answer `none`."
    )
}

/// The question of the final pass: the task and the events found, in the video's time, the
/// list cut (and the cut said) where it would pass `max_chars`.
pub fn summary_prompt(task: &str, events: &[Event], max_chars: usize) -> String {
    let mut s = format!(
        "A long video was analysed in parts for this task: {}\nThese are the moments found, with times in the video:\n",
        task.trim()
    );
    if events.is_empty() {
        s.push_str("(none)\n");
    }
    for (i, e) in events.iter().enumerate() {
        let line = format!("{} - {}: {}\n", clock(e.start), clock(e.end), e.text);
        if s.len() + line.len() > max_chars {
            s.push_str(&format!("(and {} more moments, not listed)\n", events.len() - i));
            break;
        }
        s.push_str(&line);
    }
    s.push_str("Write a short summary that answers the task for the whole video, citing times as mm:ss.");
    s
}

/// Whether an unparsed line only says that nothing matched (the format's `none`).
pub fn says_nothing(line: &str) -> bool {
    let l = line.trim().trim_matches(|c: char| c == '`' || c == '.' || c == '"').trim().to_ascii_lowercase();
    matches!(l.as_str(), "none" | "nothing" | "no events" | "no matching moments" | "n/a" | "")
}

/// `h:mm:ss.s` or `mm:ss.s`.
pub fn clock(s: f64) -> String {
    let tenths = (s * 10.0).round() as u64;
    let (h, m, sec, t) = (tenths / 36000, tenths / 600 % 60, tenths / 10 % 60, tenths % 10);
    if h > 0 {
        format!("{h}:{m:02}:{sec:02}.{t}")
    } else {
        format!("{m:02}:{sec:02}.{t}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::events::{parse_events, parse_time};

    #[test]
    fn prompts_state_the_clock_the_parser_reads() {
        let w = Window { index: 2, start: 3725.0, end: 3785.0 };
        let abs = window_prompt(" count the dogs ", &w, TimeBase::Absolute);
        assert!(abs.contains("1:02:05.0 to 1:03:05.0") && abs.contains("Task: count the dogs\n"), "{abs}");
        let rel = window_prompt("count the dogs", &w, TimeBase::Relative);
        assert!(rel.contains("60.0 seconds") && rel.contains("from the start of this clip"), "{rel}");
        // The example line of the prompt parses as the event it shows.
        let parsed = parse_events("3.5 - 7.0: a person enters", &w, TimeBase::Relative);
        assert_eq!((parsed.events[0].start, parsed.events[0].end), (3728.5, 3732.0));
        assert_eq!(parse_time(&clock(3725.0)), Some(3725.0));
        assert!(says_nothing("None.") && says_nothing("`none`") && !says_nothing("none of the dogs bark"));
        let e = Event { start: 61.0, end: 62.5, text: "a dog".into(), window: 0, confidence: None, clamped: false };
        assert!(summary_prompt("t", std::slice::from_ref(&e), usize::MAX).contains("01:01.0 - 01:02.5: a dog"));
        let cut = summary_prompt("t", &[e.clone(), e.clone(), e], 150);
        assert_eq!(cut.matches(": a dog").count(), 1, "{cut}");
        assert!(cut.contains("(and 2 more moments, not listed)"), "{cut}");
    }
}
