#!/usr/bin/python3
"""Scenario k of tests/bench/run (the disk cache, cold and warm): the plays
it makes, what the origin's log says about each, and the player itself.

As a script it plays one pipeline to EOS and prints its figures as one
JSON object:

    diskcache.py [--sha256] [--timeout S] DESCRIPTION

DESCRIPTION is everything before the sink, e.g.
    "prefetchsrc location=URL disk-cache=DIR"
    "souphttpsrc location=URL ! queue2 ring-buffer-max-size=0
     temp-template=DIR/q2-XXXXXX use-buffering=true"   (one line)
and is followed by `fakesink sync=false`. Bytes are counted (and with
--sha256 hashed, in order) in a probe on the fakesink's sink pad, so a
chain (souphttpsrc ! queue2) is measured where its bytes leave it.
At EOS, before the pipeline stops, the `stats` of the pipeline's
prefetchsrc (if any) are read: their disk-* counters, bytes-received and
requests-started go out under "stats".

Output keys: first_buffer_s (first buffer at the sink), total_s (EOS),
bytes, buffers, throughput_mib_s, cpu_s (user + system of the process from
PLAYING to EOS), playing_monotonic_s (PLAYING on CLOCK_MONOTONIC, origin.py's
log clock), sha256 (with --sha256), stats.
All times are seconds from the call that sets PLAYING. Errors: the message
goes to stderr and the exit status is 1.

Imported (by tests/bench/run and run_test.py) it needs no GStreamer: the
plays of a run (PLAYS, sequences(), description()), the origin's figures
for one play (requests_between(), origin_figures()), the element's
(stats_figures()), the per-run ratios (add_ratios()) and what a cache
directory holds on disk (dir_bytes()).
"""

import os
from dataclasses import dataclass

MIB = 1 << 20
# The element's stats read at EOS (diskcache.py's output "stats").
STATS = ("disk-blocks-read", "disk-bytes-read", "disk-blocks-written", "disk-bytes-written",
         "disk-blocks-damaged", "disk-blocks-not-written", "disk-revalidations",
         "disk-not-modified", "disk-changed", "disk-offline", "bytes-received",
         "requests-started")
# Cache-Control of each origin of the scenario. "reval": no-cache, so every
# use of a cached copy is revalidated (one conditional request, 304): with
# validators only, the element would give the copy a heuristic lifetime of
# 10 % of the file's age, and the bench's files, made minutes before, would
# make a warm play fresh or stale by chance. "fresh": max-age=3600, a warm
# play sends nothing. "loop": the no-cache origin with no cap (loopback).
CACHE_CONTROL = {"reval": "no-cache", "fresh": "max-age=3600", "loop": "no-cache"}
DOWNLOAD_ROW = "souphttpsrc-queue2-download"


@dataclass(frozen=True)
class Play:
    row: str  # row key (the table's row and the checks' num/den)
    media: str  # which play of the row: cold, warm (the same again), off (cache off), "warm, hashed"
    seq: str  # plays of one sequence run back to back, in this order, on one cache dir
    origin: str  # "reval", "fresh" or "loop" (CACHE_CONTROL; loop: no cap, loopback file)
    source: str  # "prefetchsrc", "souphttpsrc" or DOWNLOAD_ROW: which --rows entry runs it
    cache: bool = False  # prefetchsrc with disk-cache=the sequence's directory
    hashed: bool = True  # hash what reaches the sink (exact %); else the count only
    warm_of: str = None  # media of the play this one's total is set against: warm / cold
    on_of: tuple = None  # (row, media) of the cache-off play: on / off
    # Processes playing it at once, into one DIR: its figures are the
    # slowest one's total and first buffer, the least exact one's exact %,
    # and the origin's for all of them (sent_ratio: body bytes / file size).
    together: int = 1


