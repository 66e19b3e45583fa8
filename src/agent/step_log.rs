//! Every step on disk, for a person to review: `step-0001.png` (the screenshot the model saw),
//! `step-0001.json` (the model's output as written, the parsed action, the points on the screen,
//! whether it was executed or refused and why, timings), `run.json` (the goal, the display, the
//! rules, how the run ended), and `timeline.html`, a page showing the steps in order with their
//! screenshots and a marker where each action landed. Rewritten after every step, so a run that
//! is stopped or crashes leaves a readable log of what happened so far.

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde_json::Value;

/// One step as logged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepRecord {
    pub step: usize,
    /// Seconds since the run started, when the model's answer came.
    pub at_s: f64,
    /// Seconds since the run started, when the action was performed (executed steps).
    pub executed_at_s: Option<f64>,
    pub model_output: String,
    /// The action (its kind and fields), when the answer held one.
    pub action: Option<Value>,
    /// Root pixels the action touches.
    pub points: Vec<(i32, i32)>,
    /// What happened: `executed`, `dry_run`, `refused`, `declined`, `failed`.
    pub outcome: String,
    /// Why, for anything but `executed`.
    pub reason: Option<String>,
    pub capture_ms: f64,
    pub encode_ms: f64,
    pub generate_ms: f64,
    pub execute_ms: f64,
    /// The screenshot's size and where it lies on the root window.
    pub screen: [i64; 4],
}

/// Told of every step once it is logged (the daemon streams steps to its clients).
pub type StepObserver = Box<dyn FnMut(&StepRecord) + Send>;

/// The log folder of one run.
pub struct StepLog {
    dir: PathBuf,
    run: Value,
    steps: Vec<StepRecord>,
    observer: Option<StepObserver>,
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: cannot write the log: {e}", path.display()))
}

impl StepLog {
    pub fn create(dir: &Path, run: Value) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create the log folder: {e}", dir.display()))?;
        let log = Self { dir: dir.to_path_buf(), run, steps: Vec::new(), observer: None };
        log.write_index()?;
        Ok(log)
    }

    /// Tells `observer` of each step after it is on disk.
    pub fn observe(&mut self, observer: StepObserver) {
        self.observer = Some(observer);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Logs a step and its screenshot.
    pub fn step(&mut self, record: StepRecord, screenshot: &RgbImage) -> Result<(), String> {
        let png = self.dir.join(format!("step-{:04}.png", record.step));
        screenshot.save(&png).map_err(|e| format!("{}: cannot write the screenshot: {e}", png.display()))?;
        let json = serde_json::to_string_pretty(&record).expect("a step serialises");
        write(&self.dir.join(format!("step-{:04}.json", record.step)), json.as_bytes())?;
        if let Some(o) = self.observer.as_mut() {
            o(&record);
        }
        self.steps.push(record);
        self.write_index()
    }

    /// Records how the run ended.
    pub fn end(&mut self, outcome: &str, detail: &str) -> Result<(), String> {
        self.run["ended"] = serde_json::json!({"outcome": outcome, "detail": detail, "steps": self.steps.len()});
        self.write_index()
    }

    fn write_index(&self) -> Result<(), String> {
        let run = serde_json::to_string_pretty(&self.run).expect("a run serialises");
        write(&self.dir.join("run.json"), run.as_bytes())?;
        write(&self.dir.join("timeline.html"), timeline(&self.run, &self.steps).as_bytes())
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The review page: one row per step, its screenshot with a red ring where the action landed.
fn timeline(run: &Value, steps: &[StepRecord]) -> String {
    let mut rows = String::new();
    for s in steps {
        let [sx, sy, sw, sh] = s.screen;
        let marks: String = s
            .points
            .iter()
            .map(|(x, y)| {
                let (l, t) = (
                    (*x as f64 - sx as f64) / sw.max(1) as f64 * 100.0,
                    (*y as f64 - sy as f64) / sh.max(1) as f64 * 100.0,
                );
                format!("<span class=\"mark\" style=\"left:{l:.2}%;top:{t:.2}%\"></span>")
            })
            .collect();
        let action = s.action.as_ref().map_or_else(|| "—".to_string(), |a| esc(&a.to_string()));
        rows.push_str(&format!(
            "<section class=\"{outcome}\"><h2>Step {n}: {outcome}</h2>\
             <div class=\"shot\"><img src=\"step-{n:04}.png\" alt=\"step {n}\">{marks}</div>\
             <p><b>Action</b> <code>{action}</code></p>{reason}\
             <details><summary>Model output</summary><pre>{out}</pre></details>\
             <p class=\"t\">at {at:.1} s · capture {c:.0} ms · encode {e:.0} ms · generate {g:.0} ms · execute {x:.0} ms</p></section>\n",
            n = s.step,
            outcome = esc(&s.outcome),
            reason = s.reason.as_ref().map_or_else(String::new, |r| format!("<p><b>Why</b> {}</p>", esc(r))),
            out = esc(&s.model_output),
            at = s.at_s,
            c = s.capture_ms,
            e = s.encode_ms,
            g = s.generate_ms,
            x = s.execute_ms,
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>omnid agent run</title><style>\
         body{{font-family:sans-serif;max-width:1100px;margin:auto}}.shot{{position:relative;display:inline-block}}\
         .shot img{{max-width:100%;border:1px solid #888}}.mark{{position:absolute;width:18px;height:18px;margin:-9px;\
         border:3px solid red;border-radius:50%}}section{{border-top:1px solid #ccc;padding:8px 0}}\
         .refused h2,.failed h2,.declined h2{{color:#b00}}.dry_run h2{{color:#a60}}.t{{color:#666;font-size:90%}}\
         </style></head><body>\n<h1>omnid agent run</h1>\n<pre>{}</pre>\n{rows}</body></html>\n",
        esc(&serde_json::to_string_pretty(run).expect("a run serialises"))
    )
}
