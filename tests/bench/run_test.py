#!/usr/bin/python3
"""Self-test of bench/run's pure parts (no GStreamer, no servers).

    python3 tests/bench/run_test.py

How the auto row is detected from gst-inspect-1.0's text, how the automatic-concurrency
first check picks the best fixed concurrency and takes the ratio within
each run, how the most connections open at once are counted, how extra
requests per start are counted from a request log, how a quantile check
compares two rows' quantiles over their runs, and scenario k's (the disk
cache's) plays, per-play request counts, ratios, checks and table.
"""

import importlib.machinery
import importlib.util
import math
import os
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run imports diskcache, timeline
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


import diskcache  # noqa: E402  (after the path is set)


def disk_run(cold, warm, off, warm_reqs=1, warm_sent=0, exact=100.0):
    """One run of scenario k's rows as run_disk_scenario leaves them."""
    return {("prefetchsrc-disk", "cold"): {"total_s": cold, "failed": 0, "requests": 40,
                                           "sent_bytes": 64 << 20, "exact_pct": 100.0},
            ("prefetchsrc-disk", "warm"): {"total_s": warm, "failed": 0, "requests": warm_reqs,
                                           "sent_bytes": warm_sent, "exact_pct": exact},
            ("prefetchsrc", "off"): {"total_s": off, "failed": 0, "requests": 40}}


