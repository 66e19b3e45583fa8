//! What a video job asks for, checked before it is accepted, and stored with the job (as JSON)
//! so that a restarted daemon resumes it with exactly the settings it was accepted with.

use std::path::PathBuf;

/// Frames per second sampled when the request does not say (the rate the Qwen3-VL processor
/// defaults to, and the one the figures are quoted at).
pub const DEFAULT_FPS: f64 = 2.0;
/// Window length when the request does not say: long enough to see an action whole, short
/// enough for the model's context at the default rate (shrunk further when it does not fit).
pub const DEFAULT_WINDOW_S: f64 = 60.0;
/// Overlap of consecutive windows: an event on a border is seen whole by one of them.
pub const DEFAULT_OVERLAP_S: f64 = 2.0;

/// The overlap when the request names a window but no overlap: the default, or a quarter of a
/// short window.
pub fn default_overlap(window_s: f64) -> f64 {
    DEFAULT_OVERLAP_S.min(window_s / 4.0)
}
/// Tokens the model may write per window.
pub const DEFAULT_WINDOW_TOKENS: usize = 256;
/// Longest task text: a task is an instruction, not a document.
pub const MAX_TASK_CHARS: usize = 4000;

/// A video analysis job. Fields missing from a stored job (one stored by an older omnid) take
/// their defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct JobSpec {
    /// The video file (on the daemon's machine: a permitted path, or the stored upload).
    pub video: PathBuf,
    /// The name shown in reports (the path given, or the upload's file name).
    pub title: String,
    /// What to find or describe.
    pub task: String,
    /// Frames per second sampled.
    pub fps: f64,
    /// Window length and overlap, seconds.
    pub window_s: f64,
    pub overlap_s: f64,
    /// Part of the video to analyse, seconds (`to` `None` = the end).
    pub from_s: f64,
    pub to_s: Option<f64>,
    /// Give the model the sound track with the frames, when the model hears.
    pub audio: bool,
    /// After the windows, one more pass that summarises their events.
    pub summarize: bool,
    /// Tokens the model may write per window.
    pub max_new_tokens: usize,
}

impl Default for JobSpec {
    fn default() -> Self {
        Self::new(PathBuf::new(), "")
    }
}

impl JobSpec {
    /// A spec with the defaults.
    pub fn new(video: PathBuf, task: impl Into<String>) -> Self {
        let title = video.display().to_string();
        Self {
            video,
            title,
            task: task.into(),
            fps: DEFAULT_FPS,
            window_s: DEFAULT_WINDOW_S,
            overlap_s: DEFAULT_OVERLAP_S,
            from_s: 0.0,
            to_s: None,
            audio: true,
            summarize: false,
            max_new_tokens: DEFAULT_WINDOW_TOKENS,
        }
    }

    /// The same request as `other` (the shown title aside).
    pub fn same_request(&self, other: &JobSpec) -> bool {
        JobSpec { title: String::new(), ..self.clone() } == JobSpec { title: String::new(), ..other.clone() }
    }

    /// Checks everything that can be checked without opening the video; the message names the
    /// field and the problem.
    pub fn validate(&self) -> Result<(), String> {
        let task = self.task.trim();
        if task.is_empty() {
            return Err("task: it is empty; say what to look for (\"list every time someone enters the room\")".into());
        }
        if self.task.chars().count() > MAX_TASK_CHARS {
            return Err(format!("task: longer than {MAX_TASK_CHARS} characters"));
        }
        if !(self.fps.is_finite() && self.fps > 0.0 && self.fps <= 30.0) {
            return Err(format!("fps {}: it must be more than 0 and at most 30", self.fps));
        }
        if !(self.window_s.is_finite() && self.window_s >= 1.0) {
            return Err(format!("window {} s: it must be at least 1 second", self.window_s));
        }
        if !(self.overlap_s.is_finite() && self.overlap_s >= 0.0 && self.overlap_s < self.window_s / 2.0) {
            return Err(format!(
                "overlap {} s: it must be at least 0 and under half the window ({} s)",
                self.overlap_s, self.window_s
            ));
        }
        if !(self.from_s.is_finite() && self.from_s >= 0.0) {
            return Err(format!("from {} s: it must be a time >= 0", self.from_s));
        }
        if let Some(to) = self.to_s {
            if !(to.is_finite() && to > self.from_s) {
                return Err(format!("to {to} s: it must come after from ({} s)", self.from_s));
            }
        }
        if self.max_new_tokens == 0 || self.max_new_tokens > 8192 {
            return Err(format!("max_tokens {}: it must be between 1 and 8192", self.max_new_tokens));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_specs_name_the_field() {
        let ok = JobSpec::new("v.mp4".into(), "find the dog");
        assert_eq!(ok.validate(), Ok(()));
        let bad = |f: &dyn Fn(&mut JobSpec)| {
            let mut s = ok.clone();
            f(&mut s);
            s.validate().unwrap_err()
        };
        assert!(bad(&|s| s.task = "  ".into()).starts_with("task: it is empty"));
        assert!(bad(&|s| s.fps = 0.0).starts_with("fps 0"));
        assert!(bad(&|s| s.window_s = 0.5).starts_with("window 0.5"));
        assert!(bad(&|s| s.overlap_s = 30.0).starts_with("overlap 30"));
        assert!(bad(&|s| s.to_s = Some(0.0)).starts_with("to 0"));
        assert!(bad(&|s| s.from_s = -1.0).starts_with("from -1"));
        assert!(bad(&|s| s.max_new_tokens = 0).starts_with("max_tokens 0"));
    }
}
