//! [`WireFormat`]: which audio encoding a session's bytes use, parsed from the OpenAI Realtime API's names.

use std::fmt;
use std::str::FromStr;

use crate::{CodecError, Result};

/// The OpenAI Realtime API's PCM rate (`audio/pcm` without a rate, and the legacy `pcm16`).
pub const DEFAULT_PCM16_RATE_HZ: u32 = 24_000;
/// The rate of G.711 telephony audio.
pub const G711_RATE_HZ: u32 = 8_000;
/// PCM16 rates this build accepts: the API's 24 kHz, and 16 kHz, the audio encoder's own rate.
pub const PCM16_RATES_HZ: [u32; 2] = [24_000, 16_000];
/// `f32` rates this build accepts. A fixed list of standard rates rather than any number: the resampler's FFT
/// block grows with `rate / gcd(rate, model rate)`, so an odd rate from a client would cost a huge block.
pub const F32_RATES_HZ: [u32; 12] =
    [8_000, 11_025, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 88_200, 96_000, 176_400, 192_000];

/// What one sample on the wire is. All formats are mono.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireFormat {
    /// 16-bit signed little-endian PCM (`audio/pcm`, legacy `pcm16`), at 24000 or 16000 Hz.
    Pcm16 {
        /// Sample rate in Hz.
        rate_hz: u32,
    },
    /// 32-bit little-endian IEEE float, nominally in `[-1, 1]` (`audio/f32`, an omnid extension).
    F32 {
        /// Sample rate in Hz, one of [`F32_RATES_HZ`].
        rate_hz: u32,
    },
    /// G.711 µ-law at 8 kHz (`audio/pcmu`, legacy `g711_ulaw`).
    G711Ulaw,
    /// G.711 A-law at 8 kHz (`audio/pcma`, legacy `g711_alaw`).
    G711Alaw,
}

/// The format families, before a rate is attached.
#[derive(Clone, Copy)]
enum Family {
    Pcm16,
    F32,
    Ulaw,
    Alaw,
}

/// Accepted names, MIME-style first. Lookup ignores ASCII case and surrounding spaces.
const NAMES: [(&str, Family); 8] = [
    ("audio/pcm", Family::Pcm16),
    ("audio/pcmu", Family::Ulaw),
    ("audio/pcma", Family::Alaw),
    ("audio/f32", Family::F32),
    ("pcm16", Family::Pcm16),
    ("g711_ulaw", Family::Ulaw),
    ("g711_alaw", Family::Alaw),
    ("f32", Family::F32),
];

/// A [`CodecError::WireFormat`] for `format` with `problem`.
pub(crate) fn wire_error(format: impl Into<String>, problem: impl Into<String>) -> CodecError {
    CodecError::WireFormat { format: format.into(), problem: problem.into() }
}

