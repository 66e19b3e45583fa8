//! Pages larger than the model's pixel budget are read in tiles: the budget would otherwise
//! shrink a large scan until its text is a few pixels high. Tiles overlap so that a line cut by
//! one tile's border is whole in its neighbour; the same line read twice is merged afterwards.

use super::geometry::{PixelBox, Region};

/// Overlap of neighbouring tiles, pixels: a few lines of body text at 300 dpi.
pub const TILE_OVERLAP_PX: f64 = 96.0;

/// The tiles of a `width` × `height` page, each at most `max_pixels`, row by row; the whole page
/// when it fits.
pub fn plan_tiles(width: u32, height: u32, max_pixels: u64) -> Vec<Region> {
    let (w, h) = (width as f64, height as f64);
    let budget = max_pixels as f64;
    if w * h <= budget || budget <= 0.0 {
        return vec![Region::page(width, height)];
    }
    let (mut cols, mut rows) = (1usize, 1usize);
    let side = |n: usize, len: f64| if n == 1 { len } else { (len + (n - 1) as f64 * TILE_OVERLAP_PX) / n as f64 };
    // Split the longer tile side until a tile fits (the overlap makes tiles a little larger
    // than an even split; a tile never shrinks below twice the overlap).
    while side(cols, w) * side(rows, h) > budget {
        let (tw, th) = (side(cols, w), side(rows, h));
        if tw >= th && tw > 2.0 * TILE_OVERLAP_PX {
            cols += 1;
        } else if th > 2.0 * TILE_OVERLAP_PX {
            rows += 1;
        } else {
            break;
        }
    }
    let (tw, th) = (side(cols, w), side(rows, h));
    let mut tiles = Vec::with_capacity(cols * rows);
    for r in 0..rows {
        for c in 0..cols {
            let x = (c as f64 * (tw - TILE_OVERLAP_PX)).min(w - tw).max(0.0);
            let y = (r as f64 * (th - TILE_OVERLAP_PX)).min(h - th).max(0.0);
            tiles.push(Region { x, y, width: tw.min(w), height: th.min(h) });
        }
    }
    tiles
}

/// A line located on the page, with the tile it was read in.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PageLine {
    pub text: String,
    pub bbox: PixelBox,
    pub tile: usize,
    /// The model's box was clamped into its frame or had its corners swapped.
    pub repaired: bool,
    /// The block's kind in document parsing (`p`, `h1`, `table`, `image`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// Lines read twice (by overlapping tiles) merged: boxes that overlap (IoU ≥ 0.5, or one
/// mostly inside the other) with texts where one contains the other become the longer text
/// over the union of the boxes. The result is in reading order (top to bottom, left to right
/// within a line's height).
pub fn merge_tiles(mut lines: Vec<PageLine>) -> Vec<PageLine> {
    lines.sort_by_key(|l| std::cmp::Reverse(l.text.chars().count()));
    let mut kept: Vec<PageLine> = Vec::with_capacity(lines.len());
    for l in lines {
        let twin = kept.iter_mut().find(|k| {
            k.tile != l.tile
                && (k.bbox.iou(&l.bbox) >= 0.5 || l.bbox.inside(&k.bbox) >= 0.7 || k.bbox.inside(&l.bbox) >= 0.7)
                && contains_words(&k.text, &l.text)
        });
        match twin {
            Some(k) => {
                k.bbox = PixelBox {
                    x1: k.bbox.x1.min(l.bbox.x1),
                    y1: k.bbox.y1.min(l.bbox.y1),
                    x2: k.bbox.x2.max(l.bbox.x2),
                    y2: k.bbox.y2.max(l.bbox.y2),
                };
            }
            None => kept.push(l),
        }
    }
    let mut kept = stitch(kept);
    reading_order(&mut kept);
    kept
}

/// Widest gap, in line heights, between two pieces of one line read by neighbouring tiles: a
/// word space is about a third of the line height, a column gutter more than one.
const MAX_WORD_GAP_LINES: f64 = 0.75;

/// A long line that no tile saw whole comes in pieces, one per tile: pieces that overlap on the
/// page and share the words read twice (`… quick brown` and `brown fox …`), or that lie a word
/// space apart on the same line, become one line.
fn stitch(mut lines: Vec<PageLine>) -> Vec<PageLine> {
    loop {
        let mut joined = None;
        'pairs: for i in 0..lines.len() {
            for j in 0..lines.len() {
                let (a, b) = (&lines[i], &lines[j]);
                if i == j || a.tile == b.tile || a.bbox.x1 > b.bbox.x1 {
                    continue;
                }
                let height = a.bbox.height().min(b.bbox.height());
                let v_overlap = a.bbox.y2.min(b.bbox.y2) - a.bbox.y1.max(b.bbox.y1);
                if v_overlap < 0.5 * height {
                    continue;
                }
                let gap = b.bbox.x1 - a.bbox.x2;
                // Overlapping pieces share the words read twice; pieces a word space apart
                // (each tile read the words it saw whole) join as they are. A column gutter is
                // wider than this.
                let shared = if gap <= 0.0 { shared_words(&a.text, &b.text) } else { None };
                let adjacent = gap <= MAX_WORD_GAP_LINES * height && b.bbox.x2 > a.bbox.x2;
                let k = match shared {
                    Some(k) => k,
                    None if adjacent => 0,
                    None => continue,
                };
                let rest: Vec<&str> = b.text.split_whitespace().skip(k).collect();
                let text = if rest.is_empty() { a.text.clone() } else { format!("{} {}", a.text, rest.join(" ")) };
                joined = Some((i, j, text));
                break 'pairs;
            }
        }
        let Some((i, j, text)) = joined else { return lines };
        let b = lines[j].clone();
        let a = &mut lines[i];
        a.text = text;
        a.bbox = PixelBox {
            x1: a.bbox.x1.min(b.bbox.x1),
            y1: a.bbox.y1.min(b.bbox.y1),
            x2: a.bbox.x2.max(b.bbox.x2),
            y2: a.bbox.y2.max(b.bbox.y2),
        };
        a.repaired |= b.repaired;
        lines.remove(j);
    }
}

