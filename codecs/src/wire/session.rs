//! A session's two audio directions: [`WireInput`] turns client bytes into model-rate `f32` (e.g. 16 kHz for
//! the audio encoder), [`WireOutput`] turns model-rate `f32` (e.g. 24 kHz from the speech decoder) into
//! client bytes. Both stream chunk by chunk with the resampler's state carried across chunks.

use super::format::WireFormat;
use super::pcm::sanitize;
use super::stream::{WireDecoder, WireEncoder};
use crate::stream_resample::StreamResampler;
use crate::Result;

/// Work is done in pieces of at most this many samples, so the scratch buffers stay bounded whatever chunk
/// size a client sends (the caller's `out` still receives the whole chunk's output).
const PIECE_SAMPLES: usize = 4096;

/// Wire bytes in, mono `f32` in `[-1, 1]` at the model's rate out.
pub struct WireInput {
    decoder: WireDecoder,
    resampler: StreamResampler,
    /// Decoded wire-rate samples of the current piece.
    decoded: Vec<f32>,
}

impl WireInput {
    /// Decodes `format` and resamples it to `model_rate_hz`. Fails if the format is unsupported
    /// ([`WireFormat::validate`]) or the model rate is zero.
    pub fn new(format: WireFormat, model_rate_hz: u32) -> Result<Self> {
        format.validate()?;
        Ok(Self {
            decoder: WireDecoder::new(format),
            resampler: StreamResampler::new(format.sample_rate_hz(), model_rate_hz)?,
            decoded: Vec::with_capacity(PIECE_SAMPLES),
        })
    }

    /// The wire format.
    pub fn format(&self) -> WireFormat {
        self.decoder.format()
    }

    /// The output rate in Hz.
    pub fn model_rate_hz(&self) -> u32 {
        self.resampler.to_hz()
    }

    /// Feeds a chunk of wire bytes (any length, split anywhere) and appends the model-rate samples now ready.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<f32>) -> Result<()> {
        let piece_bytes = PIECE_SAMPLES * self.decoder.format().bytes_per_sample();
        for piece in bytes.chunks(piece_bytes) {
            self.decoded.clear();
            self.decoder.push(piece, &mut self.decoded);
            let start = out.len();
            self.resampler.push(&self.decoded, out)?;
            clamp_tail(out, start);
        }
        Ok(())
    }

    /// Ends the stream: appends the resampler's tail, so the stream's total output is exactly
    /// `resample::output_len(wire samples, wire rate, model rate)`, and resets for a new stream. The tail is
    /// flushed even when the bytes stopped inside a sample; that is then reported as
    /// [`CodecError::WireFormat`](crate::CodecError::WireFormat).
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<()> {
        let framing = self.decoder.finish();
        let start = out.len();
        self.resampler.finish(out)?;
        clamp_tail(out, start);
        framing
    }

    /// Drops buffered bytes and samples, starting a new stream (e.g. when the client clears its input buffer).
    pub fn reset(&mut self) {
        self.decoder.reset();
        self.resampler.reset();
    }

    /// Wire samples received whose model-rate output has not been emitted yet (see
    /// [`StreamResampler::latency_frames`]).
    pub fn latency_frames(&self) -> usize {
        self.resampler.latency_frames()
    }
}

/// Mono `f32` at the model's rate in, wire bytes out.
pub struct WireOutput {
    resampler: StreamResampler,
    encoder: WireEncoder,
    /// Sanitised model samples of the current piece.
    clean: Vec<f32>,
    /// Wire-rate samples of the current piece.
    resampled: Vec<f32>,
}

impl WireOutput {
    /// Resamples from `model_rate_hz` to `format`'s rate and encodes. Fails if the format is unsupported
    /// ([`WireFormat::validate`]) or the model rate is zero.
    pub fn new(model_rate_hz: u32, format: WireFormat) -> Result<Self> {
        format.validate()?;
        Ok(Self {
            resampler: StreamResampler::new(model_rate_hz, format.sample_rate_hz())?,
            encoder: WireEncoder::new(format),
            clean: Vec::with_capacity(PIECE_SAMPLES),
            resampled: Vec::new(),
        })
    }

