#!/usr/bin/env bash
# One command from a fresh Debian 12 checkout (with a Rust toolchain) to a running daemon: installs the
# Debian packages the build needs (scripts/install-deps.sh, skipped when present), builds the release
# binary, and starts `omnid serve` (on the embedded default model unless --model is given). It prints
# the address to point OpenAI clients at and the voice page to open in a browser.
#
# Usage: scripts/run.sh [omnid serve flags...]     e.g. scripts/run.sh --model /models/Qwen3-Omni-30B-A3B-Instruct
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --bin omnid
exec target/release/omnid serve "$@"
