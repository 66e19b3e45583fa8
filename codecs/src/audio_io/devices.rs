//! Device discovery: which audio hosts can be used, which capture and playback devices they offer, and each
//! device's default configuration, saying plainly when something is absent.
//!
//! On a machine without a sound card ALSA still lists a `default` device (and `null`), so presence is judged
//! from the configuration step: a device whose default config cannot be read is reported with the problem,
//! e.g. "no audio input device is available (ALSA: The requested audio device is not available…)".

use std::fmt;

use cpal::traits::{DeviceTrait, HostTrait};

use super::host::{device_id, device_name, open_pulseaudio, Direction};

/// Everything [`discover`] found, one entry per host cpal was built with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioReport {
    /// The hosts, in cpal's order (PulseAudio before ALSA on Linux).
    pub hosts: Vec<HostReport>,
}

/// One audio host and its devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostReport {
    /// cpal's name for the host: `ALSA`, `PulseAudio`.
    pub host: String,
    /// Why the host cannot be used at all (e.g. no PulseAudio server answers); `None` when it opened.
    pub problem: Option<String>,
    /// The host's default capture device, if it names one.
    pub default_input: Option<DeviceReport>,
    /// The host's default playback device, if it names one.
    pub default_output: Option<DeviceReport>,
    /// Every capture device the host lists.
    pub inputs: Vec<DeviceReport>,
    /// Every playback device the host lists.
    pub outputs: Vec<DeviceReport>,
    /// Why the device lists are empty when listing failed.
    pub list_problem: Option<String>,
}

/// One device in one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceReport {
    /// Stable id to pass as [`StreamOptions::device`](super::StreamOptions::device): `default`, `vsink.monitor`.
    pub id: String,
    /// Human-readable name: `Default Audio Device`, `Monitor of VirtualSink`.
    pub name: String,
    /// The default configuration in this direction, or why the device cannot be used.
    pub config: Result<DeviceConfig, String>,
}

/// A device's default stream configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Interleaved channels.
    pub channels: u16,
    /// Frames per second.
    pub sample_rate_hz: u32,
    /// Native sample format, e.g. `i16`, `f32`.
    pub sample_format: String,
    /// Range of frames per callback the device accepts, when it says.
    pub buffer_frames: Option<(u32, u32)>,
}

impl AudioReport {
    /// The report of the host called `name` (case-insensitive), if cpal was built with it.
    pub fn host(&self, name: &str) -> Option<&HostReport> {
        self.hosts.iter().find(|h| h.host.eq_ignore_ascii_case(name))
    }
}

impl HostReport {
    /// The default capture device if it can actually be opened.
    pub fn usable_default_input(&self) -> Option<&DeviceReport> {
        self.default_input.as_ref().filter(|d| d.config.is_ok())
    }

    /// The default playback device if it can actually be opened.
    pub fn usable_default_output(&self) -> Option<&DeviceReport> {
        self.default_output.as_ref().filter(|d| d.config.is_ok())
    }
}

/// Looks at every host cpal was built with. Never fails: problems are part of the report. Reading default
/// configs opens each device briefly, and alsa-lib may print its own complaints on stderr while it does.
pub fn discover() -> AudioReport {
    AudioReport { hosts: cpal::ALL_HOSTS.iter().map(|&id| host_report(id)).collect() }
}

fn host_report(id: cpal::HostId) -> HostReport {
    let name = id.name().to_owned();
    let opened = if name == "PulseAudio" {
        open_pulseaudio()
    } else {
        cpal::host_from_id(id).map_err(|e| format!("{name} cannot be opened ({e})"))
    };
    let host = match opened {
        Ok(host) => host,
        Err(problem) => {
            return HostReport {
                host: name,
                problem: Some(problem),
                default_input: None,
                default_output: None,
                inputs: Vec::new(),
                outputs: Vec::new(),
                list_problem: None,
            }
        }
    };
    let report = |device: &cpal::Device, direction| device_report(device, direction, &name);
    let default_input = host.default_input_device().map(|d| report(&d, Direction::Input));
    let default_output = host.default_output_device().map(|d| report(&d, Direction::Output));
    let mut list_problem = None;
    let inputs = match host.input_devices() {
        Ok(devices) => devices.map(|d| report(&d, Direction::Input)).collect(),
        Err(e) => {
            list_problem = Some(format!("cannot list {name} devices ({e})"));
            Vec::new()
        }
    };
    let outputs = match host.output_devices() {
        Ok(devices) => devices.map(|d| report(&d, Direction::Output)).collect(),
        Err(e) => {
            list_problem = Some(format!("cannot list {name} devices ({e})"));
            Vec::new()
        }
    };
    HostReport { host: name, problem: None, default_input, default_output, inputs, outputs, list_problem }
}

