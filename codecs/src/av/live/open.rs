//! Opening a capture device with an FFmpeg interrupt callback (`AVIOInterruptCB`), so that neither opening
//! nor reading can block for good.
//!
//! FFmpeg polls the callback inside its blocking loops: `avformat_find_stream_info` calls it on every
//! round (a non-blocking camera that has no frame answers EAGAIN, and without the callback the loop spins
//! on that for ever), and the network protocols call it every 100 ms while they wait for data. The
//! callback interrupts when
//! - the capture's stop flag is set, while opening and for as long as the device is read, so that
//!   [`super::LiveCapture::stop`] ends a read that waits; and
//! - while opening only, when the open deadline has passed: the device did not describe its video, which
//!   takes a frame or two, in time.
//!
//! ffmpeg-next's `format::open_with` installs no callback (and leaks the context when
//! `avformat_find_stream_info` fails); its `input_with_interrupt*` functions cannot be given an input
//! format, which every capture device needs. Hence the small unsafe open below.
//!
//! Some device code blocks outside FFmpeg's loops and never consults the callback (x11grab's connection to
//! the X server in libxcb, a driver's `open`); [`super::LiveCapture`] bounds its own waits for those.

use std::ffi::CString;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffmpeg::ffi;
use ffmpeg_next as ffmpeg;

use super::worker::Shared;

/// What [`OpenError::TimedOut`] means, for an error message.
pub(crate) fn timed_out_problem(timeout: Duration) -> String {
    format!(
        "did not deliver a frame within {} s of opening (a stalled camera, or a display or stream that does not \
         answer)",
        timeout.as_secs_f64()
    )
}

/// Why opening failed.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The stop flag was set while opening.
    Stopped,
    /// The device had not opened and described its video when the deadline passed.
    TimedOut,
    /// FFmpeg's own error.
    Ffmpeg(ffmpeg::Error),
}

/// What the interrupt callback looks at.
struct InterruptState {
    shared: Arc<Shared>,
    /// When opening must have finished; `None` when the timeout is too large to add to the clock.
    deadline: Option<Instant>,
    /// Until the open has finished; the deadline applies only then.
    opening: AtomicBool,
    /// Set when the callback interrupted because of the deadline.
    timed_out: AtomicBool,
}

impl InterruptState {
    fn interrupt(&self) -> bool {
        if self.shared.stop.load(Ordering::Relaxed) {
            return true;
        }
        if self.opening.load(Ordering::Relaxed) && self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.timed_out.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Why an open that the callback may have interrupted failed, or whether one that FFmpeg reports as a
    /// success must count as a failure after all (`avformat_find_stream_info` returns success after an
    /// interrupt when the header already described every stream).
    fn verdict(&self, ret: i32) -> Option<OpenError> {
        if self.shared.stop.load(Ordering::Relaxed) {
            Some(OpenError::Stopped)
        } else if self.timed_out.load(Ordering::Relaxed) {
            Some(OpenError::TimedOut)
        } else if ret < 0 {
            Some(OpenError::Ffmpeg(ffmpeg::Error::from(ret)))
        } else {
            None
        }
    }
}

/// Opens `url` with the input `format` and `options` and reads its stream information, giving up when
/// `shared.stop` is set or after `timeout`; afterwards the stop flag still interrupts reads (module docs).
pub(crate) fn open_input(
    url: &str,
    format: &ffmpeg::format::Input,
    options: ffmpeg::Dictionary,
    shared: Arc<Shared>,
    timeout: Duration,
) -> Result<ffmpeg::format::context::Input, OpenError> {
    let url = CString::new(url)
        .map_err(|_| OpenError::Ffmpeg(ffmpeg::Error::Other { errno: ffmpeg::util::error::EINVAL }))?;
    let state = Arc::new(InterruptState {
        shared,
        deadline: Instant::now().checked_add(timeout),
        opening: AtomicBool::new(true),
        timed_out: AtomicBool::new(false),
    });
    let polled = Arc::clone(&state);
    // Boxes the closure; `interrupt.interrupt` is the C callback with the box as its opaque pointer, and
    // `interrupt.guard` frees the box when dropped. The guard therefore outlives the format context: it is
    // handed to the `Input` that owns the context (which drops it after closing the context), or on failure
    // dropped at the end of this function, after the context has been freed.
    let interrupt = ffmpeg::util::interrupt::new(Box::new(move || polled.interrupt()));
    // SAFETY: `avformat_alloc_context` returns a fresh context or null (checked); nothing else refers to it.
    let mut ctx = unsafe { ffi::avformat_alloc_context() };
    if ctx.is_null() {
        return Err(OpenError::Ffmpeg(ffmpeg::Error::Other { errno: ffmpeg::util::error::ENOMEM }));
    }
    // SAFETY: `ctx` is a valid context that only this function knows about. The callback and its opaque
    // pointer stay valid as long as `interrupt.guard` lives, which is longer than the context (above); the
    // closure only reads atomics and the clock, and is `Send`, as FFmpeg may call it from the thread that
    // reads the device, whichever that is.
    unsafe { (*ctx).interrupt_callback = interrupt.interrupt };
    // SAFETY: `disown` hands over the dictionary (possibly null), which `own` takes back below, after
    // FFmpeg has removed the options it used and left the rest for us to free.
    let mut opts = unsafe { options.disown() };
    // SAFETY: `ctx` is a user-allocated context as `avformat_open_input` expects; `url` is NUL-terminated
    // and outlives the call; `format` points to a static input format description; `opts` is a dictionary
    // or null. On failure FFmpeg frees the context and sets `ctx` to null.
    let ret = unsafe { ffi::avformat_open_input(&mut ctx, url.as_ptr(), format.as_ptr(), &mut opts) };
    // SAFETY: what FFmpeg left in `opts` is ours again (see `disown` above) and is freed on drop.
    drop(unsafe { ffmpeg::Dictionary::own(opts) });
    if ret < 0 {
        return Err(state.verdict(ret).unwrap_or(OpenError::Ffmpeg(ffmpeg::Error::from(ret))));
    }
    // SAFETY: `ctx` was opened above and is owned by this function.
    let ret = unsafe { ffi::avformat_find_stream_info(ctx, ptr::null_mut()) };
    state.opening.store(false, Ordering::Relaxed);
    if let Some(err) = state.verdict(ret) {
        // SAFETY: `ctx` was opened by `avformat_open_input` and is closed exactly once, here, which also
        // frees it and sets `ctx` to null; nothing refers to it any more.
        unsafe { ffi::avformat_close_input(&mut ctx) };
        return Err(err);
    }
    // SAFETY: `ctx` is an opened input context that the returned `Input` now owns and closes once on drop;
    // the guard it also owns keeps the callback's closure alive until after that close.
    Ok(unsafe { ffmpeg::format::context::Input::wrap_with_interrupt(ctx, interrupt.guard) })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::thread;

    use super::*;
    use crate::av::live::device::find_input_device;

    fn format(name: &str) -> ffmpeg::format::Input {
        crate::av::init();
        match find_input_device(name) {
            Some(ffmpeg::Format::Input(format)) => format,
            _ => panic!("this FFmpeg has no {name} demuxer"),
        }
    }

    /// A raw RGB stream over TCP from a local listener, 16x16 at 25 fps.
    fn rawvideo_options() -> ffmpeg::Dictionary<'static> {
        let mut dict = ffmpeg::Dictionary::new();
        dict.set("video_size", "16x16");
        dict.set("pixel_format", "rgb24");
        dict.set("framerate", "25");
        dict
    }

