//! The OpenAI error body: `{"error": {"message", "type", "param", "code"}}`, which the official
//! SDKs turn into their typed exceptions.

use serde::Serialize;

/// `{"error": …}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The inside of an error body.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorDetail {
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `overloaded_error`, `server_error`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    pub code: Option<String>,
}

impl ErrorBody {
    pub fn new(kind: &str, message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            error: ErrorDetail {
                message: message.into(),
                kind: kind.into(),
                param: param.map(str::to_string),
                code: None,
            },
        }
    }
}
