#!/usr/bin/env bash
# Make a real H.264/AAC MP4 test clip with GStreamer.
#
# usage: make_clip.sh OUT.mp4 [SECONDS=10] [faststart|tail|noninterleaved|noninterleaved-tail] [WIDTHxHEIGHT=640x360] [KBPS]
#
#   faststart       the index (moov) is written before the media data, as web
#                   servers want it: a player can start after the first bytes.
#   tail            the index comes last, so a demuxer must read the end of the
#                   file first (a seek far ahead before playback can start).
#   noninterleaved  the index first, then every video sample, then every audio
#                   sample (one chunk per track): a player must read two
#                   regions far apart at once (video from the start of the
#                   media data, audio from after all the video), as some
#                   editors and muxers write files. Checked after muxing.
#   noninterleaved-tail
#                   as noninterleaved, but the index comes last: a demuxer
#                   reads the end of the file first, then the video from the
#                   start and the audio from after it (three regions).
#
# KBPS is the video bitrate (default: about 0.2 bit per pixel per frame), e.g.
# to make a small picture take many bytes.
#
# The picture is a moving test pattern with a running clock, so a viewer can
# see frames advance. Content depends only on the arguments (the muxer still
# stamps a creation time, hence "deterministic-ish"). Prints nothing on success.
set -euo pipefail

usage() { echo "usage: $0 OUT.mp4 [SECONDS] [faststart|tail|noninterleaved|noninterleaved-tail] [WIDTHxHEIGHT] [KBPS]" >&2; exit 2; }

[[ $# -ge 1 && $# -le 5 ]] || usage
out=$1
seconds=${2:-10}
layout=${3:-faststart}
size=${4:-640x360}
kbps=${5:-}

[[ $seconds =~ ^[1-9][0-9]*$ ]] || usage
[[ -z $kbps || $kbps =~ ^[1-9][0-9]*$ ]] || usage
[[ $size =~ ^([1-9][0-9]*)x([1-9][0-9]*)$ ]] || usage
width=${BASH_REMATCH[1]}
height=${BASH_REMATCH[2]}
# mp4mux starts a new chunk (and may switch tracks) every interleave-time of
# media (default 0.25 s); with no limit at all it writes one track's chunk
# until that track ends.
interleave=()
case $layout in
  faststart) faststart=true ;;
  tail) faststart=false ;;
  noninterleaved)
    faststart=true
    interleave=(interleave-time=18446744073709551615 interleave-bytes=0)
    ;;
  noninterleaved-tail)
    faststart=false
    interleave=(interleave-time=18446744073709551615 interleave-bytes=0)
    ;;
  *) usage ;;
esac

fps=30
# About 0.2 bit per pixel per frame: ~1.4 Mbit/s at 640x360 (a few MB for 10 s),
# ~5.5 Mbit/s at 720p; enough bytes that fetching them is what a demo measures.
[[ -n $kbps ]] || kbps=$((width * height * fps / 5000))
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
  mp4mux name=mux faststart="$faststart" "${interleave[@]}" ! filesink location="$tmp" >/dev/null

if [[ $layout == noninterleaved* ]]; then
  # Which track mp4mux starts with is its choice: make sure it was video,
  # with all of the audio after all of the video.
  python3 "$(dirname "${BASH_SOURCE[0]}")/mp4_chunks.py" --check-video-first "$tmp" >/dev/null ||
    { echo "$0: mp4mux did not write all video before all audio" >&2; exit 1; }
fi

# mktemp makes the file private; a clip is served by nginx workers (nobody).
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