class DiskCacheTest(unittest.TestCase):
    SC = next(s for s in run.SCENARIOS if s.key == "k")

    def test_opt_in(self):
        default = next(a.default for a in _parser_actions() if a.dest == "scenarios")
        self.assertNotIn("k", default)
        self.assertEqual(self.SC.kinds, ("diskcache",))
        self.assertIn(run.DOWNLOAD_ROW, run.ROWS)
        self.assertEqual(run.scenario_runs(self.SC, 5, False, False), 3)
        self.assertEqual(run.scenario_runs(self.SC, 2, True, False), 2)
        self.assertEqual(run.scenario_runs(self.SC, 5, False, True), 5)

    def test_sequences(self):
        seqs = diskcache.sequences(self.SC.rows)
        self.assertEqual([s[0].seq for s in seqs],
                         ["disk", "fresh", "two", "soup", "download", "loop-disk"])
        disk = seqs[0]
        # The cache-off reference right before the cold play it is set against.
        self.assertEqual([(p.media, p.cache, p.origin) for p in disk],
                         [("off", False, "reval"), ("cold", True, "reval"),
                          ("warm", True, "reval")])
        self.assertEqual([p.media for p in seqs[-1]], ["off", "cold", "warm", "warm, hashed"])
        self.assertEqual([p.hashed for p in seqs[-1]], [False, False, False, True])
        only_soup = diskcache.sequences(("souphttpsrc",))
        self.assertEqual([[p.media for p in s] for s in only_soup], [["cold", "warm"]])
        self.assertEqual(diskcache.CACHE_CONTROL["fresh"], "max-age=3600")

    def test_descriptions(self):
        plays = {(p.row, p.media): p for p in diskcache.PLAYS}
        d = diskcache.description
        self.assertEqual(d(plays[("prefetchsrc-disk", "warm")], "U", "/c", "/t"),
                         "prefetchsrc location=U disk-cache=/c")
        self.assertEqual(d(plays[("prefetchsrc", "off")], "U", "/c", "/t"),
                         "prefetchsrc location=U")
        self.assertEqual(d(plays[(run.DOWNLOAD_ROW, "cold")], "U", "/c", "/t"),
                         "souphttpsrc location=U ! queue2 ring-buffer-max-size=0 "
                         "temp-template=/t/q2-XXXXXX use-buffering=true")
        self.assertEqual(d(plays[("souphttpsrc", "warm")], "U"), "souphttpsrc location=U")
        self.assertEqual(set(diskcache.LABELS), {p.row for p in diskcache.PLAYS})

    def test_requests_of_a_play(self):
        # One tag for the pair: the cold play's requests, then the warm one's 304.
        reqs = [{"t_start": 10.1, "status": 206, "bytes": 3 << 20},
                {"t_start": 10.2, "status": 206, "bytes": 5 << 20, "aborted": True},
                {"t_start": 12.5, "status": 304, "bytes": 0, "if_none_match": '"x"'}]
        cold = diskcache.origin_figures(diskcache.requests_between(reqs, 10.0, 12.0))
        warm = diskcache.origin_figures(diskcache.requests_between(reqs, 12.1, 13.0))
        self.assertEqual((cold["requests"], cold["sent_bytes"], cold["sent_mib"],
                          cold["responses_304"], cold["conditional"]), (2, 8 << 20, 8.0, 0, 0))
        self.assertEqual((warm["requests"], warm["sent_bytes"], warm["responses_304"],
                          warm["conditional"], warm["statuses"]), (1, 0, 1, 1, [304]))
        self.assertEqual(diskcache.origin_figures([])["requests"], 0)

    def test_ratios(self):
        r = disk_run(4.0, 1.0, 3.8)
        r[("souphttpsrc", "cold")] = {"total_s": 16.0, "failed": 0}
        r[("souphttpsrc", "warm")] = {"total_s": 16.4, "failed": 0}
        r[("prefetchsrc-disk-loopback", "cold")] = {"total_s": 1.2, "failed": 0}
        r[("prefetchsrc-loopback", "off")] = {"failed": 1}
        diskcache.add_ratios(r)
        self.assertAlmostEqual(r[("prefetchsrc-disk", "warm")]["warm_ratio"], 0.25)
        self.assertAlmostEqual(r[("prefetchsrc-disk", "cold")]["on_ratio"], 4.0 / 3.8)
        self.assertAlmostEqual(r[("souphttpsrc", "warm")]["warm_ratio"], 16.4 / 16.0)
        self.assertNotIn("on_ratio", r[("prefetchsrc-disk-loopback", "cold")])  # off failed
        self.assertNotIn("warm_ratio", r[("prefetchsrc-disk", "cold")])

    def test_two_at_once(self):
        plays = {(p.row, p.media): p for p in diskcache.PLAYS}
        two = plays[("prefetchsrc-disk-two", "two at once")]
        self.assertEqual((two.together, two.cache), (2, True))
        a = {"total_s": 5.0, "first_buffer_s": 0.1, "exact_pct": 100.0, "cpu_s": 1.0, "failed": 0}
        b = {"total_s": 6.0, "first_buffer_s": 0.3, "exact_pct": 0.0, "cpu_s": 0.5, "failed": 0}
        m = diskcache.merge_together([a, b], 64 << 20)
        self.assertEqual((m["total_s"], m["first_buffer_s"], m["exact_pct"], m["cpu_s"]),
                         (6.0, 0.3, 0.0, 1.5))
        self.assertEqual(diskcache.merge_together([a, {"failed": 1, "error": "x"}], 1)["failed"], 1)
        m["sent_bytes"] = 80 << 20  # the origin's log, for both processes
        r = {("prefetchsrc-disk-two", "two at once"): m}
        diskcache.add_ratios(r)
        self.assertAlmostEqual(m["sent_ratio"], 1.25)
        self.assertNotIn("sent_ratio", disk_run(4.0, 1.0, 3.8)[("prefetchsrc-disk", "cold")])

    def test_stats_figures(self):
        f = diskcache.stats_figures({"disk-bytes-read": 64 << 20, "disk-bytes-written": 0,
                                     "disk-blocks-not-written": 3})
        self.assertEqual(f, {"disk_read_mib": 64.0, "disk_written_mib": 0.0,
                             "disk_not_written": 3})
        self.assertEqual(diskcache.stats_figures(None), {})

    def test_dir_bytes_counts_what_sparse_files_hold(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "data"))
            with open(os.path.join(d, "data", "1"), "wb") as f:
                f.truncate(64 << 20)  # a hole
                f.seek(8 << 20)
                f.write(os.urandom(1 << 20))
            held = diskcache.dir_bytes(d)
            self.assertGreaterEqual(held, 1 << 20)
            self.assertLess(held, 2 << 20)

    def checks(self, runs):
        rows = {}
        for one in runs:
            for key, r in one.items():
                rows.setdefault(key, []).append(r)
        rep = {"scenarios": [{"key": "k", "rows": [
            {"row": row, "media": media, "runs": r} for (row, media), r in rows.items()]}]}
        keys = ("disk-cold-cost", "disk-warm-requests", "disk-warm-sent", "disk-warm-exact",
                "disk-fresh-requests")
        return {e["key"]: e for e in run.evaluate([c for c in run.CHECKS if c.key in keys],
                                                  rep, ALL)}

    def test_checks(self):
        e = self.checks([disk_run(4.0, 0.2, 4.0), disk_run(4.2, 0.2, 4.0),
                         disk_run(4.1, 0.2, 3.8)])
        self.assertAlmostEqual(e["disk-cold-cost"]["value"], 1.05)
        self.assertEqual(e["disk-cold-cost"]["verdict"], "PASS")
        self.assertEqual((e["disk-warm-requests"]["value"], e["disk-warm-requests"]["verdict"]),
                         (1, "PASS"))
        self.assertEqual(e["disk-warm-sent"]["verdict"], "PASS")
        self.assertEqual(e["disk-warm-exact"]["verdict"], "PASS")
        self.assertTrue(e["disk-fresh-requests"]["verdict"].startswith("SKIP"))
        # One warm play that refetched a block fails the bytes check (max over runs).
        e = self.checks([disk_run(4.0, 0.2, 4.0), disk_run(4.0, 0.3, 4.0, 2, 1 << 20, 0.0)])
        self.assertEqual((e["disk-warm-sent"]["value"], e["disk-warm-sent"]["verdict"]),
                         (1 << 20, "FAIL"))
        self.assertEqual(e["disk-warm-requests"]["verdict"], "FAIL")
        self.assertEqual(e["disk-warm-exact"]["verdict"], "FAIL")

    def test_markdown_table(self):
        r = disk_run(4.0, 0.2, 4.0)
        diskcache.add_ratios(r)
        sc = {"key": "k", "title": "disk", "model": "m", "server": "origin", "ttfb": "none",
              "rate_bytes_per_s": 4 << 20, "concurrency": 0, "block_size": 1 << 20,
              "file_bytes": 64 << 20, "blocks": 64, "video_bytes": None, "seeds": [1],
              "media_label": "play", "params": "PARAMS", "server_text": "SERVER",
              "rows": [{"row": row, "label": diskcache.LABELS[row], "media": media,
                        "runs": [v], "summary": run.summarize([v])}
                       for (row, media), v in r.items()]}
        text = run.markdown({"quick": True, "runs": 1, "command": "c", "commit": "x", "seed": 1,
                             "wall_s": 1, "has_hedge": True, "features": ALL,
                             "scenarios": [sc], "acceptance": []})
        self.assertIn("PARAMS; server: SERVER", text)
        self.assertIn("| row | play | total s | requests | warm / cold | on / off | exact % |",
                      text)
        self.assertIn("| prefetchsrc disk-cache=DIR (origin: no-cache) | warm | 0.20 (0.20–0.20) "
                      "| 1 (1–1) | 0.05 (0.05–0.05) | — | 100 (100–100) |", text)


def _parser_actions():
    """main()'s argparse actions, without running main()."""
    import argparse
    captured = []
    real = argparse.ArgumentParser.parse_args

    def grab(self, *a, **k):
        captured.extend(self._actions)
        raise SystemExit(0)
    argparse.ArgumentParser.parse_args = grab
    try:
        run.main()
    except SystemExit:
        pass
    finally:
        argparse.ArgumentParser.parse_args = real
    return captured


if __name__ == "__main__":
    unittest.main()
