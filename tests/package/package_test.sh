#!/usr/bin/env bash
# The Debian package, end to end: build the .deb with CPack, install it into
# this machine with dpkg, and use the installed plugin as a user would, with
# no GST_PLUGIN_PATH: gst-inspect-1.0 finds prefetchsrc in GStreamer's system
# plugin directory, and playbin (prefetchsrc's rank raised) plays a clip from
# a local nginx through it. The package is removed again on every exit path.
#
# usage: package_test.sh CPACK_CONFIG PACKAGE_NAME PLUGIN_FILE_NAME
#
#   CPACK_CONFIG      the build's CPackConfig.cmake
#   PACKAGE_NAME      the Debian package name (CPACK_PACKAGE_NAME)
#   PLUGIN_FILE_NAME  the plugin's file name, e.g. libgstprefetchsrc.so
#
# Needs root (dpkg -i): otherwise it exits 77, which ctest reports as skipped.
# It refuses to run if the package is already installed, so it never removes
# a copy someone installed on purpose.
set -euo pipefail

SKIP=77
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NGINX_SH=$ROOT/tests/support/nginx/nginx.sh
MAKE_CLIP=$ROOT/tests/support/media/make_clip.sh

die() { echo "package_test.sh: FAIL: $*" >&2; exit 1; }
step() { echo "package_test.sh: $*"; }

