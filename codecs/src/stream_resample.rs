//! Streaming sample-rate conversion (filled in by the wire-format work).
