//! Session wire audio: the OpenAI Realtime API's formats (`audio/pcm` PCM16 LE at 24 kHz, `audio/pcmu` and
//! `audio/pcma` G.711 at 8 kHz, and the legacy names `pcm16`, `g711_ulaw`, `g711_alaw`), plus PCM16 at 16 kHz
//! and little-endian `f32` at a standard rate.
//!
//! - [`format`](mod@format): [`WireFormat`], parsed from those names, with its rate and sample size.
//! - [`g711`]: µ-law and A-law companding per ITU-T G.711.
//! - [`pcm`]: `i16` / `f32` sample conversion and the `[-1, 1]` clamp.
//! - [`stream`]: [`WireDecoder`] (bytes to `f32`, chunks may split samples) and [`WireEncoder`].
//! - [`session`]: [`WireInput`] (wire bytes to model-rate `f32`) and [`WireOutput`] (model-rate `f32` to wire
//!   bytes), which add streaming resampling ([`crate::stream_resample`]).

pub mod format;
pub mod g711;
pub mod pcm;
pub mod session;
pub mod stream;

pub use format::WireFormat;
pub use session::{WireInput, WireOutput};
pub use stream::{WireDecoder, WireEncoder};
