//! Tests against real audio devices, for a machine with no sound card:
//! - ALSA's `null` device, always there but not paced in real time: a smoke test of the stream code.
//! - A PulseAudio null sink `vsink` and its monitor `vsink.monitor`: a real-time 1 kHz loopback.
//! - In a child process whose `PULSE_SERVER` points nowhere: PulseAudio gives a clear error, no panic, and
//!   ALSA's `default` device, which exists without a card but has no config, is reported absent.
//!
//! The loopback test needs the null sink, which `scripts/pulse-null-sink.sh` starts; run
//! `eval "$(scripts/pulse-null-sink.sh)"` in the shell before `cargo test`. Without `PULSE_SERVER` that test
//! fails and says so, rather than skipping.
//!
//! Tests that open devices hold one lock, so that the unpaced `null` streams (one busy core each) do not
//! disturb the real-time loopback's timing on a small machine.
#![cfg(feature = "audio-io")]

use std::f32::consts::TAU;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use omnid_codecs::audio_io::{discover, HostChoice, Microphone, Speaker, StreamOptions};
use omnid_codecs::CodecError;

static DEVICES: Mutex<()> = Mutex::new(());

fn devices_lock() -> MutexGuard<'static, ()> {
    DEVICES.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// True when the kernel knows no sound card (no `/proc/asound/cards`, or it says so).
fn no_sound_card() -> bool {
    match std::fs::read_to_string("/proc/asound/cards") {
        Ok(cards) => cards.trim().is_empty() || cards.contains("no soundcards"),
        Err(_) => true,
    }
}

/// Panics with instructions unless a PulseAudio server is configured.
fn require_pulse_server() -> String {
    match std::env::var("PULSE_SERVER") {
        Ok(server) if !server.is_empty() => server,
        _ => panic!(
            "this test needs the PulseAudio null sink and PULSE_SERVER is unset; start it with \
             `eval \"$(scripts/pulse-null-sink.sh)\"` (from the repository root) and rerun"
        ),
    }
}

#[test]
fn alsa_null_microphone_reads_zeros_and_stops_on_drop() {
    let _lock = devices_lock();
    let mut mic =
        Microphone::open(&StreamOptions::on(HostChoice::Alsa).device("null")).expect("ALSA null device opens");
    assert_eq!(mic.device(), "microphone (ALSA: null)");
    assert!(mic.sample_rate_hz() >= 8_000, "rate {}", mic.sample_rate_hz());
    assert!(mic.device_channels() >= 1);

    let mut buf = vec![1.0f32; 4_800];
    let got = mic.read_timeout(&mut buf, Duration::from_secs(2));
    assert_eq!(got, buf.len(), "the null device delivers at least 4800 samples within 2 s");
    assert!(buf.iter().all(|&s| s == 0.0), "the null device captures silence");
    assert!(mic.captured_frames() >= got as u64);
    let timing = mic.last_read_timing().expect("a read that returned samples has timing");
    assert_eq!(timing.samples, got);
    assert_eq!(timing.stream_time(), mic.stream_time(timing.first_frame));
    assert!(mic.stream_error().is_none());

    let started = Instant::now();
    drop(mic);
    assert!(started.elapsed() < Duration::from_secs(2), "dropping stopped the stream in {:?}", started.elapsed());
}

