#!/usr/bin/python3
"""Draws prefetchsrc's request spans as SVG, one panel per run.

    timeline.py --out timeline.svg --panel TITLE GST_LOG MEASURE_JSON [--panel ...]

GST_LOG is a GST_DEBUG_FILE written with GST_DEBUG=prefetchsrc:5 and
GST_DEBUG_NO_COLOR=1; MEASURE_JSON is measure.py's output for the same run
(its playing_log_s puts PLAYING at time zero, its first_buffer_s and total_s
are marked). A span is one HTTP range request filling a run of consecutive
blocks; the element logs (N, M span ids from 1 per element; I, J block
indices; A, B, P byte offsets; B and J inclusive):

    span N requested bytes=A-B blocks I-J attempt K
    span N requested bytes=A- blocks I-end attempt K        (open-ended)
    span N requested bytes=A-B blocks I-J attempt K (ahead)  (sent while the
                                     connection's current span still transfers)
    span N requested bytes=A-B blocks I-J attempt K (hedge of span M)
    span N first-byte after T ms
    span N yields its transfer slot to span M      (not drawn: its pause is)
    span N paused at byte P: look-ahead full       (or: no transfer slot)
    span N resumed at byte P
    span N split at block J: span M takes blocks J-end      (or J-K; a note in brackets may follow)
    span N ends at byte P: REASON
    block I first-byte
    block I complete S bytes
    block I delivered

Each span gets a lane, in id order: a light bar from requested to first byte
(waiting for the origin), a dark bar from first byte to its end (transfer),
hatched stretches where it was paused (look-ahead full or no transfer slot),
a triangle at the request of an "(ahead)" span, a diamond at a hedge's, a
thin red mark where a split cut it, and a gold tick where one of its blocks
completed. A block belongs to the span whose range covers it (as cut by the
splits logged so far) and that logged its first byte most recently before
the block's first byte. A row above the lanes has a tick per block delivered
downstream. A span that requested again (a retry) waits again from then; its
label shows the attempts. All panels share one time axis so two schedules on
the same origin compare at a glance.

A log from before spans (`block I requested bytes=A-B attempt K`, no span
lines) is drawn with one one-block span per block, in request order.
"""

import argparse
import html
import json
import math
import re
import sys

# "0:00:01.234567890 <pid> <thread> DEBUG prefetchsrc <file:line:func:<obj>> message"
LINE = re.compile(r"^(\d+):(\d\d):(\d\d)\.(\d{9})\s.*?\sprefetchsrc\s+(\S*)\s(.*?)\s*$")
OBJECT = re.compile(r"<([^<>]*)>$")
END = r"(\d+|end)"
EVENTS = (
    ("requested", re.compile(r"span (\d+) requested bytes=(\d+)-(\d*) blocks (\d+)-" + END
                             + r" attempt (\d+)((?: \((?:ahead|hedge of span \d+)\))*)")),
    ("first-byte", re.compile(r"span (\d+) first-byte after ([\d.]+) ms")),
    ("paused", re.compile(r"span (\d+) paused at byte (\d+): (.*)")),
    ("resumed", re.compile(r"span (\d+) resumed at byte (\d+)")),
    ("split", re.compile(r"span (\d+) split at block (\d+): span (\d+) takes blocks (\d+)-" + END
                         + r"(?: \(.*\))?")),
    ("ends", re.compile(r"span (\d+) ends at byte (\d+): (.*)")),
    ("block-first-byte", re.compile(r"block (\d+) first-byte")),
    ("block-complete", re.compile(r"block (\d+) complete (\d+) bytes")),
    ("block-delivered", re.compile(r"block (\d+) delivered")),
    ("legacy-requested", re.compile(r"block (\d+) requested bytes=(\d+)-(\d+) attempt (\d+)")),
    # Understood, not drawn: the pause that follows is.
    ("note", re.compile(r"span (\d+) yields its transfer slot to span (\d+)")),
)