fn list_rates(rates: &[u32]) -> String {
    rates.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

impl WireFormat {
    /// Builds a format from a type name and an optional rate, as in OpenAI's
    /// `{"type": "audio/pcm", "rate": 24000}`; legacy names (`pcm16`, `g711_ulaw`, …) are accepted too.
    ///
    /// PCM16 defaults to 24000 Hz and also accepts 16000; G.711 accepts only 8000 (or no rate); `f32` needs
    /// a rate from [`F32_RATES_HZ`]. Anything else is a [`CodecError::WireFormat`] naming the type and rate.
    pub fn from_mime(mime_type: &str, rate_hz: Option<u32>) -> Result<Self> {
        let name = mime_type.trim();
        let family = NAMES.iter().find(|(known, _)| known.eq_ignore_ascii_case(name)).map(|&(_, f)| f);
        let Some(family) = family else {
            let known = NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
            return Err(wire_error(name, format!("unknown audio format; expected one of {known}")));
        };
        let format = match (family, rate_hz) {
            (Family::Pcm16, rate) => Self::Pcm16 { rate_hz: rate.unwrap_or(DEFAULT_PCM16_RATE_HZ) },
            (Family::F32, Some(rate)) => Self::F32 { rate_hz: rate },
            (Family::F32, None) => {
                return Err(wire_error(name, format!("needs a rate, e.g. {name};rate=16000")));
            }
            (Family::Ulaw, None | Some(G711_RATE_HZ)) => Self::G711Ulaw,
            (Family::Alaw, None | Some(G711_RATE_HZ)) => Self::G711Alaw,
            (Family::Ulaw | Family::Alaw, Some(rate)) => {
                return Err(wire_error(name, format!("rate {rate} Hz is not supported; G.711 is 8000 Hz only")));
            }
        };
        format.validate().map_err(|e| match e {
            // Name the format as the caller spelled it.
            CodecError::WireFormat { problem, .. } => wire_error(name, problem),
            other => other,
        })?;
        Ok(format)
    }

    /// Parses a name with an optional MIME-style rate parameter: `audio/pcm`, `audio/pcm;rate=16000`,
    /// `pcm16`, `g711_ulaw`, `audio/f32;rate=48000`, … (the [`Display`](fmt::Display) form round-trips).
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = text.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let mut rate = None;
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                return Err(wire_error(text.trim(), format!("parameter '{}' is not key=value", param.trim())));
            };
            if !key.trim().eq_ignore_ascii_case("rate") {
                return Err(wire_error(text.trim(), format!("unknown parameter '{}'; only rate is", key.trim())));
            }
            let value = value.trim();
            let hz = value
                .parse::<u32>()
                .map_err(|_| wire_error(text.trim(), format!("rate '{value}' is not a whole number of Hz")))?;
            rate = Some(hz);
        }
        Self::from_mime(name, rate)
    }

    /// Checks that this build supports the format (the variants can be built directly with any rate).
    pub fn validate(&self) -> Result<()> {
        let (allowed, rate): (&[u32], u32) = match *self {
            Self::Pcm16 { rate_hz } => (&PCM16_RATES_HZ, rate_hz),
            Self::F32 { rate_hz } => (&F32_RATES_HZ, rate_hz),
            Self::G711Ulaw | Self::G711Alaw => return Ok(()),
        };
        if allowed.contains(&rate) {
            Ok(())
        } else {
            let problem = format!("rate {rate} Hz is not supported; this build accepts {} Hz", list_rates(allowed));
            Err(wire_error(self.mime_type(), problem))
        }
    }

    /// Sample rate in Hz.
    pub fn sample_rate_hz(&self) -> u32 {
        match *self {
            Self::Pcm16 { rate_hz } | Self::F32 { rate_hz } => rate_hz,
            Self::G711Ulaw | Self::G711Alaw => G711_RATE_HZ,
        }
    }

    /// Bytes per (mono) sample on the wire.
    pub fn bytes_per_sample(&self) -> usize {
        match self {
            Self::Pcm16 { .. } => 2,
            Self::F32 { .. } => 4,
            Self::G711Ulaw | Self::G711Alaw => 1,
        }
    }

    /// The OpenAI-style type name: `audio/pcm`, `audio/pcmu`, `audio/pcma`, or `audio/f32`.
    pub fn mime_type(&self) -> &'static str {
        match self {
            Self::Pcm16 { .. } => "audio/pcm",
            Self::F32 { .. } => "audio/f32",
            Self::G711Ulaw => "audio/pcmu",
            Self::G711Alaw => "audio/pcma",
        }
    }
}

/// The canonical name: the type, with `;rate=N` for the formats whose rate varies
/// (`audio/pcm;rate=24000`, `audio/pcmu`, `audio/f32;rate=48000`).
impl fmt::Display for WireFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pcm16 { rate_hz } | Self::F32 { rate_hz } => write!(f, "{};rate={rate_hz}", self.mime_type()),
            Self::G711Ulaw | Self::G711Alaw => f.write_str(self.mime_type()),
        }
    }
}

impl FromStr for WireFormat {
    type Err = CodecError;

    fn from_str(text: &str) -> Result<Self> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(result: Result<WireFormat>) -> String {
        match result {
            Err(e @ CodecError::WireFormat { .. }) => e.to_string(),
            other => panic!("expected a WireFormat error, got {other:?}"),
        }
    }

