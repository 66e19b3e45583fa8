//! Benchmark: how old microphone samples are when the consumer gets them, on the PulseAudio null sink.
//!
//! Opens `vsink.monitor` as a [`Microphone`], reads whatever is waiting about every `poll_ms` for `seconds`
//! (the interval is stretched slightly so reads sample every phase of the callback cycle), and prints the median and p99 over all reads that returned samples of:
//! - ring latency: the audio callback pushing the newest sample to the consumer reading it (time in omnid's
//!   ring, including the poll interval);
//! - capture latency: cpal's capture instant of the newest sample to the read (adds device/server buffering);
//! - cpal's capture-to-callback delay, as the backend reports it in each callback.
//!
//! ```sh
//! eval "$(scripts/pulse-null-sink.sh)"
//! cargo run --release -p omnid-codecs --example mic_latency -- [seconds=5] [poll_ms=10] [buffer_frames=480]
//! ```

#[cfg(feature = "audio-io")]
fn main() -> std::process::ExitCode {
    bench::run()
}

#[cfg(not(feature = "audio-io"))]
fn main() {
    eprintln!("mic_latency needs the audio-io feature");
}

#[cfg(feature = "audio-io")]
mod bench {
    use std::process::ExitCode;
    use std::time::{Duration, Instant};

    use omnid_codecs::audio_io::{HostChoice, Microphone, StreamOptions};

    /// Reads are at most this long: a 2 s ring at 48 kHz, so one read always empties it.
    const MAX_READ: usize = 96_000;

    pub fn run() -> ExitCode {
        let mut args = std::env::args().skip(1);
        let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
        let poll_ms: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
        let buffer_frames: Option<u32> = args.next().and_then(|s| s.parse().ok());
        if std::env::var_os("PULSE_SERVER").is_none() {
            eprintln!("PULSE_SERVER is unset: start the null sink with `eval \"$(scripts/pulse-null-sink.sh)\"`");
            return ExitCode::from(2);
        }
        let options =
            StreamOptions { buffer_frames, ..StreamOptions::on(HostChoice::PulseAudio).device("vsink.monitor") };
        let mut mic = match Microphone::open(&options) {
            Ok(mic) => mic,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let rate = mic.sample_rate_hz();
        println!(
            "{}: {} Hz, {} ch, buffer {} frames, reading every {poll_ms} ms for {seconds} s",
            mic.device(),
            rate,
            mic.device_channels(),
            buffer_frames.map_or_else(|| "default (10 ms)".to_owned(), |f| f.to_string()),
        );

        let mut buf = vec![0.0f32; MAX_READ];
        let (mut ring, mut capture, mut cpal_lag) = (Vec::new(), Vec::new(), Vec::new());
        let mut samples = 0u64;
        let poll = Duration::from_millis(poll_ms.max(1));
        // Both the reads and the callbacks tick on the same monotonic clock, so with equal periods every read
        // would land at one fixed phase of the callback cycle, and the numbers would depend on luck. Stretching
        // each interval a little sweeps the reads across one whole period over the run.
        let reads = (seconds / poll.as_secs_f64()).max(1.0);
        let sweep = poll.div_f64(reads);
        let start = Instant::now();
        let mut next = start + poll;
        // The first half second holds the stream's start-up burst; it is read but not measured.
        let warmup = Duration::from_millis(500);
        let mut measured_from: Option<(Instant, u64)> = None;
        while start.elapsed().as_secs_f64() < seconds {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            next += poll + sweep;
            let n = mic.read(&mut buf);
            if start.elapsed() < warmup {
                continue;
            }
            if measured_from.is_none() {
                measured_from = Some((Instant::now(), mic.captured_frames()));
            }
            if n == 0 {
                continue;
            }
            samples += n as u64;
            if let Some(timing) = mic.last_read_timing() {
                ring.push(timing.ring_latency());
                capture.push(timing.capture_latency());
            }
            if let Some(lag) = mic.capture_to_callback() {
                cpal_lag.push(lag);
            }
        }
        let (t0, frames0) = measured_from.unwrap_or((start, 0));
        let elapsed = t0.elapsed().as_secs_f64();
        let frames = mic.captured_frames() - frames0;
        println!(
            "read {samples} samples in {} reads; device delivered {:.1} frames/s; dropped {}, device xruns {}",
            ring.len(),
            frames as f64 / elapsed,
            mic.dropped_samples(),
            mic.device_xruns()
        );
        report("ring latency (callback -> read)", &mut ring);
        report("capture latency (captured -> read)", &mut capture);
        report("cpal capture -> callback", &mut cpal_lag);
        while let Some(error) = mic.stream_error() {
            println!("stream error: {error}");
        }
        ExitCode::SUCCESS
    }

    /// Prints median, p99 and max in milliseconds (nearest-rank percentiles).
    fn report(what: &str, values: &mut [Duration]) {
        if values.is_empty() {
            println!("{what}: no samples");
            return;
        }
        values.sort();
        let pick = |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{what}: median {:.2} ms, p99 {:.2} ms, max {:.2} ms (n = {})",
            ms(pick(0.5)),
            ms(pick(0.99)),
            ms(values[values.len() - 1]),
            values.len()
        );
    }
}
