//! What the thinker/VL models take in and hand to the decoder: token ids with placeholder
//! runs, the encoder inputs that fill them, and the merged prompt (embeddings with media
//! features scattered in, 3-D positions, DeepStack features).

use candle_core::{Result, Tensor};

use super::layers::rotary::Positions3d;
use super::text_decoder::DeepStack;
use super::vision_encoder::{VisionEncoder, VisionOutput};

/// One image or video, patchified by the processor.
#[derive(Debug, Clone)]
pub struct VisualInput {
    /// `[patches, C·T·P·P]`, rows in merge-block order.
    pub pixel_values: Tensor,
    /// `[t, h, w]` in patches.
    pub grid_thw: [usize; 3],
}

/// A video with its timing (Omni needs seconds per temporal grid for TMRoPE).
#[derive(Debug, Clone)]
pub struct VideoInput {
    pub visual: VisualInput,
    /// `temporal_patch_size / sampling fps`.
    pub second_per_grid: f32,
}

/// Everything one prompt feeds the model.
#[derive(Debug, Clone, Default)]
pub struct MultimodalInputs {
    /// Prompt token ids after placeholder expansion.
    pub ids: Vec<u32>,
    /// Log-mel features `[mel, frames]` of each audio in prompt order (audio-in-video tracks
    /// included where they appear).
    pub audios: Vec<Tensor>,
    pub images: Vec<VisualInput>,
    pub videos: Vec<VideoInput>,
    /// Videos carry their audio track interleaved with the frames (Omni).
    pub use_audio_in_video: bool,
}

/// The merged prompt, ready for the decoder.
#[derive(Debug, Clone)]
pub struct PreparedPrompt {
    /// `[1, S, hidden]`.
    pub embeds: Tensor,
    pub positions: Positions3d,
    /// Decoding continues at `cache_len + rope_delta` on all axes.
    pub rope_delta: f32,
    pub deepstack: Option<DeepStack>,
}

impl PreparedPrompt {
    /// Prompt rows `start..start + len` for a prefill in chunks: their embeddings `[1, len, H]`,
    /// positions, and the DeepStack rows that fall inside (renumbered from the chunk's start).
    pub fn chunk(&self, start: usize, len: usize) -> Result<(Tensor, Positions3d, Option<DeepStack>)> {
        let end = start + len;
        if len == 0 || end > self.positions.len() {
            candle_core::bail!("prompt chunk {start}..{end} of a {}-token prompt", self.positions.len())
        }
        let embeds = self.embeds.narrow(1, start, len)?;
        let pos = Positions3d {
            t: self.positions.t[start..end].to_vec(),
            h: self.positions.h[start..end].to_vec(),
            w: self.positions.w[start..end].to_vec(),
        };
        let deepstack = match &self.deepstack {
            None => None,
            Some(d) => {
                // `rows` ascend, so the rows inside the chunk are one run of them.
                let lo = d.rows.partition_point(|&r| (r as usize) < start);
                let hi = d.rows.partition_point(|&r| (r as usize) < end);
                let rows: Vec<u32> = d.rows[lo..hi].iter().map(|&r| r - start as u32).collect();
                let features = d.features.iter().map(|f| f.narrow(0, lo, hi - lo)).collect::<Result<Vec<_>>>()?;
                Some(DeepStack { rows, features })
            }
        };
        Ok((embeds, pos, deepstack))
    }
}

/// Rows of `ids` equal to `token`, ascending.
pub fn rows_of(ids: &[u32], token: u32) -> Vec<u32> {
    ids.iter().enumerate().filter(|(_, &t)| t == token).map(|(i, _)| i as u32).collect()
}

