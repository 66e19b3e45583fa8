#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed time and reports, per target, how many inputs ran and
# whether libFuzzer found anything (crash, panic, leak, timeout, out-of-memory).
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]   (default 60 s, every target)
# Needs: a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
#
# The corpus grows in fuzz/corpus/<target> across runs; findings land in fuzz/artifacts/<target>
# (replay one with `cargo +nightly fuzz run <target> <file>`); full logs in fuzz/target/fuzz-logs/.
# Exit status: 0 when nothing was found, 1 when a target found something or failed to build or run.
set -uo pipefail

# One target per line; adding a target to the run is adding its line.
TARGETS=(
    wire_decode
    container_probe
    media_decode
    realtime_events
)

seconds="${1:-60}"
if [ $# -gt 1 ]; then
    TARGETS=("${@:2}")
fi
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET]  (a positive whole number, default 60)" >&2
    exit 2
fi

cd "$(dirname "$0")/.." || exit 2
logs=fuzz/target/fuzz-logs
mkdir -p "$logs"

# Seeds for the container probe: one tiny real file per container and codec, made with the ffmpeg CLI, so
# mutations start inside the demuxers (FFmpeg is not instrumented, so coverage cannot find them alone).
seed_containers() {
    local dir=fuzz/corpus/container_probe
    [ -n "$(ls -A "$dir" 2>/dev/null)" ] && return 0
    command -v ffmpeg >/dev/null || { echo "container_probe: no ffmpeg CLI, starting without seeds"; return 0; }
    local v="testsrc=size=32x24:rate=5:duration=0.4" a="sine=d=0.4:sample_rate=8000"
    local -a outs=(
        "seed.mp4 -c:v libx264 -c:a aac" "seed.webm -c:v libvpx -c:a libopus" "seed.mkv -c:v ffv1 -c:a flac"
        "seed.avi -c:v mpeg4 -c:a libmp3lame" "seed.mov -c:v mjpeg -c:a pcm_s16le"
    )
    for o in "${outs[@]}"; do
        # shellcheck disable=SC2086
        ffmpeg -hide_banner -loglevel error -y -f lavfi -i "$v" -f lavfi -i "$a" ${o#* } "$dir/${o%% *}"
    done
    for o in seed.wav seed.mp3 seed.ogg seed.flac seed.m4a; do
        ffmpeg -hide_banner -loglevel error -y -f lavfi -i "$a" "$dir/$o"
    done
    ffmpeg -hide_banner -loglevel error -y -f lavfi -i "$v" -pix_fmt yuv420p "$dir/seed.y4m"
}

# Seeds for the Realtime event parser: one valid event of each kind per file, so mutations start from the
# protocol's shapes rather than from nothing.
seed_realtime() {
    local dir=fuzz/corpus/realtime_events
    [ -n "$(ls -A "$dir" 2>/dev/null)" ] && return 0
    printf '%s\n' '{"type":"session.update","session":{"instructions":"hi","output_modalities":["audio"],"max_output_tokens":"inf","tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"tool_choice":"auto","audio":{"input":{"format":{"type":"audio/pcmu"},"turn_detection":{"type":"server_vad","threshold":0.5,"prefix_padding_ms":300,"silence_duration_ms":200}},"output":{"format":{"type":"audio/pcm","rate":24000},"voice":"ethan"}}}}' >"$dir/session_update"
    printf '%s\n' '{"type":"input_audio_buffer.append","audio":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA//8AAP//AAD//wAA"}' '{"type":"input_audio_buffer.commit"}' '{"type":"input_audio_buffer.clear"}' >"$dir/audio"
    printf '%s\n' '{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"},{"type":"input_audio","audio":"AAAA"},{"type":"input_image","image_url":"data:image/png;base64,iVBORw0KGgo="}]}}' '{"type":"conversation.item.truncate","item_id":"item_1","content_index":0,"audio_end_ms":10}' '{"type":"conversation.item.delete","item_id":"item_1"}' '{"type":"conversation.item.retrieve","item_id":"x"}' >"$dir/items"
    printf '%s\n' '{"type":"conversation.item.create","item":{"type":"function_call","call_id":"c","name":"f","arguments":"{}"}}' '{"type":"conversation.item.create","item":{"type":"function_call_output","call_id":"c","output":"{}"}}' '{"type":"response.create"}' '{"type":"response.cancel"}' >"$dir/calls"
}

# Per-target libFuzzer options: media seeds are a few kilobytes, above libFuzzer's default 4 KB input cap.
options_for() {
    case $1 in
    container_probe | media_decode) echo "-max_len=65536 -rss_limit_mb=2048 -timeout=10" ;;
    *) echo "" ;;
    esac
}

failed=0
summary=()
for target in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    [ "$target" = container_probe ] && seed_containers
    [ "$target" = realtime_events ] && seed_realtime
    # The decoders start from the same real files as the container probe.
    if [ "$target" = media_decode ] && [ -z "$(ls -A fuzz/corpus/media_decode 2>/dev/null)" ]; then
        seed_containers
        cp fuzz/corpus/container_probe/seed.* fuzz/corpus/media_decode/ 2>/dev/null
    fi
    log="$logs/$target.log"
    echo "== $target: fuzzing for ${seconds}s (log: $log)"
    # shellcheck disable=SC2046
    cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 $(options_for "$target") >"$log" 2>&1
    status=$?

    # libFuzzer's final stats; fall back to the last "#N ..." progress line (e.g. "#123456 DONE cov: ...").
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+$')
    if [[ -z "$execs" ]]; then
        execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    fi
    artifacts=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tr '\n' ' ')

    if [[ -n "$artifacts" ]]; then
        result="FOUND: ${artifacts% }"
        failed=1
    elif [[ $status -ne 0 ]]; then
        result="ERROR: exit status $status without a test unit (build or setup failure?), see $log"
        failed=1
    elif grep -qE '^#[0-9]+[[:space:]]+DONE' "$log"; then
        result="nothing found"
    else
        result="ERROR: run ended without libFuzzer's DONE line, see $log"
        failed=1
    fi
    summary+=("$(printf '%-24s %14s executions   %s' "$target" "${execs:-?}" "$result")")
done

echo
echo "== fuzz summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"
