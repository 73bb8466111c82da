#!/usr/bin/env bash
# Install the system tools vidtrans needs (ffmpeg/ffprobe) when they are missing.
set -euo pipefail
if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then
  exit 0
fi
echo "vidtrans setup: ffmpeg not found; installing it" >&2
if command -v apt-get >/dev/null; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to apt-get install ffmpeg" >&2; exit 1; }
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
elif command -v brew >/dev/null; then
  brew install ffmpeg
else
  echo "please install ffmpeg (https://ffmpeg.org/download.html) and re-run" >&2
  exit 1
fi
