//! Streaming sample-rate conversion of mono `f32` audio, chunk by chunk (wire audio at 8 / 16 / 24 kHz to the
//! audio encoder's 16 kHz, the speech decoder's 24 kHz back to the wire rate).
//!
//! [`StreamResampler`] runs the same rubato FFT resampler as [`crate::resample`], with the same FFT block sizes
//! and window, fed the same stream of samples, so the concatenation of everything it emits for any chunking of
//! the input is sample for sample the [`crate::resample::resample`] of the whole buffer. That is what keeps chunk
//! joins click-free: the resampler's overlap state carries across `push` calls and never sees the joins.
//!
//! Internally input is gathered into one FFT block (`fft_size_in` frames, a few hundred for the usual rates)
//! and each full block is resampled as soon as it is complete, so at most one block of input is buffered and
//! the latency is one block plus half an output block (rubato's start-up delay, which is trimmed so that an
//! event at input time `t` comes out at output time `t`).

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler, WindowFunction};

use crate::resample::output_len;
use crate::{CodecError, Result};

/// FFT sub-block size rubato aims for. `resample::resample` builds `Fft::new(.., CHUNK_FRAMES, ..)`, which
/// splits its chunk into 4 sub-chunks of this size; building with this chunk and one sub-chunk yields the same
/// FFT block sizes, hence the same filter and bit-identical output (the whole-buffer equality test guards it).
const SUB_CHUNK_FRAMES: usize = crate::resample::CHUNK_FRAMES / 4;

/// Streaming mono resampler from `from_hz` to `to_hz`; see the module docs.
///
/// A stream is everything pushed between construction (or [`reset`](Self::reset) / [`finish`](Self::finish))
/// and the next `finish`. After `finish` the stream's total output is exactly
/// `resample::output_len(total_input, from_hz, to_hz)` samples.
pub struct StreamResampler {
    from_hz: u32,
    to_hz: u32,
    /// `None` when the rates match: samples pass through untouched.
    fft: Option<FftState>,
    /// Input frames pushed in the current stream.
    total_in: usize,
    /// Output frames emitted in the current stream (after trimming the start-up delay).
    emitted: usize,
}

/// The rubato resampler plus the one-block input and output buffers around it.
struct FftState {
    /// Built with a fixed input chunk of exactly one FFT block, so each call resamples one block and rubato
    /// itself keeps no input back.
    fft: Fft<f32>,
    /// Input frames waiting for the current block to fill; always fewer than `block_in`.
    pending: Vec<f32>,
    /// rubato's output for one block (`block_out` frames).
    block: Vec<f32>,
    block_in: usize,
    block_out: usize,
    /// Leading output frames still to drop: rubato's start-up delay.
    to_trim: usize,
}

