//! Session wire audio from an untrusted client: any bytes, in any chunking, in any supported format.
//!
//! Input layout: byte 0 picks the wire format, byte 1 the model rate, byte 2 the largest chunk size, byte 3
//! seeds the chunk sizes; the rest is the audio payload. Checks that [`WireDecoder`] and [`WireInput`] never
//! panic, that every sample is finite and in `[-1, 1]`, that output lengths follow the sample counts, that
//! chunked decoding equals one-shot decoding, that a trailing partial sample is reported, and that
//! [`WireOutput`] takes the result back to the wire.

#![no_main]

use libfuzzer_sys::fuzz_target;
use omnid_codecs::resample::output_len;
use omnid_codecs::wire::{WireDecoder, WireFormat, WireInput, WireOutput};

const FORMATS: [WireFormat; 7] = [
    WireFormat::Pcm16 { rate_hz: 24_000 },
    WireFormat::Pcm16 { rate_hz: 16_000 },
    WireFormat::G711Ulaw,
    WireFormat::G711Alaw,
    WireFormat::F32 { rate_hz: 16_000 },
    WireFormat::F32 { rate_hz: 48_000 },
    WireFormat::F32 { rate_hz: 44_100 },
];
/// The audio encoder's rate, the speech decoder's rate, and a telephony rate.
const MODEL_RATES: [u32; 3] = [16_000, 24_000, 8_000];
/// Largest chunk, by byte 2: single bytes and odd sizes split samples, big ones cross resampler blocks.
const MAX_CHUNKS: [usize; 8] = [1, 2, 3, 5, 7, 64, 1000, 5000];

/// Splits `payload` into chunks of 0..=max bytes from a small LCG, so a corpus entry replays the same split.
fn chunks(payload: &[u8], max: usize, seed: u8) -> Vec<&[u8]> {
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut out = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let size = ((state >> 16) as usize % (max + 1)).min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        out.push(chunk);
        rest = tail;
    }
    out
}

fn assert_normalised(samples: &[f32], what: &str) {
    for &s in samples {
        assert!(s.is_finite() && (-1.0..=1.0).contains(&s), "{what}: sample {s} out of range");
    }
}

fuzz_target!(|data: &[u8]| {
    let [format_byte, rate_byte, max_byte, seed, payload @ ..] = data else {
        return;
    };
    let format = FORMATS[usize::from(*format_byte) % FORMATS.len()];
    let model_rate = MODEL_RATES[usize::from(*rate_byte) % MODEL_RATES.len()];
    let pieces = chunks(payload, MAX_CHUNKS[usize::from(*max_byte) % MAX_CHUNKS.len()], *seed);
    let width = format.bytes_per_sample();
    let wire_samples = payload.len() / width;
    let partial = payload.len() % width != 0;

    // Bytes to wire-rate samples, chunked and in one go.
    let mut decoder = WireDecoder::new(format);
    let mut decoded = Vec::new();
    for piece in &pieces {
        decoder.push(piece, &mut decoded);
        assert!(decoder.pending_bytes() < width);
    }
    assert_eq!(decoder.finish().is_err(), partial, "{format}: partial sample not reported as such");
    assert_eq!(decoded.len(), wire_samples);
    assert_normalised(&decoded, "WireDecoder");
    let mut whole = Vec::new();
    let mut one_shot = WireDecoder::new(format);
    one_shot.push(payload, &mut whole);
    assert_eq!(decoded, whole, "{format}: chunked decoding differs from one-shot decoding");

    // Bytes to model-rate samples.
    let mut input = WireInput::new(format, model_rate).expect("supported format and rate");
    let mut model = Vec::new();
    for piece in &pieces {
        input.push(piece, &mut model).expect("pushing wire bytes");
    }
    assert_eq!(input.finish(&mut model).is_err(), partial);
    assert_normalised(&model, "WireInput");
    let wire_rate = format.sample_rate_hz();
    assert_eq!(model.len(), output_len(wire_samples, wire_rate, model_rate));
    let bound = wire_samples as u64 * u64::from(model_rate) / u64::from(wire_rate) + 1;
    assert!(model.len() as u64 <= bound, "{} samples from {wire_samples}", model.len());

    // And back to the wire.
    let mut output = WireOutput::new(model_rate, format).expect("supported format and rate");
    let mut bytes = Vec::new();
    for piece in model.chunks(1 + usize::from(*seed) * 7) {
        output.push(piece, &mut bytes).expect("pushing model samples");
    }
    output.finish(&mut bytes).expect("flushing the output");
    assert_eq!(bytes.len(), output_len(model.len(), model_rate, wire_rate) * width);
    let mut back = Vec::new();
    WireDecoder::new(format).push(&bytes, &mut back);
    assert_normalised(&back, "WireOutput");
});
