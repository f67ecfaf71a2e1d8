#!/usr/bin/python3
"""Many streams in one process: N pipelines

    SOURCE location=URL&s=I [PROPS] ! fakesink sync=false      (I = 0..N-1)

in this one process, all set to PLAYING at once, each reading the same file
from the same origin under its own query tag (URL must have a query, e.g.
http://127.0.0.1:PORT/f.bin?run=m-0; stream I adds &s=I, so the origin's log
tells the streams apart). Prints one JSON object.

    many.py --source prefetchsrc|souphttpsrc --url URL [--streams 32]
            [--props "max-host-connections=32 ..."] [--size BYTES]
            [--sha256 HEX] [--timeout S]

Output keys: streams, total_s (the first set_state(PLAYING) to the last
EOS), stream_min_mib_s, stream_mean_mib_s, stream_min_ratio (the slowest
stream's throughput over the mean; a stream's throughput is its bytes over
its own PLAYING-to-EOS time), exact (streams whose bytes, counted and hashed
in a probe on the source's src pad, match --size and --sha256), exact_pct,
bytes, peak_rss_mib (ru_maxrss of this process: Python, GStreamer, N
pipelines), base_rss_mib (the same with the N pipelines built, before
PLAYING), threads_base (threads of this process then), threads_peak (most
threads seen; /proc/self/task sampled every 20 ms until the last EOS),
threads_streaming (of those, GStreamer's streaming threads: a pad task each,
named after its pad, "...:src"), threads_glib (GLib's own helpers, shared by
whatever runs in the process: its worker pool "pool-*", "gmain", "gdbus",
"dconf worker"), other_threads (threads_peak - streaming - GLib's - this
script's two, the main thread and the sampler (named "many-sampler"): what
the sources run besides a streaming thread each, e.g. an I/O thread per
element, or a shared engine's few), thread_names ({name: count} at the
peak), cpu_s, errors (messages of streams that failed).

Exit status 1 if a stream fails or one does not end within --timeout.
"""

import argparse
import hashlib
import json
import os
import resource
import sys
import threading
import time
from collections import Counter

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

MIB = 1 << 20
GLIB_THREADS = ("pool-", "gmain", "gdbus", "dconf worker")  # names GLib gives its helpers


def thread_names():
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass  # the thread ended while we looked
    return names


class Sampler(threading.Thread):
    """Samples this process's threads until stopped; keeps the peak."""

    def __init__(self, interval=0.02):
        super().__init__(daemon=True)
        self.interval = interval
        self.stop = threading.Event()
        self.peak = []

    def run(self):
        try:  # so the count can leave this thread out by name
            with open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as f:
                f.write("many-sampler")
        except OSError:
            pass
        while not self.stop.is_set():
            names = thread_names()
            if len(names) > len(self.peak):
                self.peak = names
            self.stop.wait(self.interval)


class Stream:
    """One pipeline; its probe counts and hashes what the source pushes."""

    def __init__(self, description):
        self.pipeline = Gst.parse_launch(f"{description} name=src ! fakesink sync=false")
        self.digest = hashlib.sha256()
        self.bytes = 0
        self.t_start = self.t_end = None
        self.error = None
        pad = self.pipeline.get_by_name("src").get_static_pad("src")
        pad.add_probe(Gst.PadProbeType.BUFFER, self.probe)

    def probe(self, pad, info):
        buf = info.get_buffer()
        ok, mapped = buf.map(Gst.MapFlags.READ)
        if ok:
            self.digest.update(mapped.data)
            self.bytes += mapped.size
            buf.unmap(mapped)
        return Gst.PadProbeReturn.OK