impl StreamResampler {
    /// Builds a resampler from `from_hz` to `to_hz`.
    ///
    /// Fails with [`CodecError::InvalidSampleRate`] when either rate is zero, and with [`CodecError::Resample`]
    /// if rubato refuses the rates.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self> {
        if from_hz == 0 || to_hz == 0 {
            return Err(CodecError::InvalidSampleRate { from_hz, to_hz });
        }
        let fft = if from_hz == to_hz { None } else { Some(FftState::new(from_hz, to_hz)?) };
        Ok(Self { from_hz, to_hz, fft, total_in: 0, emitted: 0 })
    }

    /// Input rate in Hz.
    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    /// Output rate in Hz.
    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// Feeds `input` (any length, including 0) and appends to `out` whatever output is now complete.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<()> {
        self.total_in += input.len();
        let Some(state) = self.fft.as_mut() else {
            out.extend_from_slice(input);
            self.emitted += input.len();
            return Ok(());
        };
        let (from_hz, to_hz) = (self.from_hz, self.to_hz);
        let mut rest = input;
        while !rest.is_empty() {
            let take = (state.block_in - state.pending.len()).min(rest.len());
            state.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if state.pending.len() == state.block_in {
                // Mid-stream nothing is capped: a processed block never yields more than the whole stream's
                // `output_len` (trimming the delay keeps the emitted count below `input · ratio`).
                self.emitted += state.process_block(from_hz, to_hz, usize::MAX, out)?;
            }
        }
        Ok(())
    }

    /// Ends the stream: resamples the buffered tail padded with silence, appends the remaining output to `out`
    /// so that the stream's total is exactly `resample::output_len(total_input, from_hz, to_hz)`, and resets
    /// for a new stream.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<()> {
        let result = self.flush(out);
        self.reset();
        result
    }

    fn flush(&mut self, out: &mut Vec<f32>) -> Result<()> {
        let target = output_len(self.total_in, self.from_hz, self.to_hz);
        let (from_hz, to_hz) = (self.from_hz, self.to_hz);
        let Some(state) = self.fft.as_mut() else {
            return Ok(());
        };
        // Each block yields `block_out` frames, the first `to_trim` of which are dropped, so this many blocks
        // (the partial one included) reach the target; counting them up front keeps the loop bounded.
        let missing = target.saturating_sub(self.emitted);
        let blocks = (missing + state.to_trim).div_ceil(state.block_out);
        for _ in 0..blocks {
            let budget = target.saturating_sub(self.emitted);
            if budget == 0 {
                break;
            }
            // `pending` is zero-padded to a full block here, and empty (pure silence) after the first pass.
            self.emitted += state.process_block(from_hz, to_hz, budget, out)?;
        }
        if self.emitted != target {
            return Err(CodecError::Resample {
                from_hz,
                to_hz,
                detail: format!("stream flush produced {} samples, expected {target}", self.emitted),
            });
        }
        Ok(())
    }

    /// Drops any buffered input and the resampler's history, starting a new stream.
    pub fn reset(&mut self) {
        if let Some(state) = self.fft.as_mut() {
            state.reset();
        }
        self.total_in = 0;
        self.emitted = 0;
    }

    /// Input frames pushed in this stream whose output has not been emitted yet: the partly filled block plus
    /// the resampler's delay. At most one FFT block plus half an output block (in input frames); 0 for
    /// pass-through.
    pub fn latency_frames(&self) -> usize {
        let emitted_as_input = (self.emitted as u128 * u128::from(self.from_hz)) / u128::from(self.to_hz);
        self.total_in.saturating_sub(emitted_as_input as usize)
    }
}

impl FftState {
    fn new(from_hz: u32, to_hz: u32) -> Result<Self> {
        let fail = |detail: String| CodecError::Resample { from_hz, to_hz, detail };
        let build = |chunk: usize| {
            Fft::<f32>::new_custom(
                from_hz as usize,
                to_hz as usize,
                chunk,
                1,
                1,
                WindowFunction::BlackmanHarris2,
                FixedSync::Input,
            )
            .map_err(|e| fail(e.to_string()))
        };
        // The first build only learns rubato's FFT block size for these rates; the block rounds the
        // sub-chunk size up to a multiple of `from / gcd(from, to)`, so it usually differs from the request.
        let mut fft = build(SUB_CHUNK_FRAMES)?;
        let block_in = fft.fft_size_in();
        if fft.input_frames_next() != block_in {
            fft = build(block_in)?;
        }
        let block_out = fft.fft_size_out();
        // The block arithmetic below relies on one block in, one block out per call.
        if fft.input_frames_next() != block_in || fft.output_frames_next() != block_out || block_out == 0 {
            return Err(fail(format!(
                "unexpected FFT block layout: chunks {} -> {} frames for blocks of {block_in} -> {block_out}",
                fft.input_frames_next(),
                fft.output_frames_next()
            )));
        }
        Ok(Self {
            to_trim: fft.output_delay(),
            fft,
            pending: Vec::with_capacity(block_in),
            block: vec![0.0; block_out],
            block_in,
            block_out,
        })
    }

    /// Resamples `pending` (zero-padded to a full block) and appends at most `budget` of the block's output,
    /// after dropping what is left of the start-up delay. Returns the number of frames appended.
    fn process_block(&mut self, from_hz: u32, to_hz: u32, budget: usize, out: &mut Vec<f32>) -> Result<usize> {
        let fail = |detail: String| CodecError::Resample { from_hz, to_hz, detail };
        let filled = self.pending.len();
        self.pending.resize(self.block_in, 0.0);
        let input = InterleavedSlice::new(&self.pending[..], 1, self.block_in).map_err(|e| fail(e.to_string()))?;
        let mut output =
            InterleavedSlice::new_mut(&mut self.block[..], 1, self.block_out).map_err(|e| fail(e.to_string()))?;
        let indexing = Indexing::new().partial_len(filled);
        let (_, produced) =
            self.fft.process_into_buffer(&input, &mut output, Some(&indexing)).map_err(|e| fail(format!("{e:?}")))?;
        self.pending.clear();
        let produced = produced.min(self.block_out);
        let skip = self.to_trim.min(produced);
        self.to_trim -= skip;
        let keep = (produced - skip).min(budget);
        out.extend_from_slice(&self.block[skip..skip + keep]);
        Ok(keep)
    }

