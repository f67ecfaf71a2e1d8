#!/usr/bin/env bash
# Re-encode the video of a URL to an H.264 MP4 (video only, so a source
# without audio cannot leave the muxer waiting for an audio stream).
#
# usage: transcode.sh URL OUT.mp4   (element properties: PREFETCH_PROPS="timeout=30")
set -euo pipefail
# shellcheck source=pipelines/common.sh
source "$(dirname "$0")/common.sh"

[[ $# -eq 2 ]] || { echo "usage: $0 URL OUT.mp4" >&2; exit 2; }
require_prefetchsrc

read -ra props <<<"${PREFETCH_PROPS:-}"
# -e: EOS on Ctrl-C, so mp4mux still writes its index and the file plays.
exec gst-launch-1.0 -q -e prefetchsrc location="$1" "${props[@]}" \
  ! decodebin ! videoconvert ! x264enc speed-preset=veryfast ! h264parse \
  ! mp4mux faststart=true ! filesink location="$2"
