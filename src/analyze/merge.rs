//! Events from overlapping windows merged: the same happening seen by two windows (or told twice
//! by one) becomes one event spanning both reports. Two events are the same when their times
//! overlap or nearly touch and their texts say the same thing (equal once normalised, or sharing
//! most of their words).

use std::collections::BTreeSet;

use super::events::Event;

/// Gap between two reports of the same happening that still counts as touching, seconds.
pub const TOUCH_S: f64 = 1.0;
/// Share of words two descriptions need in common to be the same event.
pub const SAME_TEXT: f64 = 0.6;

/// Events sorted by time with duplicates merged.
pub fn merge_events(mut events: Vec<Event>) -> Vec<Event> {
    events.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.end.total_cmp(&b.end)));
    let mut out: Vec<Event> = Vec::with_capacity(events.len());
    for e in events {
        // Earlier events (sorted by start) that reach this one's start and say the same thing.
        let same = out.iter_mut().rev().find(|o| e.start <= o.end + TOUCH_S && similar(&o.text, &e.text));
        match same {
            Some(o) => {
                o.end = o.end.max(e.end);
                if e.text.len() > o.text.len() {
                    o.text = e.text;
                }
                o.window = o.window.min(e.window);
                o.confidence = match (o.confidence, e.confidence) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                o.clamped &= e.clamped;
            }
            None => out.push(e),
        }
    }
    out
}

fn words(s: &str) -> BTreeSet<String> {
    s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Same description: the words they share over all their words (Jaccard) at least [`SAME_TEXT`].
fn similar(a: &str, b: &str) -> bool {
    let (wa, wb) = (words(a), words(b));
    if wa.is_empty() || wb.is_empty() {
        return wa == wb;
    }
    let common = wa.intersection(&wb).count();
    common as f64 / (wa.len() + wb.len() - common) as f64 >= SAME_TEXT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(start: f64, end: f64, text: &str, window: usize) -> Event {
        Event { start, end, text: text.into(), window, confidence: None, clamped: false }
    }

    #[test]
    fn a_happening_seen_by_two_windows_is_one_event() {
        // Windows 0 (0–30 s) and 1 (25–55 s) both saw the person enter at 26–29 s.
        let merged = merge_events(vec![
            ev(40.0, 41.0, "The lights turn off", 1),
            ev(26.0, 29.5, "A person enters the room", 0),
            ev(25.0, 29.0, "a person enters the room.", 1),
            ev(10.0, 12.0, "A dog barks", 0),
        ]);
        let got: Vec<(f64, f64, &str, usize)> =
            merged.iter().map(|e| (e.start, e.end, e.text.as_str(), e.window)).collect();
        assert_eq!(
            got,
            [
                (10.0, 12.0, "A dog barks", 0),
                (25.0, 29.5, "a person enters the room.", 0),
                (40.0, 41.0, "The lights turn off", 1)
            ]
        );
    }

    #[test]
    fn different_happenings_at_the_same_time_stay_apart_and_far_repeats_too() {
        let merged = merge_events(vec![
            ev(26.0, 29.0, "A person enters the room", 0),
            ev(26.5, 28.0, "The phone rings", 0),
            // The same words much later: a second happening.
            ev(300.0, 302.0, "A person enters the room", 9),
        ]);
        assert_eq!(merged.len(), 3);
        // Touching within a second, same text: one event.
        let merged = merge_events(vec![ev(10.0, 12.0, "door opens", 0), ev(12.8, 13.0, "Door opens", 1)]);
        assert_eq!(merged.len(), 1);
        assert_eq!((merged[0].start, merged[0].end), (10.0, 13.0));
    }
}
