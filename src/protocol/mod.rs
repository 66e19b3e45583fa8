//! Wire types only: what clients send and receive, as serde data — no candle, no tokio, no
//! behaviour. The server validates these into engine requests and turns engine events back
//! into them.
//!
//! | module | job |
//! |---|---|
//! | [`chat`] | OpenAI Chat Completions (`POST /v1/chat/completions`), streamed and not |
//! | [`realtime`] | OpenAI Realtime client events (`GET /v1/realtime`) |
//! | [`errors`] | the OpenAI error body every endpoint answers with |
//! | [`tool_calls`] | function calling in the Qwen3 chat format: tool declarations in, `<tool_call>` blocks out |

pub mod chat;
pub mod errors;
pub mod realtime;
pub mod tool_calls;
