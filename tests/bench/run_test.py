#!/usr/bin/python3
"""Self-test of bench/run's pure parts (no GStreamer, no servers).

    python3 tests/bench/run_test.py

How the auto row is detected from gst-inspect-1.0's text, how the automatic-concurrency
first check picks the best fixed concurrency and takes the ratio within
each run, how the most connections open at once are counted, how extra
requests per start are counted from a request log, and how a quantile check
compares two rows' quantiles over their runs.
"""

import importlib.machinery
import importlib.util
import math
import unittest
from pathlib import Path

_path = str(Path(__file__).resolve().with_name("run"))
_loader = importlib.machinery.SourceFileLoader("bench_run", _path)
_spec = importlib.util.spec_from_loader("bench_run", _loader)
run = importlib.util.module_from_spec(_spec)
_loader.exec_module(run)

INSPECT = """Element Properties:

  concurrency         : Range requests in flight at once, each on its own connection
                        flags: readable, writable
                        Unsigned Integer. Range: {low} - 64 Default: 4 {extra}
  hedge               : Send a second request for a block
                        flags: readable, writable
                        Boolean. Default: true
  max-concurrency     : Most range requests in flight at once with concurrency=0
                        flags: readable, writable
                        Unsigned Integer. Range: 1 - 64 Default: 16
"""
MAX_HOST = """  max-host-connections: Connections to one host over all elements of the process
                        flags: readable, writable
                        Unsigned Integer. Range: 0 - 1024 Default: 0
"""


def runs(*totals, failed=()):
    return [{"failed": 1} if i in failed else {"total_s": t, "failed": 0}
            for i, t in enumerate(totals)]


def report(rows):
    return {"scenarios": [{"key": "b", "rows": [
        {"row": row, "media": "bytes", "runs": r} for row, r in rows.items()]}]}


AUTO_CHECK = next(c for c in run.CHECKS if c.key == "auto-b")
ALL = {"hedge": True, "auto": True, "max-host": True}


class FeaturesTest(unittest.TestCase):
    def test_today(self):
        f = run.parse_features(INSPECT.format(low=1, extra=""))
        self.assertEqual(f, {"hedge": True, "auto": False, "max-host": False})

    def test_auto_and_max_host_connections(self):
        f = run.parse_features(INSPECT.format(low=0, extra="") + MAX_HOST)
        self.assertEqual(f, {"hedge": True, "auto": True, "max-host": True})


class BestFixedTest(unittest.TestCase):
    def test_best_by_median_ratio_within_run(self):
        rows = {"prefetchsrc-window-c4": runs(2.0, 2.0, 2.0),
                # c=8 has the lowest median (1.0), though c=16 had the best single run
                "prefetchsrc-window-c8": runs(1.0, 1.0, 1.2),
                "prefetchsrc-window-c16": runs(0.5, 1.5, 1.5),
                run.AUTO_ROW: runs(1.05, 1.2, 1.2)}
        [e] = run.evaluate([AUTO_CHECK], report(rows), ALL)
        self.assertEqual(e["best"], "prefetchsrc-window-c8")
        self.assertEqual([round(v, 3) for v in e["runs"]], [1.05, 1.2, 1.0])
        self.assertAlmostEqual(e["value"], 1.05)
        self.assertEqual(e["verdict"], "PASS")
        self.assertIn("best: c=8", e["text"])

    def test_failed_auto_run_fails(self):
        rows = {"prefetchsrc-window-c8": runs(1.0, 1.0, 1.0),
                run.AUTO_ROW: runs(1.0, 1.0, 1.0, failed=(1, 2))}
        [e] = run.evaluate([AUTO_CHECK], report(rows), ALL)
        self.assertTrue(math.isinf(e["value"]))
        self.assertEqual(e["verdict"], "FAIL")

    def test_failed_run_fails_a_min_check(self):
        check = next(c for c in run.CHECKS if c.key == "many-fair")
        rep = {"scenarios": [{"key": "m", "rows": [
            {"row": "many-prefetchsrc", "media": "many",
             "runs": [{"stream_min_ratio": 0.9, "failed": 0}, {"failed": 1}]}]}]}
        [e] = run.evaluate([check], rep, ALL)
        self.assertEqual(e["verdict"], "FAIL")

    def test_skips(self):
        rows = {"prefetchsrc-window-c8": runs(1.0)}
        [e] = run.evaluate([AUTO_CHECK], report(rows), ALL)
        self.assertTrue(e["verdict"].startswith("SKIP (scenario or row"))
        [e] = run.evaluate([AUTO_CHECK], report(rows), dict(ALL, auto=False))
        self.assertEqual(e["verdict"], f"SKIP ({run.FEATURES['auto']})")


