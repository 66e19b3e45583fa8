//! The windows a time range is analysed in: each short enough for the model's context and
//! pixel budget, consecutive ones overlapping so that an event on a border is seen whole by one
//! of them (the merge removes the double).

/// One window, in seconds on the video's clock.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    pub index: usize,
    pub start: f64,
    pub end: f64,
}

impl Window {
    pub fn duration(&self) -> f64 {
        self.end - self.start
    }
}

/// Windows of `window` seconds over `from..to`, each starting `window − overlap` after the
/// previous; the last ends at `to`. A range shorter than one window is one window.
pub fn plan_windows(from: f64, to: f64, window: f64, overlap: f64) -> Result<Vec<Window>, String> {
    if !(from.is_finite() && to.is_finite() && from >= 0.0) {
        return Err(format!("the range {from}..{to} is not a valid time range"));
    }
    if to <= from {
        return Err(format!("the range ends ({to} s) before it starts ({from} s)"));
    }
    if !(window.is_finite() && window > 0.0) {
        return Err(format!("window {window} s: it must be a positive number of seconds"));
    }
    if !(overlap.is_finite() && overlap >= 0.0 && overlap < window) {
        return Err(format!("overlap {overlap} s: it must be at least 0 and shorter than the window ({window} s)"));
    }
    let step = window - overlap;
    let mut out = Vec::new();
    let mut start = from;
    loop {
        let end = (start + window).min(to);
        out.push(Window { index: out.len(), start, end });
        if end >= to {
            return Ok(out);
        }
        start += step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(w: &[Window]) -> Vec<(f64, f64)> {
        w.iter().map(|w| (w.start, w.end)).collect()
    }

    #[test]
    fn windows_overlap_and_the_last_is_clipped() {
        let w = plan_windows(0.0, 100.0, 30.0, 5.0).unwrap();
        assert_eq!(spans(&w), [(0.0, 30.0), (25.0, 55.0), (50.0, 80.0), (75.0, 100.0)]);
        assert_eq!(w.iter().map(|w| w.index).collect::<Vec<_>>(), [0, 1, 2, 3]);
        // No overlap, an exact multiple: no empty tail window.
        assert_eq!(spans(&plan_windows(10.0, 70.0, 30.0, 0.0).unwrap()), [(10.0, 40.0), (40.0, 70.0)]);
        // Shorter than one window.
        assert_eq!(spans(&plan_windows(3.0, 8.0, 30.0, 5.0).unwrap()), [(3.0, 8.0)]);
        // An hour in 60 s windows with 5 s overlap: every second is covered, 66 windows.
        let h = plan_windows(0.0, 3600.0, 60.0, 5.0).unwrap();
        assert_eq!(h.len(), 66);
        assert!(h.windows(2).all(|p| p[1].start < p[0].end), "consecutive windows overlap");
        assert_eq!(h.last().unwrap().end, 3600.0);
    }

    #[test]
    fn bad_ranges_are_refused_by_name() {
        assert!(plan_windows(10.0, 5.0, 30.0, 0.0).unwrap_err().contains("ends"));
        assert!(plan_windows(0.0, 5.0, 0.0, 0.0).unwrap_err().contains("window"));
        assert!(plan_windows(0.0, 5.0, 10.0, 10.0).unwrap_err().contains("overlap"));
        assert!(plan_windows(f64::NAN, 5.0, 10.0, 1.0).is_err());
    }
}
