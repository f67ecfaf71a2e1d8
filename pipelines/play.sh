#!/usr/bin/env bash
# Play a URL through prefetchsrc.
#
# usage: play.sh [--sink "SINK [PROPS]"] URL
#
# The sink defaults to a window (autovideosink) when a display is present and
# to fakesink otherwise; `--sink fakesink` forces a headless run. Element
# properties can be added with PREFETCH_PROPS, e.g. PREFETCH_PROPS="timeout=30".
set -euo pipefail
# shellcheck source=pipelines/common.sh
source "$(dirname "$0")/common.sh"

sink=$(default_video_sink)
if [[ ${1:-} == --sink ]]; then
  sink=$2
  shift 2
fi
[[ $# -eq 1 ]] || { echo "usage: $0 [--sink SINK] URL" >&2; exit 2; }
require_prefetchsrc

# Word-split on purpose: both strings are launch-line fragments.
read -ra props <<<"${PREFETCH_PROPS:-}"
read -ra sink_desc <<<"$sink"
exec gst-launch-1.0 prefetchsrc location="$1" "${props[@]}" ! decodebin ! "${sink_desc[@]}"
