//! Black-box tests for `omnid_codecs::wav` and `omnid_codecs::resample`: WAV files of every supported sample
//! format are written with hound, read back, and checked value by value; resampling is checked for exact
//! length, preserved frequency and absence of delay.

use std::f64::consts::PI;
use std::path::PathBuf;

use omnid_codecs::resample::resample;
use omnid_codecs::wav::{read_wav, read_wav_bytes};
use omnid_codecs::CodecError;

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omnid-codecs-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write_int_wav(name: &str, bits: u16, channels: u16, frames: &[Vec<i32>]) -> PathBuf {
    let path = temp_path(name);
    let spec =
        hound::WavSpec { channels, sample_rate: 22050, bits_per_sample: bits, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for frame in frames {
        for &s in frame {
            match bits {
                8 => w.write_sample(s as i8).unwrap(),
                16 => w.write_sample(s as i16).unwrap(),
                _ => w.write_sample(s).unwrap(),
            }
        }
    }
    w.finalize().unwrap();
    path
}

#[test]
fn reads_every_integer_width_and_mixes_channels_by_mean() {
    for (bits, full) in [(8u16, 128i64), (16, 32768), (24, 8388608), (32, 2147483648)] {
        let max = (full - 1) as i32;
        let min = (-full) as i32;
        let frames = vec![vec![max, min], vec![0, max], vec![min, min], vec![(full / 2) as i32, 0]];
        let path = write_int_wav(&format!("int{bits}.wav"), bits, 2, &frames);
        let audio = read_wav(&path).unwrap();
        assert_eq!(audio.sample_rate_hz, 22050);
        assert_eq!(audio.samples.len(), 4, "{bits}-bit");
        let f = |v: i32| (v as f64 / full as f64) as f32;
        let expected = [(f(max) + f(min)) * 0.5, (f(0) + f(max)) * 0.5, f(min), 0.25];
        for (got, want) in audio.samples.iter().zip(expected) {
            assert!((got - want).abs() <= 1e-7, "{bits}-bit: got {got}, want {want}");
        }
        assert_eq!(audio.samples[2], -1.0, "{bits}-bit full-scale negative must map to exactly -1");
    }
}

#[test]
fn reads_float_wav_and_three_channels() {
    let path = temp_path("float3.wav");
    let spec = hound::WavSpec {
        channels: 3,
        sample_rate: 48000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for s in [0.3f32, 0.6, -0.3, 1.5, 0.0, 0.0] {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    let audio = read_wav(&path).unwrap();
    assert_eq!(audio.sample_rate_hz, 48000);
    assert_eq!(audio.samples.len(), 2);
    assert!((audio.samples[0] - 0.2).abs() < 1e-7);
    assert!((audio.samples[1] - 0.5).abs() < 1e-7);
}

#[test]
fn reads_bytes_like_files() {
    let path = write_int_wav("bytes.wav", 16, 1, &[vec![1000], vec![-2000]]);
    let bytes = std::fs::read(&path).unwrap();
    let a = read_wav_bytes(&bytes).unwrap();
    assert_eq!(a.samples, vec![1000.0 / 32768.0, -2000.0 / 32768.0]);
}

#[test]
fn missing_file_names_the_path() {
    let path = temp_path("does-not-exist.wav");
    let err = read_wav(&path).unwrap_err();
    assert!(matches!(err, CodecError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("does-not-exist.wav"), "{err}");
}

#[test]
fn not_a_wav_is_reported() {
    let path = temp_path("text.wav");
    std::fs::write(&path, b"this is not audio at all, just some text").unwrap();
    let err = read_wav(&path).unwrap_err();
    assert!(matches!(err, CodecError::NotWav { .. }), "{err:?}");
    assert!(err.to_string().contains("text.wav"), "{err}");
    let err = read_wav_bytes(b"RIF").unwrap_err();
    assert!(matches!(err, CodecError::NotWav { .. }), "{err:?}");
}

#[test]
fn truncated_data_is_reported_with_counts() {
    let frames: Vec<Vec<i32>> = (0..100).map(|i| vec![i * 10]).collect();
    let path = write_int_wav("trunc.wav", 16, 1, &frames);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 41); // drops 20.5 samples
    std::fs::write(&path, &bytes).unwrap();
    match read_wav(&path).unwrap_err() {
        CodecError::TruncatedWav { declared, read, source_name } => {
            assert_eq!(declared, 100);
            assert_eq!(read, 79);
            assert!(source_name.contains("trunc.wav"));
        }
        other => panic!("expected TruncatedWav, got {other:?}"),
    }
}

/// A canonical 44-byte PCM header with the given channel count and data length.
fn header(channels: u16, data_len: u32) -> Vec<u8> {
    let (rate, bits) = (16000u32, 16u16);
    let block_align = channels * bits / 8;
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data_len).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    h.extend_from_slice(&block_align.to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

#[test]
fn zero_channels_and_empty_audio_are_reported() {
    let err = read_wav_bytes(&header(0, 0)).unwrap_err();
    assert!(matches!(err, CodecError::ZeroChannels { .. }), "{err:?}");
    let err = read_wav_bytes(&header(1, 0)).unwrap_err();
    assert!(matches!(err, CodecError::EmptyAudio { .. }), "{err:?}");
    assert!(err.to_string().contains("empty"), "{err}");
}

fn tone(freq: f64, rate: u32, seconds: f64) -> Vec<f32> {
    let n = (seconds * f64::from(rate)).round() as usize;
    (0..n).map(|i| (0.5 * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as f32).collect()
}

/// Frequency estimated from rising zero crossings in the middle of the buffer (away from edge effects).
fn zero_crossing_hz(x: &[f32], rate: u32) -> f64 {
    let (a, b) = (x.len() / 10, x.len() * 9 / 10);
    let crossings: Vec<usize> = (a + 1..b).filter(|&i| x[i - 1] < 0.0 && x[i] >= 0.0).collect();
    let span = (crossings[crossings.len() - 1] - crossings[0]) as f64;
    (crossings.len() - 1) as f64 * f64::from(rate) / span
}

#[test]
fn tone_keeps_frequency_and_length() {
    for from in [44100u32, 48000, 22050, 8000] {
        let x = tone(1000.0, from, 1.37);
        let y = resample(&x, from, 16000).unwrap();
        let expected_len = ((x.len() as u64 * 16000 + u64::from(from) / 2) / u64::from(from)) as usize;
        assert_eq!(y.len(), expected_len, "{from} Hz");
        let hz = zero_crossing_hz(&y, 16000);
        assert!((hz - 1000.0).abs() < 0.5, "{from} Hz -> 16 kHz: measured {hz} Hz");
        // Amplitude preserved in the passband (no gain error, no silence from a mis-trimmed delay).
        let mid = &y[y.len() / 4..y.len() * 3 / 4];
        let peak = mid.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!((peak - 0.5).abs() < 0.01, "{from} Hz: peak {peak}");
    }
}

#[test]
fn output_is_not_delayed() {
    // A short Gaussian click at 0.25 s must stay at 0.25 s.
    for from in [44100u32, 48000] {
        let n = from as usize / 2;
        let centre = 0.25 * f64::from(from);
        let sigma = 0.0005 * f64::from(from);
        let x: Vec<f32> = (0..n).map(|i| (-(((i as f64 - centre) / sigma).powi(2)) / 2.0).exp() as f32).collect();
        let y = resample(&x, from, 16000).unwrap();
        let peak = y.iter().enumerate().fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m }).0;
        assert!((peak as i64 - 4000).abs() <= 1, "{from} Hz: click moved to sample {peak} (want 4000)");
    }
}

#[test]
fn upsampling_also_works() {
    let x = tone(440.0, 16000, 0.5);
    let y = resample(&x, 16000, 44100).unwrap();
    assert_eq!(y.len(), 22050);
    let hz = zero_crossing_hz(&y, 44100);
    assert!((hz - 440.0).abs() < 0.5, "measured {hz}");
}
