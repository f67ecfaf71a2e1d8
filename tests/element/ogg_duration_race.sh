#!/usr/bin/env bash
# GStreamer's own Ogg duration race, through souphttpsrc and prefetchsrc
# turn about: gst-discoverer-1.0 (uridecodebin: SOURCE ! typefind ! queue2 !
# decodebin) on an Ogg file from a fast local origin can report the length
# of the bytes oggdemux had read, when the first pass's EOS, already in
# queue2, overtakes the flush of oggdemux's own seek to the end (oggdemux
# takes any EOS in its duration scan for the end). Either source loses the
# race at random; this counts how often each wins it.
#
# usage: ogg_duration_race.sh [RUNS=10] [SECONDS=6] [PLUGIN_DIR=build/plugin]
#   The clip: tests/support/media/make_matrix.sh's clip.ogg (6 s is about
#   550 KB; 30 s about 2.7 MB, more than queue2's 2 MB).
# Prints each run's durations and "souphttpsrc N/RUNS right, prefetchsrc M/RUNS right".
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=${1:-10}
seconds=${2:-6}
plugin_dir=$(cd "${3:-$ROOT/build/plugin}" && pwd)
dir=$(mktemp -d)
trap 'kill $origin 2>/dev/null; rm -rf "$dir"' EXIT
"$ROOT/tests/support/media/make_matrix.sh" "$dir/media" "$seconds" >/dev/null
python3 "$ROOT/tests/bench/origin.py" --root "$dir/media" --port-file "$dir/port" &
origin=$!
while [[ ! -s $dir/port ]]; do sleep 0.1; done
url=http://127.0.0.1:$(cat "$dir/port")/clip.ogg
unset http_proxy https_proxy no_proxy all_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY ALL_PROXY
duration() { awk '/^  Duration/ {print $2; exit}'; }
want=$(gst-discoverer-1.0 "file://$dir/media/clip.ogg" | duration)
soup=0 ours=0
for i in $(seq 1 "$runs"); do
  s=$(GST_PLUGIN_FEATURE_RANK=prefetchsrc:NONE gst-discoverer-1.0 "$url" 2>&1 | duration)
  o=$(GST_PLUGIN_PATH=$plugin_dir GST_PLUGIN_FEATURE_RANK=prefetchsrc:MAX \
    gst-discoverer-1.0 "$url" 2>&1 | duration)
  echo "run $i: souphttpsrc $s, prefetchsrc $o (filesrc: $want)"
  [[ $s == "$want" ]] && soup=$((soup + 1))
  [[ $o == "$want" ]] && ours=$((ours + 1))
done
echo "souphttpsrc $soup/$runs right, prefetchsrc $ours/$runs right"
