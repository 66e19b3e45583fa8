//! From a conversation to prompt tokens, the way the checkpoint's own processor does it:
//! the chat template renders the messages to text with one placeholder per media item,
//! each placeholder is replaced by its expansion (the right number of pad tokens, the
//! audio/video interleaving, Qwen3-VL frame timestamps), and the tokenizer encodes the result.
//!
//! | module | job |
//! |---|---|
//! | [`messages`] | conversation types (HF chat format: role + typed content parts) |
//! | [`template`] | loading and rendering the Jinja chat template |
//! | [`tokenizer`] | `tokenizer.json`, special-token lookup, streaming detokenisation |
//! | [`expand`] | placeholder expansion |
//! | [`fence`] | the other direction: a structured answer read out of its Markdown code fence |

pub mod expand;
pub mod fence;
pub mod messages;
pub mod template;
pub mod tokenizer;
