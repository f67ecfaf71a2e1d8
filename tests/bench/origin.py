#!/usr/bin/python3
"""Benchmark origin: an HTTP/1.1 file server on 127.0.0.1 that behaves like a
slow, jittery, per-connection-throttled origin (Telegram's file API, object
stores, throttled mirrors).

    origin.py --root DIR [--port 0] [--port-file F] [--ttfb SPEC] [--seed N]
              [--rate BYTES_PER_S] [--log FILE.jsonl] [--total-rate BYTES_PER_S]
              [--max-conns K [--retry-after S]] [--slow-requests K,...:S]
              [--stats-log FILE.jsonl [--sample-interval S]]
              [--cache-control VALUE]

--ttfb SPEC   none | fixed:S | uniform:LO,HI | lognormal:MEDIAN,SIGMA
              The wait before each response is drawn from (seed, path, range
              start, n), n counting earlier requests for that range by the same
              client (same query string): a given block's first request waits
              the same time for every client, so rows stay comparable, while a
              client's retry or hedge of it draws a fresh wait.
--rate        body bytes/s per response (one response at a time per
              connection, so per connection); 0 = unlimited.
--log         one JSON line per request, written when it ends (served, dropped
              by the client, or cancelled at shutdown: "aborted"), with the
              request's query string (clients may tag requests with one; it
              never selects the file nor changes the wait). Times are time.monotonic() seconds
              (CLOCK_MONOTONIC, system-wide on Linux, so comparable with other
              processes on the same machine). Each line also has "open": the
              connections open to the server when the request arrived (its
              own included).
--total-rate  body bytes/s over all responses together, on top of --rate: one
              token bucket that every response draws its chunks from, first
              asked first served, so k responses sending at once get 1/k each
              (a response held back by its own --rate leaves its share to the
              others); 0 = unlimited (the default). A host or uplink cap.
--max-conns K a request that arrives while more than K connections are open
              (its own included) is answered at once with 503 and
              `Retry-After: S` (--retry-after, whole seconds, default 1), no
              body, and its connection is closed (`Connection: close`), as an
              overloaded server sheds load: the count drops as clients
              retry. Logged like any request, with "status": 503.
              0 = no limit (the default).
--slow-requests K[,K...]:S
              the K-th request of each query tag (1-based, counting every
              request with that query in the order the server read their
              heads) waits S seconds for its first byte instead of its --ttfb
              draw: a straggler scripted by position, e.g. 3,6:4.0 makes a
              client's 3rd and 6th requests wait 4 s. The draw is still taken,
              so the other requests wait what they would without the option.
              May be given more than once (the later one wins for a K named
              twice). Logged lines carry "nth" (the request's K) and, for a
              straggler, "slow": true.
--cache-control VALUE
              sent as `Cache-Control: VALUE` with every answer about a file
              (200, 206, 304), e.g. max-age=3600 (fresh for an hour: a cache
              may use its copy with no request) or no-cache (a cache must
              revalidate its copy on every use). Default: none (a cache then
              makes a lifetime of its own from Last-Modified).
--stats-log   JSON lines about connections, for counting them per client:
              {"kind": "conn", "conn", "t_open", "t_close", "requests",
              "tags"} when a connection closes ("tags": the query strings of
              its requests, so a row's connections can be told apart), and
              every --sample-interval seconds (default 0.1) while any
              connection is open {"kind": "sample", "t", "open", "tags":
              {tag: {"open", "busy", "sending", "bytes"}}}: per query tag
              (a connection counts under its latest request's tag, "" before
              its first), the connections open, those with a request in
              progress (head read, response not finished), those that sent
              body bytes since the previous sample, and the body bytes sent.

Every file is served with `ETag` ("SIZE-MTIME_NS" in hex, strong) and
`Last-Modified` (its mtime), and `Accept-Ranges: bytes`. Conditional GET and
HEAD (RFC 9110 13.2.2): `If-None-Match` listing that ETag (weak comparison,
or `*`), or, only when the request has no If-None-Match, `If-Modified-Since`
no older than the Last-Modified, are answered `304 Not Modified` with ETag,
Last-Modified, Cache-Control (if set) and no body, also when the request
has a Range (the condition is decided before the range). A 304 waits its
--ttfb draw like any answer and is logged with "status": 304 and "bytes": 0.
`If-Range` with another validator than the file's gets the whole file (200).
Log lines of requests with those headers carry them: "if_none_match",
"if_modified_since", "if_range".

Stdlib only. Runs until SIGTERM/SIGINT.
"""

