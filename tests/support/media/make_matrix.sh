#!/usr/bin/env bash
# Make the media matrix players are tried on: one short clip per container a
# player meets over HTTP, each with a known length, into a directory.
#
# usage: make_matrix.sh DIR [SECONDS=6]
#
#   clip.mkv   H.264 + Vorbis in Matroska
#   clip.webm  VP8 + Opus in WebM
#   clip.ts    H.264 + AAC in MPEG-TS (no index: a demuxer estimates)
#   clip.avi   H.264 + MP3 in AVI
#   clip.ogg   Theora + Vorbis in Ogg (the length is read from the last page)
#   clip.mp3   VBR MP3 with a Xing header (as LAME writes one) behind an ID3v2
#              tag: without the header a demuxer estimates its length from
#              the bit rate so far, a different answer each run
#   clip.flac  FLAC
#   clip.mp4   faststart H.264/AAC MP4 (make_clip.sh)
#   clip-noninterleaved.mp4  every video sample before every audio sample
#
# Prints the names it wrote, one per line. Content depends only on the
# arguments (muxers may stamp a creation time).
set -euo pipefail

usage() { echo "usage: $0 DIR [SECONDS]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
dir=$1
seconds=${2:-6}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || usage
mkdir -p "$dir"
here=$(dirname "${BASH_SOURCE[0]}")

fps=30
frames=$((seconds * fps))
# 1600 samples at 48 kHz is 1/30 s: the same count of buffers ends audio and
# video together.
video="videotestsrc num-buffers=$frames pattern=smpte ! video/x-raw,width=320,height=240,framerate=$fps/1"
audio="audiotestsrc num-buffers=$frames samplesperbuffer=1600 wave=sine freq=440 ! audio/x-raw,rate=48000,channels=2 ! audioconvert"
h264="x264enc bitrate=300 speed-preset=ultrafast key-int-max=$((fps * 2)) ! h264parse"

# make NAME PIPELINE...: runs the pipeline into NAME (written next to it and
# renamed at the end, so a reader never sees half a file).
make() {
  local name=$1
  shift
  local tmp
  tmp=$(mktemp "$dir/$name.XXXXXX.part")
  # shellcheck disable=SC2068  # the pipeline is words on purpose
  gst-launch-1.0 -q -e $@ ! filesink location="$tmp" >/dev/null
  chmod 0644 "$tmp"
  mv -f "$tmp" "$dir/$name"
  echo "$name"
}

make clip.mkv "$video ! $h264 ! queue ! mux. $audio ! vorbisenc ! queue ! mux. matroskamux name=mux"
make clip.webm "$video ! vp8enc deadline=1 ! queue ! mux. $audio ! audioresample ! opusenc ! queue ! mux. webmmux name=mux"
make clip.ts "$video ! $h264 ! queue ! mux. $audio ! avenc_aac ! aacparse ! queue ! mux. mpegtsmux name=mux"
make clip.avi "$video ! $h264 ! queue ! mux. $audio ! lamemp3enc ! mpegaudioparse ! queue ! mux. avimux name=mux"
make clip.ogg "$video ! theoraenc ! queue ! mux. $audio ! vorbisenc ! queue ! mux. oggmux name=mux"
make clip.mp3 "$audio ! lamemp3enc ! xingmux ! taginject tags=title=matrix,artist=prefetchsrc ! id3v2mux"
make clip.flac "$audio ! flacenc"
"$here/make_clip.sh" "$dir/clip.mp4" "$seconds" faststart 320x240 && echo clip.mp4
"$here/make_clip.sh" "$dir/clip-noninterleaved.mp4" "$seconds" noninterleaved 320x240 &&
  echo clip-noninterleaved.mp4
