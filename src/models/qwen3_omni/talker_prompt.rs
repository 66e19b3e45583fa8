//! What the talker is given (spec §7.2, §7.4; transformers 5.23
//! `Qwen3OmniMoeForConditionalGeneration.generate` with `_get_talker_user_parts` /
//! `_get_talker_assistant_parts`):
//! * the prefill: every user-turn row of the thinker prompt (system and earlier assistant turns
//!   are dropped) — `hidden_projection(hidden_states[accept_hidden_layer])` at audio / image /
//!   video placeholders, `text_projection(token embedding)` elsewhere — then nine rows for the
//!   last assistant turn, each a text-track row plus a codec-track row;
//! * the trailing text track ([`TextTrack`]): one projected text token per 80 ms frame after the
//!   prefill, then `tts_eos`, then `tts_pad` for as long as the talker keeps speaking.
//!
//! Text rows use the thinker's *token* embeddings: the generated tokens are text, and the
//! prompt's media rows take the hidden-state path instead.

use candle_core::{Module, Result, Tensor};

use super::config::{Qwen3OmniMoeConfig, TalkerConfig};
use super::positions::{rope_index, OmniMediaLayout, OmniPositionIds};
use super::talker::Talker;
use crate::models::layers::rotary::Positions3d;
use crate::models::multimodal::{rows_of, scatter_rows};
use crate::models::text_decoder::TextDecoder;

/// Text-track rows of the assistant turn before the codec starts: `<|im_start|>`, `assistant`,
/// `\n`, and the first text row that goes with `codec_bos`.
pub const ASSISTANT_HEAD: usize = 4;

/// The talker's prefill.
#[derive(Debug, Clone)]
pub struct TalkerPrompt {
    /// `[1, R, hidden]`: user-turn rows then the nine assistant rows.
    pub rows: Tensor,
    pub positions: Positions3d,
    /// Decoding continues at `cache_len + rope_delta` on all three axes.
    pub rope_delta: f32,
}

/// The thinker's side of a prompt, as the talker needs it.
pub struct ThinkerPrompt<'a> {
    /// Prompt ids after placeholder expansion.
    pub ids: &'a [u32],
    /// `hidden_states[accept_hidden_layer]` of every prompt row `[S, thinker_hidden]` (only
    /// the media rows are read).
    pub accept_hidden: &'a Tensor,
    /// The prompt's media, as the thinker's TMRoPE walk saw them.
    pub layout: &'a OmniMediaLayout,
}

/// One entry of the trailing text track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackEntry {
    /// A thinker token: `text_projection(embed(id))`.
    Text(u32),
    /// `tts_eos`: the text has ended.
    Eos,
    /// `tts_pad`: after the end.
    Pad,
}

/// The assistant turn's text as it grows: the prompt's assistant head (`<|im_start|>assistant\n`
/// and whatever else the template put after it) followed by the generated tokens.
///
/// Matches the reference's bookkeeping exactly: the thinker's *last* generated token is never
/// fed back to the thinker, so it has no embedding row there and is never spoken — when the
/// thinker stops at its end token that token is `<|im_end|>`; when it stops at its token budget
/// the reference drops the last real token too, and so does this.
#[derive(Debug, Clone)]
pub struct TextTrack {
    ids: Vec<u32>,
    prompt_part: usize,
    ended: bool,
}

impl TextTrack {
    /// Starts with the prompt's tokens from the last `<|im_start|>assistant` on.
    pub fn new(assistant_prompt: Vec<u32>) -> Self {
        let prompt_part = assistant_prompt.len();
        Self { ids: assistant_prompt, prompt_part, ended: false }
    }

    /// A generated token.
    pub fn push(&mut self, id: u32) {
        self.ids.push(id);
    }

    /// The thinker has finished (by its end token, its budget or a cancel).
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// True once the thinker has finished.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Tokens generated so far.
    pub fn generated(&self) -> usize {
        self.ids.len() - self.prompt_part
    }

    /// The generated tokens so far.
    pub fn generated_ids(&self) -> &[u32] {
        &self.ids[self.prompt_part..]
    }

    /// The four head ids of the prefill, once the first generated token (or enough prompt) exists.
    pub fn head(&self) -> Option<&[u32]> {
        (self.ids.len() >= ASSISTANT_HEAD).then(|| &self.ids[..ASSISTANT_HEAD])
    }