[[ $# -eq 3 ]] || die "usage: $0 CPACK_CONFIG PACKAGE_NAME PLUGIN_FILE_NAME"
cpack_config=$1
package=$2
plugin_file=$3

if [[ $(id -u) -ne 0 ]]; then
  echo "package_test.sh: SKIP: installing a .deb needs root (dpkg -i); CI runs as root" >&2
  exit $SKIP
fi
for tool in cpack dpkg dpkg-deb dpkg-shlibdeps pkg-config gst-inspect-1.0 gst-launch-1.0; do
  command -v "$tool" >/dev/null || die "$tool is not installed (tests/run installs it)"
done
if dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed; then
  die "$package is already installed on this machine; remove it (dpkg -r $package) to run this test"
fi

plugins_dir=$(pkg-config --variable=pluginsdir gstreamer-1.0)
[[ -n $plugins_dir ]] || die "pkg-config gives no pluginsdir for gstreamer-1.0"
installed_plugin=$plugins_dir/$plugin_file

work=$(mktemp -d)
installed=false
cleanup() {
  local rc=$?
  "$NGINX_SH" stop "$work/nginx" 2>/dev/null || true
  if [[ $installed == true ]]; then
    step "removing $package"
    if ! dpkg -r "$package" >"$work/dpkg-r.log" 2>&1; then
      cat "$work/dpkg-r.log" >&2
      echo "package_test.sh: FAIL: dpkg -r $package failed; remove it by hand" >&2
      rc=1
    elif [[ -e $installed_plugin ]]; then
      echo "package_test.sh: FAIL: $installed_plugin is still there after dpkg -r" >&2
      rc=1
    fi
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build ---------------------------------------------------------------------
# Straight from the configured build (ctest runs after the build): cpack
# stages the `plugin` component under $work, never in the build tree.
step "building the .deb with cpack"
cpack -G DEB --config "$cpack_config" -B "$work/pkg" >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log" >&2; die "cpack failed"; }
debs=("$work"/pkg/*.deb)
[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || die "expected one .deb, got: ${debs[*]}"
deb=${debs[0]}
step "built $(basename "$deb")"

# --- contents and control --------------------------------------------------------
# Exactly one file: the plugin, in the system plugin directory (no static
# core library, no test binaries).
mapfile -t files < <(dpkg-deb --fsys-tarfile "$deb" | tar -t | grep -v '/$' | sed 's|^\./|/|')
[[ ${#files[@]} -eq 1 && ${files[0]} == "$installed_plugin" ]] ||
  die "the package should hold only $installed_plugin; it holds: ${files[*]}"
[[ $(dpkg-deb -f "$deb" Package) == "$package" ]] || die "Package is not $package"
depends=$(dpkg-deb -f "$deb" Depends)
step "Depends: $depends"
for lib in libc6 libglib2.0-0 libgstreamer1.0-0 libsoup-3.0-0 libstdc++6; do
  [[ $depends =~ (^|, )"$lib"( |,|$) ]] || die "Depends lacks $lib: $depends"
done

# --- install ---------------------------------------------------------------------
step "installing with dpkg -i"
installed=true  # from here on the trap removes it, even if dpkg -i half-fails
dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log" >&2; die "dpkg -i failed"; }
[[ -f $installed_plugin ]] || die "dpkg -i did not install $installed_plugin"

# The installed copy only: no plugin path from the caller (ctest, a shell that
# points at the build tree), GStreamer's default system path, and a registry
# that no earlier scan filled.
unset GST_PLUGIN_PATH GST_PLUGIN_PATH_1_0 GST_PLUGIN_SYSTEM_PATH GST_PLUGIN_SYSTEM_PATH_1_0
unset GST_PLUGIN_FEATURE_RANK GST_DEBUG_FILE
export GST_REGISTRY=$work/registry.bin
export GST_DEBUG_NO_COLOR=1
unset http_proxy https_proxy no_proxy all_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY ALL_PROXY
unset DISPLAY WAYLAND_DISPLAY

step "gst-inspect-1.0 prefetchsrc"
timeout 60 gst-inspect-1.0 prefetchsrc >"$work/inspect.txt" 2>&1 ||
  { cat "$work/inspect.txt" >&2; die "gst-inspect-1.0 does not find prefetchsrc without GST_PLUGIN_PATH"; }
filename=$(sed -n 's/^ *Filename *//p' "$work/inspect.txt" | head -n1)
# Compared as real paths: with merged /usr, GStreamer may name /lib/... for /usr/lib/...
[[ -n $filename && $(realpath -e "$filename") == $(realpath -e "$installed_plugin") ]] ||
  die "gst-inspect-1.0 loaded prefetchsrc from '$filename', not $installed_plugin"
step "found: $filename"

# --- play --------------------------------------------------------------------------
step "making a clip and starting nginx"
mkdir -p "$work/www" "$work/nginx"
"$MAKE_CLIP" "$work/www/clip.mp4" 2 faststart 320x240 || die "make_clip.sh failed"
ports=$("$NGINX_SH" start "$work/www" "$work/nginx") || die "nginx.sh start failed"
[[ $ports =~ http=([0-9]+) ]] || die "nginx.sh printed no port: $ports"
uri="http://127.0.0.1:${BASH_REMATCH[1]}/clip.mp4"

step "gst-launch-1.0 playbin uri=$uri (prefetchsrc:MAX)"
if ! GST_PLUGIN_FEATURE_RANK=prefetchsrc:MAX GST_DEBUG=prefetchsrc:4 \
  timeout 90 gst-launch-1.0 playbin uri="$uri" \
  video-sink="fakesink sync=false" audio-sink="fakesink sync=false" \
  >"$work/launch.txt" 2>&1; then
  tail -n 40 "$work/launch.txt" >&2
  die "playbin did not play the clip to the end"
fi
grep -q "Got EOS from element" "$work/launch.txt" || {
  tail -n 40 "$work/launch.txt" >&2
  die "playbin exited without EOS"
}
# prefetchsrc's own debug lines prove it was the source element...
grep -Eq ' prefetchsrc [^ ]+:[0-9]+:[^ ]+:<source>' "$work/launch.txt" || {
  tail -n 40 "$work/launch.txt" >&2
  die "no prefetchsrc debug output from playbin's source: another element was used"
}
# ...and nginx saw its user agent on ranged requests, and no other client.
log=$work/nginx/access.log
for _ in $(seq 50); do [[ -s $log ]] && break; sleep 0.1; done
grep -q '"GET /clip.mp4 .* 206 .*ua="[^"]*prefetchsrc' "$log" ||
  { cat "$log" >&2; die "nginx saw no ranged request from prefetchsrc"; }
if grep -v 'ua="[^"]*prefetchsrc' "$log" | grep -q .; then
  cat "$log" >&2
  die "nginx saw requests from another client (souphttpsrc?)"
fi
step "played to EOS through the installed prefetchsrc ($(grep -c . "$log") requests)"
step "PASS"
