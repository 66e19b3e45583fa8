//! Which frames of a live source to keep for a requested rate.
//!
//! Due times are `k / fps` on the source's clock (0, 0.5, 1.0 … at 2 fps), computed from `k` each time
//! rather than by adding `1 / fps` repeatedly, so rounding never accumulates and the long-run rate is
//! exact. A frame is kept when its timestamp reaches the next due time, less a tolerance of half the
//! source's frame interval: a frame that arrives a few milliseconds early because of capture jitter
//! still counts for its due time instead of being skipped in favour of the one after it. After a gap in
//! the source (a stalled camera), sampling resumes at the first due time after the gap instead of
//! sending a burst of catch-up frames.

/// Keeps frames at a requested rate; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct Sampler {
    fps: f64,
    /// Index `k` of the next due time `k / fps`.
    next: u64,
    /// The source's frame interval as the device declares it; otherwise the last observed one is used.
    declared_interval_s: Option<f64>,
    prev_t: Option<f64>,
}

impl Sampler {
    /// A sampler at `fps` (> 0) for a source whose declared rate, if it has a sane one, is `native_fps`.
    pub(crate) fn new(fps: f64, native_fps: Option<f64>) -> Self {
        let declared_interval_s = native_fps.filter(|r| r.is_finite() && *r > 0.0).map(|r| 1.0 / r);
        Sampler { fps, next: 0, declared_interval_s, prev_t: None }
    }

    /// Whether to keep the frame at `t` seconds (non-decreasing from frame to frame).
    pub(crate) fn offer(&mut self, t: f64) -> bool {
        let observed = self.prev_t.map(|p| t - p);
        self.prev_t = Some(t);
        let interval = self.declared_interval_s.or(observed).unwrap_or(0.0);
        // At most half a sampling interval, so one frame can never count for two due times.
        let tolerance = (0.5 * interval).clamp(0.0, 0.5 / self.fps);
        let due = self.next as f64 / self.fps;
        // A NaN time is never kept.
        if t.is_nan() || t + tolerance < due {
            return false;
        }
        // The last due time at or before `t`: the next one is after it even when the source skipped several.
        let reached = (t * self.fps).floor();
        let reached = if (0.0..1e18).contains(&reached) { reached as u64 } else { self.next };
        self.next = self.next.max(reached).saturating_add(1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(sampler: &mut Sampler, times: impl IntoIterator<Item = f64>) -> Vec<f64> {
        times.into_iter().filter(|&t| sampler.offer(t)).collect()
    }

    #[test]
    fn keeps_the_frames_at_the_due_times() {
        let mut s = Sampler::new(5.0, Some(25.0));
        let got = kept(&mut s, (0..50).map(|i| f64::from(i) / 25.0));
        let want: Vec<f64> = (0..10).map(|k| f64::from(k) / 5.0).collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-9, "{got:?}");
        }
    }

    #[test]
    fn ntsc_rate_does_not_drift() {
        // 29.97 fps sampled at 2 fps for an hour: one frame per due time, each within one frame of it.
        let mut s = Sampler::new(2.0, Some(30_000.0 / 1001.0));
        let got = kept(&mut s, (0..107_892).map(|i| f64::from(i) * 1001.0 / 30_000.0));
        assert_eq!(got.len(), 7200);
        for (k, t) in got.iter().enumerate() {
            assert!((t - k as f64 / 2.0).abs() <= 1001.0 / 30_000.0, "frame {k} at {t}");
        }
    }

    #[test]
    fn jitter_around_the_due_time_keeps_one_frame_each() {
        // Native rate equal to the sampling rate, frames up to 20 ms early or late.
        let mut s = Sampler::new(4.0, None);
        let jitter = [0.0, -0.02, 0.02, -0.015, 0.0, 0.019, -0.02, 0.01];
        let got = kept(&mut s, jitter.iter().enumerate().map(|(k, j)| k as f64 / 4.0 + j));
        assert_eq!(got.len(), jitter.len(), "{got:?}");
    }

    #[test]
    fn resumes_after_a_gap_without_a_burst() {
        let mut s = Sampler::new(2.0, Some(10.0));
        let mut times: Vec<f64> = (0..=10).map(|i| f64::from(i) / 10.0).collect(); // 0 .. 1.0 s
        times.extend((0..=10).map(|i| 5.0 + f64::from(i) / 10.0)); // gap until 5.0 s
        assert_eq!(kept(&mut s, times), [0.0, 0.5, 1.0, 5.0, 5.5, 6.0]);
        assert!(!s.offer(f64::NAN));
    }
}
