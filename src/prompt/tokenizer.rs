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
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    ids: Vec<u32>,
    emitted: usize,
}

impl<'a> StreamDecoder<'a> {
    /// A decoder for one generation.
    pub fn new(tok: &'a Tokenizer) -> Self {
        Self { tok, ids: Vec::new(), emitted: 0 }
    }

    /// Adds a token; returns newly completed text, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>, TokenizerError> {
        self.ids.push(id);
        let text = self.tok.decode(&self.ids, true)?;
        // An incomplete character decodes to U+FFFD at the end: wait for the next token.
        if text.ends_with('\u{FFFD}') || text.len() <= self.emitted {
            return Ok(None);
        }
        if !text.is_char_boundary(self.emitted) {
            return Ok(None);
        }
        let new = text[self.emitted..].to_string();
        self.emitted = text.len();
        Ok(Some(new))
    }

    /// Whatever is left at the end (an incomplete trailing character is emitted as is).
    pub fn finish(&mut self) -> Result<Option<String>, TokenizerError> {
        let text = self.tok.decode(&self.ids, true)?;
        if text.len() > self.emitted && text.is_char_boundary(self.emitted) {
            let new = text[self.emitted..].to_string();
            self.emitted = text.len();
            return Ok(Some(new));
        }
        Ok(None)
    }
}
