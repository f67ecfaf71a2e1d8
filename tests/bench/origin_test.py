#!/usr/bin/python3
"""Self-test of origin.py's load options (stdlib only, about 4 s).

    python3 tests/bench/origin_test.py

Starts origin.py on 127.0.0.1:0 and checks:
  --max-conns K   a request on the (K+1)th open connection gets 503 with
                  Retry-After and Connection: close, logged with status 503,
                  while the first K are served; once one closes, a new
                  connection is served again;
  --total-rate R  three bodies sent at once share R: together they take
                  about size/R, and each gets about a third (none finishes
                  early, as it would with a per-connection cap only);
  --stats-log     one conn line per connection with its tags, samples with
                  per-tag open/busy/sending counts;
  --slow-requests the K-th request of each query tag waits the scripted
                  time, counted per tag, the others their --ttfb draw;
  conditional GET If-None-Match with the file's ETag (with or without a
                  Range), or If-Modified-Since no older than its
                  Last-Modified (without If-None-Match), gets 304 with no
                  body on a connection that stays usable, logged with
                  status 304 and the validator sent; other validators get
                  the body; --cache-control VALUE is sent with 200, 206 and
                  304.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

ORIGIN = Path(__file__).resolve().with_name("origin.py")
MIB = 1 << 20


class Server:
    def __init__(self, root, *args):
        self.dir = Path(root)
        self.log = self.dir / "log.jsonl"
        self.stats = self.dir / "stats.jsonl"
        port_file = self.dir / "port"
        self.proc = subprocess.Popen(
            [sys.executable, str(ORIGIN), "--root", str(self.dir / "www"), "--port-file",
             str(port_file), "--log", str(self.log), "--stats-log", str(self.stats),
             "--sample-interval", "0.1", *args])
        deadline = time.monotonic() + 10
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("origin.py did not start")
            time.sleep(0.02)
        self.port = int(port_file.read_text())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def lines(self, path):
        return [json.loads(line) for line in path.read_text().splitlines()]


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    return s


def get(sock, path, extra=""):
    """One GET on an open socket; returns (status, headers, body)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = sock.recv(min(1 << 20, length - len(body)))
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    return status, headers, body


class OriginTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="origin-test-")
        www = Path(self.tmp.name) / "www"
        www.mkdir()
        self.data = os.urandom(MIB)
        (www / "f.bin").write_bytes(self.data)

    def tearDown(self):
        self.tmp.cleanup()

    def test_max_conns(self):
        server = Server(self.tmp.name, "--max-conns", "2", "--retry-after", "3")
        try:
            a = connect(server.port)
            self.assertEqual(get(a, "/f.bin?a", "Range: bytes=0-9\r\n")[0], 206)
            b = connect(server.port)
            self.assertEqual(get(b, "/f.bin?b", "Range: bytes=0-9\r\n")[0], 206)
            c = connect(server.port)
            status, headers, body = get(c, "/f.bin?c")
            self.assertEqual((status, headers.get("retry-after"), headers.get("connection"), body),
                             (503, "3", "close", b""))
            self.assertEqual(c.recv(1), b"")  # the server closed it
            c.close()
            # Still two open: a and b go on being served.
            self.assertEqual(get(a, "/f.bin?a", "Range: bytes=10-19\r\n")[2], self.data[10:20])
            b.close()
            time.sleep(0.2)  # the server notices b's close
            d = connect(server.port)
            self.assertEqual(get(d, "/f.bin?d")[2], self.data)
            a.close()
            d.close()
            time.sleep(0.2)
        finally:
            server.stop()
        log = server.lines(server.log)
        self.assertEqual([(r["query"], r["status"], r["open"]) for r in log],
                         [("a", 206, 1), ("b", 206, 2), ("c", 503, 3), ("a", 206, 2),
                          ("d", 200, 2)])
        conns = [r for r in server.lines(server.stats) if r["kind"] == "conn"]
        self.assertEqual(sorted(tuple(r["tags"]) for r in conns),
                         [("a",), ("b",), ("c",), ("d",)])

    def test_total_rate(self):
        rate = 4 * MIB  # three 1 MiB bodies: 0.75 s together
        server = Server(self.tmp.name, "--total-rate", str(rate))
        ends = {}
        try:
            t0 = time.monotonic()

            def fetch(tag):
                s = connect(server.port)
                body = get(s, f"/f.bin?{tag}")[2]
                ends[tag] = (time.monotonic() - t0, body == self.data)
                s.close()

            threads = [threading.Thread(target=fetch, args=(t,)) for t in "xyz"]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            time.sleep(0.2)
        finally:
            server.stop()
        self.assertTrue(all(ok for _, ok in ends.values()), ends)
        times = sorted(t for t, _ in ends.values())
        whole = 3 * MIB / rate
        self.assertGreater(times[-1], 0.9 * whole, ends)  # the cap holds over all
        self.assertLess(times[-1], 1.6 * whole, ends)
        self.assertGreater(times[0], 0.75 * whole, ends)  # fair: none ran ahead
        samples = [r for r in server.lines(server.stats) if r["kind"] == "sample"]
        # Turns of one chunk each (64 KiB, 16 ms here): all three send in a sample.
        self.assertTrue(any(all(r["tags"].get(t, {}).get("sending") == 1 for t in "xyz")
                            for r in samples), samples)

    def test_slow_requests(self):
        server = Server(self.tmp.name, "--ttfb", "fixed:0.05", "--slow-requests", "2,4:0.5")
        waits = []
        try:
            s = connect(server.port)
            # Tags a and b interleaved: each counts its own requests.
            for tag in ("a", "a", "b", "a", "b", "a"):
                t0 = time.monotonic()
                status, _, body = get(s, f"/f.bin?{tag}", "Range: bytes=0-9\r\n")
                waits.append((tag, time.monotonic() - t0))
                self.assertEqual((status, body), (206, self.data[:10]))
            s.close()
            time.sleep(0.2)
        finally:
            server.stop()
        log = server.lines(server.log)
        self.assertEqual([(r["query"], r["nth"], r.get("slow", False)) for r in log],
                         [("a", 1, False), ("a", 2, True), ("b", 1, False), ("a", 3, False),
                          ("b", 2, True), ("a", 4, True)])
        for r, (_, wait) in zip(log, waits):
            first_byte = r["t_first_byte"] - r["t_start"]
            if r.get("slow"):
                self.assertGreater(first_byte, 0.45, r)
                self.assertGreater(wait, 0.45, r)
            else:
                self.assertLess(first_byte, 0.3, r)
                self.assertLess(wait, 0.3, r)

    def test_conditional(self):
        server = Server(self.tmp.name, "--cache-control", "max-age=3600")
        try:
            s = connect(server.port)
            status, h, body = get(s, "/f.bin?a")
            self.assertEqual((status, body, h.get("cache-control")), (200, self.data, "max-age=3600"))
            etag, lm = h["etag"], h["last-modified"]
            older = "Thu, 01 Jan 1970 00:00:00 GMT"
            cases = [  # (headers, expected status, expected body)
                (f"If-None-Match: {etag}\r\n", 304, b""),
                (f"If-None-Match: {etag}\r\nRange: bytes=0-1048575\r\n", 304, b""),
                (f'If-None-Match: "x", W/{etag}\r\nRange: bytes=5-9\r\n', 304, b""),
                ("If-None-Match: *\r\n", 304, b""),
                ('If-None-Match: "other"\r\nRange: bytes=5-9\r\n', 206, self.data[5:10]),
                (f"If-Modified-Since: {lm}\r\nRange: bytes=0-9\r\n", 304, b""),
                (f"If-Modified-Since: {older}\r\nRange: bytes=0-9\r\n", 206, self.data[:10]),
                ("If-Modified-Since: garbage\r\nRange: bytes=0-9\r\n", 206, self.data[:10]),
                # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
                (f'If-None-Match: "other"\r\nIf-Modified-Since: {lm}\r\n', 200, self.data),
            ]
            for extra, want, want_body in cases:
                status, h, body = get(s, "/f.bin?b", extra)
                self.assertEqual((status, body), (want, want_body), extra)
                self.assertEqual(h.get("etag"), etag, extra)
                self.assertEqual(h.get("cache-control"), "max-age=3600", extra)
                if want == 304:
                    self.assertNotIn("content-length", h)
                    self.assertNotIn("content-range", h)
            # The connection is still in step after the 304s.
            self.assertEqual(get(s, "/f.bin?c", "Range: bytes=1-2\r\n")[2], self.data[1:3])
            s.close()
            time.sleep(0.2)
        finally:
            server.stop()
        log = server.lines(server.log)
        self.assertEqual([(r["status"], r["bytes"]) for r in log],
                         [(200, MIB)] + [(want, len(b)) for _, want, b in cases] + [(206, 2)])
        self.assertEqual(log[2].get("if_none_match"), etag)
        self.assertEqual(log[2]["range"], "bytes=0-1048575")
        self.assertEqual(log[6].get("if_modified_since"), lm)
        self.assertNotIn("if_none_match", log[0])

    def test_not_modified(self):
        sys.path.insert(0, str(ORIGIN.parent))
        import origin
        etag, mtime = '"10-abc"', 1_700_000_000.7  # Last-Modified: ...:20 GMT (whole seconds)
        lm = "Tue, 14 Nov 2023 22:13:20 GMT"
        self.assertTrue(origin.not_modified({"if-none-match": 'W/"10-abc"'}, etag, mtime))
        self.assertFalse(origin.not_modified({"if-none-match": '"10-ab"'}, etag, mtime))
        self.assertTrue(origin.not_modified({"if-modified-since": lm}, etag, mtime))
        self.assertTrue(origin.not_modified({"if-modified-since": "Tue Nov 14 22:13:20 2023"},
                                            etag, mtime))
        self.assertFalse(origin.not_modified({"if-modified-since": "Tue, 14 Nov 2023 22:13:19 GMT"},
                                             etag, mtime))
        self.assertFalse(origin.not_modified({}, etag, mtime))

    def test_slow_requests_spec(self):
        sys.path.insert(0, str(ORIGIN.parent))
        import origin
        self.assertEqual(origin.parse_slow(["3,6:4.0", "1:0.5"]), {3: 4.0, 6: 4.0, 1: 0.5})
        for bad in ("3,6", "0:1", "x:1", "3:-1"):
            with self.assertRaises(ValueError):
                origin.parse_slow([bad])


if __name__ == "__main__":
    unittest.main()