/// The most words that end `left` and start `right` (compared without case), if any.
fn shared_words(left: &str, right: &str) -> Option<usize> {
    let l: Vec<String> = left.split_whitespace().map(str::to_lowercase).collect();
    let r: Vec<String> = right.split_whitespace().map(str::to_lowercase).collect();
    (1..=l.len().min(r.len())).rev().find(|&k| l[l.len() - k..] == r[..k])
}

/// Whether the words of `short` appear in `long`, in order (a line cut by a tile border reads
/// as a part of the whole line).
fn contains_words(long: &str, short: &str) -> bool {
    let norm = |s: &str| s.split_whitespace().map(|w| w.to_lowercase()).collect::<Vec<_>>().join(" ");
    let (l, s) = (norm(long), norm(short));
    !s.is_empty() && (l.contains(&s) || s.contains(&l))
}

/// Top to bottom; boxes whose vertical centres lie within half a line of the first box of a
/// band are one line, read left to right. (Grouped in bands first: a pairwise "same line"
/// comparison is not a total order and must not drive a sort.)
pub fn reading_order(lines: &mut Vec<PageLine>) {
    let centre = |l: &PageLine| (l.bbox.y1 + l.bbox.y2) / 2.0;
    lines.sort_by(|a, b| centre(a).total_cmp(&centre(b)).then(a.bbox.x1.total_cmp(&b.bbox.x1)));
    let mut bands: Vec<Vec<PageLine>> = Vec::new();
    for l in lines.drain(..) {
        match bands.last_mut() {
            Some(band) if (centre(&l) - centre(&band[0])).abs() <= band[0].bbox.height().min(l.bbox.height()) / 2.0 => {
                band.push(l)
            }
            _ => bands.push(vec![l]),
        }
    }
    for mut band in bands {
        band.sort_by(|a, b| a.bbox.x1.total_cmp(&b.bbox.x1));
        lines.extend(band);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, b: [f64; 4], tile: usize) -> PageLine {
        PageLine {
            text: text.into(),
            bbox: PixelBox { x1: b[0], y1: b[1], x2: b[2], y2: b[3] },
            tile,
            repaired: false,
            kind: None,
        }
    }

    #[test]
    fn a_page_within_budget_is_one_tile_and_a_large_one_is_covered_with_overlap() {
        assert_eq!(plan_tiles(1000, 800, 1_000_000), [Region::page(1000, 800)]);
        // An A4 scan at 300 dpi against a 1 Mpx budget.
        let (w, h) = (2480u32, 3508u32);
        let tiles = plan_tiles(w, h, 1_000_000);
        assert!(tiles.len() >= 9, "{}", tiles.len());
        for t in &tiles {
            assert!(t.width * t.height <= 1_000_000.0, "{t:?}");
            assert!(t.x >= 0.0 && t.y >= 0.0 && t.x + t.width <= w as f64 + 1e-9 && t.y + t.height <= h as f64 + 1e-9);
        }
        // Every pixel is in some tile, and neighbours share the overlap.
        for (px, py) in [(0.0, 0.0), (2479.0, 3507.0), (1240.0, 1754.0), (900.0, 3000.0)] {
            assert!(tiles.iter().any(|t| px >= t.x && px < t.x + t.width && py >= t.y && py < t.y + t.height));
        }
        let (a, b) = (tiles[0], tiles[1]);
        assert!((a.x + a.width - b.x - TILE_OVERLAP_PX).abs() < 1e-9, "{a:?} {b:?}");
    }

    #[test]
    fn lines_read_twice_are_merged_and_ordered() {
        let lines = vec![
            line("world", [520.0, 100.0, 700.0, 130.0], 1),
            line("Hello world", [100.0, 100.0, 700.0, 130.0], 0),
            line("second line", [100.0, 160.0, 500.0, 190.0], 0),
            line("right column", [800.0, 98.0, 1000.0, 128.0], 1),
            // Same place, different text: two things, both kept.
            line("other", [100.0, 160.0, 500.0, 190.0], 1),
        ];
        let merged = merge_tiles(lines);
        let texts: Vec<&str> = merged.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["Hello world", "right column", "second line", "other"]);
        assert_eq!(merged[0].bbox, PixelBox { x1: 100.0, y1: 100.0, x2: 700.0, y2: 130.0 });
    }

    #[test]
    fn a_line_no_tile_saw_whole_is_stitched_from_its_pieces() {
        let lines = vec![
            line("the quick brown", [100.0, 100.0, 560.0, 130.0], 0),
            line("brown fox jumps", [430.0, 101.0, 900.0, 131.0], 1),
            // Same words, another line: not touching, not joined.
            line("brown bear", [100.0, 300.0, 300.0, 330.0], 1),
            // Two pieces a word space apart (no word read twice), and a column a gutter away.
            line("left part", [100.0, 400.0, 300.0, 430.0], 0),
            line("right part", [310.0, 400.0, 520.0, 430.0], 1),
            line("next column", [560.0, 400.0, 800.0, 430.0], 1),
        ];
        let merged = merge_tiles(lines);
        let texts: Vec<&str> = merged.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["the quick brown fox jumps", "brown bear", "left part right part", "next column"]);
        assert_eq!(merged[0].bbox, PixelBox { x1: 100.0, y1: 100.0, x2: 900.0, y2: 131.0 });
    }
}
