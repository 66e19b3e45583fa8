//! What a caller can choose when opening a microphone or speaker, and how that becomes a cpal stream config.

use std::time::Duration;

use cpal::traits::DeviceTrait;
use cpal::{BufferSize, SampleFormat, StreamConfig, SupportedBufferSize, SupportedStreamConfig};

use super::host::{label, Direction, HostChoice};
use crate::{CodecError, Result};

/// Callback period a [`Microphone`](super::Microphone) asks for unless told otherwise: 10 ms, i.e. 480 frames at
/// 48 kHz. toolchain.md §5 measured that PulseAudio captures at a steady real-time rate with
/// `BufferSize::Fixed(480)`, and bursts then catches up with the backend's default.
pub const DEFAULT_CAPTURE_PERIOD: Duration = Duration::from_millis(10);

/// Callback period a [`Speaker`](super::Speaker) asks for unless told otherwise: 40 ms, 1920 frames at 48 kHz.
/// cpal's PulseAudio backend keeps two periods at the server and asks for one more each period, so the client
/// may be up to one period late before the server runs dry and plays silence into the output. Measured on the
/// 2-core build machine with other builds running (load 2 to 3) and the PulseAudio client optimised: 10 ms
/// left gaps in 2 of 3 runs of a 3 s tone, 20 ms and 40 ms none in 7 runs. The cost: after
/// [`Speaker::clear`](super::Speaker::clear), audio already handed to the server (up to two periods, 80 ms)
/// still plays. Pass `buffer_frames` to trade one for the other.
pub const DEFAULT_PLAYBACK_PERIOD: Duration = Duration::from_millis(40);

/// Default ring length. For the microphone it is how long the consumer may stall (a long model step, say)
/// before samples are dropped; for the speaker, how much synthesized audio can wait at the device edge. At
/// 48 kHz it is 96,000 samples, 375 KiB. Longer hides stalls at the cost of memory and, for the speaker, of
/// more audio to discard on barge-in (which `clear` does at once anyway).
pub const DEFAULT_RING: Duration = Duration::from_secs(2);

/// How long cpal may take to set up a stream. PulseAudio needs a round trip to the server, and a hung server
/// would otherwise block forever; ALSA uses it as its poll timeout, which lets it notice a device that went
/// away instead of waiting forever.
pub(crate) const BUILD_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest ring accepted, so a typo cannot ask for gigabytes: 60 s at 192 kHz is 46 MB.
const MAX_RING: Duration = Duration::from_secs(60);

/// How to open a [`Microphone`](super::Microphone) or [`Speaker`](super::Speaker).
#[derive(Clone, Debug, PartialEq)]
pub struct StreamOptions {
    /// Which audio system to use.
    pub host: HostChoice,
    /// The device's id (`default`, `null`, `vsink.monitor`) or display name; `None` means the host's default.
    pub device: Option<String>,
    /// Frames per callback: `Some(n)` asks for exactly `n` (clamped to the range the device reports); `None`
    /// asks for [`DEFAULT_CAPTURE_PERIOD`] or [`DEFAULT_PLAYBACK_PERIOD`] at the device's rate.
    pub buffer_frames: Option<u32>,
    /// Ring length, as a duration at the device's sample rate.
    pub ring: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions { host: HostChoice::Auto, device: None, buffer_frames: None, ring: DEFAULT_RING }
    }
}

impl StreamOptions {
    /// The default device of `host`, with the default buffer and ring.
    pub fn on(host: HostChoice) -> Self {
        StreamOptions { host, ..Default::default() }
    }

    /// Names the device to open (id or display name).
    pub fn device(mut self, name: impl Into<String>) -> Self {
        self.device = Some(name.into());
        self
    }

    /// The device name as shown in errors before the device is found.
    pub(crate) fn device_or_default(&self) -> &str {
        self.device.as_deref().unwrap_or("default")
    }

    /// Ring capacity in samples at `sample_rate_hz`: at most [`MAX_RING`], and at least two callbacks' worth
    /// (`frames_per_callback` each) so that one callback's audio always fits while the other is being read.
    pub(crate) fn ring_samples(&self, sample_rate_hz: u32, frames_per_callback: u32) -> usize {
        let ring = self.ring.min(MAX_RING);
        let samples = (ring.as_secs_f64() * f64::from(sample_rate_hz)).ceil() as usize;
        samples.max(2 * frames_per_callback as usize).max(1)
    }
}

