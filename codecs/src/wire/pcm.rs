//! Conversions between normalised `f32` samples and 16-bit PCM, and the clamp applied to audio crossing the
//! wire (in either direction) so that no NaN, infinity or out-of-range value reaches the model or a client.

/// Full scale of 16-bit PCM: `i16` sample `s` is `s / PCM16_SCALE` in `[-1, 1)`.
const PCM16_SCALE: f32 = 32768.0;

/// A 16-bit PCM sample as `f32`: `s / 32768`.
pub fn i16_to_f32(sample: i16) -> f32 {
    f32::from(sample) / PCM16_SCALE
}

/// An `f32` sample as 16-bit PCM: `x · 32768` rounded to nearest, saturating at `i16::MIN` / `i16::MAX`
/// (so `1.0` becomes 32767 and `±inf` saturates); NaN becomes 0.
pub fn f32_to_i16(sample: f32) -> i16 {
    // `as` from float saturates and maps NaN to 0, which is exactly the contract above.
    (sample * PCM16_SCALE).round() as i16
}

/// Clamps to `[-1, 1]` and maps NaN to 0. Wire `f32` audio is untrusted (a NaN would spread across a whole
/// FFT block of the resampler and every model frame it touches), and resampling can overshoot full scale.
pub fn sanitize(sample: f32) -> f32 {
    if sample.is_nan() {
        0.0
    } else {
        sample.clamp(-1.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm16_to_f32_is_divide_by_32768() {
        assert_eq!(i16_to_f32(0), 0.0);
        assert_eq!(i16_to_f32(i16::MIN), -1.0);
        assert_eq!(i16_to_f32(16384), 0.5);
        assert_eq!(i16_to_f32(i16::MAX), 32767.0 / 32768.0);
    }

    #[test]
    fn f32_to_pcm16_rounds_and_saturates() {
        assert_eq!(f32_to_i16(0.0), 0);
        assert_eq!(f32_to_i16(0.5), 16384);
        assert_eq!(f32_to_i16(1.0), i16::MAX);
        assert_eq!(f32_to_i16(-1.0), i16::MIN);
        assert_eq!(f32_to_i16(1.4 / 32768.0), 1);
        assert_eq!(f32_to_i16(1.6 / 32768.0), 2);
        assert_eq!(f32_to_i16(-1.6 / 32768.0), -2);
        assert_eq!(f32_to_i16(7.0), i16::MAX);
        assert_eq!(f32_to_i16(f32::INFINITY), i16::MAX);
        assert_eq!(f32_to_i16(f32::NEG_INFINITY), i16::MIN);
        assert_eq!(f32_to_i16(f32::NAN), 0);
    }

    #[test]
    fn every_pcm16_sample_round_trips() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(f32_to_i16(i16_to_f32(s)), s);
        }
    }

    #[test]
    fn sanitize_clamps_and_zeroes_nan() {
        assert_eq!(sanitize(f32::NAN), 0.0);
        assert_eq!(sanitize(f32::INFINITY), 1.0);
        assert_eq!(sanitize(f32::NEG_INFINITY), -1.0);
        assert_eq!(sanitize(-3.0), -1.0);
        assert_eq!(sanitize(0.25), 0.25);
    }
}