#[test]
fn alsa_null_speaker_plays_what_was_queued_then_silence() {
    let _lock = devices_lock();
    let mut speaker =
        Speaker::open(&StreamOptions::on(HostChoice::Alsa).device("null")).expect("ALSA null device opens");
    assert_eq!(speaker.device(), "speaker (ALSA: null)");
    let tone: Vec<f32> = (0..4_800).map(|i| (i as f32 * 0.1).sin() * 0.5).collect();
    assert_eq!(speaker.write_timeout(&tone, Duration::from_secs(2)), tone.len());
    assert!(speaker.drain(Duration::from_secs(2)), "the unpaced null device consumes 4800 samples at once");
    assert_eq!(speaker.played_samples(), 4_800);
    assert_eq!(speaker.written_samples(), 4_800);
    let deadline = Instant::now() + Duration::from_secs(2);
    while speaker.silence_frames() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(speaker.silence_frames() > 0, "with the ring empty the callback plays (and counts) silence");
    assert_eq!(speaker.cleared_samples(), 0);
    assert!(speaker.stream_error().is_none());
    let started = Instant::now();
    drop(speaker);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn unknown_device_names_list_what_exists() {
    let _lock = devices_lock();
    match Microphone::open(&StreamOptions::on(HostChoice::Alsa).device("no-such-device")) {
        Err(CodecError::AudioDevice { device, problem }) => {
            assert_eq!(device, "microphone (ALSA: no-such-device)");
            assert!(problem.starts_with("no such device; ALSA has: "), "problem: {problem}");
            assert!(problem.contains("null"), "the null device is listed: {problem}");
        }
        other => panic!("expected an AudioDevice error, got {other:?}"),
    }
}

#[test]
fn discovery_lists_hosts_and_says_what_is_absent() {
    let _lock = devices_lock();
    let report = discover();
    println!("{report}");
    let alsa = report.host("ALSA").expect("ALSA is always built on Linux");
    assert_eq!(alsa.problem, None);
    assert!(alsa.inputs.iter().any(|d| d.id == "null" && d.config.is_ok()), "ALSA null is a usable input");
    assert!(alsa.outputs.iter().any(|d| d.id == "null" && d.config.is_ok()), "ALSA null is a usable output");
    let default_input = alsa.default_input.as_ref().expect("ALSA always names a default device");
    assert_eq!(default_input.id, "default");
    // Whether ALSA's default works here depends on a card, or on libasound2-plugins routing it to a running
    // PulseAudio server; the child process of `without_a_sound_server_devices_are_reported_absent` checks the
    // no-card, no-server case.

    let pulse = report.host("PulseAudio").expect("cpal is built with its pulseaudio feature");
    if std::env::var_os("PULSE_SERVER").is_some() {
        assert_eq!(pulse.problem, None, "PULSE_SERVER is set, so the server should answer");
        let input = pulse.usable_default_input().expect("the null sink's monitor is the default input");
        assert_eq!(input.id, "vsink.monitor");
        let config = input.config.as_ref().expect("usable");
        assert_eq!(config.sample_rate_hz, 48_000);
        assert_eq!(config.channels, 2);
        assert!(pulse.outputs.iter().any(|d| d.id == "vsink"));
    } else {
        let problem = pulse.problem.as_deref().expect("no server configured, so the host is unavailable");
        assert!(problem.starts_with("no PulseAudio server answers"), "problem: {problem}");
    }
}

/// Frequency of a clean tone from its rising zero crossings, each placed by linear interpolation.
fn tone_frequency(samples: &[f32], sample_rate_hz: u32) -> f64 {
    let crossings: Vec<f64> = samples
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, w)| i as f64 + f64::from(w[0] / (w[0] - w[1])))
        .collect();
    assert!(crossings.len() > 10, "too few zero crossings ({}) to measure a frequency", crossings.len());
    let span = crossings[crossings.len() - 1] - crossings[0];
    (crossings.len() - 1) as f64 * f64::from(sample_rate_hz) / span
}

#[test]
fn tone_frequency_estimator_is_accurate() {
    let rate = 48_000;
    let tone: Vec<f32> = (0..rate).map(|i| (TAU * 997.3 * i as f32 / rate as f32).sin()).collect();
    let f = tone_frequency(&tone, rate);
    assert!((f - 997.3).abs() < 0.05, "estimated {f}");
}