import argparse
import asyncio
import datetime
import email.utils
import hashlib
import itertools
import json
import math
import mimetypes
import os
import random
import signal
import sys
import time
import urllib.parse

MAX_HEAD = 64 * 1024  # request line + headers
UNLIMITED_CHUNK = 256 * 1024


class Ttfb:
    """Deterministic per-(path, offset) delay before the response head."""

    def __init__(self, spec, seed):
        self.seed = seed
        self.requests = {}  # (client, path, offset) -> how many times it was asked
        kind, _, args = spec.partition(":")
        values = [float(v) for v in args.split(",")] if args else []
        expected = {"none": 0, "fixed": 1, "uniform": 2, "lognormal": 2}
        if kind not in expected or len(values) != expected[kind]:
            raise ValueError(f"bad --ttfb {spec!r}")
        if any(v < 0 for v in values):
            raise ValueError(f"bad --ttfb {spec!r}: negative value")
        self.kind, self.values = kind, values

    def delay(self, path, offset, client=""):
        if self.kind == "none":
            return 0.0
        if self.kind == "fixed":
            return self.values[0]
        # A private generator seeded from the key: the same block gets the same
        # delay whatever order or concurrency the client requests blocks in.
        # A repeated request for it (a retry or a hedge) draws a new delay, as
        # a real origin's slowness belongs to the request, not to the bytes.
        # Repeats count per client (the request's query tag), so clients that
        # tag their requests differently (the benchmark's rows) all draw the
        # same delays for their first request of each block.
        nth = self.requests.get((client, path, offset), 0)
        self.requests[(client, path, offset)] = nth + 1
        key = f"{self.seed}\0{path}\0{offset}\0{nth}".encode()
        rng = random.Random(hashlib.sha256(key).digest())
        if self.kind == "uniform":
            lo, hi = self.values
            return rng.uniform(lo, hi)
        median, sigma = self.values
        return median * math.exp(sigma * rng.gauss(0.0, 1.0))


def parse_slow(specs):
    """{K: seconds} from --slow-requests values "K[,K...]:S"."""
    slow = {}
    for spec in specs or ():
        ks, sep, seconds = spec.partition(":")
        try:
            wait = float(seconds)
            nths = [int(k) for k in ks.split(",")]
        except ValueError:
            raise ValueError(f"bad --slow-requests {spec!r}: K[,K...]:SECONDS")
        if not sep or wait < 0 or any(k < 1 for k in nths):
            raise ValueError(f"bad --slow-requests {spec!r}: K[,K...]:SECONDS, K >= 1, S >= 0")
        slow.update(dict.fromkeys(nths, wait))
    return slow