PLAYS = (
    # The cold cost's reference, the cache off (the element's defaults),
    # right before the cold play: the pair meets the same machine (a run's
    # plays span minutes of a shared machine's changing load).
    Play("prefetchsrc", "off", "disk", "reval", "prefetchsrc"),
    # The replay: cold, then warm from the same directory, revalidated.
    Play("prefetchsrc-disk", "cold", "disk", "reval", "prefetchsrc", cache=True,
         on_of=("prefetchsrc", "off")),
    Play("prefetchsrc-disk", "warm", "disk", "reval", "prefetchsrc", cache=True,
         warm_of="cold"),
    # The same on an origin that says max-age=3600: the warm play sends nothing.
    Play("prefetchsrc-disk-fresh", "cold", "fresh", "fresh", "prefetchsrc", cache=True),
    Play("prefetchsrc-disk-fresh", "warm", "fresh", "fresh", "prefetchsrc", cache=True,
         warm_of="cold"),
    # Two players of one file at once, into one directory: what one fetches
    # the other waits for and reads from disk.
    Play("prefetchsrc-disk-two", "two at once", "two", "reval", "prefetchsrc", cache=True,
         together=2),
    # Beside them: what replaying costs without the element's cache.
    Play("souphttpsrc", "cold", "soup", "reval", "souphttpsrc"),
    Play("souphttpsrc", "warm", "soup", "reval", "souphttpsrc", warm_of="cold"),
    Play(DOWNLOAD_ROW, "cold", "download", "reval", DOWNLOAD_ROW),
    Play(DOWNLOAD_ROW, "warm", "download", "reval", DOWNLOAD_ROW, warm_of="cold"),
    # Loopback, no cap: what the tier costs where the network costs nothing.
    # Timed plays count bytes only (a hash would cost the streaming thread
    # about as much as the transfer); an untimed hashed play from the warm
    # cache checks the bytes.
    Play("prefetchsrc-loopback", "off", "loop-disk", "loop", "prefetchsrc", hashed=False),
    Play("prefetchsrc-disk-loopback", "cold", "loop-disk", "loop", "prefetchsrc", cache=True,
         hashed=False, on_of=("prefetchsrc-loopback", "off")),
    Play("prefetchsrc-disk-loopback", "warm", "loop-disk", "loop", "prefetchsrc", cache=True,
         hashed=False, warm_of="cold"),
    Play("prefetchsrc-disk-loopback", "warm, hashed", "loop-disk", "loop", "prefetchsrc",
         cache=True),
)

LABELS = {
    "prefetchsrc-disk": "prefetchsrc disk-cache=DIR (origin: no-cache)",
    "prefetchsrc-disk-fresh": "prefetchsrc disk-cache=DIR (origin: max-age=3600)",
    "prefetchsrc-disk-two": "two processes at once: prefetchsrc disk-cache=DIR (origin: no-cache)",
    "prefetchsrc": "prefetchsrc (cache off)",
    "souphttpsrc": "souphttpsrc",
    DOWNLOAD_ROW: "souphttpsrc ! queue2 temp-template=DIR/q2-XXXXXX (download buffering)",
    "prefetchsrc-loopback": "loopback: prefetchsrc (cache off)",
    "prefetchsrc-disk-loopback": "loopback: prefetchsrc disk-cache=DIR",
}


def sequences(sources):
    """The plays of one run for the wanted sources (--rows), grouped in
    sequences (lists of Play, in PLAYS order), the sequences in PLAYS order."""
    seqs = {}
    for p in PLAYS:
        if p.source in sources:
            seqs.setdefault(p.seq, []).append(p)
    return list(seqs.values())


def description(play, url, cache_dir=None, temp_dir=None):
    """The pipeline before the sink for a play (diskcache.py's DESCRIPTION)."""
    if play.source == "souphttpsrc":
        return f"souphttpsrc location={url}"
    if play.source == DOWNLOAD_ROW:
        # Download buffering: queue2 keeping the whole stream in a temporary
        # file (removed when it stops), as playbin's download flag did before
        # GStreamer put a downloadbuffer there. (A downloadbuffer serves pull
        # mode; pushing to a fakesink, GStreamer 1.22's never sends EOS.)
        return (f"souphttpsrc location={url} ! queue2 ring-buffer-max-size=0 "
                f"temp-template={temp_dir}/q2-XXXXXX use-buffering=true")
    desc = f"prefetchsrc location={url}"
    if play.cache:
        desc += f" disk-cache={cache_dir}"
    return desc


def requests_between(reqs, started, ended):
    """Of a sequence's requests (one query tag: its plays share the URL),
    those of the play that ran from `started` to `ended` (CLOCK_MONOTONIC,
    origin.py's t_start): the plays run one after the other, so a request
    belongs to the play it reached the origin during."""
    return [r for r in reqs if started <= r["t_start"] <= ended]


def origin_figures(reqs):
    """What the origin's log says of one play (its requests, by tag):
    requests, 304s, conditional requests, body bytes sent (and in MiB)."""
    sent = sum(r.get("bytes", 0) for r in reqs)
    return {"requests": len(reqs),
            "responses_304": sum(r.get("status") == 304 for r in reqs),
            "conditional": sum("if_none_match" in r or "if_modified_since" in r for r in reqs),
            "statuses": sorted({r.get("status") for r in reqs if r.get("status") is not None}),
            "sent_bytes": sent, "sent_mib": sent / MIB}


