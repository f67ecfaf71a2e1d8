#!/usr/bin/python3
"""Self-test of timeline.py on a synthetic GStreamer log (no GStreamer needed).

    python3 tests/bench/timeline_test.py

The log has one element fetching 10 blocks of 1 MiB: an open-ended span 1
split at block 5 (span 2 takes 5-end), span 2 paused (look-ahead full) and
resumed, then split at block 8 (span 3 takes 8-9, sent ahead on span 1's
connection), and span 4, a hedge of span 3, whose first byte comes first
and so fills blocks 8 and 9. Span 2's first byte (0.30 s) comes before span
1's (0.41 s), so block 6 lands on span 2 only if the split cut span 1's
range. Lines of another element and of other messages are ignored.
"""

import os
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import timeline  # noqa: E402

MIB = 1 << 20
ZERO = 1.0  # PLAYING at 0:00:01 on the log's clock


def line(t, message, obj="prefetchsrc0", category="prefetchsrc", level="DEBUG"):
    """One line as GStreamer writes it with GST_DEBUG_NO_COLOR=1 (the core's
    lines come through gst_debug_log with file, "core", line 0, the element)."""
    whole = ZERO + t
    h, rest = divmod(whole, 3600)
    mi, s = divmod(rest, 60)
    stamp = f"{int(h)}:{int(mi):02d}:{int(s):02d}.{round((s - int(s)) * 1e9):09d}"
    return (f"{stamp} 12345 0x55d5c8a0e2c0 {level:<7} {category:>20} "
            f"gstprefetchsrc.cc:0:core:<{obj}> {message}\n")


EVENTS = [
    (0.000, "resource size 10485760 bytes, 10 blocks"),
    (0.010, "span 1 requested bytes=0- blocks 0-end attempt 1"),
    (0.020, "span 1 split at block 5: span 2 takes blocks 5-end"),
    (0.020, f"span 2 requested bytes={5 * MIB}- blocks 5-end attempt 1"),
    (0.300, "span 2 first-byte after 280 ms"),
    (0.301, "block 5 first-byte"),
    (0.410, "span 1 first-byte after 400 ms"),
    (0.411, "block 0 first-byte"),
    (1.100, f"block 0 complete {MIB} bytes"),
    (1.101, "block 0 delivered"),
    (1.101, "block 1 first-byte"),
    (1.400, f"block 5 complete {MIB} bytes"),
    (1.401, "block 6 first-byte"),
    (1.800, f"block 1 complete {MIB} bytes"),
    (1.801, "block 1 delivered"),
    (1.801, "block 2 first-byte"),
    (2.000, f"block 6 complete {MIB} bytes"),
    (2.000, "span 2 yields its transfer slot to span 1"),
    (2.000, f"span 2 paused at byte {7 * MIB}: look-ahead full"),
    (2.500, f"block 2 complete {MIB} bytes"),
    (2.501, "block 2 delivered"),
    (2.501, "block 3 first-byte"),
    (2.600, "span 2 split at block 8: span 3 takes blocks 8-9"),
    (2.600, f"span 3 requested bytes={8 * MIB}-{10 * MIB - 1} blocks 8-9 attempt 1 (ahead)"),
    (2.900, f"span 2 resumed at byte {7 * MIB}"),
    (2.901, "block 7 first-byte"),
    (3.200, f"block 3 complete {MIB} bytes"),
    (3.201, "block 3 delivered"),
    (3.201, "block 4 first-byte"),
    (3.200, f"span 4 requested bytes={8 * MIB}-{10 * MIB - 1} blocks 8-9 attempt 1 (hedge of span 3)"),
    (3.400, "span 4 first-byte after 200 ms"),
    (3.401, "block 8 first-byte"),
    (3.410, f"span 3 ends at byte {8 * MIB}: cancelled"),
    (3.600, f"block 7 complete {MIB} bytes"),
    (3.600, f"span 2 ends at byte {8 * MIB}: its range is in"),
    (3.900, f"block 4 complete {MIB} bytes"),
    (3.900, f"span 1 ends at byte {5 * MIB}: its range is in"),
    (3.901, "block 4 delivered"),
    (3.902, "block 5 delivered"),
    (3.903, "block 6 delivered"),
    (3.904, "block 7 delivered"),
    (4.000, f"block 8 complete {MIB} bytes"),
    (4.001, "block 8 delivered"),
    (4.001, "block 9 first-byte"),
    (4.600, f"block 9 complete {MIB} bytes"),
    (4.600, f"span 4 ends at byte {10 * MIB}: its range is in"),
    (4.601, "block 9 delivered"),
]

