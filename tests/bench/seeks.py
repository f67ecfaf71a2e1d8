#!/usr/bin/python3
"""Seek-to-first-buffer: random flushing byte seeks on one pipeline, timed,
printed as one JSON object.

    seeks.py [--seeks 40] [--seed N] [--flow BYTES] [--timeout S]
             --file LOCAL-COPY SOURCE-DESCRIPTION

SOURCE-DESCRIPTION is the source element with its properties (as for
measure.py), followed by `fakesink sync=false`. --file is a local copy of the
resource the source reads: it gives the size (the range of the offsets) and
the bytes each first buffer is compared with.

After PLAYING, the script waits for the first buffer and for --flow bytes
(default 256 kB) after it; then, --seeks times, it picks a seeded random byte
offset in [0, size), calls gst_element_seek(FLUSH | ACCURATE, BYTES, offset)
on the pipeline and times the call to the first buffer that leaves the
source's src pad after the seek's FLUSH_STOP (buffers of the old position
still in flight before the flush are not counted). That buffer must start at
the offset (GST_BUFFER_OFFSET == offset) and hold the file's bytes there,
else the seek counts as inexact. The next seek waits until --flow bytes (or
the rest of the file) went by after that first buffer, so seeks are not
back to back: the source is streaming when each seek comes, as in a player.
Those --flow bytes are checked too: each buffer must continue where the
previous one ended (its offset, when set, and the file's bytes there).
Offsets depend only on --seed and the size, so every source meets the same
seeks in the same order.

Output keys: seeks, exact (seeks whose first buffer started at the offset
with the right bytes), exact_flow (seeks that were exact and whose next
--flow bytes, or the rest of the file, were the file's, in order),
all_exact, median_s, p90_s, max_s, min_s (seek call to first buffer), seek_call_median_s (how long gst_element_seek itself blocked),
latencies_s (in order), offsets, total_s, requests (when the source has a
`stats` property with requests-started), cache_hits (likewise).

Errors (pipeline error, a seek refused, no first buffer within --timeout):
the message goes to stderr and the exit status is 1.
"""

import random
import statistics
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from benchutil import latency_summary, parser, print_result, stat  # noqa: E402


class Watch:
    """Pad probe on the source's src pad (buffers and FLUSH_STOP). The main
    thread arms it before each seek and waits on `cond`."""

    def __init__(self, data):
        self.data = data
        self.cond = threading.Condition()
        self.target = None  # offset the armed seek wants
        self.flushed = False  # FLUSH_STOP seen since arming
        self.t_seek = 0.0
        self.first_t = None  # time of the first buffer after the flush
        self.first_offset = None
        self.first_ok = None
        self.after = 0  # bytes since (and including) that first buffer
        self.flow = 0  # bytes from the offset on that are checked
        self.flow_ok = None  # every checked byte was the file's, in order

    def arm(self, target, flush, flow=0):
        with self.cond:
            self.target, self.flushed = target, not flush
            self.first_t = self.first_offset = self.first_ok = None
            self.after, self.flow, self.flow_ok = 0, flow, None
            self.t_seek = time.monotonic()

    def __call__(self, pad, info):
        if info.type & Gst.PadProbeType.EVENT_FLUSH:
            event = info.get_event()
            if event.type == Gst.EventType.FLUSH_STOP:
                with self.cond:
                    self.flushed = True
            return Gst.PadProbeReturn.OK
        buf = info.get_buffer()
        now = time.monotonic()
        with self.cond:
            if not self.flushed or self.target is None:
                return Gst.PadProbeReturn.OK  # still the old position
            size = buf.get_size()
            pos = self.target + self.after  # where this buffer should start
            if self.first_t is None:
                self.first_t = now
                self.first_offset = buf.offset
                got = buf.extract_dup(0, size)
                self.first_ok = (buf.offset == self.target
                                 and got == self.data[self.target:self.target + size])
                self.flow_ok = self.first_ok
            elif self.flow_ok and self.after < self.flow:
                got = buf.extract_dup(0, min(size, self.flow - self.after))
                self.flow_ok = (buf.offset in (pos, Gst.BUFFER_OFFSET_NONE)
                                and got == self.data[pos:pos + len(got)])
            self.after += size
            self.cond.notify_all()
        return Gst.PadProbeReturn.OK

    def wait(self, flow, deadline, bus):
        """Until the first buffer came and `flow` bytes after it (fewer at the
        end of the file); polls the bus for errors."""
        while True:
            with self.cond:
                if self.first_t is not None and self.after >= flow:
                    return
                self.cond.wait(0.05)
                if self.first_t is not None and self.after >= flow:
                    return
            msg = bus.pop_filtered(Gst.MessageType.ERROR)
            if msg is not None:
                err, debug = msg.parse_error()
                raise RuntimeError(f"{msg.src.get_name()}: {err.message} ({debug})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no first buffer at {self.target} (or not {flow} bytes "
                                   f"after it) within the timeout")


