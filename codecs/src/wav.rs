//! WAV input: reads RIFF/WAVE files or in-memory bytes (via hound) in any common sample format — 8/16/24/32-bit
//! integer PCM or 32-bit IEEE float, any channel count — and returns mono `f32` in [-1, 1) plus the sample rate.
//!
//! Integer samples are scaled by `1 / 2^(bits-1)` (the convention of soundfile/librosa, which the Python
//! reference pipeline uses to load audio), so 16-bit PCM `s` becomes exactly `s / 32768`. Channels are mixed
//! down by their mean.

use std::io::{Cursor, Read};
use std::path::Path;

use crate::{io_error, CodecError, Result};

/// Mono audio as read from a WAV source.
#[derive(Debug, Clone, PartialEq)]
pub struct MonoAudio {
    /// Samples in [-1, 1), channel mean of the source.
    pub samples: Vec<f32>,
    /// Sample rate of the source in Hz.
    pub sample_rate_hz: u32,
}

/// Reads a WAV file into mono `f32`.
///
/// Errors name the file: missing, not a WAV, truncated data, zero channels, unsupported sample format, or no
/// samples at all.
pub fn read_wav(path: &Path) -> Result<MonoAudio> {
    let source_name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| io_error(&source_name, e))?;
    read_wav_from(std::io::BufReader::new(file), &source_name)
}

/// Reads WAV bytes held in memory (an upload, a base64-decoded payload) into mono `f32`.
pub fn read_wav_bytes(bytes: &[u8]) -> Result<MonoAudio> {
    let source_name = format!("in-memory WAV ({} bytes)", bytes.len());
    read_wav_from(Cursor::new(bytes), &source_name)
}

/// Upper bound on the samples reserved up front: the header's declared length is not trusted for allocation,
/// because a 44-byte file can declare four billion samples.
const MAX_PREALLOCATED_SAMPLES: usize = 1 << 22;

fn read_wav_from<R: Read>(reader: R, source_name: &str) -> Result<MonoAudio> {
    let mut wav = hound::WavReader::new(reader).map_err(|e| header_error(source_name, e))?;
    let spec = wav.spec();
    let channels = usize::from(spec.channels);
    if channels == 0 {
        // hound already rejects this; kept so the invariant does not depend on hound's version.
        return Err(CodecError::ZeroChannels { source_name: source_name.to_owned() });
    }
    let declared = u64::from(wav.len());
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Int => {
            if spec.bits_per_sample == 0 || spec.bits_per_sample > 32 {
                return Err(CodecError::UnsupportedSampleFormat {
                    source_name: source_name.to_owned(),
                    bits: spec.bits_per_sample,
                    format: "integer",
                });
            }
            // Exact in f64; the product is then rounded once to f32 (exact for up to 24-bit samples).
            let scale = 1.0 / f64::from(1u32 << (spec.bits_per_sample - 1));
            collect(wav.samples::<i32>(), declared, source_name, |s| (f64::from(s) * scale) as f32)?
        }
        hound::SampleFormat::Float => {
            if spec.bits_per_sample != 32 {
                return Err(CodecError::UnsupportedSampleFormat {
                    source_name: source_name.to_owned(),
                    bits: spec.bits_per_sample,
                    format: "float",
                });
            }
            collect(wav.samples::<f32>(), declared, source_name, |s| s)?
        }
    };
    if interleaved.is_empty() {
        return Err(CodecError::EmptyAudio { source_name: source_name.to_owned() });
    }
    let samples = if channels == 1 {
        interleaved
    } else {
        let inv = 1.0 / channels as f32;
        interleaved.chunks_exact(channels).map(|frame| frame.iter().sum::<f32>() * inv).collect()
    };
    Ok(MonoAudio { samples, sample_rate_hz: spec.sample_rate })
}

