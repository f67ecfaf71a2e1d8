#!/usr/bin/env bash
# Download a URL to a file through prefetchsrc: the bytes, in order, unchanged.
#
# usage: save.sh URL FILE        (element properties: PREFETCH_PROPS="timeout=30")
set -euo pipefail
# shellcheck source=pipelines/common.sh
source "$(dirname "$0")/common.sh"

[[ $# -eq 2 ]] || { echo "usage: $0 URL FILE" >&2; exit 2; }
require_prefetchsrc

read -ra props <<<"${PREFETCH_PROPS:-}"
exec gst-launch-1.0 -q prefetchsrc location="$1" "${props[@]}" ! filesink location="$2"