    /// The text-track entry added at talker step `k` (after frame `k`), or `None` while it
    /// depends on tokens the thinker has not produced yet.
    pub fn entry(&self, k: usize) -> Option<TrackEntry> {
        let i = ASSISTANT_HEAD + k;
        if !self.ended {
            // ids[i] is usable once a later token exists (the last token is never spoken).
            return (i + 1 < self.ids.len()).then(|| TrackEntry::Text(self.ids[i]));
        }
        // Rows the reference has: the prompt part and every generated token but the last.
        let usable = self.prompt_part + self.generated().saturating_sub(1);
        let eos_at = usable.max(ASSISTANT_HEAD);
        Some(if i < usable {
            TrackEntry::Text(self.ids[i])
        } else if i == eos_at {
            TrackEntry::Eos
        } else {
            TrackEntry::Pad
        })
    }
}

/// Builds talker input rows from thinker tokens and hidden states.
pub struct TalkerInputs<'a> {
    talker: &'a Talker,
    thinker: &'a TextDecoder,
    cfg: &'a Qwen3OmniMoeConfig,
    /// `text_projection` of `tts_pad`, `tts_bos`, `tts_eos` `[3, hidden]`.
    tts: Tensor,
}

impl<'a> TalkerInputs<'a> {
    pub fn new(talker: &'a Talker, thinker: &'a TextDecoder, cfg: &'a Qwen3OmniMoeConfig) -> Result<Self> {
        let ids = [cfg.tts_pad_token_id, cfg.tts_bos_token_id, cfg.tts_eos_token_id];
        let tts = talker.text_projection.forward(&thinker.embed(&ids)?.to_dtype(talker.dtype())?)?;
        Ok(Self { talker, thinker, cfg, tts })
    }

    /// `text_projection(embed(ids))` `[ids.len(), hidden]`.
    fn text_rows(&self, ids: &[u32]) -> Result<Tensor> {
        self.talker.text_projection.forward(&self.thinker.embed(ids)?.to_dtype(self.talker.dtype())?)
    }

    /// The row a text-track entry adds `[hidden]`.
    pub fn track_row(&self, entry: TrackEntry) -> Result<Tensor> {
        match entry {
            TrackEntry::Text(id) => self.text_rows(&[id])?.squeeze(0),
            TrackEntry::Pad => self.tts.get(0),
            TrackEntry::Eos => self.tts.get(2),
        }
    }

    /// The prefill (spec §7.4) for `speaker` (a codec id), given the thinker prompt and the
    /// head of the assistant turn (`track.head()`).
    pub fn prefill(&self, prompt: &ThinkerPrompt, head: &[u32], speaker: u32) -> Result<TalkerPrompt> {
        let top = self.cfg;
        let tc: &TalkerConfig = self.talker.config();
        let th = &top.thinker_config;
        let ids = prompt.ids;
        if head.len() != ASSISTANT_HEAD {
            candle_core::bail!("the talker prefill needs {ASSISTANT_HEAD} assistant rows, got {}", head.len())
        }
        // Role of each token: the id after the latest <|im_start|> at or before it (the
        // reference's cummax; tokens before any <|im_start|> take the role after position 0).
        let mut user_rows = Vec::new();
        let mut last_start = 0usize;
        for (t, &id) in ids.iter().enumerate() {
            if id == top.im_start_token_id {
                last_start = t;
            }
            let role = ids[(last_start + 1).min(ids.len() - 1)];
            if role == top.user_token_id {
                user_rows.push(t);
            }
        }
        let user_ids: Vec<u32> = user_rows.iter().map(|&t| ids[t]).collect();
        let hidden = tc.hidden_size();
        let dtype = self.talker.dtype();
        let dev = self.talker.device();

        let user = if user_ids.is_empty() {
            Tensor::zeros((0, hidden), dtype, dev)?
        } else {
            let text = self.text_rows(&user_ids)?;
            let media: Vec<u32> = [th.audio_token_id, th.image_token_id, th.video_token_id]
                .iter()
                .flat_map(|&tok| rows_of(&user_ids, tok))
                .collect();
            if media.is_empty() {
                text
            } else {
                let mut media = media;
                media.sort_unstable();
                let src: Vec<u32> = media.iter().map(|&r| user_rows[r as usize] as u32).collect();
                let h = prompt.accept_hidden.index_select(&Tensor::new(src.as_slice(), dev)?, 0)?.to_dtype(dtype)?;
                scatter_rows(&text, &media, &self.talker.hidden_projection.forward(&h)?, "talker media")?
            }
        };

        let a = self.text_rows(head)?; // 4, hidden
        let tts = |i: usize| self.tts.narrow(0, i, 1);
        let (pad, bos) = (tts(0)?, tts(1)?);
        let text_track = Tensor::cat(&[&a.narrow(0, 0, 3)?, &pad, &pad, &pad, &pad, &bos, &a.narrow(0, 3, 1)?], 0)?;
        let codec_ids = [
            tc.codec_nothink_id,
            tc.codec_think_bos_id,
            tc.codec_think_eos_id,
            speaker,
            tc.codec_pad_id,
            tc.codec_bos_id,
        ];
        let codec_track =
            Tensor::cat(&[&Tensor::zeros((3, hidden), dtype, dev)?, &self.talker.codec_rows(&codec_ids)?], 0)?;
        let assistant = (text_track + codec_track)?;
        let rows = Tensor::cat(&[&user, &assistant], 0)?.unsqueeze(0)?;

        // Positions: the TMRoPE walk over the user ids and nine tts_pad ids, with the talker's
        // own token ids. transformers never passes `use_audio_in_video` to the talker, so its
        // walk always runs without it (reference behaviour, kept).
        let mut talker_ids = user_ids;
        talker_ids.extend(std::iter::repeat_n(top.tts_pad_token_id, 9));
        let layout = OmniMediaLayout { use_audio_in_video: false, ..prompt.layout.clone() };
        let pos_ids = OmniPositionIds {
            image_token_id: tc.image_token_id,
            video_token_id: tc.video_token_id,
            audio_token_id: tc.audio_token_id,
            vision_start_token_id: tc.vision_start_token_id.expect("validated at load; this is a bug"),
            audio_start_token_id: tc.audio_start_token_id,
            position_id_per_seconds: tc.position_id_per_seconds,
            spatial_merge_size: tc.spatial_merge_size.expect("validated at load; this is a bug"),
        };
        let (positions, rope_delta) = rope_index(&talker_ids, &layout, &pos_ids)
            .map_err(|e| candle_core::Error::msg(format!("talker positions: {e}")))?;
        Ok(TalkerPrompt { rows: rows.to_dtype(dtype)?, positions, rope_delta })
    }
}