/// Drains a hound sample iterator, converting each sample and turning a premature end of data into
/// [`CodecError::TruncatedWav`].
fn collect<S, I, F>(iter: I, declared: u64, source_name: &str, convert: F) -> Result<Vec<f32>>
where
    I: Iterator<Item = hound::Result<S>>,
    F: Fn(S) -> f32,
{
    let cap = usize::try_from(declared).unwrap_or(usize::MAX).min(MAX_PREALLOCATED_SAMPLES);
    let mut out = Vec::with_capacity(cap);
    for sample in iter {
        match sample {
            Ok(s) => out.push(convert(s)),
            Err(hound::Error::IoError(e)) if is_end_of_data(&e) => {
                return Err(CodecError::TruncatedWav {
                    source_name: source_name.to_owned(),
                    declared,
                    read: out.len() as u64,
                });
            }
            Err(hound::Error::IoError(e)) => return Err(io_error(source_name, e)),
            Err(e) => return Err(CodecError::NotWav { source_name: source_name.to_owned(), detail: e.to_string() }),
        }
    }
    Ok(out)
}

/// Classifies an error hound reported while reading the header.
fn header_error(source_name: &str, error: hound::Error) -> CodecError {
    match error {
        hound::Error::FormatError(msg) if msg.contains("zero channels") => {
            CodecError::ZeroChannels { source_name: source_name.to_owned() }
        }
        // A file that ends inside its header is not a WAV we can read; say so rather than "I/O error".
        hound::Error::IoError(e) if is_end_of_data(&e) => CodecError::NotWav {
            source_name: source_name.to_owned(),
            detail: "file ends inside the RIFF header".to_owned(),
        },
        hound::Error::IoError(e) => io_error(source_name, e),
        hound::Error::Unsupported => CodecError::NotWav {
            source_name: source_name.to_owned(),
            detail: "unsupported WAV encoding (only PCM and IEEE float are read)".to_owned(),
        },
        other => CodecError::NotWav { source_name: source_name.to_owned(), detail: other.to_string() },
    }
}

/// Whether an I/O error from hound means "the data ended early". hound reports a short read as
/// `ErrorKind::Other` with the message "Failed to read enough bytes.", the standard library as `UnexpectedEof`.
fn is_end_of_data(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::UnexpectedEof
        || (error.kind() == std::io::ErrorKind::Other && error.to_string().contains("enough bytes"))
}

/// Sample format of a WAV file omnid writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavSampleFormat {
    /// 16-bit PCM (rounded, saturated at full scale): what every tool reads.
    Pcm16,
    /// 32-bit float, the samples exactly as computed.
    Float32,
}

/// A mono WAV file written chunk by chunk (audio that is still being produced); the header's
/// lengths are fixed up by [`WavSink::finish`].
pub struct WavSink {
    writer: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    format: WavSampleFormat,
    source_name: String,
}

impl WavSink {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path, sample_rate_hz: u32, format: WavSampleFormat) -> Result<Self> {
        let source_name = path.display().to_string();
        let (bits_per_sample, sample_format) = match format {
            WavSampleFormat::Pcm16 => (16, hound::SampleFormat::Int),
            WavSampleFormat::Float32 => (32, hound::SampleFormat::Float),
        };
        let spec = hound::WavSpec { channels: 1, sample_rate: sample_rate_hz, bits_per_sample, sample_format };
        let writer = hound::WavWriter::create(path, spec).map_err(|e| wav_write_error(&source_name, e))?;
        Ok(Self { writer, format, source_name })
    }

    /// Appends samples.
    pub fn write(&mut self, samples: &[f32]) -> Result<()> {
        for &s in samples {
            let r = match self.format {
                WavSampleFormat::Pcm16 => self.writer.write_sample(crate::wire::pcm::f32_to_i16(s)),
                WavSampleFormat::Float32 => self.writer.write_sample(s),
            };
            r.map_err(|e| wav_write_error(&self.source_name, e))?;
        }
        Ok(())
    }

    /// Writes the final header.
    pub fn finish(self) -> Result<()> {
        let name = self.source_name;
        self.writer.finalize().map_err(|e| wav_write_error(&name, e))
    }
}

fn wav_write_error(source_name: &str, e: hound::Error) -> CodecError {
    match e {
        hound::Error::IoError(e) => io_error(source_name, e),
        other => CodecError::NotWav { source_name: source_name.to_string(), detail: other.to_string() },
    }
}

