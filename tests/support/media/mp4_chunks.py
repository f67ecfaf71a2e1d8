#!/usr/bin/python3
"""Where each track's samples lie in an MP4: one line per track,

    HANDLER CHUNKS FIRST_CHUNK_OFFSET LAST_CHUNK_OFFSET

(HANDLER is the trak's hdlr type: vide, soun, ...; offsets from stco/co64,
in bytes from the start of the file).

    mp4_chunks.py [--check-video-first] FILE.mp4

--check-video-first: exit 1 unless there is one video and one audio track
and every video chunk starts before the first audio chunk (chunks are
contiguous runs of samples, so then all video bytes come before all audio
bytes: the file is not interleaved).
"""

import struct
import sys


def boxes(data, start, end):
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start:start + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[start + 8:start + 16])[0]
            header = 16
        elif size == 0:
            size = end - start
        if size < header:
            return
        yield kind.decode("latin-1"), start + header, start + size
        start += size


def find(data, start, end, path):
    for kind, body, stop in boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                yield body, stop
            else:
                yield from find(data, body, stop, path[1:])


def tracks(data):
    for trak, trak_end in find(data, 0, len(data), ["moov", "trak"]):
        handler = "????"
        for body, _ in find(data, trak, trak_end, ["mdia", "hdlr"]):
            handler = data[body + 8:body + 12].decode("latin-1")
        offsets = []
        for name, fmt, width in (("stco", ">I", 4), ("co64", ">Q", 8)):
            for body, _ in find(data, trak, trak_end, ["mdia", "minf", "stbl", name]):
                count = struct.unpack(">I", data[body + 4:body + 8])[0]
                offsets += [struct.unpack(fmt, data[body + 8 + i * width:body + 8 + (i + 1) * width])[0]
                            for i in range(count)]
        yield handler, offsets


def main():
    args = sys.argv[1:]
    check = "--check-video-first" in args
    args = [a for a in args if a != "--check-video-first"]
    if len(args) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(args[0], "rb") as f:
        data = f.read()
    found = {}
    for handler, offsets in tracks(data):
        if not offsets:
            print(f"{args[0]}: a {handler} track without chunk offsets", file=sys.stderr)
            return 1
        print(handler, len(offsets), min(offsets), max(offsets))
        found.setdefault(handler, []).append(offsets)
    if check:
        if len(found.get("vide", [])) != 1 or len(found.get("soun", [])) != 1:
            print(f"{args[0]}: expected one video and one audio track", file=sys.stderr)
            return 1
        if max(found["vide"][0]) >= min(found["soun"][0]):
            print(f"{args[0]}: video and audio chunks are interleaved", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
