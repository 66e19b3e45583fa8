//! Request bodies streamed to disk: a video for a job, a document for OCR. Bounded by a size
//! limit checked as the bytes arrive, so a large upload never sits in memory.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt as _;

use crate::server::ApiError;

/// Streams an upload to `dir`, refusing it (and removing the partial file) past `limit` bytes.
pub async fn receive_upload(
    body: Body,
    dir: &Path,
    name: &str,
    limit: u64,
    limit_key: &str,
) -> Result<PathBuf, ApiError> {
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or("bin");
    let path = dir.join(format!("upload-{:016x}.{ext}", crate::engine::rng::random_u64()));
    // Written under a `.part` name and renamed when whole (a reader never sees half a file).
    let part = path.with_extension(format!("{ext}.part"));
    let mut file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    let outcome: Result<(), ApiError> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad_request(format!("the upload broke off: {e}"), None))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request_error",
                    format!("the upload is larger than the limit of {limit} bytes ({limit_key})"),
                    None,
                ));
            }
            file.write_all(&chunk).await.map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
        }
        if size == 0 {
            return Err(ApiError::bad_request("the upload is empty: send the file as the request body", None));
        }
        file.sync_all().await.map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
        tokio::fs::rename(&part, &path).await.map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))
    }
    .await;
    if let Err(e) = outcome {
        drop(file);
        let _ = tokio::fs::remove_file(&part).await;
        return Err(e);
    }
    Ok(path)
}