WIDTH = 1000
LEFT, RIGHT = 60, 45
LANE, GAP = 9, 2
MAX_LANES_H = 560  # lanes shrink so a panel never gets taller than this
COLORS = {"waiting": "#f4b183", "transfer": "#2f5597", "paused_full": "#bdd7ee",
          "paused_slot": "#e2c4f0", "complete": "#ffc000", "delivered": "#111111",
          "ahead": "#7030a0", "hedge": "#c55a11", "split": "#e00000", "lane": "#f4f4f4",
          "first_buffer": "#2e7d32", "total": "#c62828", "grid": "#dddddd"}
PAUSE_KINDS = {"look-ahead full": "paused_full", "no transfer slot": "paused_slot"}


def _opt(value):
    return None if value in ("", "end") else int(value)


def object_name(where):
    """"file:line:func:<obj>" -> "obj" ("" for a line without an object)."""
    m = OBJECT.search(where)
    return m.group(1) if m else ""


def busiest_element(path):
    counts = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if m and m.group(6).startswith(("span ", "block ")):
                name = object_name(m.group(5))
                counts[name] = counts.get(name, 0) + 1
    return max(counts, key=counts.get) if counts else None


def parse_log(path, zero_s, element=None):
    """Reads one element's span and block lines. Returns {"spans": {id: span},
    "blocks": {index: block}, "element": name, "unparsed": [span/block lines
    not understood]}, times in seconds from `zero_s` on the log's clock.

    span: {"id", "requested" (first request), "bytes": (A, B or None),
    "blocks": (I, J or None) as first requested, "ahead", "hedge_of" (id or
    None), "requests": [{"t", "bytes", "blocks", "attempt", "ahead",
    "hedge_of"}], "first_bytes": [t], "first_byte" (the first of them or
    None), "first_byte_ms" (as logged), "paused": [(t0, t1 or None, byte,
    reason)], "splits": [(t, J, taker, K or None)], "last_block" (J as cut by
    the splits; None = to the end), "end", "end_byte", "end_reason" (None
    without an ends line), "filled": [block indices], "legacy"}.

    block: {"first_byte", "complete", "bytes", "delivered" (each None if not
    logged; a retried block keeps its last first-byte and complete), "span"
    (the id of the span that filled it, or None)}.

    `element` picks the object (e.g. "prefetchsrc0"); by default the one
    with the most span and block lines (span ids count per element)."""
    if element is None:
        element = busiest_element(path)
    spans, blocks, unparsed = {}, {}, []
    legacy = {}  # block -> span record built from "block I requested" lines
    fb_seq = {}  # span id -> [(t, seq)] of its first-byte lines
    split_seq = {}  # span id -> [(seq, J)]
    block_fb_seq = {}  # block -> seq of its last first-byte line

    def block(i):
        return blocks.setdefault(i, {"first_byte": None, "complete": None, "bytes": None,
                                     "delivered": None, "span": None})

    def new_span(n, t):
        return {"id": n, "requested": t, "bytes": None, "blocks": None, "ahead": False,
                "hedge_of": None, "requests": [], "first_bytes": [], "first_byte": None,
                "first_byte_ms": None, "paused": [], "splits": [], "last_block": None,
                "end": None, "end_byte": None, "end_reason": None, "filled": [], "legacy": False}

    with open(path, encoding="utf-8", errors="replace") as f:
        for seq, line in enumerate(f):
            m = LINE.match(line)
            if not m:
                continue
            h, mi, s, ns, where, text = m.groups()
            if not text.startswith(("span ", "block ")):
                continue
            if object_name(where) != element:
                continue
            t = int(h) * 3600 + int(mi) * 60 + int(s) + int(ns) / 1e9 - zero_s
            for kind, rx in EVENTS:
                e = rx.fullmatch(text)
                if e:
                    break
            else:
                if text.startswith("span ") or re.match(r"block \d+ (first-byte|complete|delivered)",
                                                       text):
                    unparsed.append(line.rstrip("\n"))
                continue
            g = e.groups()
            if kind == "note":
                continue
            if kind == "requested":
                n = int(g[0])
                flags = g[6] or ""
                hedge = re.search(r"hedge of span (\d+)", flags)
                req = {"t": t, "bytes": (int(g[1]), _opt(g[2])), "blocks": (int(g[3]), _opt(g[4])),
                       "attempt": int(g[5]), "ahead": "(ahead)" in flags,
                       "hedge_of": int(hedge.group(1)) if hedge else None}
                sp = spans.get(n)
                if sp is None:
                    sp = spans[n] = new_span(n, t)
                    sp.update(bytes=req["bytes"], blocks=req["blocks"], ahead=req["ahead"],
                              hedge_of=req["hedge_of"], last_block=req["blocks"][1])
                sp["requests"].append(req)
                continue
            if kind.startswith("block-"):
                b = block(int(g[0]))
                if kind == "block-first-byte":
                    b["first_byte"] = t
                    block_fb_seq[int(g[0])] = seq
                elif kind == "block-complete":
                    b["complete"], b["bytes"] = t, int(g[1])
                elif b["delivered"] is None:
                    b["delivered"] = t
                continue
            if kind == "legacy-requested":
                i = int(g[0])
                sp = legacy.get(i)
                if sp is None:
                    sp = legacy[i] = new_span(None, t)
                    sp.update(bytes=(int(g[1]), int(g[2])), blocks=(i, i), last_block=i,
                              legacy=True)
                sp["requests"].append({"t": t, "bytes": (int(g[1]), int(g[2])), "blocks": (i, i),
                                       "attempt": int(g[3]), "ahead": False, "hedge_of": None})
                continue
            n = int(g[0])
            sp = spans.get(n)
            if sp is None:  # the log began after its request
                sp = spans[n] = new_span(n, None)
            if kind == "first-byte":
                sp["first_bytes"].append(t)
                fb_seq.setdefault(n, []).append((t, seq))
                if sp["first_byte_ms"] is None:
                    sp["first_byte_ms"] = float(g[1])
            elif kind == "paused":
                sp["paused"].append([t, None, int(g[1]), g[2]])
            elif kind == "resumed":
                open_pauses = [p for p in sp["paused"] if p[1] is None]
                if open_pauses:
                    open_pauses[-1][1] = t
            elif kind == "split":
                j = int(g[1])
                sp["splits"].append((t, j, int(g[2]), _opt(g[4])))
                split_seq.setdefault(n, []).append((seq, j))
                if sp["last_block"] is None or j - 1 < sp["last_block"]:
                    sp["last_block"] = j - 1
            elif kind == "ends":
                sp["end"], sp["end_byte"], sp["end_reason"] = t, int(g[1]), g[2]

    if not spans and legacy:
        # Before spans: every block request was a span of one block; its
        # first byte and completion are the block's.
        for n, (i, sp) in enumerate(sorted(legacy.items(), key=lambda kv: kv[1]["requested"]), 1):
            sp["id"] = n
            b = blocks.get(i, {})
            if b.get("first_byte") is not None:
                sp["first_bytes"].append(b["first_byte"])
                fb_seq[n] = [(b["first_byte"], block_fb_seq[i])]
            if b.get("complete") is not None:
                sp["end"], sp["end_reason"] = b["complete"], "complete"
            spans[n] = sp

    for sp in spans.values():
        sp["first_byte"] = min(sp["first_bytes"]) if sp["first_bytes"] else None
        sp["paused"] = [tuple(p) for p in sp["paused"]]

    def covers(sp, i, seq):
        if sp["blocks"] is None or i < sp["blocks"][0]:
            return False
        last = sp["blocks"][1]
        for s, j in split_seq.get(sp["id"], ()):
            if s < seq and (last is None or j - 1 < last):
                last = j - 1
        return last is None or i <= last

    for i, b in sorted(blocks.items()):
        if b["first_byte"] is None:
            continue
        seq = block_fb_seq[i]
        best = None
        for sp in spans.values():
            if not covers(sp, i, seq):
                continue
            before = [fb for fb in fb_seq.get(sp["id"], ()) if fb[1] <= seq]
            if before and (best is None or max(before) > best[0]):
                best = (max(before), sp)
        if best is None:  # no first byte logged before the block's: the nearest one
            near = [(min(abs(t - b["first_byte"]) for t in sp["first_bytes"]), sp["id"], sp)
                    for sp in spans.values() if sp["first_bytes"] and covers(sp, i, seq)]
            best = (None, min(near, key=lambda x: x[:2])[2]) if near else None
        if best is not None:
            b["span"] = best[1]["id"]
            best[1]["filled"].append(i)
    return {"spans": spans, "blocks": blocks, "element": element, "unparsed": unparsed}


