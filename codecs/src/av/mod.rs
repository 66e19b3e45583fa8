//! FFmpeg decoding (in progress).
