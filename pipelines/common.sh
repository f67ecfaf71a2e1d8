# Sourced by the scripts in pipelines/: find the plugin and pick a video sink.
# shellcheck shell=bash

PIPELINES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$PIPELINES_DIR")

# Use the plugin from GST_PLUGIN_PATH, else the one this checkout built.
export GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-$REPO_ROOT/build/plugin}

require_prefetchsrc() {
  # Not --exists: it also wants the plugin's version >= GStreamer's (0.1 < 1.22).
  gst-inspect-1.0 prefetchsrc >/dev/null 2>&1 && return 0
  echo "$(basename "$0"): no prefetchsrc element in GST_PLUGIN_PATH=$GST_PLUGIN_PATH" >&2
  echo "  build it with: $REPO_ROOT/tests/run --build-only" >&2
  exit 1
}

# A window where there is a display to show it in; otherwise decode and drop.
default_video_sink() {
  if [[ -n ${DISPLAY:-}${WAYLAND_DISPLAY:-} ]]; then
    echo "videoconvert ! autovideosink"
  else
    echo "fakesink"
  fi
}