NOISE = [
    line(0.005, "span 1 requested bytes=0-1048575 blocks 0-0 attempt 1", obj="prefetchsrc1"),
    line(0.006, "block 0 first-byte", obj="prefetchsrc1"),
    line(0.007, "span 1 requested bytes=0- blocks 0-end attempt 1", category="GST_STATES"),
    "not a log line at all\n",
]


def write_log(directory, events, noise=()):
    path = os.path.join(directory, "gst.log")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(noise)
        f.writelines(line(t, message) for t, message in events)
    return path


class ParseTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.log = write_log(cls.dir.name, EVENTS, NOISE)
        cls.parsed = timeline.parse_log(cls.log, ZERO)
        cls.spans, cls.blocks = cls.parsed["spans"], cls.parsed["blocks"]

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_one_element_and_four_spans(self):
        self.assertEqual(self.parsed["element"], "prefetchsrc0")
        self.assertEqual(sorted(self.spans), [1, 2, 3, 4])
        self.assertEqual(self.parsed["unparsed"], [])

    def test_open_ended_span_split_in_two(self):
        s1, s2 = self.spans[1], self.spans[2]
        self.assertAlmostEqual(s1["requested"], 0.010, places=6)
        self.assertEqual(s1["bytes"], (0, None))
        self.assertEqual(s1["blocks"], (0, None))
        self.assertEqual(len(s1["splits"]), 1)
        t, j, taker, last = s1["splits"][0]
        self.assertAlmostEqual(t, 0.020, places=6)
        self.assertEqual((j, taker, last), (5, 2, None))
        self.assertEqual(s1["last_block"], 4)
        self.assertAlmostEqual(s1["first_byte"], 0.410, places=6)
        self.assertEqual(s1["first_byte_ms"], 400.0)
        self.assertAlmostEqual(s1["end"], 3.900, places=6)
        self.assertEqual((s1["end_byte"], s1["end_reason"]), (5 * MIB, "its range is in"))
        self.assertEqual(s1["filled"], [0, 1, 2, 3, 4])
        self.assertEqual(s2["bytes"], (5 * MIB, None))
        self.assertEqual(s2["blocks"], (5, None))
        self.assertEqual(s2["last_block"], 7)  # split again at 8 for span 3

    def test_paused_and_resumed_span(self):
        s2 = self.spans[2]
        self.assertEqual(len(s2["paused"]), 1)
        t0, t1, byte, reason = s2["paused"][0]
        self.assertAlmostEqual(t0, 2.000, places=6)
        self.assertAlmostEqual(t1, 2.900, places=6)
        self.assertEqual((byte, reason), (7 * MIB, "look-ahead full"))
        # Block 6 after span 1's later first byte: the split keeps it on span 2.
        self.assertEqual(s2["filled"], [5, 6, 7])
        self.assertAlmostEqual(s2["first_byte"], 0.300, places=6)

    def test_ahead_span_and_hedge(self):
        s3, s4 = self.spans[3], self.spans[4]
        self.assertTrue(s3["ahead"])
        self.assertIsNone(s3["hedge_of"])
        self.assertEqual(s3["bytes"], (8 * MIB, 10 * MIB - 1))
        self.assertEqual(s3["blocks"], (8, 9))
        self.assertIsNone(s3["first_byte"])
        self.assertEqual(s3["end_reason"], "cancelled")
        self.assertEqual(s3["filled"], [])
        self.assertFalse(s4["ahead"])
        self.assertEqual(s4["hedge_of"], 3)
        self.assertAlmostEqual(s4["requested"], 3.200, places=6)
        self.assertEqual(s4["requests"][0]["attempt"], 1)
        self.assertEqual(s4["filled"], [8, 9])
        self.assertFalse(self.spans[1]["ahead"] or self.spans[2]["ahead"])

    def test_blocks(self):
        self.assertEqual(sorted(self.blocks), list(range(10)))
        self.assertEqual({i: b["span"] for i, b in self.blocks.items()},
                         {0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 2, 6: 2, 7: 2, 8: 4, 9: 4})
        b7 = self.blocks[7]
        self.assertAlmostEqual(b7["first_byte"], 2.901, places=6)
        self.assertAlmostEqual(b7["complete"], 3.600, places=6)
        self.assertAlmostEqual(b7["delivered"], 3.904, places=6)
        self.assertEqual(b7["bytes"], MIB)

    def test_segments(self):
        s2 = self.spans[2]
        segs = timeline.segments(s2, timeline.span_end(s2, self.blocks, 0))
        self.assertEqual([k for k, _, _ in segs], ["waiting", "transfer"])
        self.assertAlmostEqual(segs[0][1], 0.020, places=6)
        self.assertAlmostEqual(segs[0][2], 0.300, places=6)
        self.assertAlmostEqual(segs[1][2], 3.600, places=6)
        s3 = self.spans[3]  # no first byte: waits until it ends
        segs = timeline.segments(s3, timeline.span_end(s3, self.blocks, 0))
        self.assertEqual([(k, round(a, 3), round(b, 3)) for k, a, b in segs],
                         [("waiting", 2.6, 3.41)])

    def test_svg_has_one_lane_per_span(self):
        out = os.path.join(self.dir.name, "timeline.svg")
        measure = {"playing_log_s": ZERO, "first_buffer_s": 0.45, "total_s": 4.7}
        timeline.write(out, [("window", self.log, measure), ("again", self.log, measure)],
                       "synthetic")
        root = ET.parse(out).getroot()  # well-formed
        ns = "{http://www.w3.org/2000/svg}"
        lanes = [r.get("data-span") for r in root.iter(ns + "rect")
                 if r.get("class") == "span-lane"]
        self.assertEqual(lanes, ["1", "2", "3", "4"] * 2)
        texts = [t.text for t in root.iter(ns + "text")]
        self.assertIn("8–9 ahead (cancelled)", texts)
        self.assertIn("8–9 hedge of 3", texts)
        fills = {r.get("fill") for r in root.iter(ns + "rect")}
        self.assertIn("url(#paused_full)", fills)


class LegacyTest(unittest.TestCase):
    def test_block_requests_become_one_block_spans(self):
        events = [(0.01, "block 1 requested bytes=1048576-2097151 attempt 1"),
                  (0.02, "block 0 requested bytes=0-1048575 attempt 1"),
                  (0.50, "block 0 first-byte"), (0.60, "block 1 first-byte"),
                  (0.90, "block 0 complete 1048576 bytes"), (0.91, "block 0 delivered"),
                  (1.00, "block 1 requested bytes=1048576-2097151 attempt 2"),
                  (1.20, "block 1 first-byte"), (1.60, "block 1 complete 1048576 bytes")]
        with tempfile.TemporaryDirectory() as d:
            parsed = timeline.parse_log(write_log(d, events), ZERO)
        spans = parsed["spans"]
        self.assertEqual(sorted(spans), [1, 2])
        self.assertEqual((spans[1]["blocks"], spans[2]["blocks"]), ((1, 1), (0, 0)))
        self.assertEqual([r["attempt"] for r in spans[1]["requests"]], [1, 2])
        self.assertEqual(parsed["blocks"][1]["span"], 1)
        self.assertAlmostEqual(spans[2]["end"], 0.90, places=6)


if __name__ == "__main__":
    unittest.main()
