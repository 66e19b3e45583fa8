//! Choosing the audio system (cpal host) and finding a device on it by name.
//!
//! On Linux cpal offers ALSA (always compiled, and always "available" even with no sound card) and, with its
//! `pulseaudio` feature, a pure-Rust PulseAudio client that works only when a server answers. `Auto` prefers
//! PulseAudio because that is what desktops and the test null sink run, and ALSA's `default` device on a
//! machine without a card opens but has no usable configuration.

use std::fmt;
use std::str::FromStr;

use cpal::traits::{DeviceTrait, HostTrait};

use crate::{CodecError, Result};

/// Which audio system to open devices on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostChoice {
    /// PulseAudio when a server answers (socket found and handshake done), otherwise ALSA.
    #[default]
    Auto,
    /// ALSA directly (device names such as `default`, `null`, `hw:CARD=0,DEV=0`).
    Alsa,
    /// A PulseAudio (or pipewire-pulse) server, found through `PULSE_SERVER`, `PULSE_RUNTIME_PATH` or
    /// `XDG_RUNTIME_DIR`; device names are sink and source names such as `vsink` and `vsink.monitor`.
    PulseAudio,
}

impl fmt::Display for HostChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostChoice::Auto => "auto",
            HostChoice::Alsa => "ALSA",
            HostChoice::PulseAudio => "PulseAudio",
        })
    }
}

impl FromStr for HostChoice {
    type Err = CodecError;

    /// Parses `auto`, `alsa`, `pulseaudio` or `pulse` (any case).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(HostChoice::Auto),
            "alsa" => Ok(HostChoice::Alsa),
            "pulseaudio" | "pulse" => Ok(HostChoice::PulseAudio),
            _ => Err(CodecError::AudioDevice {
                device: format!("audio host {s:?}"),
                problem: "unknown audio host (expected auto, alsa or pulseaudio)".to_owned(),
            }),
        }
    }
}

/// Which way a device is used; also names the role in error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Capture: a microphone or a sink's monitor.
    Input,
    /// Playback: a speaker or a sink.
    Output,
}

impl Direction {
    /// The role as written in error messages.
    pub(crate) fn role(self) -> &'static str {
        match self {
            Direction::Input => "microphone",
            Direction::Output => "speaker",
        }
    }

    /// The stream, as written in error messages.
    pub(crate) fn stream_name(self) -> &'static str {
        match self {
            Direction::Input => "input stream",
            Direction::Output => "output stream",
        }
    }

    /// The phrase used when nothing usable exists in this direction.
    pub(crate) fn absent(self) -> &'static str {
        match self {
            Direction::Input => "no audio input device is available",
            Direction::Output => "no audio output device is available",
        }
    }
}

/// Formats the `device` field of [`CodecError::AudioDevice`]: `microphone (ALSA: default)`.
pub(crate) fn label(direction: Direction, host: &str, device: &str) -> String {
    format!("{} ({host}: {device})", direction.role())
}

/// Opens the host `choice` names. For [`HostChoice::Auto`], PulseAudio is tried first and ALSA is the fallback;
/// errors name `direction`'s role and the requested device so the caller can return them as they are.
pub(crate) fn open_host(choice: HostChoice, direction: Direction, device: &str) -> Result<cpal::Host> {
    match choice {
        HostChoice::Auto => match open_pulseaudio() {
            Ok(host) => Ok(host),
            Err(_) => open_by_name("ALSA", direction, device),
        },
        HostChoice::Alsa => open_by_name("ALSA", direction, device),
        HostChoice::PulseAudio => open_pulseaudio()
            .map_err(|problem| CodecError::AudioDevice { device: label(direction, "PulseAudio", device), problem }),
    }
}

