#!/usr/bin/python3
"""Play a URL with playbin, fetched by prefetchsrc, and print its statistics.

    player.py [--sink SINK] [--download] [--prop NAME=VALUE ...] URL

playbin picks the source element for a URI by rank; this raises prefetchsrc's
rank above souphttpsrc's (the same as GST_PLUGIN_FEATURE_RANK=prefetchsrc:MAX
in the environment), checks in "source-setup" that it got prefetchsrc, and
applies --prop there. The element's `stats` property is printed once a second
and at the end. Exits 0 at end of stream, 1 on an error.

--sink fakesink decodes and drops the frames (headless); the default is a
window when a display is present and fakesink otherwise. Uses
GST_PLUGIN_PATH, else the build/plugin of this checkout.

--download sets playbin's `download` flag: the source's bytes go to a
temporary file (a downloadbuffer) that the demuxer reads at random, instead
of a stream buffer it must read in order. Use it for files whose tracks lie
far apart, e.g. a non-interleaved MP4/MOV (all video, then all audio):
without it playbin stops with its queues full and never plays them.
"""

import argparse
import os
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def setup_environment():
    """Must run before Gst.init(): both variables are read there."""
    os.environ.setdefault("GST_PLUGIN_PATH", os.path.join(REPO_ROOT, "build", "plugin"))
    ranks = [r for r in os.environ.get("GST_PLUGIN_FEATURE_RANK", "").split(",") if r]
    os.environ["GST_PLUGIN_FEATURE_RANK"] = ",".join(ranks + ["prefetchsrc:MAX"])


class Player:
    def __init__(self, url, sink, props, download=False):
        self.props = props
        self.source = None
        self.status = 0
        self.loop = GLib.MainLoop()
        self.playbin = Gst.ElementFactory.make("playbin", None)
        self.playbin.set_property("uri", url)
        if download:
            # GST_PLAY_FLAG_DOWNLOAD: read the source through a file, seekably.
            self.playbin.set_property("flags", self.playbin.get_property("flags") | 0x80)
        if sink:
            # Headless or custom: audio goes nowhere either, there may be no device.
            self.playbin.set_property("video-sink", Gst.parse_bin_from_description(sink, True))
            self.playbin.set_property("audio-sink", Gst.ElementFactory.make("fakesink", None))
        self.playbin.connect("source-setup", self.on_source_setup)
        bus = self.playbin.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_message)

    def on_source_setup(self, _playbin, source):
        name = source.get_factory().get_name()
        if name != "prefetchsrc":
            self.fail(f"playbin chose {name}, not prefetchsrc: is the plugin in GST_PLUGIN_PATH?")
            return
        for key, value in self.props:
            if source.find_property(key) is None:
                self.fail(f"prefetchsrc has no property {key!r}")
                return
            Gst.util_set_object_arg(source, key, value)
        self.source = source

    def print_stats(self):
        if self.source is not None:
            stats = self.source.get_property("stats")
            print(stats.to_string() if stats else "(no stats)", flush=True)
        return GLib.SOURCE_CONTINUE

    def on_message(self, _bus, msg):
        if msg.type == Gst.MessageType.EOS:
            self.print_stats()
            self.loop.quit()
        elif msg.type == Gst.MessageType.ERROR:
            self.fail(describe_error(msg))

    def fail(self, text):
        # Only the first error: the ones after it are that error's consequences.
        if self.status == 0:
            print(f"player.py: {text}", file=sys.stderr)
            self.status = 1
        # May run on a streaming thread (source-setup): let the main loop quit.
        GLib.idle_add(self.loop.quit)

    def run(self):
        if self.playbin.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            # The bus watch has not run yet: take the reason from the bus now.
            msg = self.playbin.get_bus().pop_filtered(Gst.MessageType.ERROR)
            self.fail(describe_error(msg) if msg else "could not start playing")
        GLib.timeout_add_seconds(1, self.print_stats)
        self.loop.run()
        self.playbin.set_state(Gst.State.NULL)
        return self.status


def describe_error(msg):
    err, debug = msg.parse_error()
    return f"{msg.src.get_name()}: {err.message}\n  {debug}"


def default_sink():
    has_display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    return None if has_display else "fakesink"


def parse_prop(text):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main():
    p = argparse.ArgumentParser(description="Play a URL through prefetchsrc with playbin.")
    p.add_argument("url")
    p.add_argument("--sink", default=default_sink(),
                   help="video sink description, e.g. fakesink (default: a window if there is a display)")
    p.add_argument("--download", action="store_true",
                   help="set playbin's download flag: needed for files whose video and audio "
                   "lie far apart (non-interleaved MP4/MOV); see the module docstring")
    p.add_argument("--prop", type=parse_prop, action="append", default=[], metavar="NAME=VALUE",
                   help="set a prefetchsrc property, e.g. --prop timeout=30 (repeatable)")
    args = p.parse_args()

    setup_environment()
    Gst.init(None)
    sys.exit(Player(args.url, args.sink, args.prop, args.download).run())


if __name__ == "__main__":
    main()