class Pacer:
    """Token bucket for one response body: at most `rate` bytes/s, with a
    burst of one chunk. Small chunks keep the stream smooth, as a throttling
    origin does, rather than bursts followed by long pauses."""

    def __init__(self, rate):
        self.rate = rate
        # Below 16 KiB/s a chunk is a second's worth: 1 B/s is a trickle.
        self.chunk = min(64 * 1024, max(min(16 * 1024, rate), rate // 64)) if rate else UNLIMITED_CHUNK
        self.tokens = float(self.chunk)
        self.last = time.monotonic()

    async def take(self, n):
        if not self.rate:
            return
        now = time.monotonic()
        self.tokens = min(float(self.chunk), self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= n
        if self.tokens < 0:
            await asyncio.sleep(-self.tokens / self.rate)


class SharedPacer:
    """Token bucket that every response draws from: at most `rate` bytes/s
    over all of them, with a burst of `burst` bytes. Each take() reserves the
    next slice of the bucket's time line in call order; a response asks for
    its next chunk only after its previous one went out, so the responses
    sending at once take turns, one chunk each: fair shares, without a lock."""

    def __init__(self, rate):
        self.rate = rate
        # Chunks as small as a per-connection Pacer's at this rate, so turns
        # are short and every sending response shows in each sample.
        self.chunk = Pacer(rate).chunk
        self.burst = self.chunk
        self.next = time.monotonic()  # when the bucket's time line is free again

    async def take(self, n):
        now = time.monotonic()
        start = max(self.next, now - self.burst / self.rate)
        self.next = start + n / self.rate
        if self.next > now:
            await asyncio.sleep(self.next - now)


class Conn:
    """What the stats log needs to know about one open connection."""

    def __init__(self, conn_id):
        self.id = conn_id
        self.t_open = time.monotonic()
        self.tag = ""  # query tag of its latest request
        self.tags = []  # of all its requests, in order, without repeats
        self.requests = 0
        self.busy = False  # a request in progress
        self.sent = 0  # body bytes since the previous sample


class BadRequest(Exception):
    pass


def etag_matches(header, etag):
    """Whether an If-None-Match value lists `etag` (weak comparison, RFC 9110
    8.8.3.2: W/ ignored on both sides) or is `*`."""
    if header.strip() == "*":
        return True
    def opaque(tag):
        tag = tag.strip()
        return tag[2:] if tag.startswith("W/") else tag
    return any(opaque(t) == opaque(etag) for t in header.split(",") if t.strip())


def not_modified(headers, etag, mtime):
    """Whether a GET or HEAD with these (lower-cased) request headers is to
    be answered 304: If-None-Match lists the ETag; without If-None-Match,
    If-Modified-Since is a valid date no older than the last modification
    (`mtime`, unix seconds, compared at whole seconds as Last-Modified
    states it). An invalid If-Modified-Since is ignored (RFC 9110 13.1.3)."""
    inm = headers.get("if-none-match")
    if inm is not None:
        return etag_matches(inm, etag)
    ims = headers.get("if-modified-since")
    if ims is None:
        return False
    try:
        since = email.utils.parsedate_to_datetime(ims)
    except (TypeError, ValueError, IndexError):
        return False
    if since is None:
        return False
    if since.tzinfo is None:  # asctime form (or -0000): an HTTP-date is GMT
        since = since.replace(tzinfo=datetime.timezone.utc)
    return int(mtime) <= since.timestamp()


def parse_range(value, size):
    """Returns (start, end_inclusive), "unsatisfiable", or None to ignore the
    header (absent, malformed or multi-range: RFC 9110 lets a server ignore
    Range and answer 200)."""
    if not value:
        return None
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":  # suffix: the last n bytes
            n = int(last)
            if n < 0:
                return None
            if n == 0 or size == 0:
                return "unsatisfiable"
            return max(0, size - n), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        return "unsatisfiable"
    if end < start:
        return None
    return start, min(end, size - 1)


class Origin:
    def __init__(self, root, ttfb, rate, log, total_rate=0, max_conns=0, retry_after=1,
                 stats_log=None, slow=None, cache_control=None):
        self.root = os.path.realpath(root)
        self.cache_control = cache_control  # --cache-control: the header's value, or None
        self.ttfb = ttfb
        self.rate = rate
        self.log = log
        self.total = SharedPacer(total_rate) if total_rate else None
        self.max_conns = max_conns
        self.retry_after = retry_after
        self.stats_log = stats_log
        self.slow = slow or {}  # --slow-requests: K -> seconds
        self.tag_requests = {}  # query tag -> requests read so far
        self.conn_ids = itertools.count(1)
        self.connections = set()
        self.conns = {}  # conn id -> Conn, while open

    def resolve(self, target):
        path = urllib.parse.unquote(urllib.parse.urlsplit(target).path)
        full = os.path.realpath(os.path.join(self.root, path.lstrip("/")))
        if os.path.commonpath([full, self.root]) != self.root or not os.path.isfile(full):
            return path, None
        return path, full

    async def handle(self, reader, writer):
        task = asyncio.current_task()
        self.connections.add(task)
        conn = next(self.conn_ids)
        self.conns[conn] = Conn(conn)
        try:
            while await self.serve_one(reader, writer, conn):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, BadRequest):
            pass  # the client went away (or spoke garbage): drop the connection
        finally:
            self.connections.discard(task)
            writer.close()
            c = self.conns.pop(conn)
            self.write_stats({"kind": "conn", "conn": conn, "t_open": c.t_open,
                              "t_close": time.monotonic(), "requests": c.requests,
                              "tags": c.tags})

    async def read_head(self, reader):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            if not e.partial:
                return None  # clean close between requests
            raise
        except asyncio.LimitOverrunError:
            raise BadRequest("request head too large")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest(lines[0])
        headers = {}
        for line in lines[1:]:
            if line:
                name, sep, value = line.partition(":")
                if not sep:
                    raise BadRequest(line)
                headers[name.strip().lower()] = value.strip()
        return parts[0], parts[1], parts[2], headers

    async def serve_one(self, reader, writer, conn):
        """Serves one request; returns whether the connection stays open."""
        request = await self.read_head(reader)
        if request is None:
            return False
        method, target, version, headers = request
        t_start = time.monotonic()
        if "content-length" in headers:  # GET/HEAD bodies carry no meaning here
            try:
                await reader.readexactly(int(headers["content-length"]))
            except ValueError:
                raise BadRequest("bad Content-Length")
        conn_tokens = headers.get("connection", "").lower()
        keep_alive = "close" not in conn_tokens and (
            version == "HTTP/1.1" or "keep-alive" in conn_tokens)

        path, full = self.resolve(target)
        # The query never selects the file, but a client may tag its requests
        # with one (the benchmark does: ?run=...) to find them in the log.
        rec = {"conn": conn, "method": method, "path": path,
               "query": urllib.parse.urlsplit(target).query,
               "range": headers.get("range"), "t_start": t_start,
               "open": len(self.connections)}
        for name in ("if-none-match", "if-modified-since", "if-range"):
            if name in headers:
                rec[name.replace("-", "_")] = headers[name]
        rec["nth"] = self.tag_requests.get(rec["query"], 0) + 1
        self.tag_requests[rec["query"]] = rec["nth"]
        c = self.conns[conn]
        c.tag, c.busy, c.requests = rec["query"], True, c.requests + 1
        if c.tag not in c.tags:
            c.tags.append(c.tag)
        # Logged however the request ends: served, dropped by the client, or
        # cancelled at shutdown while still waiting for its first byte.
        try:
            if self.max_conns and rec["open"] > self.max_conns:
                return await self.unavailable(writer, rec)
            return await self.respond(writer, method, headers, full, path, keep_alive, rec)
        except (ConnectionError, asyncio.CancelledError):
            rec["aborted"] = True
            raise
        finally:
            c.busy = False
            rec["t_end"] = time.monotonic()
            self.write_log(rec)

    async def unavailable(self, writer, rec):
        """503 at once, with Retry-After; the connection closes after it."""
        rec["status"], rec["bytes"] = 503, 0
        head = ("HTTP/1.1 503 Service Unavailable\r\n"
                f"Retry-After: {self.retry_after}\r\nContent-Length: 0\r\n"
                f"Date: {email.utils.formatdate(usegmt=True)}\r\nConnection: close\r\n\r\n")
        writer.write(head.encode("latin-1"))
        await writer.drain()
        rec["t_first_byte"] = time.monotonic()
        return False

    async def respond(self, writer, method, headers, full, path, keep_alive, rec):
        out_headers = {}
        body_range = None
        draw_offset = 0  # the offset the --ttfb draw is keyed on
        if method not in ("GET", "HEAD"):
            status = 405
            out_headers["Allow"] = "GET, HEAD"
        elif full is None:
            status = 404
        else:
            st = os.stat(full)
            size = st.st_size
            etag = f'"{size:x}-{st.st_mtime_ns:x}"'
            last_modified = email.utils.formatdate(st.st_mtime, usegmt=True)
            out_headers.update({
                "Accept-Ranges": "bytes",
                "ETag": etag,
                "Last-Modified": last_modified,
                "Content-Type": mimetypes.guess_type(full)[0] or "application/octet-stream",
            })
            if self.cache_control:
                out_headers["Cache-Control"] = self.cache_control
            wanted = parse_range(headers.get("range"), size)
            if_range = headers.get("if-range")
            if if_range is not None and if_range not in (etag, last_modified):
                wanted = None  # resource changed since the client's copy: send it whole
            if not_modified(headers, etag, st.st_mtime):
                # Decided before the range (RFC 9110 13.2.2): no body, and no
                # Content-Type or Content-Length (they would describe a 200).
                status = 304
                del out_headers["Content-Type"]
                if isinstance(wanted, tuple):
                    draw_offset = wanted[0]  # the wait a range request would draw
            elif wanted == "unsatisfiable":
                status = 416
                out_headers["Content-Range"] = f"bytes */{size}"
            elif wanted is None:
                status = 200
                body_range = (0, size - 1)
            else:
                status = 206
                body_range = wanted
                out_headers["Content-Range"] = f"bytes {wanted[0]}-{wanted[1]}/{size}"

        length = body_range[1] - body_range[0] + 1 if body_range else 0
        if status != 304:
            out_headers["Content-Length"] = str(length)
        out_headers["Date"] = email.utils.formatdate(usegmt=True)
        out_headers["Connection"] = "keep-alive" if keep_alive else "close"
        rec["status"] = status
        rec["bytes"] = 0

        offset = body_range[0] if body_range else 0
        delay = self.ttfb.delay(path, offset if body_range else draw_offset, rec["query"])
        if rec["nth"] in self.slow:
            delay, rec["slow"] = self.slow[rec["nth"]], True
        await asyncio.sleep(delay)

        reason = {200: "OK", 206: "Partial Content", 304: "Not Modified", 404: "Not Found",
                  405: "Method Not Allowed", 416: "Range Not Satisfiable"}[status]
        head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in out_headers.items()) + "\r\n"
        writer.write(head.encode("latin-1"))
        await writer.drain()
        rec["t_first_byte"] = time.monotonic()
        if method == "GET" and length and status != 304:
            await self.send_body(writer, full, offset, length, rec)
        return keep_alive

    async def send_body(self, writer, full, offset, length, rec):
        """Sends the body, counting in rec["bytes"] (kept if the client leaves)."""
        pacer = Pacer(self.rate)
        c = self.conns[rec["conn"]]
        chunk = min(pacer.chunk, self.total.chunk) if self.total else pacer.chunk
        # Blocking reads on the event loop: the files are small and sit in the
        # page cache, so a read costs microseconds; an executor would cost more.
        with open(full, "rb") as f:
            f.seek(offset)
            while rec["bytes"] < length:
                data = f.read(min(chunk, length - rec["bytes"]))
                if not data:
                    raise ConnectionError("file shrank while serving")
                await pacer.take(len(data))
                if self.total:
                    await self.total.take(len(data))
                writer.write(data)
                await writer.drain()
                rec["bytes"] += len(data)
                c.sent += len(data)

    def write_log(self, rec):
        if self.log:
            self.log.write(json.dumps(rec) + "\n")
            self.log.flush()

    def write_stats(self, rec):
        if self.stats_log:
            self.stats_log.write(json.dumps(rec) + "\n")
            self.stats_log.flush()

    async def sample(self, interval):
        """Every `interval` s while a connection is open: a sample line."""
        while True:
            await asyncio.sleep(interval)
            if not self.conns:
                continue
            tags = {}
            for c in self.conns.values():
                t = tags.setdefault(c.tag, {"open": 0, "busy": 0, "sending": 0, "bytes": 0})
                t["open"] += 1
                t["busy"] += c.busy
                t["sending"] += c.sent > 0
                t["bytes"] += c.sent
                c.sent = 0
            self.write_stats({"kind": "sample", "t": time.monotonic(),
                              "open": len(self.conns), "tags": tags})


async def main(args):
    ttfb = Ttfb(args.ttfb, args.seed)
    log = open(args.log, "a", encoding="utf-8") if args.log else None
    stats_log = open(args.stats_log, "a", encoding="utf-8") if args.stats_log else None
    origin = Origin(args.root, ttfb, args.rate, log, args.total_rate, args.max_conns,
                    args.retry_after, stats_log, parse_slow(args.slow_requests),
                    args.cache_control)
    server = await asyncio.start_server(origin.handle, "127.0.0.1", args.port,
                                        limit=MAX_HEAD, backlog=128)
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        # Write then rename, so a poller never reads a half-written port.
        tmp = f"{args.port_file}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sampler = asyncio.create_task(origin.sample(args.sample_interval)) if stats_log else None
    async with server:
        await stop.wait()
        server.close()
        for task in list(origin.connections):
            task.cancel()
        await asyncio.gather(*origin.connections, return_exceptions=True)
    if sampler:
        sampler.cancel()
    for f in (log, stats_log):
        if f:
            f.close()


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, help="directory to serve")
    p.add_argument("--port", type=int, default=0, help="0 = ephemeral")
    p.add_argument("--port-file", help="write the bound port here once listening")
    p.add_argument("--ttfb", default="none", help="none | fixed:S | uniform:LO,HI | lognormal:MEDIAN,SIGMA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", type=int, default=0, help="body bytes/s per connection, 0 = unlimited")
    p.add_argument("--log", help="JSON-lines request log")
    p.add_argument("--total-rate", type=int, default=0,
                   help="body bytes/s over all responses together, 0 = unlimited")
    p.add_argument("--max-conns", type=int, default=0,
                   help="503 to a request that arrives while more than this many "
                        "connections are open, 0 = no limit")
    p.add_argument("--retry-after", type=int, default=1,
                   help="seconds in the 503's Retry-After (with --max-conns)")
    p.add_argument("--slow-requests", action="append", metavar="K[,K...]:S",
                   help="the K-th request of each query tag waits S s for its first byte")
    p.add_argument("--cache-control", metavar="VALUE",
                   help="send Cache-Control: VALUE with every answer about a file "
                        "(e.g. max-age=3600, no-cache)")
    p.add_argument("--stats-log", help="JSON-lines log of connections and samples")
    p.add_argument("--sample-interval", type=float, default=0.1,
                   help="seconds between samples in --stats-log")
    args = p.parse_args(argv)
    try:
        Ttfb(args.ttfb, args.seed)
        parse_slow(args.slow_requests)
    except ValueError as e:
        p.error(str(e))
    if not os.path.isdir(args.root):
        p.error(f"--root {args.root}: not a directory")
    if args.rate < 0:
        p.error("--rate must be >= 0")
    if args.total_rate < 0:
        p.error("--total-rate must be >= 0")
    if args.max_conns < 0:
        p.error("--max-conns must be >= 0")
    if args.retry_after < 0:
        p.error("--retry-after must be >= 0")
    if args.sample_interval <= 0:
        p.error("--sample-interval must be > 0")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args(sys.argv[1:])))