fn device_report(device: &cpal::Device, direction: Direction, host_name: &str) -> DeviceReport {
    let config = match direction {
        Direction::Input => device.default_input_config(),
        Direction::Output => device.default_output_config(),
    };
    DeviceReport {
        id: device_id(device),
        name: device_name(device),
        config: config
            .map(|c| DeviceConfig {
                channels: c.channels(),
                sample_rate_hz: c.sample_rate(),
                sample_format: c.sample_format().to_string(),
                buffer_frames: match *c.buffer_size() {
                    cpal::SupportedBufferSize::Range { min, max } => Some((min, max)),
                    cpal::SupportedBufferSize::Unknown => None,
                },
            })
            .map_err(|e| format!("{} ({host_name}: {e})", direction.absent())),
    }
}

impl fmt::Display for DeviceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ch, {} Hz, {}", self.channels, self.sample_rate_hz, self.sample_format)?;
        if let Some((min, max)) = self.buffer_frames {
            write!(f, ", {min}..={max} frames per callback")?;
        }
        Ok(())
    }
}

impl fmt::Display for DeviceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): ", self.id, self.name)?;
        match &self.config {
            Ok(config) => write!(f, "{config}"),
            Err(problem) => f.write_str(problem),
        }
    }
}

impl fmt::Display for HostReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(problem) = &self.problem {
            return writeln!(f, "{}: unavailable: {problem}", self.host);
        }
        writeln!(f, "{}:", self.host)?;
        let none = |d: &Option<DeviceReport>, direction: Direction| match d {
            Some(d) => d.to_string(),
            None => direction.absent().to_owned(),
        };
        writeln!(f, "  default input: {}", none(&self.default_input, Direction::Input))?;
        writeln!(f, "  default output: {}", none(&self.default_output, Direction::Output))?;
        if let Some(problem) = &self.list_problem {
            writeln!(f, "  {problem}")?;
        }
        for (title, list) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            writeln!(f, "  {title}: {}", list.len())?;
            for device in list {
                writeln!(f, "    {device}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for AudioReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for host in &self.hosts {
            write!(f, "{host}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_text_says_what_is_missing() {
        let report = AudioReport {
            hosts: vec![
                HostReport {
                    host: "PulseAudio".into(),
                    problem: Some("no PulseAudio server answers (x)".into()),
                    default_input: None,
                    default_output: None,
                    inputs: vec![],
                    outputs: vec![],
                    list_problem: None,
                },
                HostReport {
                    host: "ALSA".into(),
                    problem: None,
                    default_input: Some(DeviceReport {
                        id: "default".into(),
                        name: "Default Audio Device".into(),
                        config: Err("no audio input device is available (ALSA: gone)".into()),
                    }),
                    default_output: None,
                    inputs: vec![],
                    outputs: vec![DeviceReport {
                        id: "null".into(),
                        name: "Discard all samples".into(),
                        config: Ok(DeviceConfig {
                            channels: 2,
                            sample_rate_hz: 48_000,
                            sample_format: "f32".into(),
                            buffer_frames: Some((16, 4096)),
                        }),
                    }],
                    list_problem: None,
                },
            ],
        };
        let text = report.to_string();
        assert_eq!(
            text,
            "PulseAudio: unavailable: no PulseAudio server answers (x)\n\
             ALSA:\n  default input: default (Default Audio Device): no audio input device is available (ALSA: gone)\n  \
             default output: no audio output device is available\n  inputs: 0\n  outputs: 1\n    \
             null (Discard all samples): 2 ch, 48000 Hz, f32, 16..=4096 frames per callback\n"
        );
        let alsa = report.host("alsa").expect("ALSA is in the report");
        assert!(alsa.usable_default_input().is_none());
        assert!(alsa.usable_default_output().is_none());
    }
}
