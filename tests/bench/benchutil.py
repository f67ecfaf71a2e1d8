"""What the bench's probe scripts (measure.py, seeks.py, pullreads.py)
share: their common arguments, reading a counter of prefetchsrc's `stats`, and printing a run's
figures as one JSON line (or its error, exiting 1), with the summary of
its latencies."""
import argparse
import json
import statistics
import sys

from gi.repository import GLib


def stat(src, field):
    """A uint64 counter of the source's `stats`; None for a source without them."""
    if src.find_property("stats") is None:
        return None
    ok, value = src.get_property("stats").get_uint64(field)
    return value if ok else None


def parser(description, source_example, timeout_help, timeout=60.0, file_help=None):
    """The arguments every probe takes: the source's description, a timeout
    and, with `file_help`, the local copy of the resource (--file)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("source", help=f"source element description, e.g. '{source_example}'")
    if file_help:
        p.add_argument("--file", required=True, help=file_help)
    p.add_argument("--timeout", type=float, default=timeout, help=timeout_help)
    return p


def latency_summary(latencies):
    """Median, 90th percentile, least and most of a list of seconds."""
    ordered = sorted(latencies)
    return {"median_s": statistics.median(ordered),
            "p90_s": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
            "min_s": ordered[0], "max_s": ordered[-1]}


def print_result(script, run):
    """Prints run()'s result as JSON; a RuntimeError or GLib.Error goes to
    stderr, named by `script`, and the process exits 1."""
    try:
        result = run()
    except (RuntimeError, GLib.Error) as e:
        print(f"{script}: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(result))
