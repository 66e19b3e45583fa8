//! The live stream's clock: seconds since the first frame, from the device's timestamps.

use std::time::Instant;

/// Seconds since the first frame on the device's clock, kept moving forward.
#[derive(Default)]
pub(crate) struct Clock {
    /// Device time of the first frame, in seconds.
    origin: Option<f64>,
    /// The last frame's time and when it was seen.
    last: Option<(f64, Instant)>,
}

impl Clock {
    /// The time of a frame with device time `device_s` (None when the frame has no timestamp), seen at `now`.
    pub(crate) fn seconds(&mut self, device_s: Option<f64>, now: Instant) -> f64 {
        // Without a device timestamp, the wall-clock time since the previous frame stands in.
        let by_wall = self.last.map_or(0.0, |(t, seen)| t + now.saturating_duration_since(seen).as_secs_f64());
        let mut t = match device_s.filter(|s| s.is_finite()) {
            Some(s) => s - *self.origin.get_or_insert(s - by_wall),
            None => by_wall,
        };
        if let Some((last, _)) = self.last {
            // A clock that steps back (a driver restart, a wrapped timestamp) would stall sampling until it
            // caught up: re-anchor it so this frame counts as simultaneous with the previous one.
            if t < last {
                if let (Some(s), Some(origin)) = (device_s, self.origin.as_mut()) {
                    *origin = s - last;
                }
                t = last;
            }
        }
        self.last = Some((t, now));
        t
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn clock_starts_at_zero_and_never_steps_back() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut c = Clock::default();
        assert_eq!(c.seconds(Some(1000.0), at(0)), 0.0);
        assert!((c.seconds(Some(1000.5), at(500)) - 0.5).abs() < 1e-9);
        // The device clock jumps back by 100 s: time stays put, then moves on from there.
        assert!((c.seconds(Some(900.6), at(600)) - 0.5).abs() < 1e-9);
        assert!((c.seconds(Some(901.1), at(1100)) - 1.0).abs() < 1e-9);
        // No timestamp: the wall clock since the previous frame.
        assert!((c.seconds(None, at(1350)) - 1.25).abs() < 1e-9);
    }
}
