//! Wire audio formats (filled in by the wire-format work).
