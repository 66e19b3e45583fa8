#!/usr/bin/env bash
# Installs the Debian 12 packages omnid builds and tests with (toolchain.md §1):
# - build: pkg-config and libclang (bindgen for ffmpeg-sys-next), the FFmpeg 5.1 development files
#   (codecs, containers, devices for camera/screen capture, scaling), ALSA (cpal always builds its ALSA backend);
# - tests: the ffmpeg CLI (generates test media), PulseAudio (a null sink stands in for a sound card),
#   Xvfb and xsetroot (an X display for screen-capture tests), Chromium (the web page test drives it headless
#   with a fake microphone);
# - run time and tests: poppler-utils (PDF pages rendered for OCR), qpdf (tests encrypt a PDF with it),
#   fonts-dejavu-core (OCR tests draw their pages with DejaVu Sans).
# Needs root (or sudo); skips the install when everything is present.
set -euo pipefail

build=(pkg-config clang libclang-dev libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
    libavdevice-dev libavfilter-dev libasound2-dev)
tests=(ffmpeg pulseaudio pulseaudio-utils xvfb x11-xserver-utils chromium poppler-utils qpdf fonts-dejavu-core)

missing=()
for p in "${build[@]}" "${tests[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "all Debian packages present"
    exit 0
fi
echo "installing: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: not root and no sudo; install as root: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
