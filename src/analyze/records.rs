//! What the job store keeps: a job (its request, state, plan and result) and each finished
//! window, as the runner, the API and the reports read them.

use super::events::Event;
use super::spec::JobSpec;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    /// The name stored and shown (`queued`, `running`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The state named `s`, `None` for any other text.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    /// Queued or running: work remains.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

/// How a job's windows were laid out when it first ran, kept so that a resumed job uses the
/// same windows (the stored ones are matched by index) and refuses a different model or a
/// changed file instead of mixing results.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub window_s: f64,
    pub overlap_s: f64,
    /// End of the analysed range (the request's `to`, or the video's end).
    pub to_s: f64,
    /// What the model and its budgets were ([`super::model::ModelTraits::identity`]).
    pub model: String,
    /// The file as it was: size in bytes and modification time (nanoseconds since the epoch;
    /// an integer, since a float need not read back from JSON to the same bits).
    pub video_bytes: u64,
    pub video_modified_ns: u64,
}

/// A job as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRecord {
    pub id: String,
    pub spec: JobSpec,
    pub state: JobState,
    /// Seconds since the Unix epoch.
    pub created_at: f64,
    pub updated_at: f64,
    /// Known once the video has been opened and the windows planned.
    pub windows_total: Option<usize>,
    /// The window length used (the requested one, shrunk to fit the model's context).
    pub window_s: Option<f64>,
    /// The windows' layout, from the first run.
    pub plan: Option<Plan>,
    /// Why it failed; for a finished job, what went wrong in the optional summary pass.
    pub error: Option<String>,
    /// The final pass's summary (with `summarize`).
    pub summary: Option<String>,
    /// The merged events, once every window is done.
    pub events: Option<Vec<Event>>,
}

/// One finished window.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WindowRecord {
    pub index: usize,
    pub start: f64,
    pub end: f64,
    /// What the model wrote.
    pub answer: String,
    pub events: Vec<Event>,
    /// What held no event.
    pub unparsed: Vec<String>,
    pub frames: usize,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Decoding the window's frames and sound (FFmpeg, resizing), model encoders, generation.
    pub decode_ms: f64,
    pub encode_ms: f64,
    pub generate_ms: f64,
    /// How many times this window was started (1 unless a run was interrupted in it).
    pub attempts: usize,
    pub finished_at: f64,
}