/// Replaces rows `rows` of `embeds: [S, H]` with `features: [rows.len(), H]`
/// (transformers' `masked_scatter` with a placeholder mask). Errors name the mismatch.
pub fn scatter_rows(embeds: &Tensor, rows: &[u32], features: &Tensor, what: &str) -> Result<Tensor> {
    let n = features.dim(0)?;
    if n != rows.len() {
        candle_core::bail!(
            "{what}: the prompt has {} placeholder tokens but the encoder produced {n} features",
            rows.len()
        )
    }
    if n == 0 {
        return Ok(embeds.clone());
    }
    // Gather from [embeds; features]: placeholder row i takes feature k, others stay.
    let s = embeds.dim(0)?;
    let mut map: Vec<u32> = (0..s as u32).collect();
    for (k, &r) in rows.iter().enumerate() {
        map[r as usize] = (s + k) as u32;
    }
    let all = Tensor::cat(&[embeds, &features.to_dtype(embeds.dtype())?], 0)?;
    all.index_select(&Tensor::new(map.as_slice(), embeds.device())?, 0)
}

/// Builds the DeepStack injection: visual rows in sequence order, image rows taking the
/// image features and video rows the video features, in order (spec §5.7).
pub fn joint_deepstack(
    ids: &[u32],
    image_token: u32,
    video_token: u32,
    image_feats: &[Tensor],
    video_feats: &[Tensor],
) -> Result<Option<DeepStack>> {
    let rows: Vec<u32> =
        ids.iter().enumerate().filter(|(_, &t)| t == image_token || t == video_token).map(|(i, _)| i as u32).collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let layers = image_feats.len().max(video_feats.len());
    let mut features = Vec::with_capacity(layers);
    // Index into cat([image rows, video rows]) for each visual position.
    let n_img = ids.iter().filter(|&&t| t == image_token).count();
    let (mut ii, mut vi) = (0u32, 0u32);
    let order: Vec<u32> = rows
        .iter()
        .map(|&r| {
            if ids[r as usize] == image_token {
                ii += 1;
                ii - 1
            } else {
                vi += 1;
                n_img as u32 + vi - 1
            }
        })
        .collect();
    for l in 0..layers {
        let parts: Vec<&Tensor> = [image_feats.get(l), video_feats.get(l)].into_iter().flatten().collect();
        let all = Tensor::cat(&parts, 0)?;
        let idx = Tensor::new(order.as_slice(), all.device())?;
        features.push(all.index_select(&idx, 0)?);
    }
    Ok(Some(DeepStack { rows, features }))
}

/// Runs the vision tower over a list of images or videos in one call.
pub fn encode_visual(vision: &VisionEncoder, items: &[&VisualInput]) -> Result<Option<VisionOutput>> {
    if items.is_empty() {
        return Ok(None);
    }
    let pixels: Vec<&Tensor> = items.iter().map(|v| &v.pixel_values).collect();
    let grids: Vec<[usize; 3]> = items.iter().map(|v| v.grid_thw).collect();
    Ok(Some(vision.forward(&Tensor::cat(&pixels, 0)?, &grids)?))
}

/// Encodes the images and the videos of a prompt (one tower call each, as the reference
/// does), scatters their tokens into the placeholder rows of `embeds: [S, H]`, and builds the
/// DeepStack injection.
pub fn merge_visual(
    vision: &VisionEncoder,
    inp: &MultimodalInputs,
    embeds: Tensor,
    image_token: u32,
    video_token: u32,
) -> Result<(Tensor, Option<DeepStack>)> {
    let images: Vec<&VisualInput> = inp.images.iter().collect();
    let videos: Vec<&VisualInput> = inp.videos.iter().map(|v| &v.visual).collect();
    let img = encode_visual(vision, &images)?;
    let vid = encode_visual(vision, &videos)?;
    let mut embeds = embeds;
    for (out, token, what) in [(&img, image_token, "image"), (&vid, video_token, "video")] {
        let rows = rows_of(&inp.ids, token);
        match out {
            Some(o) => embeds = scatter_rows(&embeds, &rows, &o.embeds, what)?,
            None if !rows.is_empty() => {
                candle_core::bail!("the prompt has {} {what} placeholder tokens but no {what} was given", rows.len())
            }
            None => {}
        }
    }
    let deepstack = joint_deepstack(
        &inp.ids,
        image_token,
        video_token,
        img.as_ref().map_or(&[][..], |o| &o.deepstack),
        vid.as_ref().map_or(&[][..], |o| &o.deepstack),
    )?;
    Ok((embeds, deepstack))
}
