//! OCR (issue 7), the parts that need no model: how the model's coordinates map back to the
//! page, how its answers (text spotting JSON, QwenVL HTML and Markdown) are parsed whatever shape
//! they come in, how a page larger than the pixel budget is tiled and the tiles' lines merged,
//! and the output formats. The pipeline (page rendering, the engine, the CLI and the API) builds
//! on these; none of it is claimed as a feature yet.
//!
//! | module | job |
//! |---|---|
//! | [`geometry`] | relative 0–1000 boxes repaired and mapped through tiles and EXIF orientation |
//! | [`parse`] | spotting JSON (fenced, Python-style, truncated), QwenVL HTML and Markdown |
//! | [`tiles`] | tiles with overlap for large pages; lines read twice merged; reading order |
//! | [`formats`] | plain text, JSON and hOCR |

pub mod formats;
pub mod geometry;
pub mod parse;
pub mod tiles;