/// The stream config to open and the sample format the callback will see.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChosenConfig {
    pub(crate) config: StreamConfig,
    pub(crate) format: SampleFormat,
    /// The frames per callback asked for.
    pub(crate) frames_per_callback: u32,
}

/// Picks the device's default channels and rate, `f32` samples when the device offers them at that channel
/// count and rate (otherwise its default format), and the requested (or the direction's default) frames per
/// callback clamped to the device's range.
///
/// This is where a machine without a sound card fails: ALSA's `default` device exists but has no config.
pub(crate) fn choose_config(
    device: &cpal::Device,
    direction: Direction,
    host_name: &str,
    device_id: &str,
    options: &StreamOptions,
) -> Result<ChosenConfig> {
    let default = match direction {
        Direction::Input => device.default_input_config(),
        Direction::Output => device.default_output_config(),
    }
    .map_err(|e| CodecError::AudioDevice {
        device: label(direction, host_name, device_id),
        problem: format!("{} ({host_name}: {e})", direction.absent()),
    })?;
    if default.channels() == 0 || default.sample_rate() == 0 {
        return Err(CodecError::AudioDevice {
            device: label(direction, host_name, device_id),
            problem: format!(
                "the device reports an unusable default config ({} channels at {} Hz)",
                default.channels(),
                default.sample_rate()
            ),
        });
    }
    let format = if default.sample_format() == SampleFormat::F32 || offers_f32(device, direction, &default) {
        SampleFormat::F32
    } else {
        default.sample_format()
    };
    let period = match direction {
        Direction::Input => DEFAULT_CAPTURE_PERIOD,
        Direction::Output => DEFAULT_PLAYBACK_PERIOD,
    };
    let wanted = options.buffer_frames.unwrap_or_else(|| period_frames(period, default.sample_rate()));
    let frames = match *default.buffer_size() {
        SupportedBufferSize::Range { min, max } if min <= max => wanted.clamp(min, max),
        _ => wanted.max(1),
    };
    Ok(ChosenConfig {
        config: StreamConfig {
            channels: default.channels(),
            sample_rate: default.sample_rate(),
            buffer_size: BufferSize::Fixed(frames),
        },
        format,
        frames_per_callback: frames,
    })
}

/// Frames in `period` at `sample_rate_hz`, rounded to the nearest frame.
fn period_frames(period: Duration, sample_rate_hz: u32) -> u32 {
    let frames = (period.as_secs_f64() * f64::from(sample_rate_hz)).round();
    frames.clamp(1.0, f64::from(u32::MAX)) as u32
}

fn offers_f32(device: &cpal::Device, direction: Direction, default: &SupportedStreamConfig) -> bool {
    let matches = |range: &cpal::SupportedStreamConfigRange| {
        range.sample_format() == SampleFormat::F32
            && range.channels() == default.channels()
            && range.min_sample_rate() <= default.sample_rate()
            && default.sample_rate() <= range.max_sample_rate()
    };
    match direction {
        Direction::Input => device.supported_input_configs().map(|mut r| r.any(|c| matches(&c))).unwrap_or(false),
        Direction::Output => device.supported_output_configs().map(|mut r| r.any(|c| matches(&c))).unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_follows_rate_and_is_bounded() {
        let options = StreamOptions::default();
        assert_eq!(options.ring_samples(48_000, 480), 96_000);
        assert_eq!(options.ring_samples(16_000, 160), 32_000);
        let tiny = StreamOptions { ring: Duration::ZERO, ..StreamOptions::default() };
        assert_eq!(tiny.ring_samples(48_000, 480), 960, "at least two callbacks' worth");
        let huge = StreamOptions { ring: Duration::from_secs(3_600), ..StreamOptions::default() };
        assert_eq!(huge.ring_samples(48_000, 480), 60 * 48_000);
    }

    #[test]
    fn default_periods_in_frames() {
        assert_eq!(period_frames(DEFAULT_CAPTURE_PERIOD, 48_000), 480);
        assert_eq!(period_frames(DEFAULT_CAPTURE_PERIOD, 44_100), 441);
        assert_eq!(period_frames(DEFAULT_PLAYBACK_PERIOD, 48_000), 1_920);
        assert_eq!(period_frames(Duration::ZERO, 48_000), 1);
    }

    #[test]
    fn builder_names_host_and_device() {
        let options = StreamOptions::on(HostChoice::Alsa).device("null");
        assert_eq!(options.host, HostChoice::Alsa);
        assert_eq!(options.device_or_default(), "null");
        assert_eq!(StreamOptions::default().device_or_default(), "default");
    }
}
