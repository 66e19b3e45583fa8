//! Byte-level codecs for wire audio at the wire's own rate: [`WireDecoder`] (bytes to `f32`, streaming, a
//! chunk may end inside a sample) and [`WireEncoder`] (`f32` to bytes).

use super::format::{wire_error, WireFormat};
use super::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};
use super::pcm::{f32_to_i16, i16_to_f32, sanitize};
use crate::Result;

/// Largest sample on the wire (`f32`), and so the most bytes a decoder ever carries over (minus one).
const MAX_SAMPLE_BYTES: usize = 4;

/// Streaming decoder of wire bytes to mono `f32` samples in `[-1, 1]`, at the format's rate.
///
/// Network chunks need not align with samples: the bytes of a split sample (fewer than 4) are kept until
/// the next [`push`](Self::push) completes it.
#[derive(Debug, Clone)]
pub struct WireDecoder {
    format: WireFormat,
    carry: [u8; MAX_SAMPLE_BYTES],
    carry_len: usize,
}

impl WireDecoder {
    /// A decoder for `format`.
    pub fn new(format: WireFormat) -> Self {
        Self { format, carry: [0; MAX_SAMPLE_BYTES], carry_len: 0 }
    }

    /// The format being decoded.
    pub fn format(&self) -> WireFormat {
        self.format
    }

    /// Decodes `bytes`, appending every completed sample to `out`. `f32` samples are clamped to `[-1, 1]` with
    /// NaN as 0 (see [`super::pcm::sanitize`]).
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<f32>) {
        let width = self.format.bytes_per_sample();
        let mut rest = bytes;
        if self.carry_len > 0 {
            let take = (width - self.carry_len).min(rest.len());
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&rest[..take]);
            self.carry_len += take;
            rest = &rest[take..];
            if self.carry_len < width {
                return;
            }
            out.push(decode_sample(self.format, self.carry));
            self.carry_len = 0;
        }
        let samples = rest.chunks_exact(width);
        let tail = samples.remainder();
        out.reserve(samples.len());
        out.extend(samples.map(|sample| decode_sample(self.format, sample_bytes(sample))));
        self.carry[..tail.len()].copy_from_slice(tail);
        self.carry_len = tail.len();
    }

    /// Bytes of an incomplete sample held for the next chunk (0 to 3).
    pub fn pending_bytes(&self) -> usize {
        self.carry_len
    }

    /// Ends the stream. Fails with [`CodecError::WireFormat`](crate::CodecError::WireFormat) when it stopped
    /// inside a sample, so that a truncated or misframed stream is reported instead of silently shortened;
    /// either way the decoder is ready for a new stream.
    pub fn finish(&mut self) -> Result<()> {
        let partial = std::mem::take(&mut self.carry_len);
        if partial == 0 {
            return Ok(());
        }
        let width = self.format.bytes_per_sample();
        Err(wire_error(
            self.format.to_string(),
            format!("stream ends with {partial} byte(s) of a {width}-byte sample; those bytes were dropped"),
        ))
    }

    /// Drops any carried partial sample.
    pub fn reset(&mut self) {
        self.carry_len = 0;
    }
}

/// Decodes one sample from the first `format.bytes_per_sample()` bytes of `bytes`.
fn decode_sample(format: WireFormat, bytes: [u8; MAX_SAMPLE_BYTES]) -> f32 {
    let [b0, b1, b2, b3] = bytes;
    match format {
        WireFormat::Pcm16 { .. } => i16_to_f32(i16::from_le_bytes([b0, b1])),
        WireFormat::F32 { .. } => sanitize(f32::from_le_bytes([b0, b1, b2, b3])),
        WireFormat::G711Ulaw => i16_to_f32(ulaw_decode(b0)),
        WireFormat::G711Alaw => i16_to_f32(alaw_decode(b0)),
    }
}

/// Copies one sample's bytes (at most [`MAX_SAMPLE_BYTES`]) into a fixed array for [`decode_sample`].
fn sample_bytes(sample: &[u8]) -> [u8; MAX_SAMPLE_BYTES] {
    let mut bytes = [0; MAX_SAMPLE_BYTES];
    for (to, from) in bytes.iter_mut().zip(sample) {
        *to = *from;
    }
    bytes
}

/// Encoder of mono `f32` samples to wire bytes at the format's rate (the caller resamples). Stateless: every
/// sample maps to whole bytes. Values are clamped to `[-1, 1]`, NaN is sent as silence.
#[derive(Debug, Clone, Copy)]
pub struct WireEncoder {
    format: WireFormat,
}

impl WireEncoder {
    /// An encoder for `format`.
    pub fn new(format: WireFormat) -> Self {
        Self { format }
    }

    /// The format being encoded.
    pub fn format(&self) -> WireFormat {
        self.format
    }

