#!/usr/bin/python3
"""Draws prefetchsrc's block timeline as SVG, one panel per run.

    timeline.py --out timeline.svg --panel TITLE GST_LOG MEASURE_JSON [--panel ...]

GST_LOG is a GST_DEBUG_FILE written with GST_DEBUG=prefetchsrc:5 and
GST_DEBUG_NO_COLOR=1; MEASURE_JSON is measure.py's output for the same run
(its playing_log_s puts PLAYING at time zero, its first_buffer_s and total_s
are marked). The element logs, per block:

    block 12 requested bytes=12582912-13631487 attempt 1
    block 12 first-byte
    block 12 complete 1048576 bytes
    block 12 delivered

Each block gets a lane: a light bar from requested to first-byte (waiting for
the origin), a dark bar from first-byte to complete (transfer) and a tick at
delivered (pushed downstream). All panels share one time axis so a barrier
run and a window run on the same origin compare at a glance.
"""

import argparse
import html
import json
import math
import re

# "0:00:01.234567890 <pid> <thread> DEBUG <category> <file:line:func:<obj>> message"
LINE = re.compile(
    r"^(\d+):(\d\d):(\d\d)\.(\d{9})\s.*?\bblock (\d+) "
    r"(requested bytes=\d+-\d+ attempt (\d+)|first-byte|complete \d+ bytes|delivered)\s*$")

WIDTH = 1000
LEFT, RIGHT = 60, 45
LANE, GAP = 9, 2
MAX_LANES_H = 560  # lanes shrink so a panel never gets taller than this
COLORS = {"waiting": "#f4b183", "transfer": "#2f5597", "delivered": "#111111",
          "first_buffer": "#2e7d32", "total": "#c62828", "grid": "#dddddd"}


def parse_log(path, zero_s):
    """Returns {block: {"requested", "first-byte", "complete", "delivered",
    "attempts"}}, times in seconds from `zero_s` on the log's clock. A retry
    logs `requested` again: the lane keeps the first request time (the reader
    waited from then) and counts the attempts."""
    blocks = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            h, mi, s, ns, block, event, attempt = m.groups()
            t = int(h) * 3600 + int(mi) * 60 + int(s) + int(ns) / 1e9 - zero_s
            kind = event.split()[0]
            b = blocks.setdefault(int(block), {"attempts": 0})
            if kind == "requested":
                b["attempts"] = max(b["attempts"], int(attempt))
            b.setdefault(kind, t)
            if kind in ("first-byte", "complete"):
                b[kind] = t  # the attempt that succeeded is the last one
    return blocks


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

    def render(self, width, height):
        body = "\n".join(self.parts)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">\n'
                f'<rect width="{width}" height="{height}" fill="white"/>\n{body}\n</svg>\n')


def render(panels, title):
    """panels: [(title, blocks, measure_dict)]. Returns SVG text."""
    t_max = max(max([m["total_s"]] + [t for b in blocks.values() for k, t in b.items()
                                       if k != "attempts"])
                for _, blocks, m in panels)
    step = nice_step(t_max)
    t_axis = math.ceil(t_max / step) * step
    scale = (WIDTH - LEFT - RIGHT) / t_axis

    def x(t):
        return LEFT + t * scale

    svg = Svg()
    svg.add("text", f"{title} (time since PLAYING)", x=LEFT, y=22, font_size=16, font_weight="bold")
    legend_x = LEFT
    for label, kind in (("waiting (requested → first byte)", "waiting"),
                        ("transfer (first byte → complete)", "transfer")):
        svg.add("rect", x=legend_x, y=32, width=14, height=10, fill=COLORS[kind])
        svg.add("text", label, x=legend_x + 18, y=41)
        legend_x += 240
    svg.add("rect", x=legend_x + 5, y=30, width=2, height=14, fill=COLORS["delivered"])
    svg.add("text", "delivered downstream", x=legend_x + 12, y=41)
    legend_x += 170
    for label, kind in (("first buffer", "first_buffer"), ("total (EOS)", "total")):
        svg.add("line", x1=legend_x, y1=37, x2=legend_x + 16, y2=37,
                stroke=COLORS[kind], stroke_width=2, stroke_dasharray="4,2")
        svg.add("text", label, x=legend_x + 20, y=41)
        legend_x += 110

    y = 60
    for panel_title, blocks, m in panels:
        n = max(blocks) + 1 if blocks else 1
        lane = min(LANE, max(2, MAX_LANES_H // n - GAP))
        height = n * (lane + GAP)
        svg.add("text", f"{panel_title}: first buffer {m['first_buffer_s']:.2f} s, "
                f"total {m['total_s']:.2f} s", x=LEFT, y=y + 14, font_size=14, font_weight="bold")
        top = y + 24
        t = 0.0
        while t <= t_axis + 1e-9:
            svg.add("line", x1=f"{x(t):.1f}", y1=top, x2=f"{x(t):.1f}", y2=top + height,
                    stroke=COLORS["grid"])
            svg.add("text", f"{t:g} s", x=f"{x(t):.1f}", y=top + height + 14, text_anchor="middle")
            t += step
        svg.add("text", "block", x=LEFT - 8, y=top - 4, text_anchor="end")
        for index, b in sorted(blocks.items()):
            ly = top + index * (lane + GAP)
            if lane >= 8 and (index % max(1, n // 16) == 0):
                svg.add("text", str(index), x=LEFT - 8, y=ly + lane - 1, text_anchor="end", font_size=9)
            spans = (("requested", "first-byte", "waiting"), ("first-byte", "complete", "transfer"))
            for start, end, kind in spans:
                if start in b and end in b:
                    svg.add("rect", x=f"{x(b[start]):.1f}", y=ly,
                            width=f"{max(0.5, (b[end] - b[start]) * scale):.1f}", height=lane,
                            fill=COLORS[kind])
            if "delivered" in b:
                svg.add("rect", x=f"{x(b['delivered']) - 1:.1f}", y=ly - 1, width=2, height=lane + 2,
                        fill=COLORS["delivered"])
            if b["attempts"] > 1:
                svg.add("text", f"×{b['attempts']}", x=f"{x(b.get('complete', 0)) + 4:.1f}",
                        y=ly + lane - 1, font_size=9)
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
        blocks = parse_log(log, m["playing_log_s"])
        if not blocks:
            raise RuntimeError(f"{log}: no prefetchsrc block lines (GST_DEBUG=prefetchsrc:5?)")
        parsed.append((panel_title, blocks, m))
    with open(out, "w", encoding="utf-8") as f:
        f.write(render(parsed, title))


def main():
    p = argparse.ArgumentParser(description="Draw prefetchsrc block timelines as SVG.")
    p.add_argument("--out", required=True, help="SVG file to write")
    p.add_argument("--title", default="prefetchsrc block timeline")
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