class CountTest(unittest.TestCase):
    def test_most_at_once(self):
        spans = [(0, 10), (1, 2), (2, 3), (2.5, 4), (9, 12)]
        self.assertEqual(run.most_at_once(spans), 3)  # at 2.5: (0,10), (2,3), (2.5,4)
        self.assertEqual(run.most_at_once(spans, 5, 20), 2)
        self.assertEqual(run.most_at_once([]), 0)

    def test_labels(self):
        sc = next(s for s in run.SCENARIOS if s.key == "h")
        self.assertEqual(run.row_label("prefetchsrc-window-c16", sc), "prefetchsrc window c=16")
        self.assertIn("concurrency=0 ", run.source_description(run.AUTO_ROW, "U", sc))
        self.assertIn("concurrency=4 ", run.source_description("prefetchsrc-window", "U", sc))
        self.assertEqual(run.tag_of("run=m-0-many-prefetchsrc-many&s=7"),
                         "run=m-0-many-prefetchsrc-many")


def req(t_start, rng):
    return {"t_start": t_start, "range": rng}


class StartTest(unittest.TestCase):
    def test_range_start(self):
        self.assertEqual([run.range_start(h) for h in
                          (None, "-", "bytes=0-", "bytes=100-199", "bytes = 7-", "bytes=-500")],
                         [0, 0, 0, 100, 7, None])

    def test_start_extra(self):
        # The first request and two races for offset 0 before the first buffer
        # (at 1.0); spans for other offsets just before it; a later request for
        # offset 0 (after the first buffer) is no part of the start.
        reqs = [req(0.5, "bytes=0-"), req(0.0, "bytes=0-"), req(0.9, "bytes=1048576-"),
                req(0.95, "bytes=0-1048575"), req(1.5, "bytes=0-")]
        self.assertEqual(run.start_extra(reqs, before=1.0), 2)
        self.assertEqual(run.start_extra(reqs), 3)
        self.assertEqual(run.start_extra(reqs[2:3], before=1.0), 0)
        self.assertIsNone(run.start_extra([], before=1.0))
        # nginx: no start times, the head given (a request without Range reads from 0).
        self.assertEqual(run.start_extra([{"range": "-"}, {"range": "bytes=0-"},
                                          {"range": "bytes=5-"}], head=0), 1)

    def test_nginx_line(self):
        line = ('127.0.0.1 [05/Dec/2026:15:00:00 +0000] "GET /random-64M.bin?run=c-0-prefetchsrc'
                '-bytes HTTP/1.1" 206 1048576 range="bytes=0-" conn=7 req=1 ua="x" time=0.01')
        m = run.Nginx.LINE.search(line)
        self.assertEqual(m.groups(), ("/random-64M.bin?run=c-0-prefetchsrc-bytes", "206",
                                      "1048576", "bytes=0-", "7"))


class QuantileTest(unittest.TestCase):
    P90 = next(c for c in run.CHECKS if c.key == "start-first-p90")
    P50 = next(c for c in run.CHECKS if c.key == "start-first-p50")

    def report(self, num, den):
        def rows(values):
            return [{"first_buffer_s": v, "failed": 0} for v in values]
        return {"scenarios": [{"key": "n", "rows": [
            {"row": run.DEFAULT_ROW, "media": "bytes", "runs": rows(num)},
            {"row": "souphttpsrc", "media": "bytes", "runs": rows(den)}]}]}

    def test_quantiles_over_runs(self):
        den = [0.1 * i for i in range(1, 11)]  # p90: the 10th (index 9), 1.0; p50 0.55
        num = [0.05 * i for i in range(1, 11)]  # p90 0.5, p50 0.275
        [e90, e50] = run.evaluate([self.P90, self.P50], self.report(num, den), ALL)
        self.assertAlmostEqual(e90["value"], 0.5)
        self.assertEqual(e90["verdict"], "PASS")
        self.assertIn("p90 0.50 / 1.00", e90["detail"])
        self.assertAlmostEqual(e50["value"], 0.5)
        self.assertEqual(run.quantile(list(range(30)), 0.9), 27)

    def test_not_paired(self):
        # The same values in another order: a quantile check ignores pairing.
        den = [1.0, 0.2, 0.3]
        [e] = run.evaluate([self.P50], self.report([0.3, 0.2, 1.0], den), ALL)
        self.assertAlmostEqual(e["value"], 1.0)
        self.assertEqual(e["verdict"], "FAIL")

    def test_summary_p90(self):
        runs = [{"first_buffer_s": 0.1 * i} for i in range(1, 11)]
        self.assertEqual(run.summarize(runs, quantiles=True)["first_buffer_p90_s"]["text"],
                         "1.00")
        self.assertNotIn("first_buffer_p90_s", run.summarize(runs))


if __name__ == "__main__":
    unittest.main()
