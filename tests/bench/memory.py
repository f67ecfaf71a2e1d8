#!/usr/bin/python3
"""Memory bound with a slow consumer: the look-ahead budget holds.

    memory.py [--size-mib 256] [--sleep-us 1000] [--consumer-mib-s R] [--queue]
              [--plugin-dir DIR] [--origin nginx|python] [--verify] [--timeout S]

Serves a generated file (default 256 MiB) from a private nginx
(tests/support/nginx/nginx.sh; or tests/bench/origin.py with --origin python)
and reads it, one pipeline per child process, through

    SOURCE ! [queue !] identity sleep-time=SLEEP_US ! fakesink sync=false

so that the consumer takes SLEEP_US (default 1 ms) per buffer, for

    souphttpsrc
    prefetchsrc concurrency=8 block-size=2097152   (lookahead-blocks default:
                                                   2 x concurrency = 16 blocks,
                                                   a 32 MiB budget)

It reports each child's peak RSS (ru_maxrss from wait4, i.e. of that process
alone; the origin is another process) and checks

    prefetchsrc_peak <= souphttpsrc_peak + 2 x budget + 32 MiB

Prints a table and PASS or FAIL; the exit status is 0 either way, 1 if a run
fails (error, timeout, wrong byte count or, with --verify, wrong SHA-256), 2
on bad arguments. Both sources push large buffers (souphttpsrc grows its
reads to MiBs, prefetchsrc pushes whole blocks once they are there), so 1 ms
per buffer is a fast consumer in bytes/s; --consumer-mib-s R makes the
consumer also sleep size/R per buffer (a consumer of R MiB/s, e.g. a player
at its bitrate), which is what makes a source fill its read-ahead. --queue puts a default `queue` (at most 200 buffers, 10 MB,
1 s) in front of the slow consumer, to see what a downstream queue adds.

Child mode (internal): memory.py --child SOURCE-DESCRIPTION prints one JSON
object: bytes, buffers, max_buffer, total_s, base_rss_mib, peak_rss_mib,
sha256 (with --verify).
"""

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NGINX_SH = REPO / "tests" / "support" / "nginx" / "nginx.sh"
ORIGIN_PY = REPO / "tests" / "bench" / "origin.py"
MIB = 1 << 20

BLOCK_SIZE = 2 * MIB
CONCURRENCY = 8
LOOKAHEAD_BLOCKS = 2 * CONCURRENCY  # the element's default (lookahead-blocks=0)
BUDGET = LOOKAHEAD_BLOCKS * BLOCK_SIZE


class MemoryBenchError(Exception):
    pass


# --------------------------------------------------------------------------- child