    /// Appends the encoding of `samples` to `out` (`samples.len() · bytes_per_sample` bytes).
    pub fn push(&self, samples: &[f32], out: &mut Vec<u8>) {
        out.reserve(samples.len() * self.format.bytes_per_sample());
        match self.format {
            WireFormat::Pcm16 { .. } => {
                out.extend(samples.iter().flat_map(|&s| f32_to_i16(sanitize(s)).to_le_bytes()));
            }
            WireFormat::F32 { .. } => out.extend(samples.iter().flat_map(|&s| sanitize(s).to_le_bytes())),
            WireFormat::G711Ulaw => out.extend(samples.iter().map(|&s| ulaw_encode(f32_to_i16(s)))),
            WireFormat::G711Alaw => out.extend(samples.iter().map(|&s| alaw_encode(f32_to_i16(s)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{chunk_sizes, for_each_chunk, Rng};
    use crate::CodecError;

    const FORMATS: [WireFormat; 4] = [
        WireFormat::Pcm16 { rate_hz: 24000 },
        WireFormat::F32 { rate_hz: 16000 },
        WireFormat::G711Ulaw,
        WireFormat::G711Alaw,
    ];

    fn decode_chunked(format: WireFormat, bytes: &[u8], sizes: &[usize]) -> (Vec<f32>, Result<()>) {
        let mut decoder = WireDecoder::new(format);
        let mut out = Vec::new();
        for_each_chunk(bytes, sizes, |chunk| {
            decoder.push(chunk, &mut out);
            assert!(decoder.pending_bytes() < format.bytes_per_sample());
        });
        (out, decoder.finish())
    }

    #[test]
    fn chunked_decode_equals_whole_decode_for_odd_splits() {
        let mut rng = Rng::new(11);
        for format in FORMATS {
            let samples: Vec<f32> = (0..1001).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
            let mut bytes = Vec::new();
            WireEncoder::new(format).push(&samples, &mut bytes);
            assert_eq!(bytes.len(), samples.len() * format.bytes_per_sample());
            let (whole, done) = decode_chunked(format, &bytes, &[bytes.len()]);
            done.unwrap();
            assert_eq!(whole.len(), samples.len());
            for sizes in [vec![1], vec![3], vec![5], vec![7, 1, 2], chunk_sizes(&mut rng, 50, 0, 9)] {
                let (chunked, done) = decode_chunked(format, &bytes, &sizes);
                done.unwrap();
                assert_eq!(chunked, whole, "{format} with chunks {sizes:?}");
            }
        }
    }

    #[test]
    fn encode_then_decode_is_exact_for_pcm16_and_f32() {
        let x: Vec<f32> = (-40..=40).map(|i| i as f32 / 40.0).collect();
        for format in [WireFormat::Pcm16 { rate_hz: 16000 }, WireFormat::F32 { rate_hz: 48000 }] {
            let mut bytes = Vec::new();
            WireEncoder::new(format).push(&x, &mut bytes);
            let (y, _) = decode_chunked(format, &bytes, &[bytes.len()]);
            // PCM16: half a step of rounding, except +1.0, which saturates to 32767 / 32768.
            let tolerance = if matches!(format, WireFormat::F32 { .. }) { 0.0 } else { 1.0 / 32768.0 };
            assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() <= tolerance), "{format}");
        }
    }

    #[test]
    fn trailing_partial_sample_is_reported() {
        let format = WireFormat::Pcm16 { rate_hz: 24000 };
        let (out, done) = decode_chunked(format, &[0x00, 0x40, 0x01], &[2, 1]);
        assert_eq!(out, [0.5]);
        let e = done.unwrap_err();
        assert!(matches!(e, CodecError::WireFormat { .. }));
        let message = e.to_string();
        assert!(message.contains("audio/pcm;rate=24000") && message.contains("1 byte(s) of a 2-byte"), "{message}");
        let (_, done) = decode_chunked(WireFormat::F32 { rate_hz: 16000 }, &[1, 2, 3, 4, 5, 6, 7], &[3]);
        assert!(done.unwrap_err().to_string().contains("3 byte(s) of a 4-byte"));
    }

    #[test]
    fn finish_and_reset_start_a_new_stream() {
        let mut decoder = WireDecoder::new(WireFormat::Pcm16 { rate_hz: 16000 });
        let mut out = Vec::new();
        decoder.push(&[0xFF], &mut out);
        assert!(decoder.finish().is_err());
        decoder.push(&[0x00, 0x40], &mut out);
        assert_eq!(out, [0.5]);
        decoder.push(&[0x12], &mut out);
        decoder.reset();
        decoder.finish().unwrap();
    }

    #[test]
    fn hostile_f32_values_are_sanitised_both_ways() {
        let format = WireFormat::F32 { rate_hz: 16000 };
        let mut bytes = Vec::new();
        for v in [f32::NAN, f32::INFINITY, -f32::INFINITY, 1e30, -2.0, 0.25] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let (y, _) = decode_chunked(format, &bytes, &[bytes.len()]);
        assert_eq!(y, [0.0, 1.0, -1.0, 1.0, -1.0, 0.25]);
        let mut encoded = Vec::new();
        WireEncoder::new(format).push(&[f32::NAN, 3.0], &mut encoded);
        assert_eq!(encoded, [0.0f32.to_le_bytes(), 1.0f32.to_le_bytes()].concat());
        let mut pcm = Vec::new();
        WireEncoder::new(WireFormat::Pcm16 { rate_hz: 24000 }).push(&[f32::NAN, -9.0, 9.0], &mut pcm);
        assert_eq!(pcm, [0, 0, 0x00, 0x80, 0xFF, 0x7F]);
    }

    #[test]
    fn g711_bytes_use_the_code_tables() {
        let mut bytes = Vec::new();
        WireEncoder::new(WireFormat::G711Ulaw).push(&[0.0, 1.0, -1.0], &mut bytes);
        assert_eq!(bytes, [0xFF, 0x80, 0x00]);
        bytes.clear();
        WireEncoder::new(WireFormat::G711Alaw).push(&[0.0, 1.0, -1.0], &mut bytes);
        assert_eq!(bytes, [0xD5, 0xAA, 0x2A]);
        let (y, _) = decode_chunked(WireFormat::G711Alaw, &[0xD5, 0x2A], &[1]);
        assert_eq!(y, [8.0 / 32768.0, -32256.0 / 32768.0]);
    }
}
