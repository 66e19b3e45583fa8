//! Audio devices (in progress).
