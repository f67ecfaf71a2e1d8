#!/usr/bin/python3
"""Runs one pipeline to EOS and prints its figures as one JSON object.

    measure.py [--decode] [--realtime BYTES_PER_S] [--sha256] [--timeout S]
               [--stop-after first-buffer|first-frame] SOURCE-DESCRIPTION

SOURCE-DESCRIPTION is the source element with its properties, e.g.
    "souphttpsrc location=http://127.0.0.1:8080/f.bin"
    "prefetchsrc location=... concurrency=8 block-size=1048576 schedule=window"
It is followed by `fakesink` (raw bytes) or, with --decode,
`decodebin ! fakesink` (first decoded video frame). --realtime R puts a
consumer clocked at R bytes/s in between, `identity datarate=R sync=true`:
identity stamps byte n with time n/R and waits for it on the pipeline clock,
so byte n leaves at PLAYING + n/R at the earliest, like a player at the
stream's bitrate. identity syncs only in a TIME segment and a source of raw
bytes sends a BYTES one, so a probe on identity's sink pad hands it a TIME
segment from 0 instead (the source and its pad are untouched).

--stop-after ends the run at the first buffer on the source's src pad
(first-buffer) or at the first decoded video frame (first-frame, with
--decode) instead of EOS: a start measured without the rest of the
transfer. The pipeline goes to NULL then (the source cancels what it has in
flight); total_s is the time to that point, and bytes count what had passed.

One pipeline per process, so peak RSS and CPU time belong to that pipeline
alone. All times are seconds from the call that sets PLAYING.

Output keys: first_buffer_s (first buffer on the source's src pad),
first_frame_s (first decoded video buffer; --decode only), frames (decoded
video buffers that reached the sink, so a caller can tell a clip played to its
end; --decode only), total_s (EOS),
bytes and buffers (through the source's src pad), max_stall_s (the longest
gap between two consecutive buffers on the source's src pad: how long a
reader downstream waited at worst once data flowed; the wait for the first
buffer is first_buffer_s) and max_stall_end_s (when that gap ended; null
with fewer than two buffers), throughput_mib_s, peak_rss_mib
(ru_maxrss of the whole process) and base_rss_mib (the same just before
PLAYING: Python, GStreamer and the plugins loaded), cpu_s (user+sys during
the run), playing_log_s (PLAYING on the clock of GStreamer's debug log, for
lining up GST_DEBUG output with these figures), playing_monotonic_s
(PLAYING on time.monotonic(), CLOCK_MONOTONIC: origin.py's log clock); with
--sha256, sha256 (hex digest of the bytes through the source's src pad, in
order; hashed in the pad probe, so it costs the streaming thread about 1 ms
per MiB).

Errors: the message goes to stderr and the exit status is 1.
"""

import hashlib
import resource
import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from benchutil import parser, print_result  # noqa: E402


class FirstAndCount:
    """Pad probe: time of the first matching buffer and bytes seen. Each pad
    has one streaming thread; the main thread reads only after EOS."""

    def __init__(self, t0, caps_prefix=None, digest=None, on_first=None):
        self.t0 = t0
        self.on_first = on_first  # called once, with the first matching buffer
        self.caps_prefix = caps_prefix
        self.digest = digest
        self.first = None
        self.last = None
        self.bytes = 0
        self.buffers = 0
        self.max_gap = 0.0
        self.max_gap_end = None

    def __call__(self, pad, info):
        buf = info.get_buffer()
        if self.caps_prefix:
            caps = pad.get_current_caps()
            if caps is None or not caps.get_structure(0).get_name().startswith(self.caps_prefix):
                return Gst.PadProbeReturn.OK
        now = time.monotonic() - self.t0[0]
        if self.first is None:
            self.first = now
            if self.on_first:
                self.on_first()
        elif now - self.last > self.max_gap:
            self.max_gap, self.max_gap_end = now - self.last, now
        self.last = now
        self.bytes += buf.get_size()
        self.buffers += 1
        if self.digest is not None:
            ok, mapped = buf.map(Gst.MapFlags.READ)
            if ok:
                self.digest.update(mapped.data)
                buf.unmap(mapped)
        return Gst.PadProbeReturn.OK


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def time_segment(pad, info):
    """Event probe on a sink pad: a BYTES segment goes on as a TIME segment
    from 0 (sent in its place; the probe lets that one through)."""
    event = info.get_event()
    if event.type == Gst.EventType.SEGMENT and event.parse_segment().format != Gst.Format.TIME:
        segment = Gst.Segment()
        segment.init(Gst.Format.TIME)
        pad.send_event(Gst.Event.new_segment(segment))
        return Gst.PadProbeReturn.DROP
    return Gst.PadProbeReturn.OK


