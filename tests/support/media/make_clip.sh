#!/usr/bin/env bash
# Make a real H.264/AAC MP4 test clip with GStreamer.
#
# usage: make_clip.sh OUT.mp4 [SECONDS=10] [faststart|tail] [WIDTHxHEIGHT=640x360]
#
#   faststart  the index (moov) is written before the media data, as web
#              servers want it: a player can start after the first bytes.
#   tail       the index comes last, so a demuxer must read the end of the
#              file first (a seek far ahead before playback can start).
#
# The picture is a moving test pattern with a running clock, so a viewer can
# see frames advance. Content depends only on the arguments (the muxer still
# stamps a creation time, hence "deterministic-ish"). Prints nothing on success.
set -euo pipefail

usage() { echo "usage: $0 OUT.mp4 [SECONDS] [faststart|tail] [WIDTHxHEIGHT]" >&2; exit 2; }

[[ $# -ge 1 && $# -le 4 ]] || usage
out=$1
seconds=${2:-10}
layout=${3:-faststart}
size=${4:-640x360}

[[ $seconds =~ ^[1-9][0-9]*$ ]] || usage
[[ $size =~ ^([1-9][0-9]*)x([1-9][0-9]*)$ ]] || usage
width=${BASH_REMATCH[1]}
height=${BASH_REMATCH[2]}
case $layout in
  faststart) faststart=true ;;
  tail) faststart=false ;;
  *) usage ;;
esac

fps=30
# About 0.2 bit per pixel per frame: ~1.4 Mbit/s at 640x360 (a few MB for 10 s),
# ~5.5 Mbit/s at 720p; enough bytes that fetching them is what a demo measures.
kbps=$((width * height * fps / 5000))
# 1600 samples per buffer at 48 kHz is 30 buffers a second, so the same count
# of buffers ends audio and video together.
buffers=$((seconds * fps))

# Write next to OUT and rename at the end, so a reader never sees half a file.
tmp=$(mktemp "${out}.XXXXXX.part")
trap 'rm -f "$tmp"' EXIT

gst-launch-1.0 -q -e \
  videotestsrc num-buffers="$buffers" pattern=smpte horizontal-speed=3 \
  ! "video/x-raw,width=$width,height=$height,framerate=$fps/1" \
  ! timeoverlay font-desc="Sans 36" halignment=center valignment=center \
  ! x264enc bitrate="$kbps" speed-preset=veryfast key-int-max=$((fps * 2)) \
  ! video/x-h264,profile=main ! h264parse ! queue ! mux. \
  audiotestsrc num-buffers="$buffers" samplesperbuffer=1600 wave=sine freq=440 \
  ! audio/x-raw,rate=48000,channels=2 ! audioconvert ! avenc_aac ! aacparse ! queue ! mux. \
  mp4mux name=mux faststart="$faststart" ! filesink location="$tmp" >/dev/null

# mktemp makes the file private; a clip is served by nginx workers (nobody).
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