    /// The wire format.
    pub fn format(&self) -> WireFormat {
        self.encoder.format()
    }

    /// The input rate in Hz.
    pub fn model_rate_hz(&self) -> u32 {
        self.resampler.from_hz()
    }

    /// Feeds model samples (any count) and appends the wire bytes now ready. Samples are clamped to `[-1, 1]`
    /// (NaN as 0) before resampling: a NaN or infinity inside the FFT would spoil a whole block and the
    /// overlap carried into the next.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<u8>) -> Result<()> {
        for piece in samples.chunks(PIECE_SAMPLES) {
            self.clean.clear();
            self.clean.extend(piece.iter().map(|&s| sanitize(s)));
            self.resampled.clear();
            self.resampler.push(&self.clean, &mut self.resampled)?;
            self.encoder.push(&self.resampled, out);
        }
        Ok(())
    }

    /// Ends the stream: appends the resampler's tail, so the stream's total is exactly
    /// `resample::output_len(model samples, model rate, wire rate)` wire samples, and resets for a new stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<()> {
        self.resampled.clear();
        self.resampler.finish(&mut self.resampled)?;
        self.encoder.push(&self.resampled, out);
        Ok(())
    }

    /// Drops buffered samples, starting a new stream (e.g. when a response is cancelled).
    pub fn reset(&mut self) {
        self.resampler.reset();
    }

    /// Model samples received whose wire output has not been emitted yet.
    pub fn latency_frames(&self) -> usize {
        self.resampler.latency_frames()
    }
}

