#!/usr/bin/python3
"""Full-size figures for a bad network: prefetchsrc beside
souphttpsrc, with default properties, on

  outage-20   the network passes nothing from 1 s to 21 s (no FIN, no RST;
              connections opened meanwhile are accepted and never answered;
              flows open during the gap stay dead afterwards), in front of an
              origin at 4 MiB/s per request serving 128 MiB
  outage-70   the same, from 1 s to 71 s: longer than prefetchsrc's patience
              ((retries + 1) x timeout = 60 s by default)
  trickle     an origin that sends 1 byte a second

    tests/bench/outage.py --plugin-dir build/plugin [--cases outage-20,outage-70,trickle]

Each run is `SRC location=... ! appsink` in this process (GStreamer's Python
bindings); it prints, per element: how it ended (EOS with the bytes' SHA-256
checked against the file, or the error's domain, code and message), the
wall time, and the reader's longest wait (the longest gap between two
buffers, from the start to the first, or from the last to the end). A run that neither ends nor errs
is stopped after --guard seconds and reported as a hang. The proxy and the
origin (tests/bench/origin.py) run on 127.0.0.1 only.
"""

import argparse
import hashlib
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MiB = 1024 * 1024


class OutageProxy:
    """A TCP proxy whose network can go down (see the module docstring)."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.down = False
        self.stop = False
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.threads = []
        self.held = []  # sockets of dead flows, kept open (no FIN, no RST)
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            if self.down:
                self.held.append(c)  # accepted, never answered
                continue
            u = socket.create_connection(self.target)
            t = threading.Thread(target=self._flow, args=(c, u), daemon=True)
            t.start()
            self.threads.append(t)

    def _flow(self, c, u):
        peer = {c: u, u: c}
        while not self.stop:
            if self.down:  # open during the outage: dead for good
                self.held += [c, u]
                return
            r, _, _ = select.select([c, u], [], [], 0.1)
            if self.down:
                continue
            for s in r:
                try:
                    data = s.recv(256 * 1024)
                except OSError:
                    data = b""
                if not data:
                    c.close()
                    u.close()
                    return
                try:
                    peer[s].sendall(data)
                except OSError:
                    c.close()
                    u.close()
                    return

    def close(self):
        self.stop = True
        self.accepter.join()
        for s in self.held:
            s.close()


def start_origin(root, rate):
    port_file = os.path.join(root, "port")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "origin.py"), "--root", root,
                             "--rate", str(rate), "--port-file", port_file])
    for _ in range(100):
        if os.path.exists(port_file) and open(port_file).read().strip():
            return proc, int(open(port_file).read())
        time.sleep(0.05)
    raise RuntimeError("origin did not start")


def run(Gst, factory, uri, data, digest, size, guard):
    """One element's run: (outcome, wall seconds, longest wait seconds)."""
    pipe = Gst.parse_launch(f"{factory} name=src location={uri} ! appsink name=sink sync=false")
    sink = pipe.get_by_name("sink")
    h = hashlib.sha256()
    got = [0]
    last = [time.monotonic()]
    longest = [0.0]

    def on_sample(s):
        buf = s.emit("pull-sample").get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        h.update(info.data)
        got[0] += info.size
        buf.unmap(info)
        now = time.monotonic()
        longest[0] = max(longest[0], now - last[0])
        last[0] = now
        return Gst.FlowReturn.OK

    sink.set_property("emit-signals", True)
    sink.connect("new-sample", on_sample)
    start = time.monotonic()
    last[0] = start
    pipe.set_state(Gst.State.PLAYING)
    msg = pipe.get_bus().timed_pop_filtered(int(guard * Gst.SECOND),
                                            Gst.MessageType.EOS | Gst.MessageType.ERROR)
    end = time.monotonic()
    wall = end - start
    longest[0] = max(longest[0], end - last[0])  # the wait that ended the run
    if msg is None:
        outcome = f"hang: no EOS or error in {guard:.0f} s ({got[0]} B came)"
    elif msg.type == Gst.MessageType.ERROR:
        err, dbg = msg.parse_error()
        domains = {"gst-resource-error-quark": ("RESOURCE", Gst.ResourceError),
                   "gst-stream-error-quark": ("STREAM", Gst.StreamError)}
        name, enum = domains.get(err.domain, (str(err.domain), None))
        code = enum(err.code).value_nick.upper().replace("-", "_") if enum else str(err.code)
        prefix = hashlib.sha256(data[:got[0]]).hexdigest() == h.hexdigest()
        outcome = (f"error {name}/{code} after {got[0]} of {size} B (those "
                   f"{'exact' if prefix else 'WRONG'}): {err.message}")
    else:
        exact = got[0] == size and h.hexdigest() == digest
        outcome = f"EOS, bytes {'exact' if exact else 'WRONG'} ({got[0]} B)"
    pipe.set_state(Gst.State.NULL)
    return outcome, wall, longest[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--cases", default="outage-20,outage-70,trickle")
    ap.add_argument("--elements", default="prefetchsrc,souphttpsrc")
    ap.add_argument("--guard", type=float, default=150)
    args = ap.parse_args()
    os.environ["GST_PLUGIN_PATH"] = os.path.abspath(args.plugin_dir)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "no_proxy"):
        os.environ.pop(k, None)
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
    Gst.init(None)

    with tempfile.TemporaryDirectory() as root:
        size = 128 * MiB
        data = hashlib.sha256(b"outage").digest() * (size // 32)
        with open(os.path.join(root, "f.bin"), "wb") as f:
            f.write(data)
        digest = hashlib.sha256(data).hexdigest()
        print("| case | element | outcome | wall | reader's longest wait |")
        print("|---|---|---|---|---|")
        for case in args.cases.split(","):
            rate = 1 if case == "trickle" else 4 * MiB
            origin, port = start_origin(root, rate)
            try:
                for factory in args.elements.split(","):
                    proxy = OutageProxy(port)
                    timer = None
                    if case.startswith("outage-"):
                        gap = float(case.split("-")[1])

                        def outage(p=proxy, gap=gap):
                            time.sleep(1)
                            p.down = True
                            time.sleep(gap)
                            p.down = False
                        timer = threading.Thread(target=outage, daemon=True)
                        timer.start()
                    uri = f"http://127.0.0.1:{proxy.port}/f.bin"
                    outcome, wall, longest = run(Gst, factory, uri, data, digest, size, args.guard)
                    if timer:
                        timer.join()
                    proxy.close()
                    print(f"| {case} | {factory} | {outcome} | {wall:.1f} s | {longest:.1f} s |",
                          flush=True)
            finally:
                origin.terminate()
                origin.wait()
                os.remove(os.path.join(root, "port"))


if __name__ == "__main__":
    main()