def run(args):
    sep = "&" if "?" in args.url else "?"
    streams = [Stream(f"{args.source} location={args.url}{sep}s={i} {args.props}".strip())
               for i in range(args.streams)]
    loop = GLib.MainLoop()
    pending = [len(streams)]

    def on_message(bus, msg, stream):
        if msg.type in (Gst.MessageType.EOS, Gst.MessageType.ERROR) and stream.t_end is None:
            stream.t_end = time.monotonic()
            if msg.type == Gst.MessageType.ERROR:
                err, debug = msg.parse_error()
                stream.error = f"{msg.src.get_name()}: {err.message} ({debug})"
            pending[0] -= 1
            if not pending[0]:
                loop.quit()

    for s in streams:
        bus = s.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", on_message, s)
    for s in streams:  # built and in READY: what exists before any transfer
        s.pipeline.set_state(Gst.State.READY)
    threads_base = len(thread_names())
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    sampler = Sampler()
    sampler.start()
    t0 = time.monotonic()
    for s in streams:
        s.t_start = time.monotonic()
        if s.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            s.t_end, s.error = time.monotonic(), "could not set PLAYING"
            pending[0] -= 1
    timed_out = []
    if pending[0]:
        def timeout():
            timed_out.append(True)
            loop.quit()
        GLib.timeout_add(int(args.timeout * 1000), timeout)
        loop.run()
    t_last = time.monotonic()
    sampler.stop.set()
    sampler.join()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    for s in streams:
        s.pipeline.set_state(Gst.State.NULL)
    if timed_out:
        for s in streams:
            if s.t_end is None:
                s.error = f"no EOS within {args.timeout} s ({s.bytes} bytes)"
    rates = [s.bytes / (s.t_end - s.t_start) / MIB for s in streams
             if s.error is None and s.t_end > s.t_start]
    mean = sum(rates) / len(rates) if rates else None
    exact = sum(s.error is None and (args.size is None or s.bytes == args.size)
                and (args.sha256 is None or s.digest.hexdigest() == args.sha256)
                for s in streams)
    peak = sampler.peak
    streaming = sum(name.endswith(":src") for name in peak)
    glib = sum(name.startswith(GLIB_THREADS) for name in peak)
    own = 1 + ("many-sampler" in peak)  # the main thread and the sampler
    return {
        "streams": len(streams),
        "source": streams[0].pipeline.get_by_name("src").get_factory().get_name(),
        "total_s": t_last - t0,
        "stream_min_mib_s": min(rates) if rates else None,
        "stream_mean_mib_s": mean,
        "stream_min_ratio": min(rates) / mean if rates and mean else None,
        "exact": exact,
        "exact_pct": 100.0 * exact / len(streams),
        "bytes": sum(s.bytes for s in streams),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "base_rss_mib": base_rss,
        "threads_base": threads_base,
        "threads_peak": len(peak),
        "threads_streaming": streaming,
        "threads_glib": glib,
        "other_threads": len(peak) - streaming - glib - own,
        "thread_names": dict(Counter(peak).most_common()),
        "cpu_s": (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
        "errors": [f"stream {i}: {s.error}" for i, s in enumerate(streams) if s.error],
    }


def main():
    p = argparse.ArgumentParser(description="N pipelines of one source in one process.")
    p.add_argument("--source", required=True, help="prefetchsrc or souphttpsrc")
    p.add_argument("--url", required=True, help="the file; stream I adds &s=I to the query")
    p.add_argument("--streams", type=int, default=32)
    p.add_argument("--props", default="", help="more source properties, e.g. "
                                               "'max-host-connections=32'")
    p.add_argument("--size", type=int, help="expected bytes per stream")
    p.add_argument("--sha256", help="expected SHA-256 of each stream's bytes")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds for all to end")
    args = p.parse_args()
    if args.streams < 1:
        p.error("--streams must be >= 1")
    Gst.init(None)
    try:
        result = run(args)
    except GLib.Error as e:
        print(f"many.py: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(result))
    if result["errors"]:
        print("many.py: " + "; ".join(result["errors"][:3])
              + (f" (and {len(result['errors']) - 3} more)" if len(result["errors"]) > 3 else ""),
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