/// Ids of the prompt from its last `<|im_start|>assistant` on (the assistant turn the talker
/// speaks), or an error naming the problem.
pub fn assistant_prompt(ids: &[u32], cfg: &Qwen3OmniMoeConfig) -> Result<Vec<u32>> {
    let start = ids
        .windows(2)
        .rposition(|w| w[0] == cfg.im_start_token_id && w[1] == cfg.assistant_token_id)
        .ok_or_else(|| {
            candle_core::Error::msg("speech needs a prompt that ends with an assistant turn (<|im_start|>assistant)")
        })?;
    Ok(ids[start..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_generated_token_is_never_spoken() {
        // Prompt head <|im_start|> assistant \n (ids 1, 2, 3), then Y1..Y4 = 10, 11, 12, 99 (end).
        let mut t = TextTrack::new(vec![1, 2, 3]);
        assert_eq!(t.head(), None);
        t.push(10);
        assert_eq!(t.head(), Some(&[1, 2, 3, 10][..]));
        assert_eq!(t.entry(0), None, "Y2 not generated yet");
        t.push(11);
        assert_eq!(t.entry(0), None, "Y2 could still be the last token");
        t.push(12);
        assert_eq!(t.entry(0), Some(TrackEntry::Text(11)));
        assert_eq!(t.entry(1), None);
        t.push(99);
        t.end();
        assert_eq!(t.entry(1), Some(TrackEntry::Text(12)));
        assert_eq!(t.entry(2), Some(TrackEntry::Eos), "99 (the end token) is not spoken");
        assert_eq!(t.entry(3), Some(TrackEntry::Pad));
        assert_eq!(t.entry(50), Some(TrackEntry::Pad));
    }

    #[test]
    fn a_one_token_reply_gets_eos_right_after_the_prefill() {
        let mut t = TextTrack::new(vec![1, 2, 3]);
        t.push(10);
        t.end();
        assert_eq!(t.entry(0), Some(TrackEntry::Eos));
        assert_eq!(t.entry(1), Some(TrackEntry::Pad));
    }

    #[test]
    fn prompt_tokens_after_the_assistant_head_lead_the_track() {
        // A template that opens the reply itself (e.g. an empty think block): 1 2 3 7 8 then Y1 Y2.
        let mut t = TextTrack::new(vec![1, 2, 3, 7, 8]);
        assert_eq!(t.head(), Some(&[1, 2, 3, 7][..]));
        assert_eq!(t.entry(0), None, "8 is the last known token until the thinker speaks");
        t.push(20);
        assert_eq!(t.entry(0), Some(TrackEntry::Text(8)));
        t.push(21);
        t.end();
        assert_eq!(t.entry(1), Some(TrackEntry::Text(20)));
        assert_eq!(t.entry(2), Some(TrackEntry::Eos));
    }
}
