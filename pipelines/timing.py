#!/usr/bin/python3
"""Time one HTTP source for pipelines/demo: it plays the stream and saves the
source's bytes in the same run, then prints what a viewer waits for.

    timing.py [--play] [--timeout S] --save FILE SOURCE-DESCRIPTION

SOURCE-DESCRIPTION is one source element with its properties, e.g.
"prefetchsrc location=http://127.0.0.1:8080/clip.mp4 timeout=30". The
pipeline is

    SOURCE ! queue ! decodebin ! (video) fakesink sync=false

or, with --play, a window that shows the video in real time. The queue keeps
the source in push mode, as a player's buffering does. A pad probe on the
source appends every buffer to FILE, so FILE holds the bytes exactly in the
order the source pushed them. (A tee to a filesink would deadlock: the
prerolled filesink holds up the allocation query that decodebin's
renegotiation sends through the tee.)

Prints one line, in seconds from the call that sets PLAYING:
    first_buffer=S first_frame=S total=S bytes=N
first_buffer: the source's first buffer; first_frame: the first decoded video
frame; total: end of stream. Errors go to stderr, exit status 1.
(tests/bench/measure.py is the benchmark's tool: one sink, more figures.)
"""

import argparse
import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


class Probe:
    """Pad probe: when the first buffer passed and how many bytes did; with a
    file, also writes them. Each pad has one streaming thread."""

    def __init__(self, t0, out=None):
        self.t0 = t0
        self.out = out
        self.first = None
        self.bytes = 0

    def __call__(self, _pad, info):
        if self.first is None:
            self.first = time.monotonic() - self.t0[0]
        buf = info.get_buffer()
        self.bytes += buf.get_size()
        if self.out:
            self.out.write(buf.extract_dup(0, buf.get_size()))
        return Gst.PadProbeReturn.OK


def run(source, out, play, timeout):
    pipeline = Gst.Pipeline.new("timing")
    src = Gst.parse_launch(source)  # one element's description gives that element
    if isinstance(src, Gst.Bin):
        raise RuntimeError("SOURCE-DESCRIPTION must be one source element")
    queue = Gst.ElementFactory.make("queue")
    decodebin = Gst.ElementFactory.make("decodebin")
    sink_desc = "videoconvert ! autovideosink" if play else "fakesink sync=false"
    video_sink = Gst.parse_bin_from_description(sink_desc, True)
    for element in (src, queue, decodebin, video_sink):
        pipeline.add(element)
    src.link(queue)
    queue.link(decodebin)

    def on_pad_added(_decodebin, pad):
        # Only video is linked; the demuxer goes on while one stream is linked.
        caps = pad.get_current_caps() or pad.query_caps(None)
        sink_pad = video_sink.get_static_pad("sink")
        if caps.get_structure(0).get_name().startswith("video/") and not sink_pad.is_linked():
            pad.link(sink_pad)

    decodebin.connect("pad-added", on_pad_added)

    t0 = [0.0]  # set just before PLAYING; the probes read it through the list
    source_probe, frame_probe = Probe(t0, out), Probe(t0)
    src.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, source_probe)
    video_sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, frame_probe)

    t0[0] = time.monotonic()
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(
        int(timeout * Gst.SECOND), Gst.MessageType.EOS | Gst.MessageType.ERROR)
    total = time.monotonic() - t0[0]
    pipeline.set_state(Gst.State.NULL)

    if msg is None:
        raise RuntimeError(f"no end of stream within {timeout} s")
    if msg.type == Gst.MessageType.ERROR:
        err, debug = msg.parse_error()
        raise RuntimeError(f"{msg.src.get_name()}: {err.message} ({debug})")
    if frame_probe.first is None:
        raise RuntimeError("end of stream without a decoded video frame")
    return source_probe.first, frame_probe.first, total, source_probe.bytes


def main():
    p = argparse.ArgumentParser(description="Play and save one HTTP source; print its timings.")
    p.add_argument("source", help="source element description, e.g. 'souphttpsrc location=URL'")
    p.add_argument("--save", required=True, help="file for the source's bytes")
    p.add_argument("--play", action="store_true", help="show the video in a window, in real time")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the end")
    args = p.parse_args()
    Gst.init(None)
    try:
        with open(args.save, "wb") as out:
            first_buffer, first_frame, total, size = run(args.source, out, args.play, args.timeout)
    except (RuntimeError, GLib.Error, OSError) as e:
        print(f"timing.py: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"first_buffer={first_buffer:.3f} first_frame={first_frame:.3f} total={total:.3f} bytes={size}")


if __name__ == "__main__":
    main()
