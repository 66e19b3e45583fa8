//! Video analysis jobs (issue 6), the parts that need no model: how a long video is cut into
//! windows, how the model's answers become timed events, how events from overlapping windows are
//! merged, and the output formats. The job runner (decode by seeking, the engine, the persisted
//! queue) builds on these.
//!
//! | module | job |
//! |---|---|
//! | [`windows`] | the windows of a time range: length, overlap, the last one clipped |
//! | [`events`] | timed events from what the model wrote (Qwen's `mm:ss.ff - mm:ss.ff`, `{"time": …}`, JSON) |
//! | [`merge`] | events of overlapping windows merged and de-duplicated |
//! | [`formats`] | JSON, SRT, WebVTT and Markdown |

pub mod events;
pub mod formats;
pub mod merge;
pub mod windows;
