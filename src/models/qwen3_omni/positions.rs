//! Qwen3-Omni 3-D position ids ("TMRoPE", spec §3.3): a port of transformers 5.23
//! `Qwen3OmniMoePreTrainedModelForConditionalGeneration.get_rope_index`, including its
//! quirks — the next segment starts at `max(last appended chunk) + 1` (not the global max),
//! and a prompt with neither images nor videos gets plain sequential positions.

use crate::models::layers::rotary::Positions3d;

/// Token ids the walk recognises (from `thinker_config`).
#[derive(Debug, Clone)]
pub struct OmniPositionIds {
    pub image_token_id: u32,
    pub video_token_id: u32,
    pub audio_token_id: u32,
    pub vision_start_token_id: u32,
    pub audio_start_token_id: u32,
    pub position_id_per_seconds: f32,
    pub spatial_merge_size: usize,
}

/// The media of one prompt, in prompt order within each kind.
#[derive(Debug, Clone, Default)]
pub struct OmniMediaLayout {
    /// `[t, h, w]` patch grids of the images.
    pub image_grids: Vec<[usize; 3]>,
    /// `[t, h, w]` patch grids of the videos.
    pub video_grids: Vec<[usize; 3]>,
    /// Seconds per temporal grid of each video (`temporal_patch_size / sampling fps`).
    pub video_second_per_grid: Vec<f32>,
    /// Audio tokens of each audio (audio-in-video tracks included, in prompt order).
    pub audio_tokens: Vec<usize>,
    /// Videos carry their audio track interleaved (`use_audio_in_video`).
    pub use_audio_in_video: bool,
}

