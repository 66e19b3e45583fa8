//! The bounded frame queue between the capture thread and the consumer. When it is full, a new frame
//! displaces the OLDEST queued one: a realtime consumer that fell behind wants the freshest frames, not
//! the ones from when it stopped reading. (`std::sync::mpsc::sync_channel` can only refuse the newest.)
//!
//! A `Mutex<VecDeque>` with a `Condvar` is enough: the capture thread takes the lock for a push (no
//! allocation, as the slots are reserved up front) a few times a second, and is not a real-time audio
//! callback that must never wait.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::LiveFrame;

/// Why [`FrameQueue::recv_timeout`] or [`FrameQueue::try_recv`] returned no frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueEmpty {
    /// Nothing queued (within the timeout); the writer is still there.
    Empty,
    /// Nothing queued and the writer is gone: no frame will ever come.
    Closed,
}

struct State {
    frames: VecDeque<LiveFrame>,
    closed: bool,
}

/// A queue of at most `capacity` frames; see the module docs.
pub(crate) struct FrameQueue {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
}

impl FrameQueue {
    /// A queue holding at most `capacity` (≥ 1) frames, with its writer.
    pub(crate) fn new(capacity: usize) -> (Arc<FrameQueue>, QueueWriter) {
        let capacity = capacity.max(1);
        let queue = Arc::new(FrameQueue {
            state: Mutex::new(State { frames: VecDeque::with_capacity(capacity), closed: false }),
            ready: Condvar::new(),
            capacity,
        });
        let writer = QueueWriter { queue: Arc::clone(&queue) };
        (queue, writer)
    }

    /// The state; a panic while it was held cannot have broken it (every change is a single push, pop or
    /// flag), so a poisoned lock is taken over.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The oldest queued frame, if any.
    pub(crate) fn try_recv(&self) -> Result<LiveFrame, QueueEmpty> {
        let mut state = self.lock();
        match state.frames.pop_front() {
            Some(frame) => Ok(frame),
            None if state.closed => Err(QueueEmpty::Closed),
            None => Err(QueueEmpty::Empty),
        }
    }

    /// The oldest queued frame, waiting at most `timeout` for one.
    pub(crate) fn recv_timeout(&self, timeout: Duration) -> Result<LiveFrame, QueueEmpty> {
        // An absurd timeout waits "forever" rather than overflowing.
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.lock();
        loop {
            if let Some(frame) = state.frames.pop_front() {
                return Ok(frame);
            }
            if state.closed {
                return Err(QueueEmpty::Closed);
            }
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return Err(QueueEmpty::Empty);
            }
            // Spurious wake-ups and pushes that another reader took just loop again.
            state = self.ready.wait_timeout(state, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().frames.len()
    }
}

/// The capture thread's end of a [`FrameQueue`]. Dropping it closes the queue (also when the thread
/// panics): the consumer gets the frames still queued, then [`QueueEmpty::Closed`].
pub(crate) struct QueueWriter {
    queue: Arc<FrameQueue>,
}

impl QueueWriter {
    /// Queues `frame`, displacing the oldest queued frame when the queue is full; returns the displaced one
    /// (freed by the caller, outside the lock).
    pub(crate) fn push(&self, frame: LiveFrame) -> Option<LiveFrame> {
        let displaced = {
            let mut state = self.queue.lock();
            let displaced = if state.frames.len() >= self.queue.capacity { state.frames.pop_front() } else { None };
            state.frames.push_back(frame);
            displaced
        };
        self.queue.ready.notify_one();
        displaced
    }
}

impl Drop for QueueWriter {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::thread;
    use std::time::SystemTime;

    use image::RgbImage;

    use super::*;

    fn frame(index: u64) -> LiveFrame {
        LiveFrame { image: RgbImage::new(1, 1), t_s: index as f64, wall: SystemTime::now(), index }
    }

    #[test]
    fn a_full_queue_displaces_the_oldest_frame() {
        let (queue, writer) = FrameQueue::new(3);
        let displaced: Vec<Option<u64>> = (0..6).map(|i| writer.push(frame(i)).map(|f| f.index)).collect();
        assert_eq!(displaced, [None, None, None, Some(0), Some(1), Some(2)]);
        assert_eq!(queue.len(), 3);
        let got: Vec<u64> = std::iter::from_fn(|| queue.try_recv().ok()).map(|f| f.index).collect();
        assert_eq!(got, [3, 4, 5]);
        assert_eq!(queue.try_recv().unwrap_err(), QueueEmpty::Empty);
    }

    #[test]
    fn closing_delivers_what_is_queued_then_says_closed() {
        let (queue, writer) = FrameQueue::new(2);
        writer.push(frame(7));
        drop(writer);
        assert_eq!(queue.recv_timeout(Duration::from_secs(5)).unwrap().index, 7);
        assert_eq!(queue.try_recv().unwrap_err(), QueueEmpty::Closed);
        let asked = Instant::now();
        assert_eq!(queue.recv_timeout(Duration::from_secs(5)).unwrap_err(), QueueEmpty::Closed);
        assert!(asked.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn recv_timeout_waits_for_a_push_or_the_timeout() {
        let (queue, writer) = FrameQueue::new(1);
        let asked = Instant::now();
        assert_eq!(queue.recv_timeout(Duration::from_millis(100)).unwrap_err(), QueueEmpty::Empty);
        let waited = asked.elapsed();
        assert!(waited >= Duration::from_millis(100) && waited < Duration::from_secs(2), "{waited:?}");

        let pusher = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            writer.push(frame(1));
            thread::sleep(Duration::from_millis(50));
            // Dropping the writer wakes a waiting reader too.
        });
        assert_eq!(queue.recv_timeout(Duration::from_secs(10)).unwrap().index, 1);
        let asked = Instant::now();
        assert_eq!(queue.recv_timeout(Duration::from_secs(10)).unwrap_err(), QueueEmpty::Closed);
        assert!(asked.elapsed() < Duration::from_secs(2));
        pusher.join().unwrap();
        assert_eq!(queue.recv_timeout(Duration::MAX).unwrap_err(), QueueEmpty::Closed);
    }
}
