//! Placeholder expansion: the rendered template holds one `<|image_pad|>`, `<|video_pad|>`
//! or `<|audio_pad|>` per media item; each is replaced, in order of appearance, by what
//! the model needs — exactly as transformers 5.23's processors do it at the text level
//! (`get_text_with_replacements`, `replace_*_token`), before tokenisation.

/// Token strings of the placeholders and delimiters.
#[derive(Debug, Clone)]
pub struct PlaceholderTokens {
    pub image_pad: String,
    pub video_pad: String,
    pub vision_start: String,
    pub vision_end: String,
    /// Absent for models without audio input.
    pub audio_pad: Option<String>,
    pub audio_start: Option<String>,
    pub audio_end: Option<String>,
}

/// How one video expands.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoExpansion {
    /// `video_pad × tokens` (Qwen3-Omni without its audio track).
    Plain { tokens: usize },
    /// Qwen3-Omni audio-in-video: `<|audio_start|>` + video and audio pads interleaved by
    /// time + `<|audio_end|>`. A video token of temporal grid k sits at time
    /// `k · second_per_grid · position_id_per_seconds`, audio token j at time j; ties go to video.
    WithAudio {
        /// `[t, h', w']` merged grid.
        merged_grid: [usize; 3],
        second_per_grid: f64,
        position_id_per_seconds: f64,
        audio_tokens: usize,
    },
    /// Qwen3-VL: per temporal grid `<{t:.1f} seconds>` + vision_start + pads + vision_end
    /// (a template wrapper `vision_start·placeholder·vision_end` around it is dropped).
    Timestamped { tokens_per_group: usize, timestamps: Vec<f64> },
}

/// A placeholder count that does not match the media given.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("the prompt has {found} {what} placeholder(s) but {given} {what} input(s) were given")]
pub struct ExpandError {
    pub what: &'static str,
    pub found: usize,
    pub given: usize,
}

/// Expands every placeholder in `text`. `audios` are the token counts of standalone audios
/// (audio tracks of videos are part of their [`VideoExpansion::WithAudio`]).
pub fn expand(
    text: &str,
    tok: &PlaceholderTokens,
    images: &[usize],
    videos: &[VideoExpansion],
    audios: &[usize],
) -> Result<String, ExpandError> {
    let count = |needle: &str| text.matches(needle).count();
    let audio_pad = tok.audio_pad.as_deref().unwrap_or("\u{0}<no audio>");
    for (what, found, given) in [
        ("image", count(&tok.image_pad), images.len()),
        ("video", count(&tok.video_pad), videos.len()),
        ("audio", if tok.audio_pad.is_some() { count(audio_pad) } else { 0 }, audios.len()),
    ] {
        if found != given {
            return Err(ExpandError { what, found, given });
        }
    }
    let mut out = String::with_capacity(text.len());
    let (mut ii, mut vi, mut ai) = (0, 0, 0);
    let mut rest = text;
    loop {
        let next = [(&tok.image_pad[..], 0), (&tok.video_pad[..], 1), (audio_pad, 2)]
            .into_iter()
            .filter_map(|(needle, kind)| rest.find(needle).map(|p| (p, needle.len(), kind)))
            .min_by_key(|&(p, _, _)| p);
        let Some((pos, len, kind)) = next else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..pos]);
        match kind {
            0 => {
                out.push_str(&tok.image_pad.repeat(images[ii]));
                ii += 1;
            }
            1 => {
                let mut after = pos + len;
                if let VideoExpansion::Timestamped { .. } = &videos[vi] {
                    // The per-group layout carries its own vision_start/end: a template that
                    // wraps the placeholder would double them (transformers 5.23 does; the
                    // canonical Qwen3-VL layout does not), so the wrapper is dropped.
                    if out.ends_with(&tok.vision_start) && rest[after..].starts_with(&tok.vision_end) {
                        out.truncate(out.len() - tok.vision_start.len());
                        after += tok.vision_end.len();
                    }
                }
                expand_video(&videos[vi], tok, &mut out);
                vi += 1;
                rest = &rest[after..];
                continue;
            }
            _ => {
                out.push_str(&audio_pad.repeat(audios[ai]));
                ai += 1;
            }
        }
        rest = &rest[pos + len..];
    }
    Ok(out)
}

