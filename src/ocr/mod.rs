//! OCR of images, multi-page TIFFs and PDFs: each page (rendered or decoded one at a time) asked
//! the Qwen3-VL question of the mode, read in overlapping tiles when it exceeds the model's
//! pixel budget, the answers parsed whatever shape they come in, the model's 0–1000 boxes mapped
//! back to the page's pixels through the tile and the EXIF orientation, and the results written
//! as plain text, Markdown, HTML, JSON and hOCR, page by page so an interrupted run resumes.
//!
//! | module | job |
//! |---|---|
//! | [`mode`] | the modes and the prompts Qwen3-VL was trained on |
//! | [`document`] | images, multi-page TIFF and PDF pages; folders walked in a stable order |
//! | [`page_range`] | `--pages 1-5,8` |
//! | [`model`] | what OCR needs of a model ([`model::PageModel`]) |
//! | [`local_model`] | the loaded model answering through the engine thread, as batch work |
//! | [`read_page`] | one page: tiles, questions, parsing, boxes mapped back |
//! | [`runner`] | one document, page by page, stored as it goes, resumed |
//! | [`page_store`] | a document's folder: per-page results and sidecars, the final files |
//! | [`geometry`] | relative 0–1000 boxes repaired and mapped through tiles and EXIF orientation |
//! | [`parse`] | spotting JSON (fenced, Python-style, truncated), QwenVL HTML and Markdown |
//! | [`tiles`] | tiles with overlap for large pages; lines read twice merged; reading order |
//! | [`formats`] | plain text, Markdown, HTML, JSON and hOCR |

pub mod document;
pub mod formats;
pub mod geometry;
pub mod local_model;
pub mod mode;
pub mod model;
pub mod page_range;
pub mod page_store;
pub mod parse;
pub mod read_page;
pub mod runner;
pub mod tiles;