/// Positions of every prompt token and `rope_delta` (`max + 1 − len`; decoding continues
/// at `cache_len + rope_delta` on all three axes).
pub fn rope_index(ids: &[u32], media: &OmniMediaLayout, cfg: &OmniPositionIds) -> Result<(Positions3d, f32), String> {
    if media.image_grids.is_empty() && media.video_grids.is_empty() {
        return Ok((Positions3d::sequential(0.0, ids.len()), 0.0));
    }
    let count = |id: u32| ids.iter().filter(|&&t| t == id).count();
    let vision_next: Vec<u32> = ids.windows(2).filter(|w| w[0] == cfg.vision_start_token_id).map(|w| w[1]).collect();
    let image_nums = vision_next.iter().filter(|&&t| t == cfg.image_token_id).count();
    let video_nums = if media.use_audio_in_video {
        vision_next.iter().filter(|&&t| t == cfg.audio_start_token_id).count()
    } else {
        vision_next.iter().filter(|&&t| t == cfg.video_token_id).count()
    };
    let audio_nums = count(cfg.audio_start_token_id);
    let multimodal =
        if media.use_audio_in_video { image_nums + audio_nums } else { image_nums + video_nums + audio_nums };
    let has_vision_pad = ids.contains(&cfg.image_token_id) || ids.contains(&cfg.video_token_id);
    let has_audio_pad = ids.contains(&cfg.audio_token_id);
    let m = cfg.spatial_merge_size;
    let find = |id: u32, from: usize| ids[from.min(ids.len())..].iter().position(|&t| t == id).map(|p| p + from);

    let mut pos = Positions3d::default();
    // Max coordinate of the last chunk appended (the reference's `llm_pos_ids_list[-1].max()`).
    let mut last_max: Option<f32> = None;
    let push_seq = |pos: &mut Positions3d, start: f32, len: usize, last_max: &mut Option<f32>| {
        for j in 0..len {
            pos.push_text(start + j as f32);
        }
        if len > 0 {
            *last_max = Some(start + (len - 1) as f32);
        }
    };
    // Temporal index k of a grid sits at `(k · spg) · position_id_per_seconds`, multiplied in
    // that order in f32 like the reference (spg = 0 for images).
    let vision_positions = |start: f32, grid: [usize; 3], spg: f32| -> Vec<[f32; 3]> {
        let (gh, gw) = (grid[1] / m, grid[2] / m);
        let mut v = Vec::with_capacity(grid[0] * gh * gw);
        for t in 0..grid[0] {
            let tt = t as f32 * spg * cfg.position_id_per_seconds;
            for r in 0..gh {
                for c in 0..gw {
                    v.push([start + tt, start + r as f32, start + c as f32]);
                }
            }
        }
        v
    };
    let (mut remain_images, mut remain_videos, mut remain_audios) = (image_nums, video_nums, audio_nums);
    let (mut image_idx, mut video_idx, mut audio_idx) = (0usize, 0usize, 0usize);
    let mut st = 0usize;
    let audio_len =
        |i: usize| -> Result<usize, String> {
            media.audio_tokens.get(i).copied().ok_or_else(|| {
                format!("prompt has more audio segments than audio inputs ({})", media.audio_tokens.len())
            })
        };
    for _ in 0..multimodal {
        let mut st_idx = last_max.map_or(0.0, |m| m + 1.0);
        let ed_vision = if has_vision_pad && (remain_videos > 0 || remain_images > 0) {
            find(cfg.vision_start_token_id, st).ok_or("vision start token missing")?
        } else {
            ids.len() + 1
        };
        let ed_audio = if has_audio_pad && remain_audios > 0 {
            find(cfg.audio_start_token_id, st).ok_or("audio start token missing")?
        } else {
            ids.len() + 1
        };
        let min_ed = ed_vision.min(ed_audio);
        if min_ed > ids.len() {
            return Err("placeholder tokens do not match the media given".into());
        }
        let text_len = min_ed - st;
        if text_len != 0 {
            push_seq(&mut pos, st_idx, text_len, &mut last_max);
            st_idx += text_len as f32;
        }
        let audio_in_video = min_ed == ed_vision && ed_vision + 1 == ed_audio;
        let (bos_len, eos_len) = if audio_in_video { (2, 2) } else { (1, 1) };
        push_seq(&mut pos, st_idx, bos_len, &mut last_max);
        st_idx += bos_len as f32;
        let next = ids.get(ed_vision + 1).copied();
        if min_ed == ed_audio {
            let n = audio_len(audio_idx)?;
            push_seq(&mut pos, st_idx, n, &mut last_max);
            st += text_len + bos_len + n + eos_len;
            audio_idx += 1;
            remain_audios = remain_audios.saturating_sub(1);
        } else if next == Some(cfg.image_token_id) {
            let grid = *media.image_grids.get(image_idx).ok_or("more image placeholders than images")?;
            let v = vision_positions(st_idx, grid, 0.0);
            for p in &v {
                pos.push(p[0], p[1], p[2]);
            }
            last_max = v.iter().flat_map(|p| p.iter().copied()).reduce(f32::max).or(last_max);
            st += text_len + bos_len + v.len() + eos_len;
            image_idx += 1;
            remain_images = remain_images.saturating_sub(1);
        } else if next == Some(cfg.video_token_id) {
            let grid = *media.video_grids.get(video_idx).ok_or("more video placeholders than videos")?;
            let spg = *media.video_second_per_grid.get(video_idx).ok_or("video without seconds-per-grid")?;
            let v = vision_positions(st_idx, grid, spg);
            for p in &v {
                pos.push(p[0], p[1], p[2]);
            }
            last_max = v.iter().flat_map(|p| p.iter().copied()).reduce(f32::max).or(last_max);
            st += text_len + bos_len + v.len() + eos_len;
            video_idx += 1;
            remain_videos = remain_videos.saturating_sub(1);
        } else if audio_in_video {
            let n = audio_len(audio_idx)?;
            let grid = *media.video_grids.get(video_idx).ok_or("more video placeholders than videos")?;
            let spg = *media.video_second_per_grid.get(video_idx).ok_or("video without seconds-per-grid")?;
            let v = vision_positions(st_idx, grid, spg);
            let a: Vec<f32> = (0..n).map(|j| st_idx + j as f32).collect();
            let (mut vi, mut ai) = (0, 0);
            while vi < v.len() && ai < a.len() {
                if v[vi][0] <= a[ai] {
                    pos.push(v[vi][0], v[vi][1], v[vi][2]);
                    last_max = Some(v[vi][0].max(v[vi][1]).max(v[vi][2]));
                    vi += 1;
                } else {
                    pos.push_text(a[ai]);
                    last_max = Some(a[ai]);
                    ai += 1;
                }
            }
            if vi < v.len() {
                for p in &v[vi..] {
                    pos.push(p[0], p[1], p[2]);
                }
                last_max = v[vi..].iter().flat_map(|p| p.iter().copied()).reduce(f32::max);
            }
            if ai < a.len() {
                for &p in &a[ai..] {
                    pos.push_text(p);
                }
                last_max = a.last().copied();
            }
            st += text_len + bos_len + n + v.len() + eos_len;
            audio_idx += 1;
            video_idx += 1;
            remain_videos = remain_videos.saturating_sub(1);
            remain_audios = remain_audios.saturating_sub(1);
        } else {
            return Err(format!(
                "vision start token at {ed_vision} is not followed by an image, video or audio placeholder"
            ));
        }
        let st_idx = last_max.map_or(0.0, |m| m + 1.0);
        push_seq(&mut pos, st_idx, eos_len, &mut last_max);
    }
    if st < ids.len() {
        let st_idx = last_max.map_or(0.0, |m| m + 1.0);
        push_seq(&mut pos, st_idx, ids.len() - st, &mut last_max);
    }
    if pos.len() != ids.len() {
        return Err(format!(
            "position walk produced {} positions for {} tokens (placeholders and media disagree)",
            pos.len(),
            ids.len()
        ));
    }
    let delta = pos.max() + 1.0 - ids.len() as f32;
    Ok((pos, delta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OmniPositionIds {
        OmniPositionIds {
            image_token_id: 503,
            video_token_id: 504,
            audio_token_id: 502,
            vision_start_token_id: 505,
            audio_start_token_id: 507,
            position_id_per_seconds: 13.0,
            spatial_merge_size: 2,
        }
    }

    #[test]
    fn audio_in_video_matches_spec_example() {
        // Spec §3.3: `<|im_start|>user\n<|vision_start|><|audio_start|>` + 12 video tokens
        // (3 grids of 2×2) interleaved with 31 audio tokens, spg 1.
        let mut ids = vec![500, 11, 13, 505, 507];
        // VVVV A×13 VVVV A×13 VVVV A×5
        for (v, a) in [(4, 13), (4, 13), (4, 5)] {
            ids.extend(std::iter::repeat_n(504, v));
            ids.extend(std::iter::repeat_n(502, a));
        }
        ids.extend([508, 506, 501]);
        let media = OmniMediaLayout {
            video_grids: vec![[3, 4, 4]],
            video_second_per_grid: vec![1.0],
            audio_tokens: vec![31],
            use_audio_in_video: true,
            ..Default::default()
        };
        let (p, _) = rope_index(&ids, &media, &cfg()).unwrap();
        assert_eq!(&p.t[..5], &[0., 1., 2., 3., 4.]);
        // first video grid (5,5,5),(5,5,6),(5,6,5),(5,6,6)
        assert_eq!((p.t[5], p.h[5], p.w[5]), (5., 5., 5.));
        assert_eq!((p.t[8], p.h[8], p.w[8]), (5., 6., 6.));
        // then audio 5, 6, …
        assert_eq!((p.t[9], p.h[9], p.w[9]), (5., 5., 5.));
        assert_eq!(p.t[10], 6.);
        // second grid at t = 5 + 13
        assert_eq!(p.t[9 + 13], 18.);
    }

    #[test]
    fn image_then_text() {
        // text(3) <vs> 6 image tokens (grid 1×4×6 → 2×3 merged) <ve> text(2)
        let ids = vec![500, 11, 13, 505, 503, 503, 503, 503, 503, 503, 506, 40, 41];
        let media = OmniMediaLayout { image_grids: vec![[1, 4, 6]], ..Default::default() };
        let (p, delta) = rope_index(&ids, &media, &cfg()).unwrap();
        assert_eq!(&p.t[..4], &[0., 1., 2., 3.]);
        assert_eq!(&p.t[4..10], &[4.; 6]);
        assert_eq!(&p.h[4..10], &[4., 4., 4., 5., 5., 5.]);
        assert_eq!(&p.w[4..10], &[4., 5., 6., 4., 5., 6.]);
        assert_eq!(p.t[10], 7.); // max(4..6) + 1
        assert_eq!(&p.t[11..], &[8., 9.]);
        assert_eq!(delta, 10.0 - 13.0);
    }
}