def merge_together(results, file_bytes):
    """One result for the processes of a `together` play: the slowest one's
    times, the least exact one's exact %, their CPU summed, failed if any
    failed; the origin's figures are added after (all of their requests)."""
    failed = [r for r in results if r.get("failed")]
    if failed:
        return dict(failed[0])
    merged = dict(max(results, key=lambda r: r["total_s"]))
    merged["first_buffer_s"] = max(r["first_buffer_s"] for r in results)
    merged["exact_pct"] = min(r["exact_pct"] for r in results)
    merged["cpu_s"] = sum(r.get("cpu_s", 0) for r in results)
    merged["file_bytes"] = file_bytes
    return merged


def stats_figures(stats):
    """The element's disk counters in MiB (empty for a play without them)."""
    if not stats:
        return {}
    out = {}
    if stats.get("disk-bytes-read") is not None:
        out["disk_read_mib"] = stats["disk-bytes-read"] / MIB
    if stats.get("disk-bytes-written") is not None:
        out["disk_written_mib"] = stats["disk-bytes-written"] / MIB
    if stats.get("disk-blocks-not-written") is not None:
        out["disk_not_written"] = stats["disk-blocks-not-written"]
    return out


def add_ratios(run_results):
    """Within one run ({(row, media): result}): warm_ratio on each play with
    warm_of (its total / that play's), on_ratio on each with on_of (its total
    / the cache-off play's), sent_ratio on a together play (the origin's body
    bytes / the file's). A failed play on either side gives none."""
    by_row = {}
    for p in PLAYS:
        by_row[(p.row, p.media)] = p
    for key, r in run_results.items():
        p = by_row.get(key)
        if p is None or r.get("failed") or r.get("total_s") is None:
            continue
        if p.together > 1 and r.get("file_bytes") and r.get("sent_bytes") is not None:
            r["sent_ratio"] = r["sent_bytes"] / r["file_bytes"]
        for name, ref in (("warm_ratio", (p.row, p.warm_of) if p.warm_of else None),
                          ("on_ratio", p.on_of)):
            base = run_results.get(ref) if ref else None
            if base and not base.get("failed") and base.get("total_s"):
                r[name] = r["total_s"] / base["total_s"]


def dir_bytes(path):
    """Bytes allocated under a directory (st_blocks, so a sparse file counts
    what it holds): what a cache directory took on disk."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass  # removed while we looked
    return total


def play(description, timeout, sha256):
    """The script's run: DESCRIPTION ! fakesink to EOS (see the docstring)."""
    import hashlib
    import time

    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    from benchutil import stat
    from measure import FirstAndCount, cpu_seconds, format_error

    pipeline = Gst.parse_launch(f"{description} ! fakesink name=benchsink sync=false")
    t0 = [0.0]
    probe = FirstAndCount(t0, digest=hashlib.sha256() if sha256 else None)
    pipeline.get_by_name("benchsink").get_static_pad("sink").add_probe(
        Gst.PadProbeType.BUFFER, probe)
    source = None
    it = pipeline.iterate_recurse()
    while True:
        res, elem = it.next()
        if res != Gst.IteratorResult.OK:
            break
        factory = elem.get_factory()
        if factory and factory.get_name() == "prefetchsrc":
            source = elem
    cpu0 = cpu_seconds()
    t0[0] = time.monotonic()
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        pipeline.set_state(Gst.State.NULL)
        raise RuntimeError("could not set PLAYING")
    msg = pipeline.get_bus().timed_pop_filtered(
        int(timeout * Gst.SECOND), Gst.MessageType.EOS | Gst.MessageType.ERROR)
    total = time.monotonic() - t0[0]
    cpu = cpu_seconds() - cpu0
    stats = {f: stat(source, f) for f in STATS} if source is not None else None
    pipeline.set_state(Gst.State.NULL)
    if msg is None:
        raise RuntimeError(f"no EOS within {timeout} s")
    if msg.type == Gst.MessageType.ERROR:
        raise RuntimeError(format_error(msg))
    result = {"first_buffer_s": probe.first, "total_s": total, "bytes": probe.bytes,
              "buffers": probe.buffers, "throughput_mib_s": probe.bytes / total / MIB,
              "cpu_s": cpu, "playing_monotonic_s": t0[0],
              "stats": stats}
    if sha256:
        result["sha256"] = probe.digest.hexdigest()
    return result


def main():
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    from benchutil import parser, print_result

    p = parser("Play DESCRIPTION ! fakesink to EOS; print its figures as JSON.",
               "prefetchsrc location=URL disk-cache=DIR", "seconds to wait for EOS",
               timeout=900.0)
    p.add_argument("--sha256", action="store_true", help="hash the bytes that reach the sink")
    args = p.parse_args()
    Gst.init(None)
    print_result("diskcache.py", lambda: play(args.source, args.timeout, args.sha256))


if __name__ == "__main__":
    main()