def child(source, sleep_us, consumer_mib_s, queue, verify, timeout):
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    Gst.init(None)
    mid = "queue ! " if queue else ""
    desc = (f"{source} name=src ! {mid}identity name=slow sleep-time={sleep_us} silent=true "
            "! fakesink sync=false")
    pipeline = Gst.parse_launch(desc)
    stats = {"bytes": 0, "buffers": 0, "max_buffer": 0, "offset_ok": True}
    digest = hashlib.sha256() if verify else None

    def probe(pad, info):
        buf = info.get_buffer()
        size = buf.get_size()
        if buf.offset != Gst.BUFFER_OFFSET_NONE and buf.offset != stats["bytes"]:
            stats["offset_ok"] = False
        stats["bytes"] += size
        stats["buffers"] += 1
        stats["max_buffer"] = max(stats["max_buffer"], size)
        if consumer_mib_s > 0:
            time.sleep(size / (consumer_mib_s * MIB))
        if digest is not None:
            ok, info_map = buf.map(Gst.MapFlags.READ)
            if ok:
                digest.update(info_map.data)
                buf.unmap(info_map)
        return Gst.PadProbeReturn.OK

    # On identity's sink pad: what reached the slow consumer, in order.
    pipeline.get_by_name("slow").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, probe)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.monotonic()
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        raise MemoryBenchError("could not set PLAYING")
    msg = pipeline.get_bus().timed_pop_filtered(int(timeout * Gst.SECOND),
                                                Gst.MessageType.EOS | Gst.MessageType.ERROR)
    total = time.monotonic() - t0
    pipeline.set_state(Gst.State.NULL)
    if msg is None:
        raise MemoryBenchError(f"no EOS within {timeout} s ({stats['bytes']} bytes)")
    if msg.type == Gst.MessageType.ERROR:
        err, debug = msg.parse_error()
        raise MemoryBenchError(f"{msg.src.get_name()}: {err.message} ({debug})")
    out = dict(stats, total_s=round(total, 2), base_rss_mib=round(base_rss, 1),
               peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    if digest is not None:
        out["sha256"] = digest.hexdigest()
    print(json.dumps(out))


# --------------------------------------------------------------------------- parent


def child_env(plugin_dir):
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["GST_PLUGIN_PATH"] = os.pathsep.join(filter(None, [str(plugin_dir),
                                                           env.get("GST_PLUGIN_PATH")]))
    return env


def find_plugin(plugin_dir):
    if plugin_dir:
        path = Path(plugin_dir)
        if not (path / "libgstprefetchsrc.so").exists():
            raise MemoryBenchError(f"--plugin-dir {path}: no libgstprefetchsrc.so")
        return path
    for build in ("build-bench", "build"):
        path = REPO / build / "plugin"
        if (path / "libgstprefetchsrc.so").exists():
            return path
    build = REPO / "build-bench"
    print(f"building the plugin into {build}", file=sys.stderr)
    for cmd in (["cmake", "-S", str(REPO), "-B", str(build), "-DPREFETCHSRC_TESTS=OFF"],
                ["cmake", "--build", str(build), "-j2"]):
        if subprocess.run(cmd, stdout=sys.stderr).returncode != 0:
            raise MemoryBenchError(f"plugin build failed: {' '.join(cmd)}")
    return build / "plugin"


def make_file(path, size):
    """Random bytes (incompressible, no pattern a cache could exploit); returns sha256."""
    digest = hashlib.sha256()
    chunk = 8 * MIB
    with open(path, "wb") as f:
        left = size
        while left:
            data = os.urandom(min(chunk, left))
            f.write(data)
            digest.update(data)
            left -= len(data)
    return digest.hexdigest()


class Origin:
    def __init__(self, kind, root, state):
        self.kind, self.root, self.state = kind, root, state
        self.proc = None
        self.port = None

    def __enter__(self):
        if self.kind == "nginx":
            done = subprocess.run([str(NGINX_SH), "start", str(self.root), str(self.state)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise MemoryBenchError(f"nginx.sh start failed: {done.stderr.strip()}")
            fields = dict(f.split("=", 1) for f in done.stdout.split() if "=" in f)
            self.port = int(fields["http"])
        else:
            port_file = Path(self.state) / "port"
            self.proc = subprocess.Popen([sys.executable, str(ORIGIN_PY), "--root", str(self.root),
                                          "--port", "0", "--port-file", str(port_file)])
            for _ in range(100):
                if port_file.exists() and port_file.read_text().strip():
                    self.port = int(port_file.read_text().strip())
                    break
                time.sleep(0.05)
            else:
                raise MemoryBenchError("origin.py did not report its port")
        return self

    def __exit__(self, *exc):
        if self.kind == "nginx":
            subprocess.run([str(NGINX_SH), "stop", str(self.root), str(self.state)],
                           capture_output=True)
        elif self.proc:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def url(self, name):
        return f"http://127.0.0.1:{self.port}/{name}"


def run_child_wait4(source, args, env):
    """Runs one pipeline in a child process; returns its JSON figures plus the
    child's own peak RSS as wait4() reports it (ru_maxrss of that process)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", source,
           "--sleep-us", str(args.sleep_us), "--consumer-mib-s", str(args.consumer_mib_s),
           "--timeout", str(args.timeout)]
    if args.queue:
        cmd.append("--queue")
    if args.verify:
        cmd.append("--verify")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped
        out.seek(0)
        err.seek(0)
        text, etext = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise MemoryBenchError(f"{source}: child failed ({proc.returncode}): {etext.strip()[-2000:]}")
    try:
        result = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        raise MemoryBenchError(f"{source}: no JSON from the child: {text!r} {etext!r}") from e
    result["wait4_maxrss_mib"] = round(ru.ru_maxrss / 1024, 1)
    return result


def main():
    p = argparse.ArgumentParser(description="Peak RSS of souphttpsrc vs prefetchsrc with a slow "
                                "consumer.")
    p.add_argument("--child", metavar="SOURCE", help=argparse.SUPPRESS)
    p.add_argument("--size-mib", type=int, default=256, help="file size in MiB (default 256)")
    p.add_argument("--sleep-us", type=int, default=1000,
                   help="consumer sleep per buffer in microseconds (default 1000)")
    p.add_argument("--consumer-mib-s", type=float, default=0.0,
                   help="also sleep size/R per buffer: a consumer of R MiB/s (default: off)")
    p.add_argument("--queue", action="store_true", help="a default queue before the consumer")
    p.add_argument("--origin", choices=("nginx", "python"), default="nginx")
    p.add_argument("--plugin-dir", help="directory with libgstprefetchsrc.so")
    p.add_argument("--verify", action="store_true", help="check the SHA-256 of what arrived")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per pipeline")
    args = p.parse_args()

    if args.child:
        try:
            child(args.child, args.sleep_us, args.consumer_mib_s, args.queue, args.verify, args.timeout)
        except Exception as e:  # noqa: BLE001 - any failure is the child's exit status
            print(f"memory.py child: {e}", file=sys.stderr)
            sys.exit(1)
        return

    if args.size_mib < 1:
        p.error("--size-mib must be >= 1")
    if args.origin == "nginx" and not Path("/usr/sbin/nginx").exists() and not shutil.which("nginx"):
        p.error("nginx is not installed (tests/run --deps-only), or use --origin python")
    try:
        plugin = find_plugin(args.plugin_dir)
        env = child_env(plugin)
        with tempfile.TemporaryDirectory(prefix="prefetchsrc-memory-") as tmp:
            root, state = Path(tmp) / "root", Path(tmp) / "state"
            root.mkdir()
            state.mkdir()
            size = args.size_mib * MIB
            print(f"generating {args.size_mib} MiB ...", file=sys.stderr)
            sha = make_file(root / "big.bin", size)
            rows = []
            with Origin(args.origin, root, state) as origin:
                url = origin.url("big.bin")
                configs = [
                    ("souphttpsrc", f"souphttpsrc location={url}"),
                    ("prefetchsrc", f"prefetchsrc location={url} concurrency={CONCURRENCY} "
                                    f"block-size={BLOCK_SIZE}"),
                ]
                for name, source in configs:
                    print(f"running {name} ...", file=sys.stderr)
                    r = run_child_wait4(source, args, env)
                    if r["bytes"] != size:
                        raise MemoryBenchError(f"{name}: {r['bytes']} bytes, expected {size}")
                    if not r["offset_ok"]:
                        raise MemoryBenchError(f"{name}: buffer offsets do not continue")
                    if args.verify and r.get("sha256") != sha:
                        raise MemoryBenchError(f"{name}: SHA-256 differs from the file's")
                    rows.append((name, r))
    except MemoryBenchError as e:
        print(f"memory.py: {e}", file=sys.stderr)
        sys.exit(1)

    figures = dict(rows)
    soup, pre = figures["souphttpsrc"], figures["prefetchsrc"]
    bound = soup["wait4_maxrss_mib"] + 2 * BUDGET / MIB + 32
    ok = pre["wait4_maxrss_mib"] <= bound
    consumer = ("queue ! " if args.queue else "") + f"identity sleep-time={args.sleep_us}"
    if args.consumer_mib_s > 0:
        consumer += f" (+ size / {args.consumer_mib_s:g} MiB/s)"
    print(f"{args.size_mib} MiB from {args.origin}, consumer: {consumer} ! fakesink")
    print(f"{'source':<12} {'peak RSS MiB':>12} {'base MiB':>9} {'over base':>9} "
          f"{'buffers':>8} {'max buf KiB':>11} {'time s':>7}")
    for name, r in rows:
        print(f"{name:<12} {r['wait4_maxrss_mib']:>12.1f} {r['base_rss_mib']:>9.1f} "
              f"{r['wait4_maxrss_mib'] - r['base_rss_mib']:>9.1f} {r['buffers']:>8} "
              f"{r['max_buffer'] / 1024:>11.0f} {r['total_s']:>7.1f}")
    print(f"budget = {LOOKAHEAD_BLOCKS} blocks x {BLOCK_SIZE // MIB} MiB = {BUDGET // MIB} MiB; "
          f"bound = souphttpsrc peak + 2 x budget + 32 MiB = {bound:.1f} MiB")
    print(f"{'PASS' if ok else 'FAIL'}: prefetchsrc peak {pre['wait4_maxrss_mib']:.1f} MiB "
          f"{'<=' if ok else '>'} {bound:.1f} MiB")


if __name__ == "__main__":
    main()