#[test]
fn pulse_null_sink_loopback_returns_a_1khz_tone_at_the_nominal_rate() {
    require_pulse_server();
    let _lock = devices_lock();
    let pulse = StreamOptions::on(HostChoice::PulseAudio);
    // A 100 ms playback period (the default is 40 ms) gives the client a full period of slack. In debug builds
    // cpal's PulseAudio client can burn most of a core per stream (unless the dev profile optimises the
    // `pulseaudio` crate), and with 40 ms a busy 2-core machine still put gaps in the tone. What this test
    // checks is the capture path and the tone itself.
    let speaker_options = StreamOptions { buffer_frames: Some(4_800), ..pulse.clone().device("vsink") };
    let mut speaker = Speaker::open(&speaker_options).expect("the null sink opens");
    let mut mic = Microphone::open(&pulse.device("vsink.monitor")).expect("the null sink's monitor opens");
    assert_eq!(speaker.device(), "speaker (PulseAudio: vsink)");
    assert_eq!(mic.device(), "microphone (PulseAudio: vsink.monitor)");
    let rate = mic.sample_rate_hz();
    assert_eq!(speaker.sample_rate_hz(), rate);

    const AMPLITUDE: f32 = 0.5;
    let mut phase_index = 0u64;
    let mut next_tone = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                // Phase from an integer index modulo one second keeps f32 precision over long runs.
                let t = (phase_index % u64::from(rate)) as f32 / rate as f32;
                phase_index += 1;
                AMPLITUDE * (TAU * 1_000.0 * t).sin()
            })
            .collect()
    };

    let started = Instant::now();
    let run = Duration::from_secs(3);
    let warmup = Duration::from_millis(500);
    let mut steady_start: Option<(Instant, u64)> = None;
    let mut captured = Vec::with_capacity(rate as usize * 4);
    let mut chunk = vec![0.0f32; 480];
    while started.elapsed() < run {
        // Keep about 100 ms queued: enough to ride out scheduling hiccups, little enough to stay real time.
        while speaker.queued() < u64::from(rate / 10) {
            let tone = next_tone(480);
            assert_eq!(speaker.write(&tone), tone.len(), "the 2 s ring has room");
        }
        let n = mic.read_timeout(&mut chunk, Duration::from_millis(10));
        captured.extend_from_slice(&chunk[..n]);
        if steady_start.is_none() && started.elapsed() >= warmup {
            steady_start = Some((Instant::now(), mic.captured_frames()));
        }
    }
    let (t0, frames0) = steady_start.expect("the loop ran past the warm-up");
    let elapsed = t0.elapsed().as_secs_f64();
    let frames = mic.captured_frames() - frames0;
    let measured_rate = frames as f64 / elapsed;
    println!("capture ran at {measured_rate:.1} frames/s over {elapsed:.2} s (nominal {rate})");
    assert!(
        (measured_rate / f64::from(rate) - 1.0).abs() < 0.02,
        "capture rate {measured_rate:.1} frames/s is not within 2% of {rate}"
    );

    let onset = captured
        .iter()
        .position(|&s| s.abs() > AMPLITUDE / 2.0)
        .expect("the tone played into vsink comes back from vsink.monitor");
    // Skip 100 ms after the onset, then analyse one second.
    let start = onset + rate as usize / 10;
    let window = &captured[start.min(captured.len())..(start + rate as usize).min(captured.len())];
    assert!(window.len() >= rate as usize, "at least 1 s of tone captured (got {} samples)", window.len());
    let frequency = tone_frequency(window, rate);
    let rms = (window.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / window.len() as f64).sqrt();
    // Runs of exact zeros inside the tone are gaps the server filled because the playback client was late.
    let gap_samples = window.windows(3).filter(|w| w.iter().all(|&x| x == 0.0)).count();
    println!("loopback tone: {frequency:.3} Hz, RMS {rms:.4}, {gap_samples} samples in gaps");
    assert!(
        (frequency - 1_000.0).abs() <= 5.0,
        "captured tone is {frequency:.3} Hz, not 1000 ± 5 Hz ({gap_samples} of {} samples fall in silent gaps: \
         if many, the playback client was scheduled late, e.g. on a machine under heavy load)",
        window.len()
    );
    let expected_rms = f64::from(AMPLITUDE) / 2f64.sqrt();
    assert!((rms / expected_rms - 1.0).abs() < 0.05, "RMS {rms:.4}, expected {expected_rms:.4}");
    assert_eq!(mic.dropped_samples(), 0, "the consumer kept up");
    assert!(mic.stream_error().is_none(), "no stream error");
    assert!(speaker.stream_error().is_none(), "no stream error");
}

/// Name of the test the parent runs in a child process; keep in sync with the function below.
const CHILD_TEST: &str = "child_without_a_sound_server";
/// Set in the child's environment, so the child test does its work only there.
const CHILD_ENV: &str = "OMNID_AUDIO_TEST_CHILD";
/// Where the child's `PULSE_SERVER` points: a socket that does not exist.
const MISSING_SERVER: &str = "unix:/nonexistent/omnid-no-pulse/native";

