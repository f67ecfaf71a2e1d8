#!/usr/bin/env bash
# GStreamer's own Ogg duration race, without prefetchsrc: gst-discoverer-1.0
# (uridecodebin: souphttpsrc ! typefind ! queue2 ! decodebin) on a small Ogg
# file from a local origin reports the length of the bytes oggdemux had read
# when the first pass's EOS, already in queue2, overtook the flush of its own
# seek to the end (oggdemux takes any EOS in its duration scan for the end).
#
# usage: ogg_duration_soup_repro.sh [RUNS=10]
#   The clip: tests/support/media/make_matrix.sh's clip.ogg (6 s, about 550 KB).
# Prints each run's duration and "N/RUNS runs right".
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=${1:-10}
dir=$(mktemp -d)
trap 'kill $origin 2>/dev/null; rm -rf "$dir"' EXIT
"$ROOT/tests/support/media/make_matrix.sh" "$dir/media" >/dev/null
python3 "$ROOT/tests/bench/origin.py" --root "$dir/media" --port-file "$dir/port" &
origin=$!
while [[ ! -s $dir/port ]]; do sleep 0.1; done
url=http://127.0.0.1:$(cat "$dir/port")/clip.ogg
unset http_proxy https_proxy no_proxy all_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY ALL_PROXY
want=$(gst-discoverer-1.0 "file://$dir/media/clip.ogg" | awk '/^  Duration/ {print $2; exit}')
right=0
for i in $(seq 1 "$runs"); do
  # prefetchsrc out of the way, whatever GST_PLUGIN_PATH holds.
  got=$(GST_PLUGIN_FEATURE_RANK=prefetchsrc:NONE gst-discoverer-1.0 "$url" 2>&1 |
    awk '/^  Duration/ {print $2; exit}')
  echo "run $i: $got (filesrc: $want)"
  [[ $got == "$want" ]] && right=$((right + 1))
done
echo "$right/$runs runs right"
