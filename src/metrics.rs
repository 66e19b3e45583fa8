//! Counters, gauges and histograms of the daemon, exposed at `GET /metrics` in the Prometheus
//! text format. Plain atomics: recording never blocks the engine thread or a request.
//! Latency buckets are in units of the 80 ms codec frame (the budget of real-time speech).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds of the latency buckets, seconds: ½, 1, 2, 3, 6, 12, 25, 50, 100 frames of 80 ms.
pub const LATENCY_BUCKETS_S: [f64; 9] = [0.04, 0.08, 0.16, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0];

/// A cumulative histogram.
#[derive(Debug)]
pub struct Histogram {
    counts: [AtomicU64; LATENCY_BUCKETS_S.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        for (bound, c) in LATENCY_BUCKETS_S.iter().zip(&self.counts) {
            if seconds <= *bound {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((seconds.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, c) in LATENCY_BUCKETS_S.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", c.load(Ordering::Relaxed));
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {n}");
    }
}

/// How a generation job ended.
#[derive(Debug, Clone, Copy)]
pub enum JobOutcome {
    Completed,
    Cancelled,
    Failed,
}

/// Everything measured.
#[derive(Debug, Default)]
pub struct Metrics {
    /// `(route, status)` → responses.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    realtime_sessions: AtomicI64,
    prompt_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    jobs: [AtomicU64; 3],
    /// Answers in the engine's batch now.
    running: AtomicI64,
    decode_steps: AtomicU64,
    decode_rows: AtomicU64,
    pub first_token: Histogram,
    pub first_audio: Histogram,
}

impl Metrics {
    pub fn request(&self, route: &str, status: u16) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((route.to_string(), status)).or_insert(0) += 1;
    }

    pub fn job(&self, outcome: JobOutcome, prompt_tokens: usize, generated_tokens: usize) {
        self.jobs[outcome as usize].fetch_add(1, Ordering::Relaxed);
        self.prompt_tokens.fetch_add(prompt_tokens as u64, Ordering::Relaxed);
        self.generated_tokens.fetch_add(generated_tokens as u64, Ordering::Relaxed);
    }

    /// The number of answers being generated now.
    pub fn set_running(&self, n: usize) {
        self.running.store(n as i64, Ordering::Relaxed);
    }

    /// One batched decode step over `rows` answers.
    pub fn decode_step(&self, rows: usize) {
        self.decode_steps.fetch_add(1, Ordering::Relaxed);
        self.decode_rows.fetch_add(rows as u64, Ordering::Relaxed);
    }

    /// A Realtime session opened; the guard closes it.
    pub fn session_opened(&self) -> SessionGuard<'_> {
        self.realtime_sessions.fetch_add(1, Ordering::Relaxed);
        SessionGuard(self)
    }

    /// The Prometheus text exposition; `waiting` is the engine queue's depth now.
    pub fn render(&self, waiting: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP omnid_requests_total HTTP responses by route and status.\n# TYPE omnid_requests_total counter"
        );
        for ((route, status), n) in self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "omnid_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        let gauge = |out: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(&mut out, "omnid_queue_waiting", "Requests waiting for the engine.", waiting as i64);
        gauge(&mut out, "omnid_engine_running", "Answers being generated now.", self.running.load(Ordering::Relaxed));
        gauge(
            &mut out,
            "omnid_realtime_sessions",
            "Open Realtime sessions.",
            self.realtime_sessions.load(Ordering::Relaxed),
        );
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            &mut out,
            "omnid_prompt_tokens_total",
            "Prompt tokens processed.",
            self.prompt_tokens.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "omnid_generated_tokens_total",
            "Tokens generated.",
            self.generated_tokens.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "omnid_decode_steps_total",
            "Batched decode steps.",
            self.decode_steps.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "omnid_decode_rows_total",
            "Answers advanced by decode steps (divided by the steps: the mean batch size).",
            self.decode_rows.load(Ordering::Relaxed),
        );
        let _ = writeln!(out, "# HELP omnid_jobs_total Generation jobs by outcome.\n# TYPE omnid_jobs_total counter");
        for (i, name) in ["completed", "cancelled", "failed"].iter().enumerate() {
            let _ = writeln!(out, "omnid_jobs_total{{outcome=\"{name}\"}} {}", self.jobs[i].load(Ordering::Relaxed));
        }
        self.first_token.render(&mut out, "omnid_first_token_seconds", "Request arrival to the first generated token.");
        self.first_audio.render(
            &mut out,
            "omnid_first_audio_seconds",
            "Request arrival to the first audio chunk of a spoken answer.",
        );
        out
    }
}

/// Decrements the open-session gauge on drop.
pub struct SessionGuard<'a>(&'a Metrics);

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        self.0.realtime_sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_counts_what_was_recorded() {
        let m = Metrics::default();
        m.request("/v1/models", 200);
        m.request("/v1/models", 200);
        m.first_token.observe(0.1);
        m.first_token.observe(3.0);
        m.job(JobOutcome::Completed, 10, 5);
        {
            let _s = m.session_opened();
            assert!(m.render(0).contains("omnid_realtime_sessions 1"));
        }
        let text = m.render(2);
        for line in [
            "omnid_requests_total{route=\"/v1/models\",status=\"200\"} 2",
            "omnid_queue_waiting 2",
            "omnid_realtime_sessions 0",
            "omnid_generated_tokens_total 5",
            "omnid_jobs_total{outcome=\"completed\"} 1",
            "omnid_first_token_seconds_bucket{le=\"0.08\"} 0",
            "omnid_first_token_seconds_bucket{le=\"0.16\"} 1",
            "omnid_first_token_seconds_bucket{le=\"+Inf\"} 2",
            "omnid_first_token_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing from\n{text}");
        }
    }
}