def span_end(sp, blocks, fallback):
    """Where a span's bar ends: its ends line, else its last logged event."""
    if sp["end"] is not None:
        return sp["end"]
    times = [r["t"] for r in sp["requests"]] + sp["first_bytes"]
    times += [p[0] for p in sp["paused"]] + [p[1] for p in sp["paused"] if p[1] is not None]
    times += [s[0] for s in sp["splits"]]
    times += [blocks[i]["complete"] for i in sp["filled"] if blocks[i]["complete"] is not None]
    return max(times) if times else fallback


def segments(sp, end):
    """[(kind, t0, t1)], kind "waiting" (a request to its first byte) or
    "transfer" (a first byte to the next request or the end)."""
    events = sorted([(r["t"], 0) for r in sp["requests"]] + [(t, 1) for t in sp["first_bytes"]])
    out, state, since = [], None, None
    for t, is_first_byte in events:
        if not is_first_byte and state != "waiting":
            if state == "transfer":
                out.append(("transfer", since, t))
            state, since = "waiting", t
        elif is_first_byte and state != "transfer":
            if state == "waiting":
                out.append(("waiting", since, t))
            state, since = "transfer", t
    if state is not None:
        out.append((state, since, max(since, end)))
    return out


def nice_step(span):
    """A 1/2/5 x 10^k grid step giving roughly 8-12 lines over `span`."""
    raw = span / 10
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