def run(source, data, seeks, seed, flow, timeout):
    size = len(data)
    pipeline = Gst.parse_launch(f"{source} name=benchsrc ! fakesink name=benchsink sync=false")
    src = pipeline.get_by_name("benchsrc")
    watch = Watch(data)
    src.get_static_pad("src").add_probe(
        Gst.PadProbeType.BUFFER | Gst.PadProbeType.EVENT_FLUSH, watch)
    bus = pipeline.get_bus()
    rng = random.Random(seed)
    offsets = [rng.randrange(size) for _ in range(seeks)]
    latencies, call_times, exact, exact_flow = [], [], 0, 0
    t0 = time.monotonic()
    watch.arm(0, flush=False)
    try:
        if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            raise RuntimeError("could not set PLAYING")
        watch.wait(min(flow, size), time.monotonic() + timeout, bus)
        for offset in offsets:
            watch.arm(offset, flush=True, flow=min(flow, size - offset))
            ok = pipeline.seek_simple(Gst.Format.BYTES,
                                      Gst.SeekFlags.FLUSH | Gst.SeekFlags.ACCURATE, offset)
            call_times.append(time.monotonic() - watch.t_seek)
            if not ok:
                raise RuntimeError(f"seek to {offset} refused")
            watch.wait(min(flow, size - offset), time.monotonic() + timeout, bus)
            latencies.append(watch.first_t - watch.t_seek)
            exact += bool(watch.first_ok)
            exact_flow += bool(watch.flow_ok)
            if not watch.first_ok:
                print(f"seeks.py: seek to {offset}: first buffer at {watch.first_offset}",
                      file=sys.stderr)
            elif not watch.flow_ok:
                print(f"seeks.py: seek to {offset}: wrong bytes within {flow} after it",
                      file=sys.stderr)
        total = time.monotonic() - t0
        requests, hits = stat(src, "requests-started"), stat(src, "cache-hits")
    finally:
        pipeline.set_state(Gst.State.NULL)
    return {
        "seeks": seeks, "exact": exact, "exact_flow": exact_flow, "all_exact": exact == seeks,
        **latency_summary(latencies),
        "seek_call_median_s": statistics.median(call_times),
        "latencies_s": latencies, "offsets": offsets, "total_s": total,
        "requests": requests, "cache_hits": hits,
    }


def main():
    p = parser("Time random flushing byte seeks to the first buffer.", "souphttpsrc location=URL",
               "seconds per seek", file_help="local copy of the resource (size and bytes)")
    p.add_argument("--seeks", type=int, default=40)
    p.add_argument("--seed", type=int, default=1, help="which offsets")
    p.add_argument("--flow", type=int, default=256 * 1024,
                   help="bytes to let through after each first buffer before the next seek")
    args = p.parse_args()
    with open(args.file, "rb") as f:
        data = f.read()
    if not data or args.seeks < 1:
        p.error("need a non-empty --file and --seeks >= 1")
    Gst.init(None)
    print_result("seeks.py", lambda: run(args.source, data, args.seeks, args.seed, args.flow, args.timeout))


if __name__ == "__main__":
    main()