    fn reset(&mut self) {
        self.fft.reset();
        self.pending.clear();
        self.to_trim = self.fft.output_delay();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample;
    use crate::test_support::{chunk_sizes, for_each_chunk, sine, snr_db, Rng};

    /// Streams `signal` through a fresh resampler in the given chunk sizes (cycled) and returns all output.
    fn stream(signal: &[f32], from: u32, to: u32, sizes: &[usize]) -> Vec<f32> {
        let mut r = StreamResampler::new(from, to).unwrap();
        let mut out = Vec::new();
        for_each_chunk(signal, sizes, |chunk| r.push(chunk, &mut out).unwrap());
        r.finish(&mut out).unwrap();
        out
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    const RATE_PAIRS: [(u32, u32); 8] = [
        (24000, 16000),
        (16000, 24000),
        (8000, 24000),
        (24000, 8000),
        (48000, 16000),
        (16000, 8000),
        (44100, 16000),
        (8000, 16000),
    ];

    #[test]
    fn any_chunking_equals_whole_buffer_resample() {
        let mut rng = Rng::new(0x5eed);
        for &(from, to) in &RATE_PAIRS {
            // Noise plus a tone: broadband, so a mismatch anywhere in the filter state shows up.
            let n = from as usize * 3 / 4 + 37;
            let signal: Vec<f32> =
                sine(n, from, 440.0, 0.4).iter().map(|s| s + 0.3 * (rng.next_f32() * 2.0 - 1.0)).collect();
            let whole = resample::resample(&signal, from, to).unwrap();
            let mut chunkings: Vec<Vec<usize>> = [1, 7, 160, 480, 4096].iter().map(|&c| vec![c]).collect();
            chunkings.push(chunk_sizes(&mut rng, 64, 0, 700));
            chunkings.push(chunk_sizes(&mut rng, 64, 0, 3));
            for sizes in &chunkings {
                let streamed = stream(&signal, from, to, sizes);
                assert_eq!(streamed.len(), whole.len(), "{from}->{to} chunks {:?}", &sizes[..sizes.len().min(4)]);
                assert_eq!(streamed.len(), output_len(n, from, to));
                let diff = max_abs_diff(&streamed, &whole);
                assert!(diff <= 1e-5, "{from}->{to}: max diff {diff} for chunks {:?}", &sizes[..sizes.len().min(4)]);
                // In practice the streams are bit-identical: same blocks, same FFTs.
                assert_eq!(diff, 0.0, "{from}->{to}: not bit-identical");
            }
        }
    }

    #[test]
    fn short_and_empty_streams_match_whole_buffer() {
        for &(from, to) in &RATE_PAIRS {
            for n in [0usize, 1, 2, 3, 5, 100, 257] {
                let signal: Vec<f32> = (0..n).map(|i| ((i * 7) % 11) as f32 / 11.0 - 0.5).collect();
                let whole = resample::resample(&signal, from, to).unwrap();
                assert_eq!(stream(&signal, from, to, &[1]), whole, "{from}->{to}, n = {n}");
            }
        }
    }

    #[test]
    fn tone_round_trip_24k_16k_24k() {
        let x = sine(24000, 24000, 1000.0, 0.5);
        let down = stream(&x, 24000, 16000, &[480]);
        let back = stream(&down, 16000, 24000, &[320]);
        assert_eq!(back.len(), x.len());
        // 50 ms away from each edge: the abrupt start and end of the tone are not band-limited.
        let edge = 1200;
        let snr = snr_db(&x[edge..x.len() - edge], &back[edge..back.len() - edge]);
        eprintln!("24k -> 16k -> 24k round trip of a 1 kHz tone: SNR {snr:.1} dB");
        assert!(snr > 100.0, "round-trip SNR {snr:.1} dB");
    }

    /// SNR of a streamed 1 kHz tone against the ideal tone at the output rate, starting `lead_in` input
    /// samples early: checks gain, timing (no leftover delay) and length.
    fn tone_vs_ideal_snr(from: u32, to: u32, lead_in: f64) -> f64 {
        let x = sine(from as usize / 2, from, 1000.0, 0.5);
        let y = stream(&x, from, to, &[333]);
        let shift = lead_in * f64::from(to) / f64::from(from);
        let reference: Vec<f32> = (0..y.len())
            .map(|i| (0.5 * (2.0 * std::f64::consts::PI * 1000.0 * (i as f64 + shift) / f64::from(to)).sin()) as f32)
            .collect();
        let edge = to as usize / 20;
        snr_db(&reference[edge..y.len() - edge], &y[edge..y.len() - edge])
    }

    #[test]
    fn tones_keep_their_timing_across_wire_rates() {
        // Rate pairs of the 8 / 16 / 24 / 48 kHz family: rubato's FFT blocks have an even input length here.
        for (from, to) in [(24000, 16000), (16000, 24000), (8000, 24000), (24000, 8000), (48000, 16000), (16000, 8000)]
        {
            let snr = tone_vs_ideal_snr(from, to, 0.0);
            eprintln!("{from} -> {to} Hz, 1 kHz tone vs ideal: SNR {snr:.1} dB");
            assert!(snr > 100.0, "{from} -> {to}: SNR {snr:.1} dB");
        }
    }

    /// Pins a rubato 5.1 quirk (the whole-buffer `resample` has it too): when the FFT block has an odd input
    /// length (441 frames for 44.1 / 22.05 / 11.025 kHz to 16 kHz), the filter is centred half an input sample
    /// before the `output_delay()` that gets trimmed, so the output leads by half an input sample (11 µs at
    /// 44.1 kHz). Harmless for speech; if this starts failing, rubato changed and the lead may be gone.
    #[test]
    fn odd_fft_blocks_lead_by_half_an_input_sample() {
        for (from, to) in [(44100, 16000), (22050, 16000)] {
            let aligned = tone_vs_ideal_snr(from, to, 0.0);
            let half_early = tone_vs_ideal_snr(from, to, 0.5);
            eprintln!("{from} -> {to} Hz, 1 kHz tone: SNR {aligned:.1} dB aligned, {half_early:.1} dB half early");
            assert!(aligned < 40.0 && half_early > 100.0, "{from} -> {to}: {aligned:.1} / {half_early:.1} dB");
        }
    }

    #[test]
    fn identity_passes_through() {
        let x = [0.5f32, -0.25, 0.125, 1.0];
        assert_eq!(stream(&x, 16000, 16000, &[1, 2]), x.to_vec());
        let mut r = StreamResampler::new(16000, 16000).unwrap();
        let mut out = Vec::new();
        r.push(&x, &mut out).unwrap();
        assert_eq!(r.latency_frames(), 0);
    }

    #[test]
    fn rejects_zero_rates() {
        assert!(matches!(StreamResampler::new(0, 16000), Err(CodecError::InvalidSampleRate { .. })));
        assert!(matches!(StreamResampler::new(16000, 0), Err(CodecError::InvalidSampleRate { .. })));
    }

    #[test]
    fn buffers_at_most_one_block_and_reports_latency() {
        let mut r = StreamResampler::new(24000, 16000).unwrap();
        let block_in = r.fft.as_ref().unwrap().block_in;
        assert!(block_in <= 2 * SUB_CHUNK_FRAMES, "block of {block_in} frames");
        let mut out = Vec::new();
        let mut rng = Rng::new(7);
        for _ in 0..200 {
            let chunk: Vec<f32> = (0..rng.below(900)).map(|_| rng.next_f32() - 0.5).collect();
            r.push(&chunk, &mut out).unwrap();
            let state = r.fft.as_ref().unwrap();
            assert!(state.pending.len() < block_in);
            assert!(state.pending.capacity() <= block_in, "pending grew to {}", state.pending.capacity());
            // Held back: the partial block plus the delay (half an output block, in input frames).
            assert!(r.latency_frames() <= block_in + block_in / 2 + 1, "latency {}", r.latency_frames());
        }
    }

    #[test]
    fn reset_and_finish_start_a_new_stream() {
        let x = sine(5000, 24000, 300.0, 0.3);
        let whole = resample::resample(&x, 24000, 16000).unwrap();
        let mut r = StreamResampler::new(24000, 16000).unwrap();
        let mut out = Vec::new();
        r.push(&[0.9; 700], &mut out).unwrap();
        r.reset();
        out.clear();
        r.push(&x, &mut out).unwrap();
        r.finish(&mut out).unwrap();
        assert_eq!(out, whole);
        // And again after finish.
        out.clear();
        r.push(&x, &mut out).unwrap();
        r.finish(&mut out).unwrap();
        assert_eq!(out, whole);
    }
}