class Svg:
    def __init__(self):
        self.parts = []

    def add(self, tag, text=None, **attrs):
        a = " ".join(f'{k.rstrip("_").replace("_", "-")}="{v}"' for k, v in attrs.items())
        if text is None:
            self.parts.append(f"<{tag} {a}/>")
        else:
            self.parts.append(f"<{tag} {a}>{html.escape(text)}</{tag}>")

    def raw(self, text):
        self.parts.append(text)

    def render(self, width, height):
        body = "\n".join(self.parts)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">\n'
                f'<rect width="{width}" height="{height}" fill="white"/>\n{body}\n</svg>\n')


def hatch(pattern_id, fill, stroke):
    return (f'<pattern id="{pattern_id}" width="4" height="4" patternUnits="userSpaceOnUse" '
            f'patternTransform="rotate(45)"><rect width="4" height="4" fill="{fill}"/>'
            f'<line x1="0" y1="0" x2="0" y2="4" stroke="{stroke}" stroke-width="1.5"/></pattern>')


def marker(svg, kind, x, y, size):
    """The request mark of an ahead span (a triangle) or a hedge (a diamond)."""
    h = size / 2
    if kind == "ahead":
        points = f"{x - size:.1f},{y:.1f} {x:.1f},{y + h:.1f} {x - size:.1f},{y + size:.1f}"
    else:
        points = f"{x:.1f},{y - 1:.1f} {x + h + 1:.1f},{y + h:.1f} {x:.1f},{y + size + 1:.1f} " \
                 f"{x - h - 1:.1f},{y + h:.1f}"
    svg.add("polygon", points=points, fill=COLORS[kind])


def legend(svg, y):
    """Legend items flowed over as many rows as they need; returns the y below."""
    items = (("rect", "waiting", "waiting (requested → first byte)"),
             ("rect", "transfer", "transfer (first byte → end)"),
             ("pattern", "paused_full", "paused: look-ahead full"),
             ("pattern", "paused_slot", "paused: no transfer slot"),
             ("tick", "complete", "block complete"),
             ("tick", "delivered", "block delivered"),
             ("ahead", "ahead", "(ahead) request"),
             ("hedge", "hedge", "hedge request"),
             ("tick", "split", "split (back part to another span)"),
             ("dash", "first_buffer", "first buffer"),
             ("dash", "total", "total (EOS)"))
    x = LEFT
    for shape, kind, label in items:
        width = 20 + 6.2 * len(label) + 14
        if x + width > WIDTH - 10:
            x, y = LEFT, y + 18
        if shape == "rect":
            svg.add("rect", x=x, y=y, width=14, height=10, fill=COLORS[kind])
        elif shape == "pattern":
            svg.add("rect", x=x, y=y, width=14, height=10, fill=f"url(#{kind})")
        elif shape == "tick":
            svg.add("rect", x=x + 6, y=y - 2, width=2, height=14, fill=COLORS[kind])
        elif shape == "dash":
            svg.add("line", x1=x, y1=y + 5, x2=x + 16, y2=y + 5, stroke=COLORS[kind],
                    stroke_width=2, stroke_dasharray="4,2")
        else:
            marker(svg, kind, x + 10, y, 10)
        svg.add("text", label, x=f"{x + 20:.0f}", y=y + 9)
        x += width
    return y + 18


