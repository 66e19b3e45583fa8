//! Server events: every one carries a unique `event_id` and its `type`.

/// Numbers the events of one session.
#[derive(Debug, Default)]
pub struct Events {
    next: u64,
}

impl Events {
    /// `{"event_id", "type", …fields}` as JSON text.
    pub fn make(&mut self, kind: &str, fields: serde_json::Value) -> String {
        self.next += 1;
        let mut v = serde_json::json!({"event_id": format!("event_{:06}", self.next), "type": kind});
        if let (Some(o), serde_json::Value::Object(f)) = (v.as_object_mut(), fields) {
            o.extend(f);
        }
        v.to_string()
    }
}

/// An `error` event (the session stays open).
pub fn error_event(
    ev: &mut Events,
    kind: &str,
    message: &str,
    param: Option<&str>,
    client_event_id: Option<&str>,
) -> String {
    coded_error_event(ev, kind, None, message, param, client_event_id)
}

/// An `error` event with a machine-readable `code` (`item_not_found`, `session_expired`, …).
pub fn coded_error_event(
    ev: &mut Events,
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
    client_event_id: Option<&str>,
) -> String {
    ev.make("error", serde_json::json!({"error": {"type": kind, "code": code, "message": message, "param": param, "event_id": client_event_id}}))
}
