//! Error messages for clients: the text of an error and its causes, without the backtraces candle
//! attaches when `RUST_BACKTRACE` is set (a debugging aid for the operator's log, not something
//! to send to whoever made the request).

/// `e` and its causes as one line of `outer: inner` text.
pub fn client_message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = match cause.downcast_ref::<candle_core::Error>() {
            Some(c) => candle_message(c),
            None => cause.to_string(),
        };
        // anyhow repeats a wrapped error's text in its source; keep each once.
        if parts.last().is_none_or(|last| !last.ends_with(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// A candle error's text without its backtrace.
pub fn candle_message(e: &candle_core::Error) -> String {
    use candle_core::Error;
    match e {
        Error::WithBacktrace { inner, .. } => candle_message(inner),
        Error::Context { inner, context } => format!("{context}: {}", candle_message(inner)),
        Error::WithPath { inner, path } => format!("{}: {}", path.display(), candle_message(inner)),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backtraces_never_reach_the_message() {
        let e = candle_core::Error::Msg("the prompt is too long".into());
        let with_bt = candle_core::Error::WithBacktrace {
            inner: Box::new(e),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        assert!(with_bt.to_string().contains('\n'), "candle prints the backtrace");
        assert_eq!(candle_message(&with_bt), "the prompt is too long");
        let wrapped = anyhow::Error::from(with_bt.context("prefill"));
        assert_eq!(client_message(&wrapped), "prefill: the prompt is too long");
    }
}