    #[test]
    fn parses_openai_and_legacy_names() {
        let pcm24 = WireFormat::Pcm16 { rate_hz: 24000 };
        assert_eq!(WireFormat::parse("audio/pcm").unwrap(), pcm24);
        assert_eq!(WireFormat::parse("pcm16").unwrap(), pcm24);
        assert_eq!(WireFormat::parse(" Audio/PCM ; rate = 16000 ").unwrap(), WireFormat::Pcm16 { rate_hz: 16000 });
        assert_eq!(WireFormat::parse("audio/pcmu").unwrap(), WireFormat::G711Ulaw);
        assert_eq!(WireFormat::parse("g711_ulaw").unwrap(), WireFormat::G711Ulaw);
        assert_eq!(WireFormat::parse("audio/pcma").unwrap(), WireFormat::G711Alaw);
        assert_eq!("g711_alaw".parse::<WireFormat>().unwrap(), WireFormat::G711Alaw);
        assert_eq!(WireFormat::parse("f32;rate=48000").unwrap(), WireFormat::F32 { rate_hz: 48000 });
    }

    #[test]
    fn from_mime_takes_the_rate_separately() {
        assert_eq!(WireFormat::from_mime("audio/pcm", Some(24000)).unwrap(), WireFormat::Pcm16 { rate_hz: 24000 });
        assert_eq!(WireFormat::from_mime("audio/pcm", Some(16000)).unwrap(), WireFormat::Pcm16 { rate_hz: 16000 });
        assert_eq!(WireFormat::from_mime("audio/pcmu", Some(8000)).unwrap(), WireFormat::G711Ulaw);
        assert_eq!(WireFormat::from_mime("audio/f32", Some(44100)).unwrap(), WireFormat::F32 { rate_hz: 44100 });
    }

    #[test]
    fn rejections_name_the_format_and_the_problem() {
        let e = problem(WireFormat::from_mime("audio/pcm", Some(44100)));
        assert!(e.contains("audio/pcm") && e.contains("44100") && e.contains("24000, 16000"), "{e}");
        let e = problem(WireFormat::from_mime("audio/opus", None));
        assert!(e.contains("audio/opus") && e.contains("unknown") && e.contains("g711_ulaw"), "{e}");
        let e = problem(WireFormat::from_mime("audio/pcma", Some(16000)));
        assert!(e.contains("audio/pcma") && e.contains("16000") && e.contains("8000"), "{e}");
        let e = problem(WireFormat::parse("f32"));
        assert!(e.contains("f32") && e.contains("needs a rate"), "{e}");
        let e = problem(WireFormat::parse("f32;rate=12345"));
        assert!(e.contains("f32") && e.contains("12345"), "{e}");
        let e = problem(WireFormat::parse("audio/pcm;rate=fast"));
        assert!(e.contains("audio/pcm;rate=fast") && e.contains("'fast'"), "{e}");
        let e = problem(WireFormat::parse("audio/pcm;channels=2"));
        assert!(e.contains("channels"), "{e}");
        let e = problem(WireFormat::Pcm16 { rate_hz: 8000 }.validate().map(|_| WireFormat::G711Ulaw));
        assert!(e.contains("audio/pcm") && e.contains("8000"), "{e}");
        assert!(matches!(WireFormat::parse(""), Err(CodecError::WireFormat { .. })));
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        let formats = [
            WireFormat::Pcm16 { rate_hz: 24000 },
            WireFormat::Pcm16 { rate_hz: 16000 },
            WireFormat::F32 { rate_hz: 16000 },
            WireFormat::G711Ulaw,
            WireFormat::G711Alaw,
        ];
        let names: Vec<String> = formats.iter().map(WireFormat::to_string).collect();
        assert_eq!(
            names,
            ["audio/pcm;rate=24000", "audio/pcm;rate=16000", "audio/f32;rate=16000", "audio/pcmu", "audio/pcma"]
        );
        for format in formats {
            assert_eq!(WireFormat::parse(&format.to_string()).unwrap(), format);
        }
    }

    #[test]
    fn rates_and_sample_sizes() {
        assert_eq!(WireFormat::G711Ulaw.sample_rate_hz(), 8000);
        assert_eq!(WireFormat::G711Alaw.bytes_per_sample(), 1);
        assert_eq!(WireFormat::Pcm16 { rate_hz: 16000 }.sample_rate_hz(), 16000);
        assert_eq!(WireFormat::Pcm16 { rate_hz: 16000 }.bytes_per_sample(), 2);
        assert_eq!(WireFormat::F32 { rate_hz: 48000 }.bytes_per_sample(), 4);
    }
}
