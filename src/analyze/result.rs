//! A stored job's result in a format: the merged events once the job is done, or the events
//! of the windows finished so far (merged the same way) while it runs or after it failed.

use super::formats::{render, Format, Report};
use super::merge::merge_events;
use super::store::{JobRecord, Store, StoreError};

/// Job `id` and its result rendered in `format`; `None` if there is no such job.
pub fn job_result(store: &Store, id: &str, format: Format) -> Result<Option<(JobRecord, String)>, StoreError> {
    let Some(job) = store.job(id)? else { return Ok(None) };
    let windows = store.windows(id)?;
    let events = match &job.events {
        Some(done) => done.clone(),
        None => merge_events(windows.iter().flat_map(|w| w.events.iter().cloned()).collect()),
    };
    let text = render(&Report::of_job(&job, &windows, &events), format);
    Ok(Some((job, text)))
}
