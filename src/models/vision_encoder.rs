//! The vision tower shared by Qwen3-Omni and Qwen3-VL (SigLIP2-style ViT, spec §5): patch
//! embedding, a learned position table resampled to each image's grid, axial 2-D rotary,
//! full attention inside each temporal frame group, and the 2×2 patch mergers — the final
//! one (norm *before* the shuffle) and the DeepStack ones (norm *after*).
//!
//! Reference: transformers 5.23 `Qwen3OmniMoeVisionEncoder` / `Qwen3VLVisionModel` and
//! `vision_utils.py` (`get_vision_interpolation_indices_and_weights`, `get_vision_position_ids`).

use crate::models::weights::Weights;
use candle_core::{DType, Module, Result, Tensor};

use super::config::VisionConfig;
use super::layers::activation::Activation;
use super::layers::attention::segment_attention;
use super::layers::linear::Linear;
use super::layers::norm::LayerNorm;
use super::layers::rotary::{apply_rotary, vision_cos_sin};

/// The two checkpoint spellings of the merger modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergerNaming {
    /// Qwen3-Omni: `merger.{ln_q, mlp.0, mlp.2}`, `merger_list.{j}`.
    Omni,
    /// Qwen3-VL: `merger.{norm, linear_fc1, linear_fc2}`, `deepstack_merger_list.{j}`.
    Vl,
}

/// 2×2 patch merger: LayerNorm (before or after the shuffle) → Linear → GELU → Linear.
#[derive(Debug, Clone)]
struct PatchMerger {
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    merged: usize,
    postshuffle_norm: bool,
}

