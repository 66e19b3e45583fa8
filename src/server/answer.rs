//! An answer's streamed text with the tool calls taken out, for both APIs. Only when tools were
//! offered: without them a `<tool_call>` the model writes is just text.

use crate::protocol::tool_calls::{Segment, ToolCall, ToolCallSplitter};

/// A piece of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Text(String),
    Call(ToolCall),
}

pub(super) struct AnswerSplitter {
    splitter: Option<ToolCallSplitter>,
}

impl AnswerSplitter {
    pub(super) fn new(tools_offered: bool) -> Self {
        Self { splitter: tools_offered.then(ToolCallSplitter::new) }
    }

    /// Splits the next piece of streamed text.
    pub(super) fn push(&mut self, text: &str) -> Vec<Piece> {
        match &mut self.splitter {
            None => vec![Piece::Text(text.to_string())],
            Some(s) => pieces(s.push(text)),
        }
    }

    /// The answer has ended.
    pub(super) fn finish(&mut self) -> Vec<Piece> {
        self.splitter.as_mut().map_or_else(Vec::new, |s| pieces(s.finish()))
    }

    /// A call has begun: what follows is not to be spoken.
    pub(super) fn in_calls(&self) -> bool {
        self.splitter.as_ref().is_some_and(ToolCallSplitter::seen_call)
    }
}

fn pieces(segments: Vec<Segment>) -> Vec<Piece> {
    segments
        .into_iter()
        .map(|s| match s {
            Segment::Text(t) => Piece::Text(t),
            Segment::Call(c) => Piece::Call(c),
            Segment::Malformed { text, problem } => {
                // Kept as text so the client sees what the model wrote.
                tracing::warn!(problem, "the model wrote a tool call that does not parse; passing it on as text");
                Piece::Text(text)
            }
        })
        .collect()
}

/// A call id in OpenAI's style (`call_…`).
pub(super) fn call_id() -> String {
    format!("call_{:016x}", super::chat::rand_id())
}