def run(source, decode, timeout, log_epoch, realtime=0, sha256=False, stop_after=None):
    # The names come last so they win over any name= in the description.
    sink = "fakesink name=benchsink sync=false"
    if decode:
        sink = f"decodebin ! {sink}"
    if realtime:
        sink = f"identity name=benchclock datarate={realtime} sync=true silent=true ! {sink}"
    pipeline = Gst.parse_launch(f"{source} name=benchsrc ! {sink}")
    if realtime:
        pipeline.get_by_name("benchclock").get_static_pad("sink").add_probe(
            Gst.PadProbeType.EVENT_DOWNSTREAM, time_segment)
    # t0 is filled in just before PLAYING; probes read it through the list.
    t0 = [0.0]

    def stop():
        """From a streaming thread: tell the main thread (on the bus) to end the run."""
        pipeline.post_message(Gst.Message.new_application(
            pipeline, Gst.Structure.new_empty("bench-stop")))

    src_probe = FirstAndCount(t0, digest=hashlib.sha256() if sha256 else None,
                              on_first=stop if stop_after == "first-buffer" else None)
    pipeline.get_by_name("benchsrc").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, src_probe)
    frame_probe = None
    if decode:
        frame_probe = FirstAndCount(t0, caps_prefix="video/x-raw",
                                    on_first=stop if stop_after == "first-frame" else None)
        sinkpad = pipeline.get_by_name("benchsink").get_static_pad("sink")
        sinkpad.add_probe(Gst.PadProbeType.BUFFER, frame_probe)

    base_rss = peak_rss_mib()
    cpu0 = cpu_seconds()
    t0[0] = time.monotonic()
    playing_log_s = (Gst.util_get_timestamp() - log_epoch) / Gst.SECOND
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        error = first_error(pipeline.get_bus()) or "could not set PLAYING"
        pipeline.set_state(Gst.State.NULL)
        raise RuntimeError(error)

    wanted = Gst.MessageType.EOS | Gst.MessageType.ERROR
    if stop_after:
        wanted |= Gst.MessageType.APPLICATION
    msg = pipeline.get_bus().timed_pop_filtered(int(timeout * Gst.SECOND), wanted)
    total = time.monotonic() - t0[0]
    cpu = cpu_seconds() - cpu0
    pipeline.set_state(Gst.State.NULL)
    if msg is None:
        raise RuntimeError(f"no {stop_after or 'EOS'} within {timeout} s")
    if msg.type == Gst.MessageType.ERROR:
        raise RuntimeError(format_error(msg))
    if decode and frame_probe.first is None:
        raise RuntimeError("EOS without a decoded video frame")

    result = {
        "first_buffer_s": src_probe.first,
        "total_s": total,
        "bytes": src_probe.bytes,
        "buffers": src_probe.buffers,
        "max_stall_s": src_probe.max_gap,
        "max_stall_end_s": src_probe.max_gap_end,
        "throughput_mib_s": src_probe.bytes / total / 2**20,
        "peak_rss_mib": peak_rss_mib(),
        "base_rss_mib": base_rss,
        "cpu_s": cpu,
        "playing_log_s": playing_log_s,
        "playing_monotonic_s": t0[0],
    }
    if stop_after:
        result["stopped"] = stop_after if msg.type == Gst.MessageType.APPLICATION else None
    if decode:
        result["first_frame_s"] = frame_probe.first
        result["frames"] = frame_probe.buffers
    if sha256:
        result["sha256"] = src_probe.digest.hexdigest()
    return result


def format_error(msg):
    err, debug = msg.parse_error()
    return f"{msg.src.get_name()}: {err.message} ({debug})"


def first_error(bus):
    msg = bus.pop_filtered(Gst.MessageType.ERROR)
    return format_error(msg) if msg else None


def main():
    p = parser("Run one pipeline to EOS and print its figures as JSON.", "souphttpsrc location=URL",
               "seconds to wait for EOS", timeout=300.0)
    p.add_argument("--decode", action="store_true", help="decodebin ! fakesink instead of fakesink")
    p.add_argument("--realtime", type=int, default=0, metavar="BYTES_PER_S",
                   help="consume at this rate on the pipeline clock (identity datarate sync)")
    p.add_argument("--sha256", action="store_true", help="hash the bytes the source pushed")
    p.add_argument("--stop-after", choices=("first-buffer", "first-frame"),
                   help="end the run there instead of at EOS")
    args = p.parse_args()
    if args.stop_after == "first-frame" and not args.decode:
        p.error("--stop-after first-frame needs --decode")
    Gst.init(None)
    # GStreamer's debug-log timestamps count from gst_init(); taking the clock
    # right after it gives the same zero to within microseconds.
    log_epoch = Gst.util_get_timestamp()
    print_result("measure.py", lambda: run(args.source, args.decode, args.timeout, log_epoch,
                                           args.realtime, args.sha256, args.stop_after))


if __name__ == "__main__":
    main()
