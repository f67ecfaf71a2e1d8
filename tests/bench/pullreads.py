#!/usr/bin/python3
"""Random pull-mode reads from a source, timed and checked, printed as one
JSON object.

    pullreads.py [--reads 200] [--seed N] [--min 16] [--max 300000]
                 [--timeout S] --file LOCAL-COPY SOURCE-DESCRIPTION

SOURCE-DESCRIPTION is one source element with its properties (e.g.
"prefetchsrc location=URL concurrency=4 block-size=1048576"); it must offer
pull mode (souphttpsrc does not). --file is a local copy of the resource.

What a demuxer in pull mode does: a sink pad of our own is linked to the
source's src pad, the source goes to READY, the scheduling query is asked
(prefetchsrc answers it after the first response, which gives the size and
shows that Range works) and must offer PULL (seekable); the sink pad is then
activated in pull mode, which activates the source's pad. Then --reads times
gst_pad_pull_range(offset, size) with a seeded random offset in [0, size) and
a size drawn log-uniformly from --min..--max bytes (as many small reads as
large ones, like a demuxer's header probes and sample reads); each buffer must
be exactly min(size, file size - offset) bytes, carry OFFSET == offset and
hold the file's bytes there.

Output keys: reads, exact, all_exact, median_s, p90_s, max_s (per read),
total_s (activation included), activate_s (query and activation), requests and
cache_hits (from the element's `stats` when it has one), latencies_s.

Errors (no PULL offered, activation failed, a flow error, a read over
--timeout): the message goes to stderr and the exit status is 1.
"""

import math
import random
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from benchutil import latency_summary, parser, print_result, stat  # noqa: E402


def watchdog(timeout, what):
    """Exits the process if a blocking call does not return in time."""
    def fire():
        print(f"pullreads.py: {what[0]} took over {timeout} s", file=sys.stderr)
        sys.stderr.flush()
        import os
        os._exit(1)
    timer = threading.Timer(timeout, fire)
    timer.daemon = True
    timer.start()
    return timer


def run(source, data, reads, seed, lo, hi, timeout):
    size = len(data)
    src = Gst.parse_launch(source)
    if not isinstance(src, Gst.Element) or isinstance(src, Gst.Bin):
        raise RuntimeError("the description must be one source element")
    srcpad = src.get_static_pad("src")
    sinkpad = Gst.Pad.new("sink", Gst.PadDirection.SINK)
    if srcpad.link(sinkpad) != Gst.PadLinkReturn.OK:
        raise RuntimeError("could not link a sink pad to the source")
    if src.set_state(Gst.State.READY) == Gst.StateChangeReturn.FAILURE:
        raise RuntimeError("could not set READY")
    rng = random.Random(seed)
    latencies, exact = [], 0
    what = ["the scheduling query"]
    t0 = time.monotonic()
    try:
        timer = watchdog(timeout, what)
        query = Gst.Query.new_scheduling()
        if not sinkpad.peer_query(query) or not query.has_scheduling_mode_with_flags(
                Gst.PadMode.PULL, Gst.SchedulingFlags.SEEKABLE):
            raise RuntimeError("the source does not offer seekable pull mode")
        what[0] = "pull-mode activation"
        if not sinkpad.activate_mode(Gst.PadMode.PULL, True):
            raise RuntimeError("could not activate pull mode")
        timer.cancel()
        activate = time.monotonic() - t0
        for i in range(reads):
            offset = rng.randrange(size)
            length = int(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            expected = min(length, size - offset)
            what[0] = f"read {i} ({length} bytes at {offset})"
            timer = watchdog(timeout, what)
            t = time.monotonic()
            ret, buf = sinkpad.pull_range(offset, length)
            latencies.append(time.monotonic() - t)
            timer.cancel()
            if ret != Gst.FlowReturn.OK:
                raise RuntimeError(f"{what[0]}: {Gst.flow_get_name(ret)}")
            got = buf.extract_dup(0, buf.get_size())
            ok = (buf.get_size() == expected and buf.offset == offset
                  and got == data[offset:offset + expected])
            exact += ok
            if not ok:
                print(f"pullreads.py: {what[0]}: {buf.get_size()} bytes at OFFSET {buf.offset}, "
                      f"{'right' if got == data[offset:offset + len(got)] else 'wrong'} bytes",
                      file=sys.stderr)
        total = time.monotonic() - t0
        requests, hits = stat(src, "requests-started"), stat(src, "cache-hits")
    finally:
        sinkpad.activate_mode(Gst.PadMode.PULL, False)
        src.set_state(Gst.State.NULL)
    return {
        "reads": reads, "exact": exact, "all_exact": exact == reads,
        **latency_summary(latencies), "total_s": total, "activate_s": activate,
        "requests": requests, "cache_hits": hits, "latencies_s": latencies,
    }


def main():
    p = parser("Time random pull-mode reads from a source.", "prefetchsrc location=URL",
               "seconds per read", file_help="local copy of the resource")
    p.add_argument("--reads", type=int, default=200)
    p.add_argument("--seed", type=int, default=1, help="which offsets and sizes")
    p.add_argument("--min", type=int, default=16, help="smallest read, bytes")
    p.add_argument("--max", type=int, default=300000, help="largest read, bytes")
    args = p.parse_args()
    with open(args.file, "rb") as f:
        data = f.read()
    if not data or args.reads < 1 or not 1 <= args.min <= args.max:
        p.error("need a non-empty --file, --reads >= 1 and 1 <= --min <= --max")
    Gst.init(None)
    print_result("pullreads.py", lambda: run(args.source, data, args.reads, args.seed, args.min, args.max, args.timeout))


if __name__ == "__main__":
    main()