/// Mono `samples` as the bytes of a WAV file in `format` (for answers sent over the network).
pub fn encode_wav(samples: &[f32], sample_rate_hz: u32, format: WavSampleFormat) -> Result<Vec<u8>> {
    let (bits_per_sample, sample_format) = match format {
        WavSampleFormat::Pcm16 => (16, hound::SampleFormat::Int),
        WavSampleFormat::Float32 => (32, hound::SampleFormat::Float),
    };
    let spec = hound::WavSpec { channels: 1, sample_rate: sample_rate_hz, bits_per_sample, sample_format };
    let mut out = std::io::Cursor::new(Vec::with_capacity(44 + samples.len() * bits_per_sample as usize / 8));
    {
        let mut w = hound::WavWriter::new(&mut out, spec).map_err(|e| wav_write_error("<memory>", e))?;
        for &s in samples {
            let r = match format {
                WavSampleFormat::Pcm16 => w.write_sample(crate::wire::pcm::f32_to_i16(s)),
                WavSampleFormat::Float32 => w.write_sample(s),
            };
            r.map_err(|e| wav_write_error("<memory>", e))?;
        }
        w.finalize().map_err(|e| wav_write_error("<memory>", e))?;
    }
    Ok(out.into_inner())
}

/// Writes mono `samples` as a 16-bit PCM WAV file (rounded, saturated at full scale), the format every
/// tool reads; used for microphone recordings.
pub fn write_wav_pcm16(path: &Path, samples: &[f32], sample_rate_hz: u32) -> Result<()> {
    let mut sink = WavSink::create(path, sample_rate_hz, WavSampleFormat::Pcm16)?;
    sink.write(samples)?;
    sink.finish()
}

#[cfg(test)]
mod write_tests {
    use super::*;

    #[test]
    fn pcm16_round_trip_is_within_half_a_step() {
        let path = std::env::temp_dir().join(format!("omnid-wav-write-{}.wav", std::process::id()));
        let samples: Vec<f32> =
            (0..1000).map(|i| ((i as f32) * 0.01).sin() * 0.9).chain([1.5, -1.5, f32::NAN]).collect();
        write_wav_pcm16(&path, &samples, 16_000).unwrap();
        let back = read_wav(&path).unwrap();
        assert_eq!(back.sample_rate_hz, 16_000);
        assert_eq!(back.samples.len(), samples.len());
        for (a, b) in samples[..1000].iter().zip(&back.samples) {
            assert!((a - b).abs() <= 0.5 / 32768.0 + 1e-7, "{a} vs {b}");
        }
        assert_eq!(&back.samples[1000..], &[32767.0 / 32768.0, -1.0, 0.0]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn in_memory_wav_reads_back() {
        let samples = [0.0f32, 0.5, -0.25, 1.0];
        let bytes = encode_wav(&samples, 24_000, WavSampleFormat::Pcm16).unwrap();
        assert_eq!(bytes.len(), 44 + 8);
        let back = read_wav_bytes(&bytes).unwrap();
        assert_eq!(back.sample_rate_hz, 24_000);
        assert_eq!(back.samples, [0.0, 0.5, -0.25, 32767.0 / 32768.0]);
    }

    #[test]
    fn float_sink_keeps_samples_bit_exact_across_chunks() {
        let path = std::env::temp_dir().join(format!("omnid-wav-f32-{}.wav", std::process::id()));
        let samples: Vec<f32> = (0..3000).map(|i| ((i as f32) * 0.0137).sin() * 0.7 + 1e-7 * i as f32).collect();
        let mut sink = WavSink::create(&path, 24_000, WavSampleFormat::Float32).unwrap();
        for chunk in samples.chunks(1365) {
            sink.write(chunk).unwrap();
        }
        sink.finish().unwrap();
        let mut r = hound::WavReader::open(&path).unwrap();
        assert_eq!((r.spec().sample_rate, r.spec().bits_per_sample), (24_000, 32));
        let back: Vec<f32> = r.samples::<f32>().map(|s| s.unwrap()).collect();
        assert_eq!(back, samples);
        std::fs::remove_file(&path).unwrap();
    }
}
