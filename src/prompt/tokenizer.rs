//! The checkpoint's `tokenizer.json` (byte-level BPE for every Qwen3 model) through the
//! `tokenizers` crate, plus what omnid needs around it: special-token lookup with errors
//! that say the tokenizer and config disagree, and streaming detokenisation that never
//! emits half a UTF-8 character.

use std::path::{Path, PathBuf};

/// Why a tokenizer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{path}: {problem}")]
    Load { path: PathBuf, problem: String },
    #[error("tokenizer does not match the model config: {0}")]
    Mismatch(String),
    #[error("tokenizer: {0}")]
    Encode(String),
}

/// A loaded tokenizer.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
}

impl Tokenizer {
    /// Loads `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        if !path.exists() {
            return Err(TokenizerError::Load { path: path.into(), problem: "file not found".into() });
        }
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| TokenizerError::Load {
            path: path.into(),
            problem: format!("not a valid tokenizer.json: {e}"),
        })?;
        Ok(Self { inner, path: path.into() })
    }

    /// Wraps a tokenizer built in memory (the embedded default model).
    pub fn from_inner(inner: tokenizers::Tokenizer) -> Self {
        Self { inner, path: PathBuf::from("<embedded>") }
    }

    /// Where it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Encodes text like the HF processor does (`add_special_tokens=True`; Qwen tokenizers
    /// add no BOS, but a checkpoint whose post-processor does gets it here too).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let enc = self.inner.encode(text, true).map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Decodes ids, skipping special tokens when asked.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        self.inner.decode(ids, skip_special).map_err(|e| TokenizerError::Encode(e.to_string()))
    }

    /// Id of a token string (special or regular).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The string of an id.
    pub fn token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Number of ids the tokenizer can produce (including added tokens).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Checks that `token` has id `id` (e.g. `<|image_pad|>` ↔ `image_token_id`).
    pub fn expect_id(&self, token: &str, id: u32) -> Result<(), TokenizerError> {
        match self.token_id(token) {
            Some(got) if got == id => Ok(()),
            Some(got) => {
                Err(TokenizerError::Mismatch(format!("{token} is id {got} in the tokenizer but {id} in config.json")))
            }
            None => Err(TokenizerError::Mismatch(format!(
                "the tokenizer has no {token} token (config.json expects id {id})"
            ))),
        }
    }
}

/// Turns generated ids into text chunks as they arrive, emitting only complete UTF-8
/// (byte-level BPE can split a character across tokens) and skipping special tokens.
///
/// Only a short window of recent ids is decoded per token (the approach of TGI's
/// `decode_token`): the text of `ids[prefix..read]` was already emitted, so the new text is
/// what `ids[prefix..]` decodes to beyond it. Cost per token is constant, not the length of
/// the generation.
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    ids: Vec<u32>,
    /// Start of the decoding window.
    prefix: usize,
    /// End of the ids whose text has been emitted.
    read: usize,
}

impl<'a> StreamDecoder<'a> {
    /// A decoder for one generation.
    pub fn new(tok: &'a Tokenizer) -> Self {
        Self { tok, ids: Vec::new(), prefix: 0, read: 0 }
    }

    /// Adds a token; returns newly completed text, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>, TokenizerError> {
        self.ids.push(id);
        self.advance(false)
    }

    /// Whatever is left at the end (an incomplete trailing character is emitted as is).
    pub fn finish(&mut self) -> Result<Option<String>, TokenizerError> {
        self.advance(true)
    }

    fn advance(&mut self, at_end: bool) -> Result<Option<String>, TokenizerError> {
        let done = self.tok.decode(&self.ids[self.prefix..self.read], true)?;
        let now = self.tok.decode(&self.ids[self.prefix..], true)?;
        // An incomplete character decodes to U+FFFD at the end: wait for the next token.
        if now.len() <= done.len() || !now.is_char_boundary(done.len()) || (!at_end && now.ends_with('\u{FFFD}')) {
            return Ok(None);
        }
        let new = now[done.len()..].to_string();
        self.prefix = self.read;
        self.read = self.ids.len();
        Ok(Some(new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-level tokenizer with one token per byte (GPT-2 byte mapping) and one special token.
    fn byte_tokenizer() -> Tokenizer {
        let mut vocab = serde_json::Map::new();
        let mut n = 0u32;
        for b in 0..256u32 {
            let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
            let c = if printable {
                char::from_u32(b).unwrap()
            } else {
                n += 1;
                char::from_u32(255 + n).unwrap()
            };
            vocab.insert(c.to_string(), serde_json::json!(b));
        }
        let json = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": [{"id": 256, "content": "<|im_end|>", "single_word": false, "lstrip": false,
                              "rstrip": false, "normalized": false, "special": true}],
            "normalizer": null,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                      "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": []}
        });
        Tokenizer::from_inner(json.to_string().parse().unwrap())
    }

    #[test]
    fn streams_whole_characters_and_skips_special_tokens() {
        let tok = byte_tokenizer();
        let text = "héllo wörld — 日本";
        let mut ids: Vec<u32> = text.bytes().map(u32::from).collect();
        ids.push(256);
        let mut dec = StreamDecoder::new(&tok);
        let mut chunks = Vec::new();
        for id in ids {
            if let Some(c) = dec.push(id).unwrap() {
                chunks.push(c);
            }
        }
        if let Some(c) = dec.finish().unwrap() {
            chunks.push(c);
        }
        assert_eq!(chunks.concat(), text);
        // Multi-byte characters arrive whole: no chunk contains a replacement character.
        assert!(chunks.iter().all(|c| !c.contains('\u{FFFD}')), "{chunks:?}");
        assert!(chunks.contains(&"日".to_string()), "{chunks:?}");
    }

    #[test]
    fn a_dangling_partial_character_is_flushed_at_the_end() {
        let tok = byte_tokenizer();
        let mut dec = StreamDecoder::new(&tok);
        assert_eq!(dec.push(b'a' as u32).unwrap().as_deref(), Some("a"));
        assert_eq!(dec.push(0xE6).unwrap(), None); // first byte of a 3-byte character
        assert_eq!(dec.finish().unwrap().as_deref(), Some("\u{FFFD}"));
    }
}
