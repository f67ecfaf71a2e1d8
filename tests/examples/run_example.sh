#!/usr/bin/env bash
# Runs one example of pipelines/ headless against tests/bench/origin.py
# serving CLIP, and checks what it produced.
#
# usage: run_example.sh save|play|transcode|player|player-download CLIP.mp4
#
#   save       pipelines/save.sh: the saved file has the clip's sha256
#   play       pipelines/play.sh --sink fakesink: decodes to the end
#   transcode  pipelines/transcode.sh: the output is an MP4 with H.264 video
#   player     pipelines/player.py --sink fakesink: playbin through prefetchsrc
#   player-download  the same with --download (playbin's download flag)
#
# Every example must exit 0 within EXAMPLE_TIMEOUT seconds (default 120), and
# the origin must have been sent a ranged request per 64 KiB block of the clip
# (the bytes came through prefetchsrc). GST_PLUGIN_PATH must point at the built plugin.
set -euo pipefail

die() { echo "run_example.sh: $*" >&2; exit 1; }

[[ $# -eq 2 ]] || die "usage: $0 save|play|transcode|player|player-download CLIP.mp4"
example=$1
clip=$2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PYTHON=/usr/bin/python3
limit=${EXAMPLE_TIMEOUT:-120}

[[ -n ${GST_PLUGIN_PATH:-} ]] || die "GST_PLUGIN_PATH is not set"
[[ -s $clip ]] || die "no clip at $clip (the examples_make_clip test makes it)"

# The origin is on 127.0.0.1: a proxy from the environment must not take the
# requests elsewhere.
unset http_proxy https_proxy no_proxy all_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY ALL_PROXY
# No display: the examples pick fakesink themselves where they can.
unset DISPLAY WAYLAND_DISPLAY

work=$(mktemp -d)
origin_pid=""
cleanup() {
  if [[ -n $origin_pid ]]; then
    kill -TERM "$origin_pid" 2>/dev/null || true
    wait "$origin_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A registry of our own: a stale cache from another build must not be loaded.
export GST_REGISTRY=$work/registry.bin

mkdir "$work/www"
cp "$clip" "$work/www/clip.mp4"
"$PYTHON" "$ROOT/tests/bench/origin.py" --root "$work/www" --port 0 \
  --port-file "$work/port" --log "$work/origin.jsonl" &
origin_pid=$!
for _ in $(seq 100); do
  [[ -s $work/port ]] && break
  kill -0 "$origin_pid" 2>/dev/null || die "origin.py exited before listening"
  sleep 0.1
done
[[ -s $work/port ]] || die "origin.py did not write its port within 10 s"
url="http://127.0.0.1:$(cat "$work/port")/clip.mp4"

# Small blocks and one block per request, so the clip (a few hundred KB) is
# fetched as several concurrent ranges (a prompt local origin would otherwise
# send it in one span), through the examples' documented way to set properties.
block_size=65536
export PREFETCH_PROPS="block-size=$block_size max-request-size=$block_size concurrency=4"
min_ranged=$(( $(stat -c %s "$clip") / block_size ))

# Runs an example with the time limit; its exit status must be 0.
run() {
  echo "+ $*" >&2
  local rc=0
  timeout --kill-after=5 "$limit" "$@" || rc=$?
  [[ $rc -ne 124 && $rc -ne 137 ]] || die "$example: no exit within $limit s (hang)"
  [[ $rc -eq 0 ]] || die "$example: exit status $rc"
}

# Prints the number of H.264 video frames decoded from an MP4 (exit 1 on error).
count_frames=$work/count_frames.py
cat >"$count_frames" <<'PY'
import sys
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
p = Gst.parse_launch(
    f'filesrc location="{sys.argv[1]}" ! qtdemux name=d d.video_0 ! queue ! h264parse '
    '! avdec_h264 ! fakesink name=sink sync=false')
frames = 0
def probe(_pad, _info):
    global frames
    frames += 1
    return Gst.PadProbeReturn.OK
p.get_by_name("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, probe)
p.set_state(Gst.State.PLAYING)
msg = p.get_bus().timed_pop_filtered(50 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
p.set_state(Gst.State.NULL)
if msg is None or msg.type != Gst.MessageType.EOS:
    print(msg.parse_error() if msg else "timeout", file=sys.stderr)
    sys.exit(1)
print(frames)
PY

case $example in
  save)
    run "$ROOT/pipelines/save.sh" "$url" "$work/saved.mp4"
    want=$(sha256sum <"$clip" | cut -d' ' -f1)
    got=$(sha256sum <"$work/saved.mp4" | cut -d' ' -f1)
    [[ $got == "$want" ]] || die "save: sha256 $got, clip $want ($(stat -c %s "$work/saved.mp4") of $(stat -c %s "$clip") bytes)"
    ;;
  play)
    run "$ROOT/pipelines/play.sh" --sink fakesink "$url"
    ;;
  transcode)
    run "$ROOT/pipelines/transcode.sh" "$url" "$work/out.mp4"
    [[ -s $work/out.mp4 ]] || die "transcode: no output file"
    # As many H.264 frames decode from the output as from the clip.
    want=$(timeout 60 "$PYTHON" "$count_frames" "$clip") || die "transcode: cannot decode the clip"
    got=$(timeout 60 "$PYTHON" "$count_frames" "$work/out.mp4") || die "transcode: the output does not decode"
    [[ $got -eq $want && $got -gt 0 ]] || die "transcode: $got H.264 frames in the output, $want in the clip"
    ;;
  player)
    run "$PYTHON" "$ROOT/pipelines/player.py" --sink fakesink --prop block-size=$block_size \
      --prop max-request-size=$block_size --prop concurrency=4 "$url"
    ;;
  player-download)
    run "$PYTHON" "$ROOT/pipelines/player.py" --sink fakesink --download \
      --prop block-size=$block_size --prop max-request-size=$block_size --prop concurrency=4 "$url"
    ;;
  *)
    die "unknown example: $example"
    ;;
esac

# The bytes came through prefetchsrc: ranged GETs of the clip at the origin.
ranged=$("$PYTHON" - "$work/origin.jsonl" <<'PY'
import json, sys
n = 0
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        rec = json.loads(line)
        if rec.get("method") == "GET" and rec.get("range") and "clip.mp4" in str(rec.get("path")):
            n += 1
print(n)
PY
)
[[ $ranged -ge $min_ranged ]] ||
  die "$example: the origin saw $ranged ranged requests for the clip, expected >= $min_ranged"
echo "$example: ok ($ranged ranged requests)"
