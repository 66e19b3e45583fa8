//! Video analysis jobs: a long video cut into windows that fit the model, each decoded by
//! seeking and answered by the model, the answers parsed into timed events on the video's clock,
//! merged across window borders, stored window by window in SQLite so that a killed daemon
//! resumes where it was, and rendered as JSON, SRT, WebVTT or Markdown.
//!
//! | module | job |
//! |---|---|
//! | [`spec`] | what a job asks for, checked before it is accepted |
//! | [`budget`] | how long a window may be for the model's context |
//! | [`windows`] | the windows of a time range: length, overlap, the last one clipped |
//! | [`prompt`] | the question per window and for the summary pass |
//! | [`model`] | what a job needs of a model ([`model::WindowModel`]) |
//! | [`local_model`] | the loaded model answering through the engine thread, as batch work |
//! | [`runner`] | one job: plan, decode, ask, parse, commit each window; merge; summarise |
//! | [`records`] | what the store keeps: jobs, plans, windows |
//! | [`result`] | a stored job's result, whole or so far, in a format |
//! | [`store`] | the persisted queue (SQLite): jobs, windows, starts |
//! | [`queue`] | the daemon's job workers: concurrency, cancellation, resume on start |
//! | [`events`] | timed events from what the model wrote (Qwen's `mm:ss.ff - mm:ss.ff`, `{"time": …}`, JSON) |
//! | [`merge`] | events of overlapping windows merged and de-duplicated |
//! | [`formats`] | JSON, SRT, WebVTT and Markdown |

pub mod budget;
pub mod events;
pub mod formats;
pub mod local_model;
pub mod merge;
pub mod model;
pub mod prompt;
pub mod queue;
pub mod records;
pub mod result;
pub mod runner;
pub mod spec;
pub mod store;
pub mod windows;
