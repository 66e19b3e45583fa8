#!/usr/bin/env bash
# Video-job benchmark (issue 6): wall time per hour of video at 2 fps, split into decoding,
# encoders and generation, and peak memory for a 1-minute and a 30-minute video (memory must not
# grow with the length), on the embedded default and on the real-width reduced-depth model.
#   scripts/bench-analyze.sh [--release-binary PATH] [--real-widths-long]
# The videos are generated with the ffmpeg CLI (640x360 test pattern with a tone, H.264/AAC,
# a key frame every 2 s) into $BENCH_DIR (default /tmp/omnid-bench-analyze).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/omnid
real_long=0
while [ $# -gt 0 ]; do
  case "$1" in
    --release-binary) bin=$2; shift 2 ;;
    --real-widths-long) real_long=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || cargo build --release
dir=${BENCH_DIR:-/tmp/omnid-bench-analyze}
mkdir -p "$dir"
for minutes in 1 30; do
  f="$dir/video-${minutes}min.mp4"
  [ -f "$f" ] || ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=640x360:rate=25:duration=$((minutes * 60))" \
    -f lavfi -i "sine=frequency=440:duration=$((minutes * 60))" \
    -c:v libx264 -preset ultrafast -g 50 -pix_fmt yuv420p -c:a aac -shortest "$f"
done
echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GB; $(date -u +%F)"
for minutes in 1 30; do
  "$bin" bench-analyze "$dir/video-${minutes}min.mp4" --json
done
"$bin" bench-analyze "$dir/video-1min.mp4" --synthetic real-widths --json
if [ "$real_long" = 1 ]; then
  "$bin" bench-analyze "$dir/video-30min.mp4" --synthetic real-widths --json
fi