/// Connects to the PulseAudio server, or says why not (no socket found, or the handshake failed).
pub(crate) fn open_pulseaudio() -> std::result::Result<cpal::Host, String> {
    let id = cpal::HostId::from_str("PulseAudio").map_err(|e| format!("PulseAudio support is not built in ({e})"))?;
    // `available_hosts` only checks that a socket path exists; skipping the connect when it does not avoids
    // cpal's connection thread, which it leaks if a server accepts but never answers.
    if !cpal::available_hosts().contains(&id) {
        return Err(format!(
            "no PulseAudio server answers: no server socket found (PULSE_SERVER={})",
            std::env::var("PULSE_SERVER").unwrap_or_else(|_| "<unset>".to_owned())
        ));
    }
    cpal::host_from_id(id).map_err(|e| format!("no PulseAudio server answers ({e})"))
}

fn open_by_name(name: &str, direction: Direction, device: &str) -> Result<cpal::Host> {
    let fail = |problem: String| CodecError::AudioDevice { device: label(direction, name, device), problem };
    let id =
        cpal::HostId::from_str(name).map_err(|e| fail(format!("{name} is not built in on this platform ({e})")))?;
    cpal::host_from_id(id).map_err(|e| fail(format!("{name} cannot be opened ({e})")))
}

/// A device's stable id on its host (`default`, `vsink.monitor`), falling back to its display name.
pub(crate) fn device_id(device: &cpal::Device) -> String {
    match device.id() {
        Ok(id) => id.id().to_owned(),
        Err(_) => device_name(device),
    }
}

/// A device's human-readable name (`Default Audio Device`, `Monitor of VirtualSink`).
pub(crate) fn device_name(device: &cpal::Device) -> String {
    device.description().map(|d| d.name().to_owned()).unwrap_or_else(|_| "<unnamed device>".to_owned())
}

/// Finds the device to open: the host's default when `name` is `None`, otherwise the first device in
/// `direction` whose id or display name equals `name`. The error lists the names that do exist.
pub(crate) fn find_device(host: &cpal::Host, direction: Direction, name: Option<&str>) -> Result<cpal::Device> {
    let host_name = host.id().name();
    let Some(name) = name else {
        let device = match direction {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        };
        return device.ok_or_else(|| CodecError::AudioDevice {
            device: label(direction, host_name, "default"),
            problem: format!("{} ({host_name} reports no default device)", direction.absent()),
        });
    };
    let devices = match direction {
        Direction::Input => host.input_devices().map(|d| d.collect::<Vec<_>>()),
        Direction::Output => host.output_devices().map(|d| d.collect::<Vec<_>>()),
    }
    .map_err(|e| CodecError::AudioDevice {
        device: label(direction, host_name, name),
        problem: format!("cannot list {host_name} devices ({e})"),
    })?;
    if let Some(found) = devices.iter().find(|d| device_id(d) == name || device_name(d) == name) {
        return Ok(found.clone());
    }
    let known: Vec<String> = devices.iter().map(device_id).collect();
    Err(CodecError::AudioDevice {
        device: label(direction, host_name, name),
        problem: if known.is_empty() {
            format!("{} on {host_name}", direction.absent())
        } else {
            format!("no such device; {host_name} has: {}", known.join(", "))
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_choice_parses_names_and_rejects_others() {
        assert_eq!("auto".parse::<HostChoice>().ok(), Some(HostChoice::Auto));
        assert_eq!("ALSA".parse::<HostChoice>().ok(), Some(HostChoice::Alsa));
        assert_eq!("pulse".parse::<HostChoice>().ok(), Some(HostChoice::PulseAudio));
        assert_eq!("PulseAudio".parse::<HostChoice>().ok(), Some(HostChoice::PulseAudio));
        let err = "jack".parse::<HostChoice>().unwrap_err().to_string();
        assert_eq!(err, "audio host \"jack\": unknown audio host (expected auto, alsa or pulseaudio)");
    }

    #[test]
    fn labels_name_role_host_and_device() {
        assert_eq!(label(Direction::Input, "ALSA", "default"), "microphone (ALSA: default)");
        assert_eq!(label(Direction::Output, "PulseAudio", "vsink"), "speaker (PulseAudio: vsink)");
    }
}
