//! The events of one text answer on their way to its client. The engine thread serves every
//! client, so it never waits for one: events are handed over with `try_send`, and what the
//! client cannot take yet stays here. An answer only produces its next event once the outbox
//! is empty, so at most one step's events (a text piece, the final flush and the `Done`) wait.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Delivery, EventSink, JobEvent};

/// Whether the client keeps up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    /// Everything delivered.
    Open,
    /// Events wait; the client has been behind for this long.
    Behind(Duration),
    /// Nobody listens any more.
    Gone,
}

pub(super) struct Outbox {
    sink: Box<dyn EventSink>,
    pending: VecDeque<JobEvent>,
    behind_since: Option<Instant>,
    gone: bool,
}

impl Outbox {
    pub(super) fn new(sink: Box<dyn EventSink>) -> Self {
        Self { sink, pending: VecDeque::new(), behind_since: None, gone: false }
    }

    /// Queues `event` and tries to deliver everything queued.
    pub(super) fn send(&mut self, event: JobEvent) -> Flow {
        if !self.gone {
            self.pending.push_back(event);
        }
        self.flush()
    }

    /// Delivers what the client can take now.
    pub(super) fn flush(&mut self) -> Flow {
        if self.gone {
            return Flow::Gone;
        }
        while let Some(event) = self.pending.pop_front() {
            match self.sink.try_send(event) {
                Delivery::Sent => {}
                Delivery::Full(event) => {
                    self.pending.push_front(event);
                    return Flow::Behind(self.behind_since.get_or_insert_with(Instant::now).elapsed());
                }
                Delivery::Gone => {
                    self.gone = true;
                    self.pending.clear();
                    return Flow::Gone;
                }
            }
        }
        self.behind_since = None;
        Flow::Open
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A client that takes `room` events, then is behind until given more room.
    #[derive(Default)]
    struct Client {
        room: usize,
        got: Vec<String>,
        left: bool,
    }

    struct Sink(Arc<Mutex<Client>>);

    impl EventSink for Sink {
        fn try_send(&mut self, event: JobEvent) -> Delivery {
            let mut c = self.0.lock().unwrap();
            if c.left {
                return Delivery::Gone;
            }
            if c.room == 0 {
                return Delivery::Full(event);
            }
            c.room -= 1;
            if let JobEvent::Text(t) = event {
                c.got.push(t);
            }
            Delivery::Sent
        }
        fn send(&mut self, _: JobEvent) -> bool {
            unreachable!("the engine thread never blocks on a sink")
        }
    }

    #[test]
    fn a_slow_client_gets_every_event_in_order_and_a_gone_one_none() {
        let client = Arc::new(Mutex::new(Client { room: 1, ..Default::default() }));
        let mut out = Outbox::new(Box::new(Sink(client.clone())));
        assert_eq!(out.send(JobEvent::Text("a".into())), Flow::Open);
        assert!(matches!(out.send(JobEvent::Text("b".into())), Flow::Behind(_)));
        assert!(matches!(out.send(JobEvent::Text("c".into())), Flow::Behind(_)));
        assert_eq!(client.lock().unwrap().got, ["a"]);
        client.lock().unwrap().room = 10;
        assert_eq!(out.flush(), Flow::Open);
        assert_eq!(client.lock().unwrap().got, ["a", "b", "c"], "in order, none lost");

        client.lock().unwrap().left = true;
        assert_eq!(out.send(JobEvent::Text("d".into())), Flow::Gone);
        assert_eq!(out.send(JobEvent::Text("e".into())), Flow::Gone);
        assert!(out.pending.is_empty(), "nothing is kept for a client that left");
    }
}
