//! What a [`Microphone`](super::Microphone) and a [`Speaker`](super::Speaker) share: finding the device
//! and its configuration, starting the cpal stream, and the running stream's identity, error reports and
//! pause/resume. Each of them adds only its own ring end.

use cpal::traits::StreamTrait;

use super::host::{device_id, find_device, label, open_host, Direction};
use super::options::{choose_config, ChosenConfig, StreamOptions};
use super::stream_errors::{error_channel, ErrorSink, ErrorSource};
use crate::{CodecError, Result};

/// Calls the generic stream builder `$build::<T>(args…)` with `T` the Rust type of cpal's sample format
/// `$format`: cpal's callbacks are typed, so each device format needs its own instantiation.
macro_rules! build_for_sample_format {
    ($format:expr, $build:ident($($arg:expr),* $(,)?)) => {
        match $format {
            cpal::SampleFormat::F32 => $build::<f32>($($arg),*),
            cpal::SampleFormat::I16 => $build::<i16>($($arg),*),
            cpal::SampleFormat::I32 => $build::<i32>($($arg),*),
            cpal::SampleFormat::I24 => $build::<cpal::I24>($($arg),*),
            cpal::SampleFormat::U8 => $build::<u8>($($arg),*),
            cpal::SampleFormat::U16 => $build::<u16>($($arg),*),
            cpal::SampleFormat::I8 => $build::<i8>($($arg),*),
            cpal::SampleFormat::U32 => $build::<u32>($($arg),*),
            cpal::SampleFormat::F64 => $build::<f64>($($arg),*),
            other => Err(cpal::Error::with_message(
                cpal::ErrorKind::UnsupportedConfig,
                format!("sample format {other} is not handled by omnid"),
            )),
        }
    };
}
pub(crate) use build_for_sample_format;

/// A device chosen and configured, before its stream is built.
pub(crate) struct PreparedDevice {
    pub(crate) device: cpal::Device,
    /// Role, host and device id, e.g. `microphone (PulseAudio: vsink.monitor)`.
    pub(crate) label: String,
    pub(crate) chosen: ChosenConfig,
    direction: Direction,
}

impl PreparedDevice {
    /// Opens the host, finds the device `options` names and picks its configuration.
    pub(crate) fn find(options: &StreamOptions, direction: Direction) -> Result<Self> {
        let host = open_host(options.host, direction, options.device_or_default())?;
        let host_name = host.id().name();
        let device = find_device(&host, direction, options.device.as_deref())?;
        let id = device_id(&device);
        let chosen = choose_config(&device, direction, host_name, &id, options)?;
        Ok(PreparedDevice { label: label(direction, host_name, &id), device, chosen, direction })
    }

    /// The error for a problem with this device.
    pub(crate) fn error(&self, problem: String) -> CodecError {
        CodecError::AudioDevice { device: self.label.clone(), problem }
    }

    /// Builds the stream with `build` (given the device, its config and the error sink the callbacks report
    /// to) and starts it.
    pub(crate) fn start(
        self,
        build: impl FnOnce(&cpal::Device, ErrorSink) -> std::result::Result<cpal::Stream, cpal::Error>,
    ) -> Result<DeviceStream> {
        let (sink, errors) = error_channel();
        let what = self.direction.stream_name();
        let stream = build(&self.device, sink).map_err(|e| self.error(format!("cannot open the {what} ({e})")))?;
        stream.play().map_err(|e| self.error(format!("cannot start the {what} ({e})")))?;
        Ok(DeviceStream {
            stream,
            errors,
            sample_rate_hz: self.chosen.config.sample_rate,
            channels: self.chosen.config.channels,
            direction: self.direction,
            label: self.label,
        })
    }
}

/// A running cpal stream. Its owner must declare it before its ring end, so the stream (and with it the
/// callbacks holding the other ring end) is dropped first.
pub(crate) struct DeviceStream {
    stream: cpal::Stream,
    errors: ErrorSource,
    label: String,
    sample_rate_hz: u32,
    channels: u16,
    direction: Direction,
}

impl DeviceStream {
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    pub(crate) fn channels(&self) -> u16 {
        self.channels
    }

    pub(crate) fn xruns(&self) -> u64 {
        self.errors.xruns()
    }

    pub(crate) fn next_error(&mut self) -> Option<CodecError> {
        self.errors.next(&self.label)
    }

    pub(crate) fn errors_lost(&self) -> u64 {
        self.errors.lost()
    }

    pub(crate) fn pause(&self) -> Result<()> {
        let what = self.direction.stream_name();
        self.stream.pause().map_err(|e| CodecError::AudioDevice {
            device: self.label.clone(),
            problem: format!("cannot pause the {what} ({e})"),
        })
    }

    pub(crate) fn resume(&self) -> Result<()> {
        let what = self.direction.stream_name();
        self.stream.play().map_err(|e| CodecError::AudioDevice {
            device: self.label.clone(),
            problem: format!("cannot resume the {what} ({e})"),
        })
    }

    /// Debug output of the owner (`Microphone`, `Speaker`).
    pub(crate) fn debug(&self, owner: &str, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(owner)
            .field("device", &self.label)
            .field("sample_rate_hz", &self.sample_rate_hz)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}
