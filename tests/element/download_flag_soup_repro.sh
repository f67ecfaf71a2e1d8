#!/usr/bin/env bash
# GStreamer's own hang on playbin's download path, without prefetchsrc:
# gst-launch-1.0 playbin flags=0x697 (the download flag) with souphttpsrc on a
# non-interleaved MP4 whose index is last, from an origin with a 100 ms first
# byte and 8 MiB/s per response. Now and then a run never ends: every byte is
# in the download buffer, the source has paused on EOS, both sinks wait in
# preroll and the pipeline stays PAUSED with PLAYING pending (gst-launch
# pauses on every BUFFERING message below 100 %, the download buffer's too).
#
# usage: download_flag_soup_repro.sh CLIP.mp4 [RUNS=20]
#   CLIP: tests/support/media/make_clip.sh CLIP.mp4 60 noninterleaved-tail 640x360 5000
# ORIGIN=path overrides the origin server script (default tests/bench/origin.py).
# Prints the runs that did not end within 40 s and "N/RUNS runs ended".
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[[ $# -ge 1 ]] || { sed -n '2,15s/^# \{0,1\}//p' "$0" >&2; exit 2; }
clip=$(realpath "$1")
runs=${2:-20}
dir=$(mktemp -d)
python3 "${ORIGIN:-$ROOT/tests/bench/origin.py}" --root "$(dirname "$clip")" \
  --port-file "$dir/port" --ttfb fixed:0.1 --rate 8388608 &
origin=$!
trap 'kill $origin 2>/dev/null; rm -rf "$dir"' EXIT
while [[ ! -s $dir/port ]]; do sleep 0.1; done
url=http://127.0.0.1:$(cat "$dir/port")/$(basename "$clip")
unset http_proxy https_proxy no_proxy all_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY ALL_PROXY
ended=0
for i in $(seq 1 "$runs"); do
  # prefetchsrc out of the way, whatever GST_PLUGIN_PATH holds.
  if GST_PLUGIN_FEATURE_RANK=prefetchsrc:NONE timeout 40 gst-launch-1.0 -q playbin uri="$url" \
    flags=0x697 video-sink=fakesink audio-sink=fakesink >/dev/null 2>&1; then
    ended=$((ended + 1))
  else
    echo "run $i: no EOS within 40 s"
  fi
done
echo "$ended/$runs runs ended"