fn expand_video(v: &VideoExpansion, tok: &PlaceholderTokens, out: &mut String) {
    match v {
        VideoExpansion::Plain { tokens } => out.push_str(&tok.video_pad.repeat(*tokens)),
        VideoExpansion::WithAudio { merged_grid, second_per_grid, position_id_per_seconds, audio_tokens } => {
            let per_grid = merged_grid[1] * merged_grid[2];
            let n_video = merged_grid[0] * per_grid;
            let audio_pad = tok.audio_pad.as_deref().unwrap_or_default();
            out.push_str(tok.audio_start.as_deref().unwrap_or_default());
            let (mut v_i, mut a_i) = (0usize, 0usize);
            // Same arithmetic as the processor: numpy float64 of (grid index · spg · pps).
            let time = |i: usize| (i / per_grid) as f64 * *second_per_grid * *position_id_per_seconds;
            while v_i < n_video && a_i < *audio_tokens {
                if time(v_i) <= a_i as f64 {
                    out.push_str(&tok.video_pad);
                    v_i += 1;
                } else {
                    out.push_str(audio_pad);
                    a_i += 1;
                }
            }
            out.push_str(&tok.video_pad.repeat(n_video - v_i));
            out.push_str(&audio_pad.repeat(audio_tokens - a_i));
            out.push_str(tok.audio_end.as_deref().unwrap_or_default());
        }
        VideoExpansion::Timestamped { tokens_per_group, timestamps } => {
            for t in timestamps {
                out.push_str(&format!("<{t:.1} seconds>"));
                out.push_str(&tok.vision_start);
                out.push_str(&tok.video_pad.repeat(*tokens_per_group));
                out.push_str(&tok.vision_end);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks() -> PlaceholderTokens {
        PlaceholderTokens {
            image_pad: "<I>".into(),
            video_pad: "<V>".into(),
            vision_start: "<vs>".into(),
            vision_end: "<ve>".into(),
            audio_pad: Some("<A>".into()),
            audio_start: Some("<as>".into()),
            audio_end: Some("<ae>".into()),
        }
    }

    #[test]
    fn expands_in_order_of_appearance() {
        let s = expand("x<vs><I><ve><as><A><ae><vs><I><ve>y", &toks(), &[2, 1], &[], &[3]).unwrap();
        assert_eq!(s, "x<vs><I><I><ve><as><A><A><A><ae><vs><I><ve>y");
    }

    #[test]
    fn audio_in_video_interleaves_like_the_spec_example() {
        // 3 grids of 2×2 merged tokens, 31 audio tokens, spg 1, 13/s: VVVV A×13 VVVV A×13 VVVV A×5.
        let v = VideoExpansion::WithAudio {
            merged_grid: [3, 2, 2],
            second_per_grid: 1.0,
            position_id_per_seconds: 13.0,
            audio_tokens: 31,
        };
        let s = expand("<vs><V><ve>", &toks(), &[], &[v], &[]).unwrap();
        let want = format!(
            "<vs><as>{}{}{}{}{}{}<ae><ve>",
            "<V>".repeat(4),
            "<A>".repeat(13),
            "<V>".repeat(4),
            "<A>".repeat(13),
            "<V>".repeat(4),
            "<A>".repeat(5)
        );
        assert_eq!(s, want);
    }

    #[test]
    fn qwen3_vl_timestamps() {
        // Python formats f"{t:.1f}" with round-half-even on the binary value: 0.25 → 0.2, 1.25 → 1.2.
        let v = VideoExpansion::Timestamped { tokens_per_group: 2, timestamps: vec![0.25, 1.25, 2.0] };
        let s = expand("<vs><V><ve>", &toks(), &[], &[v], &[]).unwrap();
        // The template's wrapper around the placeholder is replaced by the per-group layout.
        assert_eq!(s, "<0.2 seconds><vs><V><V><ve><1.2 seconds><vs><V><V><ve><2.0 seconds><vs><V><V><ve>");
    }

    #[test]
    fn count_mismatch_names_the_modality() {
        let e = expand("<I><I>", &toks(), &[4], &[], &[]).unwrap_err();
        assert_eq!(e, ExpandError { what: "image", found: 2, given: 1 });
    }
}
