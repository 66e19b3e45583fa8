//! ITU-T G.711 µ-law and A-law companding, as in the classic Sun / CCITT `g711.c`: 8-bit codes for 14-bit
//! (µ-law) and 13-bit (A-law) linear samples, here scaled to the 16-bit range.
//!
//! Decoding is a 256-entry table built at compile time. Encoding computes the segment with a few shifts; it
//! takes any `i16`, so it cannot fail or panic.

/// µ-law bias added to the magnitude before finding the segment (`0x84` = 132).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude µ-law encodes without overflowing `BIAS + magnitude` past 15 bits.
const ULAW_CLIP: i32 = 32635;
/// A-law toggles the even bits of every code, so that idle channels carry alternating bits.
const ALAW_TOGGLE: u8 = 0x55;
/// Upper end of each A-law segment, on the sample shifted right by 3.
const ALAW_SEGMENT_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

static ULAW_DECODE: [i16; 256] = decode_table(Law::Mu);
static ALAW_DECODE: [i16; 256] = decode_table(Law::A);

/// Which companding law a table is built for (const fns cannot call through function pointers).
#[derive(Clone, Copy)]
enum Law {
    Mu,
    A,
}

/// Encodes a linear 16-bit sample to a µ-law code (magnitudes above 32635 clip).
pub fn ulaw_encode(sample: i16) -> u8 {
    let linear = i32::from(sample);
    let (sign, magnitude) = if linear < 0 { (0x80, -linear) } else { (0x00, linear) };
    let biased = magnitude.min(ULAW_CLIP) + ULAW_BIAS; // 132..=32767
                                                       // The segment (exponent) is the position of the highest set bit above bit 7; `| 1` keeps the
                                                       // logarithm defined, though `biased >> 7` is at least 1 anyway.
    let exponent = 31 - ((biased >> 7) | 1).leading_zeros() as i32;
    let mantissa = (biased >> (exponent + 3)) & 0x0F;
    // Codes are transmitted inverted (all ones for a positive zero).
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Decodes a µ-law code to a linear 16-bit sample (±32124 at most).
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// Encodes a linear 16-bit sample to an A-law code.
pub fn alaw_encode(sample: i16) -> u8 {
    let shifted = i32::from(sample) >> 3;
    // Negative samples use the one's complement magnitude, which is what makes ±8 (not 0) the smallest step.
    let (mask, magnitude) = if shifted >= 0 { (0xD5u8, shifted) } else { (ALAW_TOGGLE, -shifted - 1) };
    match ALAW_SEGMENT_END.iter().position(|&end| magnitude <= end) {
        Some(segment) => {
            let step_shift = if segment < 2 { 1 } else { segment };
            let code = ((segment as i32) << 4) | ((magnitude >> step_shift) & 0x0F);
            (code as u8) ^ mask
        }
        // Unreachable for 16-bit input (|sample >> 3| <= 0xFFF); kept as the reference's saturation.
        None => 0x7F ^ mask,
    }
}

/// Decodes an A-law code to a linear 16-bit sample (±32256 at most).
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

const fn ulaw_expand(code: u8) -> i16 {
    let u = !code;
    let t = ((((u & 0x0F) as i32) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { ULAW_BIAS - t } else { t - ULAW_BIAS }) as i16
}

const fn alaw_expand(code: u8) -> i16 {
    let a = code ^ ALAW_TOGGLE;
    let segment = (a & 0x70) >> 4;
    let mut t = ((a & 0x0F) as i32) << 4;
    t += if segment == 0 { 8 } else { 0x108 };
    if segment > 1 {
        t <<= segment - 1;
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const fn decode_table(law: Law) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = match law {
            Law::Mu => ulaw_expand(code as u8),
            Law::A => alaw_expand(code as u8),
        };
        code += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::sine;

    #[test]
    fn ulaw_known_code_points() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
    }

    #[test]
    fn alaw_known_code_points() {
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for code in 0..=255u8 {
            let expected_ulaw = if code == 0x7F { 0xFF } else { code }; // µ-law's negative zero decodes to 0
            assert_eq!(ulaw_encode(ulaw_decode(code)), expected_ulaw, "µ-law code {code:#04x}");
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law code {code:#04x}");
        }
    }

    #[test]
    fn encoders_are_monotonic_over_all_samples() {
        let (mut last_u, mut last_a) = (i16::MIN, i16::MIN);
        for s in i16::MIN..=i16::MAX {
            let (u, a) = (ulaw_decode(ulaw_encode(s)), alaw_decode(alaw_encode(s)));
            assert!(u >= last_u && a >= last_a, "non-monotonic at {s}");
            (last_u, last_a) = (u, a);
        }
    }

    #[test]
    fn full_scale_sine_quantisation_snr() {
        let x: Vec<i16> = sine(8000, 8000, 1011.0, 32767.0).iter().map(|&v| v.round() as i16).collect();
        let snr = |decode_encode: fn(i16) -> i16| {
            let signal: f64 = x.iter().map(|&s| f64::from(s).powi(2)).sum();
            let noise: f64 = x.iter().map(|&s| (f64::from(s) - f64::from(decode_encode(s))).powi(2)).sum();
            10.0 * (signal / noise).log10()
        };
        let ulaw = snr(|s| ulaw_decode(ulaw_encode(s)));
        let alaw = snr(|s| alaw_decode(alaw_encode(s)));
        eprintln!("G.711 full-scale 1011 Hz sine: µ-law SNR {ulaw:.1} dB, A-law SNR {alaw:.1} dB");
        assert!(ulaw >= 35.0 && alaw >= 35.0, "µ-law {ulaw:.1} dB, A-law {alaw:.1} dB");
    }
}
