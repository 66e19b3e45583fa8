//! What the agent may do, checked before anything reaches the mouse or keyboard: an allowlist of
//! action kinds, screen regions that are never clicked, typed into or dragged across, a stop
//! hotkey the model may not press, a hard step limit and a rate limit. A refusal is logged with
//! its reason and told to the model, which may try something else.

use std::collections::BTreeSet;
use std::time::Duration;

use super::action::Action;
use super::screen::Rect;

/// Defaults: a run is short, actions are spaced so a person can see them happen.
pub const DEFAULT_MAX_STEPS: usize = 30;
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_millis(500);
/// A run that keeps answering with refused actions ends after this many in a row.
pub const MAX_REFUSALS_IN_A_ROW: usize = 5;

/// The rules of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Policy {
    /// Action kinds allowed (`left_click`, `type`, …); `None`: every action of the tool.
    pub allow: Option<BTreeSet<String>>,
    /// Root-window regions no pointer action may touch.
    pub forbidden: Vec<Rect>,
    /// Steps (model answers) at most.
    pub max_steps: usize,
    /// Least time between two executed actions.
    #[serde(serialize_with = "millis")]
    pub min_interval: Duration,
    /// Log actions without executing them.
    pub dry_run: bool,
    /// Ask a person before each action.
    pub confirm: bool,
    /// Key combinations (lower-case names) that stop the agent: the model may not press them.
    pub stop_keys: Vec<Vec<String>>,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allow: None,
            forbidden: Vec::new(),
            max_steps: DEFAULT_MAX_STEPS,
            min_interval: DEFAULT_MIN_INTERVAL,
            dry_run: false,
            confirm: false,
            stop_keys: Vec::new(),
        }
    }
}

impl Policy {
    /// Checks `action` whose pointer points map to `points` (root pixels).
    pub fn check(&self, action: &Action, points: &[(i32, i32)]) -> Result<(), String> {
        let kind = action.kind();
        if let Some(allow) = &self.allow {
            // Ending the run is always allowed: an agent must be able to stop.
            if !action.ends_run() && !allow.contains(kind) {
                return Err(format!(
                    "{kind} is not allowed in this run (allowed: {})",
                    allow.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        for p in points {
            if let Some(r) = self.forbidden.iter().find(|r| r.contains(*p)) {
                return Err(format!(
                    "{kind} at ({}, {}) is inside a forbidden region ({},{},{}x{})",
                    p.0, p.1, r.x, r.y, r.width, r.height
                ));
            }
        }
        if let Action::Key { keys } = action {
            let pressed: BTreeSet<String> = keys.iter().map(|k| k.to_lowercase()).collect();
            if self.stop_keys.iter().any(|s| s.iter().map(|k| k.to_lowercase()).collect::<BTreeSet<_>>() == pressed) {
                return Err(format!("{} is the agent's stop key", keys.join("+")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::action::{Button, GridPoint};

    #[test]
    fn allowlist_regions_and_the_stop_key() {
        let p = Policy {
            allow: Some(["left_click".to_string(), "type".to_string()].into()),
            forbidden: vec![Rect { x: 0, y: 0, width: 100, height: 50 }],
            stop_keys: vec![vec!["ctrl".into(), "alt".into(), "Escape".into()]],
            ..Policy::default()
        };
        let click = Action::Click { at: GridPoint { x: 0.0, y: 0.0 }, button: Button::Left, count: 1 };
        assert!(p.check(&click, &[(50, 20)]).unwrap_err().contains("forbidden region (0,0,100x50)"));
        assert_eq!(p.check(&click, &[(150, 20)]), Ok(()));
        let right = Action::Click { at: GridPoint { x: 0.0, y: 0.0 }, button: Button::Right, count: 1 };
        assert!(p.check(&right, &[(150, 20)]).unwrap_err().contains("right_click is not allowed"));
        assert_eq!(p.check(&Action::Terminate { success: true }, &[]), Ok(()));
        let open = Policy::default();
        let stop = Action::Key { keys: vec!["Escape".into(), "ALT".into(), "ctrl".into()] };
        assert!(Policy { stop_keys: p.stop_keys.clone(), ..open }.check(&stop, &[]).unwrap_err().contains("stop key"));
    }
}