/// Resampling can overshoot full scale slightly (a band-limited step rings); the model expects `[-1, 1]`.
fn clamp_tail(out: &mut [f32], start: usize) {
    if let Some(tail) = out.get_mut(start..) {
        tail.iter_mut().for_each(|s| *s = sanitize(*s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::{output_len, resample};
    use crate::test_support::{chunk_sizes, for_each_chunk, sine, snr_db, tone_frequency, Rng};
    use crate::CodecError;

    /// Feeds `bytes` to a fresh `WireInput` in the given chunk sizes (cycled) and finishes.
    fn input_chunked(format: WireFormat, rate: u32, bytes: &[u8], sizes: &[usize]) -> Vec<f32> {
        let mut input = WireInput::new(format, rate).unwrap();
        let mut out = Vec::new();
        for_each_chunk(bytes, sizes, |chunk| input.push(chunk, &mut out).unwrap());
        input.finish(&mut out).unwrap();
        out
    }

    /// Feeds `samples` to a fresh `WireOutput` in the given chunk sizes (cycled) and finishes.
    fn output_chunked(rate: u32, format: WireFormat, samples: &[f32], sizes: &[usize]) -> Vec<u8> {
        let mut output = WireOutput::new(rate, format).unwrap();
        let mut out = Vec::new();
        for_each_chunk(samples, sizes, |chunk| output.push(chunk, &mut out).unwrap());
        output.finish(&mut out).unwrap();
        out
    }

    fn encode(format: WireFormat, samples: &[f32]) -> Vec<u8> {
        let mut bytes = Vec::new();
        WireEncoder::new(format).push(samples, &mut bytes);
        bytes
    }

    fn decode(format: WireFormat, bytes: &[u8]) -> Vec<f32> {
        let mut samples = Vec::new();
        WireDecoder::new(format).push(bytes, &mut samples);
        samples
    }

    const FORMATS: [WireFormat; 5] = [
        WireFormat::Pcm16 { rate_hz: 24000 },
        WireFormat::Pcm16 { rate_hz: 16000 },
        WireFormat::F32 { rate_hz: 48000 },
        WireFormat::G711Ulaw,
        WireFormat::G711Alaw,
    ];

    #[test]
    fn streamed_input_equals_whole_buffer_for_any_byte_split() {
        let mut rng = Rng::new(99);
        for format in FORMATS {
            let rate = format.sample_rate_hz();
            let signal: Vec<f32> = sine(rate as usize / 3 + 11, rate, 700.0, 0.6)
                .iter()
                .map(|s| s + 0.2 * (rng.next_f32() * 2.0 - 1.0))
                .collect();
            let bytes = encode(format, &signal);
            let expected: Vec<f32> =
                resample(&decode(format, &bytes), rate, 16000).unwrap().into_iter().map(sanitize).collect();
            for sizes in [vec![bytes.len()], vec![1], vec![3], vec![161], vec![4097], chunk_sizes(&mut rng, 40, 0, 999)]
            {
                let got = input_chunked(format, 16000, &bytes, &sizes);
                assert_eq!(got, expected, "{format} -> 16 kHz, chunks {:?}", &sizes[..sizes.len().min(3)]);
            }
        }
    }

    #[test]
    fn streamed_output_equals_whole_buffer_for_any_chunking() {
        let mut rng = Rng::new(5);
        let signal: Vec<f32> = (0..7001).map(|i| 0.5 * (i as f32 * 0.05).sin() + 0.1 * rng.next_f32()).collect();
        for format in FORMATS {
            let expected = encode(format, &resample(&signal, 24000, format.sample_rate_hz()).unwrap());
            for sizes in [vec![signal.len()], vec![1], vec![480], chunk_sizes(&mut rng, 40, 0, 2000)] {
                let got = output_chunked(24000, format, &signal, &sizes);
                assert_eq!(got, expected, "24 kHz -> {format}, chunks {:?}", &sizes[..sizes.len().min(3)]);
            }
        }
    }

    #[test]
    fn g711_round_trip_8k_24k_8k() {
        let tone = sine(8000, 8000, 1011.0, 0.5);
        for format in [WireFormat::G711Ulaw, WireFormat::G711Alaw] {
            let wire = encode(format, &tone);
            let model = input_chunked(format, 24000, &wire, &[160]);
            assert_eq!(model.len(), 24000);
            let back = output_chunked(24000, format, &model, &[480]);
            assert_eq!(back.len(), wire.len());
            // 50 ms in from each edge; the tone starts and stops abruptly.
            let inner = 400..wire.len() - 400;
            let first = decode(format, &wire[inner.clone()]);
            let second = decode(format, &back[inner.clone()]);
            let requantised = snr_db(&first, &second);
            let vs_tone = snr_db(&tone[inner.clone()], &second);
            let same = wire[inner.clone()].iter().zip(&back[inner.clone()]).filter(|(a, b)| a == b).count();
            eprintln!(
                "{format} 8k -> 24k -> 8k, 1011 Hz at -6 dBFS: {same} of {} codes unchanged, SNR {requantised:.1} dB \
                 vs the first pass, {vs_tone:.1} dB vs the tone",
                inner.len()
            );
            // G.711's quantisation noise fills the band up to 4 kHz; the resampler's anti-aliasing filter rolls
            // off just below that, so the top of the noise is removed and some codes move by one step. The
            // round trip adds nothing audible: against the tone it stays at G.711's own quantisation SNR.
            assert!(same * 10 >= inner.len() * 9, "{format}: only {same} codes unchanged");
            assert!(requantised > 50.0, "{format}: {requantised:.1} dB");
            assert!(vs_tone > 35.0, "{format}: {vs_tone:.1} dB");
        }
    }

    #[test]
    fn pcm16_16k_to_24k_keeps_the_tone_frequency() {
        let format = WireFormat::Pcm16 { rate_hz: 16000 };
        for freq in [440.0, 1000.0, 3000.0] {
            let wire = encode(format, &sine(16000, 16000, freq, 0.5));
            let model = input_chunked(format, 24000, &wire, &[320, 1, 77]);
            assert_eq!(model.len(), 24000);
            let measured = tone_frequency(&model[1200..22800], 24000);
            eprintln!("PCM16 16 kHz -> 24 kHz: {freq} Hz tone measured at {measured:.4} Hz");
            assert!((measured - freq).abs() < 0.01, "{freq} Hz came out at {measured} Hz");
        }
    }

    #[test]
    fn pcm16_24k_to_16k_snr() {
        let format = WireFormat::Pcm16 { rate_hz: 24000 };
        let wire = encode(format, &sine(24000, 24000, 1000.0, 0.5));
        let model = input_chunked(format, 16000, &wire, &[480]);
        let ideal = sine(16000, 16000, 1000.0, 0.5);
        let snr = snr_db(&ideal[800..15200], &model[800..15200]);
        eprintln!("PCM16 24 kHz -> 16 kHz, 1 kHz tone vs ideal: SNR {snr:.1} dB");
        // 16-bit quantisation of a -6 dBFS tone bounds this near 92 dB.
        assert!(snr > 85.0, "{snr:.1} dB");
    }

    #[test]
    fn lengths_follow_output_len_and_identity_is_exact() {
        let format = WireFormat::Pcm16 { rate_hz: 16000 };
        let samples: Vec<f32> = (0..999).map(|i| (i % 200) as f32 / 400.0 - 0.25).collect();
        let wire = encode(format, &samples);
        let same = input_chunked(format, 16000, &wire, &[7]);
        assert_eq!(same, decode(format, &wire));
        assert_eq!(input_chunked(format, 24000, &wire, &[7]).len(), output_len(999, 16000, 24000));
        assert_eq!(output_chunked(24000, WireFormat::G711Ulaw, &samples, &[13]).len(), output_len(999, 24000, 8000));
    }

    #[test]
    fn outputs_stay_in_range_and_finite() {
        // A full-scale square wave rings past ±1 when resampled; NaN and infinities must not spread.
        let mut square: Vec<f32> = (0..4000).map(|i| if (i / 40) % 2 == 0 { 1.0 } else { -1.0 }).collect();
        square[100] = f32::NAN;
        square[2000] = f32::INFINITY;
        let f32_format = WireFormat::F32 { rate_hz: 48000 };
        let model = input_chunked(f32_format, 16000, &encode(f32_format, &square), &[333]);
        assert!(model.iter().all(|s| (-1.0..=1.0).contains(s)));
        let bytes = output_chunked(16000, f32_format, &square, &[333]);
        assert!(decode(f32_format, &bytes).iter().all(|s| s.is_finite() && (-1.0..=1.0).contains(s)));
        // The NaN became a zero sample, not a silent FFT block: the output keeps its level around it.
        let around_nan = &model[20..45];
        assert!(around_nan.iter().map(|s| s.abs()).fold(0.0, f32::max) > 0.9, "{around_nan:?}");
    }

    #[test]
    fn finish_reports_a_partial_sample_after_flushing() {
        let format = WireFormat::Pcm16 { rate_hz: 24000 };
        let mut input = WireInput::new(format, 16000).unwrap();
        let mut out = Vec::new();
        let mut wire = encode(format, &sine(2400, 24000, 500.0, 0.5));
        wire.push(0x7F);
        input.push(&wire, &mut out).unwrap();
        let e = input.finish(&mut out).unwrap_err();
        assert!(matches!(e, CodecError::WireFormat { .. }), "{e}");
        assert_eq!(out.len(), 1600, "the complete samples are still flushed");
        // The input is ready for a new stream.
        out.clear();
        input.push(&wire[..4800], &mut out).unwrap();
        input.finish(&mut out).unwrap();
        assert_eq!(out.len(), 1600);
    }

    #[test]
    fn constructors_validate() {
        let e = WireInput::new(WireFormat::Pcm16 { rate_hz: 44100 }, 16000).err().unwrap();
        assert!(e.to_string().contains("44100"), "{e}");
        assert!(WireOutput::new(24000, WireFormat::F32 { rate_hz: 7 }).is_err());
        assert!(matches!(WireInput::new(WireFormat::G711Ulaw, 0), Err(CodecError::InvalidSampleRate { .. })));
        assert!(matches!(WireOutput::new(0, WireFormat::G711Alaw), Err(CodecError::InvalidSampleRate { .. })));
    }
}
