"""What the bench's probe scripts (measure.py, seeks.py, pullreads.py)
share: reading a counter of prefetchsrc's `stats`, and printing a run's
figures as one JSON line (or its error, exiting 1)."""
import json
import sys

from gi.repository import GLib


def stat(src, field):
    """A uint64 counter of the source's `stats`; None for a source without them."""
    if src.find_property("stats") is None:
        return None
    ok, value = src.get_property("stats").get_uint64(field)
    return value if ok else None


def print_result(script, run):
    """Prints run()'s result as JSON; a RuntimeError or GLib.Error goes to
    stderr, named by `script`, and the process exits 1."""
    try:
        result = run()
    except (RuntimeError, GLib.Error) as e:
        print(f"{script}: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(result))