/// With no sound server (`PULSE_SERVER` pointing at a socket that does not exist), asking for PulseAudio gives
/// a clear `AudioDevice` error and no panic; `Auto` falls back to ALSA; and on a machine without a sound card
/// ALSA's `default` device is reported absent (with a server running, libasound2-plugins would route it to
/// PulseAudio). The environment is per process, so this runs in a child process of this test binary:
/// changing `PULSE_SERVER` here would break the loopback test running beside it.
#[test]
fn without_a_sound_server_devices_are_reported_absent() {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let output = Command::new(exe)
        .args(["--exact", CHILD_TEST, "--include-ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("PULSE_SERVER", MISSING_SERVER)
        .env_remove("PULSE_RUNTIME_PATH")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("the test binary starts again as a child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "the child test ran:\n{stdout}");
    assert!(
        stdout.contains("CHILD-OK microphone (PulseAudio: default): no PulseAudio server answers"),
        "child output:\n{stdout}"
    );
}

#[test]
#[ignore = "run in a child process by without_a_sound_server_devices_are_reported_absent"]
fn child_without_a_sound_server() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // Run by hand without the parent's environment; the parent's assertions are what count.
    }
    let pulse = StreamOptions::on(HostChoice::PulseAudio);
    let error = Microphone::open(&pulse).expect_err("no server, no microphone");
    let CodecError::AudioDevice { device, problem } = &error else { panic!("expected AudioDevice, got {error:?}") };
    assert_eq!(device, "microphone (PulseAudio: default)");
    assert!(problem.starts_with("no PulseAudio server answers"), "problem: {problem}");
    assert!(problem.contains("/nonexistent/omnid-no-pulse/native"), "names the server it looked for: {problem}");

    match Speaker::open(&pulse.device("vsink")) {
        Err(CodecError::AudioDevice { device, problem }) => {
            assert_eq!(device, "speaker (PulseAudio: vsink)");
            assert!(problem.starts_with("no PulseAudio server answers"), "problem: {problem}");
        }
        other => panic!("expected an AudioDevice error, got {other:?}"),
    }

    let report = discover();
    let pulse_problem = report.host("PulseAudio").and_then(|h| h.problem.clone());
    assert!(pulse_problem.is_some_and(|p| p.starts_with("no PulseAudio server answers")));

    if no_sound_card() {
        // ALSA's default device is listed but has no config: that is where "absent" is decided.
        let alsa = report.host("ALSA").expect("ALSA is always built on Linux");
        let default_input = alsa.default_input.as_ref().expect("ALSA always names a default device");
        let problem = default_input.config.as_ref().expect_err("no card, no server: no config");
        assert!(problem.starts_with("no audio input device is available (ALSA: "), "problem: {problem}");
        assert!(alsa.usable_default_input().is_none());
        assert!(alsa.usable_default_output().is_none());

        // Auto falls back to ALSA instead of failing on the missing server, and ALSA has no device.
        match Microphone::open(&StreamOptions::default()) {
            Err(CodecError::AudioDevice { device, problem }) => {
                assert_eq!(device, "microphone (ALSA: default)");
                assert!(problem.starts_with("no audio input device is available (ALSA: "), "problem: {problem}");
            }
            other => panic!("expected an AudioDevice error without card or server, got {other:?}"),
        }
        match Speaker::open(&StreamOptions::on(HostChoice::Alsa)) {
            Err(CodecError::AudioDevice { device, problem }) => {
                assert_eq!(device, "speaker (ALSA: default)");
                assert!(problem.starts_with("no audio output device is available (ALSA: "), "problem: {problem}");
            }
            other => panic!("expected an AudioDevice error without card or server, got {other:?}"),
        }
    } else {
        let mic = Microphone::open(&StreamOptions::default()).expect("auto falls back to ALSA and the card");
        assert!(mic.device().starts_with("microphone (ALSA: "), "auto opened {}", mic.device());
    }
    println!("CHILD-OK {error}");
}
