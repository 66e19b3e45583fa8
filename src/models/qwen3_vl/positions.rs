//! Qwen3-VL 3-D position ids (spec §3.4): port of transformers 5.23
//! `Qwen3VLModel.get_rope_index`. Runs of image/video placeholder tokens are vision
//! segments; each gets `(s, s+r, s+c)` over its merged grid and advances the position by
//! `max(h', w')`. Video time is carried by timestamp text, not by the T axis, so every
//! video is split into one segment per temporal grid.

use crate::models::layers::rotary::Positions3d;

/// Positions of a Qwen3-VL prompt and its `rope_delta`.
pub fn rope_index(
    ids: &[u32],
    image_token: u32,
    video_token: u32,
    image_grids: &[[usize; 3]],
    video_grids: &[[usize; 3]],
    merge: usize,
) -> Result<(Positions3d, f32), String> {
    if image_grids.is_empty() && video_grids.is_empty() {
        return Ok((Positions3d::sequential(0.0, ids.len()), 0.0));
    }
    let kind = |t: u32| {
        if t == image_token {
            1
        } else if t == video_token {
            2
        } else {
            0
        }
    };
    let mut images = image_grids.iter();
    // Each temporal grid of a video is its own segment (grid_t = 1).
    let mut frames = video_grids.iter().flat_map(|g| std::iter::repeat_n([1, g[1], g[2]], g[0]));
    let mut pos = Positions3d::default();
    let mut current = 0usize;
    let mut i = 0;
    while i < ids.len() {
        let k = kind(ids[i]);
        let mut end = i;
        while end < ids.len() && kind(ids[end]) == k {
            end += 1;
        }
        if k == 0 {
            for j in 0..end - i {
                pos.push_text((current + j) as f32);
            }
            current += end - i;
        } else {
            let grid = if k == 1 { images.next().copied() } else { frames.next() }.ok_or_else(|| {
                format!("more {} placeholder runs than inputs", if k == 1 { "image" } else { "video frame-group" })
            })?;
            let (gh, gw) = (grid[1] / merge, grid[2] / merge);
            if gh * gw != end - i {
                return Err(format!(
                    "a vision run of {} tokens does not match its grid {grid:?} ({} tokens)",
                    end - i,
                    gh * gw
                ));
            }
            for r in 0..gh {
                for c in 0..gw {
                    pos.push(current as f32, (current + r) as f32, (current + c) as f32);
                }
            }
            current += gh.max(gw);
        }
        i = end;
    }
    let delta = pos.max() + 1.0 - ids.len() as f32;
    Ok((pos, delta))
}