def span_label(sp):
    first, last = sp["blocks"] or (None, None)
    text = "" if first is None else (f"{first}" if last == first else
                                     f"{first}–{'end' if last is None else last}")
    if sp["splits"]:
        text += f" → {sp['blocks'][0]}–{sp['last_block']}" if sp["blocks"] else ""
    if sp["ahead"]:
        text += " ahead"
    if sp["hedge_of"] is not None:
        text += f" hedge of {sp['hedge_of']}"
    attempts = max([r["attempt"] for r in sp["requests"]] or [1])
    if attempts > 1:
        text += f" ×{attempts}"
    reason = sp["end_reason"]
    if reason and not reason.startswith(("its range is in", "complete", "split")):
        text += f" ({reason})"
    return text.strip()


def all_times(parsed):
    for sp in parsed["spans"].values():
        yield from (r["t"] for r in sp["requests"])
        yield from sp["first_bytes"]
        for p in sp["paused"]:
            yield from (t for t in p[:2] if t is not None)
        yield from (s[0] for s in sp["splits"])
        if sp["end"] is not None:
            yield sp["end"]
    for b in parsed["blocks"].values():
        yield from (b[k] for k in ("first_byte", "complete", "delivered") if b[k] is not None)


def render(panels, title):
    """panels: [(title, parse_log() result, measure_dict)]. Returns SVG text."""
    t_max = max(max([m["total_s"]] + list(all_times(parsed))) for _, parsed, m in panels)
    step = nice_step(t_max)
    t_axis = math.ceil(t_max / step) * step
    scale = (WIDTH - LEFT - RIGHT) / t_axis

    def x(t):
        return LEFT + t * scale

    svg = Svg()
    svg.raw("<defs>" + hatch("paused_full", COLORS["paused_full"], COLORS["transfer"])
            + hatch("paused_slot", COLORS["paused_slot"], COLORS["ahead"]) + "</defs>")
    svg.add("text", f"{title} (time since PLAYING)", x=LEFT, y=22, font_size=16, font_weight="bold")
    y = legend(svg, 32) + 10

    for panel_title, parsed, m in panels:
        spans, blocks = parsed["spans"], parsed["blocks"]
        ids = sorted(spans)
        n = len(ids) + 1  # the delivered row first
        lane = min(LANE, max(2, MAX_LANES_H // n - GAP))
        height = n * (lane + GAP)
        svg.add("text", f"{panel_title}: first buffer {m['first_buffer_s']:.2f} s, "
                f"total {m['total_s']:.2f} s, {len(ids)} spans", x=LEFT, y=y + 14,
                font_size=14, font_weight="bold")
        top = y + 24
        t = 0.0
        while t <= t_axis + 1e-9:
            svg.add("line", x1=f"{x(t):.1f}", y1=top, x2=f"{x(t):.1f}", y2=top + height,
                    stroke=COLORS["grid"])
            svg.add("text", f"{t:g} s", x=f"{x(t):.1f}", y=top + height + 14, text_anchor="middle")
            t += step
        svg.add("text", "span", x=LEFT - 8, y=top - 4, text_anchor="end")
        svg.add("text", "delivered", x=LEFT - 4, y=top + lane - 1, text_anchor="end", font_size=9)
        for b in blocks.values():
            if b["delivered"] is not None:
                svg.add("rect", x=f"{x(b['delivered']) - 1:.1f}", y=top - 1, width=2,
                        height=lane + 2, fill=COLORS["delivered"])
        for row, n_id in enumerate(ids, 1):
            sp = spans[n_id]
            ly = top + row * (lane + GAP)
            end = span_end(sp, blocks, t_max)
            svg.add("rect", x=LEFT, y=ly, width=WIDTH - LEFT - RIGHT, height=lane,
                    fill=COLORS["lane"], class_="span-lane", data_span=n_id)
            if lane >= 8 and (row - 1) % max(1, len(ids) // 16) == 0:
                svg.add("text", str(n_id), x=LEFT - 8, y=ly + lane - 1, text_anchor="end",
                        font_size=9)
            segs = segments(sp, end)
            for kind, t0, t1 in segs:
                svg.add("rect", x=f"{x(t0):.1f}", y=ly, width=f"{max(0.5, (t1 - t0) * scale):.1f}",
                        height=lane, fill=COLORS[kind])
            for t0, t1, _, reason in sp["paused"]:
                t1 = end if t1 is None else t1
                kind = PAUSE_KINDS.get(reason, "paused_full")
                svg.add("rect", x=f"{x(t0):.1f}", y=ly, width=f"{max(0.5, (t1 - t0) * scale):.1f}",
                        height=lane, fill=f"url(#{kind})")
            for t_split, *_ in sp["splits"]:
                svg.add("rect", x=f"{x(t_split) - 0.75:.1f}", y=ly - 2, width=1.5, height=lane + 4,
                        fill=COLORS["split"])
            for i in sp["filled"]:
                if blocks[i]["complete"] is not None:
                    svg.add("rect", x=f"{x(blocks[i]['complete']) - 0.75:.1f}", y=ly - 1,
                            width=1.5, height=lane + 2, fill=COLORS["complete"])
            first_request = sp["requested"]
            if first_request is not None and (sp["ahead"] or sp["hedge_of"] is not None):
                marker(svg, "ahead" if sp["ahead"] else "hedge", x(first_request), ly, lane)
            label = span_label(sp)
            if lane >= 8 and label:
                right = x(max([end] + [s[2] for s in segs]))
                if right + 6.0 * len(label) < WIDTH - 4:
                    svg.add("text", label, x=f"{right + 4:.1f}", y=ly + lane - 1, font_size=9)
                else:
                    left = x(min([first_request if first_request is not None else end]
                                 + [s[1] for s in segs]))
                    svg.add("text", label, x=f"{left - 7:.1f}", y=ly + lane - 1, font_size=9,
                            text_anchor="end")
        for key, kind in (("first_buffer_s", "first_buffer"), ("total_s", "total")):
            svg.add("line", x1=f"{x(m[key]):.1f}", y1=top - 4, x2=f"{x(m[key]):.1f}",
                    y2=top + height + 18, stroke=COLORS[kind], stroke_width=2, stroke_dasharray="4,2")
            svg.add("text", f"{m[key]:.2f} s", x=f"{x(m[key]) + 3:.1f}", y=top + height + 28,
                    fill=COLORS[kind], font_size=10, font_weight="bold")
        y = top + height + 44
    return svg.render(WIDTH, y)


def write(out, panels, title):
    """panels: [(title, gst_log_path, measure_dict)]."""
    parsed = []
    for panel_title, log, m in panels:
        p = parse_log(log, m["playing_log_s"])
        if not p["spans"]:
            raise RuntimeError(f"{log}: no prefetchsrc span lines (GST_DEBUG=prefetchsrc:5?)")
        for line in p["unparsed"][:5]:
            print(f"timeline: {log}: not understood: {line}", file=sys.stderr)
        parsed.append((panel_title, p, m))
    with open(out, "w", encoding="utf-8") as f:
        f.write(render(parsed, title))


def main():
    p = argparse.ArgumentParser(description="Draw prefetchsrc request-span timelines as SVG.")
    p.add_argument("--out", required=True, help="SVG file to write")
    p.add_argument("--title", default="prefetchsrc request spans")
    p.add_argument("--panel", nargs=3, action="append", required=True,
                   metavar=("TITLE", "GST_LOG", "MEASURE_JSON"))
    args = p.parse_args()
    panels = []
    for panel_title, log, measure_json in args.panel:
        with open(measure_json, encoding="utf-8") as f:
            panels.append((panel_title, log, json.load(f)))
    write(args.out, panels, args.title)


if __name__ == "__main__":
    main()