    fn elapsed_around(asked: Instant, want: Duration) -> Duration {
        let took = asked.elapsed();
        assert!(took >= want && took < want + Duration::from_secs(2), "took {took:?}, expected about {want:?}");
        took
    }

    #[test]
    fn an_input_that_sends_nothing_times_out() {
        // The listener accepts the connection (the kernel does, from its backlog) and never sends a byte:
        // avformat_find_stream_info waits in the TCP read until the deadline interrupts it.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("tcp://{}", listener.local_addr().unwrap());
        let asked = Instant::now();
        let shared = Arc::new(Shared::default());
        let result = open_input(&url, &format("rawvideo"), rawvideo_options(), shared, Duration::from_millis(500));
        assert!(matches!(result, Err(OpenError::TimedOut)), "{:?}", result.err());
        let took = elapsed_around(asked, Duration::from_millis(500));
        eprintln!("open of a silent input timed out after {took:?}");
    }

    #[test]
    fn stop_interrupts_an_open() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("tcp://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let stopper = Arc::clone(&shared);
        let asked = Instant::now();
        let stop = thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            stopper.stop.store(true, Ordering::Relaxed);
        });
        let result = open_input(&url, &format("rawvideo"), rawvideo_options(), shared, Duration::from_secs(30));
        assert!(matches!(result, Err(OpenError::Stopped)), "{:?}", result.err());
        let took = elapsed_around(asked, Duration::from_millis(300));
        eprintln!("stop interrupted an open after {took:?}");
        stop.join().unwrap();
    }

    #[test]
    fn stop_interrupts_a_read_and_the_deadline_no_longer_applies() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("tcp://{}", listener.local_addr().unwrap());
        let frame = vec![0x80u8; 16 * 16 * 3];
        // Two frames at once (the open reads what it needs to describe the stream), a third once the open
        // deadline has long passed, then silence until the client hangs up.
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(&frame).unwrap();
            conn.write_all(&frame).unwrap();
            thread::sleep(Duration::from_millis(800));
            conn.write_all(&frame).unwrap();
            let _ = conn.read(&mut [0u8; 1]);
        });
        let shared = Arc::new(Shared::default());
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        let mut input = open_input(&url, &format("rawvideo"), rawvideo_options(), Arc::clone(&shared), timeout)
            .unwrap_or_else(|e| panic!("{e:?}"));
        // Whatever the open kept back comes first; the third frame comes after the open deadline.
        for n in 0..3 {
            let mut packet = ffmpeg::Packet::empty();
            packet.read(&mut input).unwrap_or_else(|e| panic!("packet {n}: {e}"));
        }
        let third = started.elapsed();
        assert!(third >= Duration::from_millis(700), "the third frame came after {third:?}, before the deadline");
        // Nothing more comes: the read waits until stop interrupts it.
        let stopper = Arc::clone(&shared);
        let stop = thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            stopper.stop.store(true, Ordering::Relaxed);
        });
        let asked = Instant::now();
        let mut packet = ffmpeg::Packet::empty();
        let err = packet.read(&mut input).expect_err("a packet after the stop");
        assert_eq!(err, ffmpeg::Error::Exit);
        let took = elapsed_around(asked, Duration::from_millis(300));
        eprintln!("stop interrupted a waiting read after {took:?}");
        stop.join().unwrap();
        drop(input);
        server.join().unwrap();
    }
}