impl PatchMerger {
    fn new(cfg: &VisionConfig, postshuffle_norm: bool, naming: MergerNaming, vb: Weights) -> Result<Self> {
        let merged = cfg.hidden_size * cfg.spatial_merge_size * cfg.spatial_merge_size;
        let norm_size = if postshuffle_norm { merged } else { cfg.hidden_size };
        let (norm_vb, fc1_vb, fc2_vb) = match naming {
            MergerNaming::Omni => (vb.pp("ln_q"), vb.pp("mlp").pp(0), vb.pp("mlp").pp(2)),
            MergerNaming::Vl => (vb.pp("norm"), vb.pp("linear_fc1"), vb.pp("linear_fc2")),
        };
        Ok(Self {
            norm: LayerNorm::new(norm_size, 1e-6, norm_vb)?,
            fc1: Linear::new(merged, merged, true, fc1_vb)?,
            fc2: Linear::new(merged, cfg.out_hidden_size, true, fc2_vb)?,
            merged,
            postshuffle_norm,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let n = xs.dim(0)? * xs.dim(1)? / self.merged;
        let xs = if self.postshuffle_norm {
            self.norm.forward(&xs.reshape((n, self.merged))?)?
        } else {
            self.norm.forward(xs)?.reshape((n, self.merged))?
        };
        // nn.GELU() in the reference: exact erf.
        self.fc2.forward(&self.fc1.forward(&xs)?.gelu_erf()?)
    }
}

#[derive(Debug, Clone)]
struct VisionBlock {
    norm1: LayerNorm,
    norm2: LayerNorm,
    qkv: Linear,
    proj: Linear,
    fc1: Linear,
    fc2: Linear,
}

/// Output of the vision tower for a batch of images or videos.
#[derive(Debug, Clone)]
pub struct VisionOutput {
    /// Merged visual tokens `[tokens, out_hidden]`, one row per placeholder token.
    pub embeds: Tensor,
    /// DeepStack features, in block order, each `[tokens, out_hidden]`.
    pub deepstack: Vec<Tensor>,
}

/// The vision tower.
#[derive(Debug, Clone)]
pub struct VisionEncoder {
    patch_embed_w: Tensor,
    patch_embed_b: Tensor,
    pos_embed: Tensor,
    blocks: Vec<VisionBlock>,
    merger: PatchMerger,
    deepstack_mergers: Vec<PatchMerger>,
    cfg: VisionConfig,
    act: Activation,
    rope_theta: f64,
}

impl VisionEncoder {
    /// `vb` points at `thinker.visual` (Omni) or `model.visual` (VL).
    pub fn new(cfg: &VisionConfig, naming: MergerNaming, vb: Weights) -> Result<Self> {
        let d = cfg.hidden_size;
        let patch_len = cfg.in_channels * cfg.temporal_patch_size * cfg.patch_size * cfg.patch_size;
        let pe = vb.pp("patch_embed").pp("proj");
        let patch_embed_w = pe
            .get((d, cfg.in_channels, cfg.temporal_patch_size, cfg.patch_size, cfg.patch_size), "weight")?
            .reshape((d, patch_len))?;
        let patch_embed_b = pe.get(d, "bias")?;
        let pos_embed = vb.pp("pos_embed").get((cfg.num_position_embeddings, d), "weight")?;
        let mut blocks = Vec::with_capacity(cfg.depth);
        for i in 0..cfg.depth {
            let b = vb.pp("blocks").pp(i);
            blocks.push(VisionBlock {
                norm1: LayerNorm::new(d, 1e-6, b.pp("norm1"))?,
                norm2: LayerNorm::new(d, 1e-6, b.pp("norm2"))?,
                qkv: Linear::new(d, 3 * d, true, b.pp("attn").pp("qkv"))?,
                proj: Linear::new(d, d, true, b.pp("attn").pp("proj"))?,
                fc1: Linear::new(d, cfg.intermediate_size, true, b.pp("mlp").pp("linear_fc1"))?,
                fc2: Linear::new(cfg.intermediate_size, d, true, b.pp("mlp").pp("linear_fc2"))?,
            });
        }
        let list_name = match naming {
            MergerNaming::Omni => "merger_list",
            MergerNaming::Vl => "deepstack_merger_list",
        };
        let deepstack_mergers = (0..cfg.deepstack_visual_indexes.len())
            .map(|j| PatchMerger::new(cfg, true, naming, vb.pp(list_name).pp(j)))
            .collect::<Result<Vec<_>>>()?;
        let rope_theta = cfg.rope_theta().map_err(candle_core::Error::msg)?;
        Ok(Self {
            patch_embed_w,
            patch_embed_b,
            pos_embed,
            blocks,
            merger: PatchMerger::new(cfg, false, naming, vb.pp("merger"))?,
            deepstack_mergers,
            act: cfg.hidden_act,
            cfg: cfg.clone(),
            rope_theta,
        })
    }

    /// Encodes `pixel_values: [patches, C·T·P·P]` (rows in merge-block order, as the
    /// processor emits them) for the `grids` (`[t, h, w]` in patches) they concatenate.
    pub fn forward(&self, pixel_values: &Tensor, grids: &[[usize; 3]]) -> Result<VisionOutput> {
        let m = self.cfg.spatial_merge_size;
        let n_patches: usize = grids.iter().map(|g| g[0] * g[1] * g[2]).sum();
        if pixel_values.dim(0)? != n_patches {
            candle_core::bail!(
                "vision input has {} patch rows, the grids {grids:?} need {n_patches}",
                pixel_values.dim(0)?
            )
        }
        if let Some(g) = grids.iter().find(|g| g[1] % m != 0 || g[2] % m != 0 || g[0] == 0) {
            candle_core::bail!("vision grid {g:?} is not divisible by the merge size {m}")
        }
        let dtype = self.patch_embed_w.dtype();
        let dev = self.patch_embed_w.device().clone();
        let xs = pixel_values.to_dtype(dtype)?.matmul(&self.patch_embed_w.t()?)?.broadcast_add(&self.patch_embed_b)?;

        // Learned positions, bilinearly resampled (align_corners) per patch, in f32.
        let (rows_cols, taps, weights) = self.patch_layout(grids);
        let idx = Tensor::new(taps.as_slice(), &dev)?;
        let gathered = self.pos_embed.to_dtype(DType::F32)?.index_select(&idx, 0)?.reshape((
            n_patches,
            4,
            self.cfg.hidden_size,
        ))?;
        let w = Tensor::from_vec(weights, (n_patches, 4, 1), &dev)?;
        let pos = gathered.broadcast_mul(&w)?.sum(1)?.to_dtype(dtype)?;
        let mut xs = (xs + pos)?;

        let heads = self.cfg.num_heads;
        let hd = self.cfg.hidden_size / heads;
        let (cos, sin) = vision_cos_sin(&rows_cols, hd, self.rope_theta, &dev)?;
        let segments: Vec<usize> = grids.iter().flat_map(|g| std::iter::repeat_n(g[1] * g[2], g[0])).collect();
        let scale = (hd as f64).powf(-0.5);

        let mut deepstack = Vec::new();
        for (i, blk) in self.blocks.iter().enumerate() {
            let _span = tracing::trace_span!("vision.block", i).entered();
            let h = blk.norm1.forward(&xs)?;
            let qkv = blk.qkv.forward(&h)?.reshape((n_patches, 3, heads, hd))?;
            // The reference applies the vision rotary in f32 and casts back.
            let rot = |t: Tensor| -> Result<Tensor> {
                let t = t.to_dtype(DType::F32)?.transpose(0, 1)?.unsqueeze(0)?; // 1, heads, N, hd
                apply_rotary(&t, &cos, &sin)?.squeeze(0)?.transpose(0, 1)?.to_dtype(dtype)
            };
            let q = rot(qkv.narrow(1, 0, 1)?.squeeze(1)?)?;
            let k = rot(qkv.narrow(1, 1, 1)?.squeeze(1)?)?;
            let v = qkv.narrow(1, 2, 1)?.squeeze(1)?;
            let attn = segment_attention(&q, &k, &v, &segments, scale)?;
            xs = (&xs + blk.proj.forward(&attn)?)?;
            let h = blk.norm2.forward(&xs)?;
            xs = (&xs + blk.fc2.forward(&self.act.apply(&blk.fc1.forward(&h)?)?)?)?;
            if let Some(j) = self.cfg.deepstack_visual_indexes.iter().position(|&l| l == i) {
                deepstack.push(self.deepstack_mergers[j].forward(&xs)?);
            }
        }
        Ok(VisionOutput { embeds: self.merger.forward(&xs)?, deepstack })
    }

    /// Per patch (merge-block order, repeated over t): its (row, col) in the patch grid,
    /// the 4 bilinear taps into the position table and their weights — the f32 arithmetic
    /// of transformers' `_interpolation_axis_taps_weights` with `align_corners=True`.
    fn patch_layout(&self, grids: &[[usize; 3]]) -> (Vec<(u32, u32)>, Vec<u32>, Vec<f32>) {
        let m = self.cfg.spatial_merge_size;
        let side = (self.cfg.num_position_embeddings as f64).sqrt().round() as usize;
        let axis = |index: usize, size: usize| -> ([usize; 2], [f32; 2]) {
            let src = (index as f32 * (side - 1) as f32) / (size.max(2) - 1) as f32;
            let floor = src.floor();
            let base = floor as usize;
            let frac = src - floor;
            let taps = [base.min(side - 1), (base + 1).min(side - 1)];
            let w = [(1.0 - frac).max(0.0), (1.0 - (frac - 1.0).abs()).max(0.0)];
            (taps, w)
        };
        let mut rows_cols = Vec::new();
        let mut taps = Vec::new();
        let mut weights = Vec::new();
        for &[t, h, w] in grids {
            let mut frame = Vec::with_capacity(h * w);
            for br in 0..h / m {
                for bc in 0..w / m {
                    for ir in 0..m {
                        for ic in 0..m {
                            frame.push((br * m + ir, bc * m + ic));
                        }
                    }
                }
            }
            for _ in 0..t {
                for &(r, c) in &frame {
                    rows_cols.push((r as u32, c as u32));
                    let (ht, hw) = axis(r, h);
                    let (wt, ww) = axis(c, w);
                    for a in 0..2 {
                        for b in 0..2 {
                            taps.push((ht[a] * side + wt[b]) as u32);
                            weights.push(hw[a] * ww[b]);
                        }
                    }
                }
            }
        }
        (rows_cols, taps, weights)
    }
}
