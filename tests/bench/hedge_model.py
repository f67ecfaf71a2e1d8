#!/usr/bin/python3
"""A model of scenario d (heavy tail) to ask what hedging can reach at all.

    tests/bench/hedge_model.py [--seeds N] [--oracle]

It replays the window schedule of core/src/prefetcher.cc (concurrency 4,
look-ahead 8 blocks, 32 blocks of 1 MiB at 4 MiB/s per connection, a reader
that takes bytes at once) on the very first-byte waits origin.py draws for
each seed (its Ttfb class: same seed, path, offset and repeat count), in
simulated time. For every seed it runs no hedging, the element's policy and
a sweep of fixed thresholds, all within the budget of 10 % extra requests,
and prints the median over the seeds of hedge/no-hedge total time and
longest stall, as tests/bench/run's checks do.

--oracle adds the bound no causal policy can beat: for each seed, the best
choice of which blocks to hedge (as many as the budget allows, each 0.3 s
after its request), found by trying every set among the blocks whose first
wait exceeds 0.6 s. It takes a minute per seed or so.

The model ignores CPU and network time; it agrees with the real benchmark
to a few hundredths on seeds 1-5.
"""

import argparse
import itertools
import statistics
from pathlib import Path

import importlib.util

_spec = importlib.util.spec_from_file_location("origin", Path(__file__).with_name("origin.py"))
origin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(origin)

MIB = 1 << 20
BLOCKS, CONCURRENCY, LOOKAHEAD, BODY_S, TICK_S = 32, 4, 8, 0.25, 0.02
PATH, TTFB = "/random-32M.bin", "lognormal:0.3,1.2"


def element_policy(samples, age, distance, tokens):
    """core/src/prefetcher.cc's rule: 2.5 x the median first-byte time (at
    least 6 samples, floor 50 ms), x (1 + distance from the reader), x 2 for
    the budget's last hedge."""
    if len(samples) < 6:
        return False
    recent = sorted(samples[-64:])
    threshold = max(0.05, 2.5 * recent[len(recent) // 2])
    return age >= threshold * (1 + distance) * (2.0 if tokens < 2 else 1.0)


def fixed_policy(seconds):
    return lambda samples, age, distance, tokens: age >= seconds


def oracle_policy(blocks, seconds=0.3):
    return lambda samples, age, distance, tokens, block=None: block in blocks and age >= seconds


def simulate(seed, policy=None, oracle=False):
    ttfb = origin.Ttfb(TTFB, seed)
    t, reqs, blocks, samples = 0.0, [], {}, []
    state = {"read": 0, "started": 0, "hedges": 0}

    def launch(b, hedge=False):
        reqs.append({"block": b, "start": t, "fb": t + ttfb.delay(PATH, b * MIB), "alive": True})
        blocks[b]["reqs"].append(reqs[-1])
        state["hedges" if hedge else "started"] += 1

    def in_flight():
        return sum(r["alive"] for r in reqs)

    def maybe_hedge():
        if in_flight() > CONCURRENCY:  # the spare slot is taken
            return
        base = min(state["started"] + LOOKAHEAD, max(state["started"], BLOCKS))
        tokens = 0.1 * base - state["hedges"]
        if tokens < 1 and not oracle:
            return
        for b in range(state["read"], state["read"] + 3):
            blk = blocks.get(b)
            if not blk or blk["fb"] is not None or blk["hedged"]:
                continue
            main = [r for r in blk["reqs"] if r["alive"]]
            if not main:
                continue
            age = t - main[0]["start"]
            ok = (policy(samples, age, b - state["read"], tokens, block=b) if oracle
                  else policy(samples, age, b - state["read"], tokens))
            if ok:
                blk["hedged"] = True
                launch(b, hedge=True)
                return

    def pump():
        if policy:
            maybe_hedge()
        for b in range(state["read"], min(state["read"] + LOOKAHEAD, BLOCKS)):
            if in_flight() >= CONCURRENCY:
                break
            if b not in blocks:
                blocks[b] = {"fb": None, "complete": None, "reqs": [], "hedged": False}
                launch(b)

    last, gaps = 0.0, []
    pump()
    while state["read"] < BLOCKS:
        events = []
        for r in reqs:
            if r["alive"]:
                blk = blocks[r["block"]]
                events.append((r["fb"] if blk["fb"] is None else blk["fb"] + BODY_S, r))
        t = min([e[0] for e in events] + ([t + TICK_S] if policy else []))
        for when, r in sorted(events, key=lambda e: e[0]):
            if when > t + 1e-12 or not r["alive"]:
                continue
            blk = blocks[r["block"]]
            if blk["fb"] is None:  # the first answer wins; the other is cancelled
                blk["fb"] = r["fb"]
                samples.append(r["fb"] - r["start"])
                for other in blk["reqs"]:
                    other["alive"] = other is r
            else:
                r["alive"] = False
                blk["complete"] = blk["fb"] + BODY_S
        while state["read"] < BLOCKS and (blocks.get(state["read"]) or {}).get("complete") is not None:
            blk = blocks[state["read"]]
            gaps.append(blk["fb"] - last)
            last = blk["complete"]
            state["read"] += 1
        pump()
    return {"total": last, "stall": max(gaps[1:]), "extra": len(reqs) - BLOCKS}


def best_oracle(seed, base):
    budget = int(0.1 * BLOCKS)
    slow = [b for b in range(BLOCKS) if origin.Ttfb(TTFB, seed).delay(PATH, b * MIB) > 0.6]
    best = None
    for chosen in itertools.combinations(slow, min(budget, len(slow))):
        r = simulate(seed, oracle_policy(set(chosen)), oracle=True)
        ratios = (r["total"] / base["total"], r["stall"] / base["stall"])
        best = ratios if best is None else (min(best[0], ratios[0]), min(best[1], ratios[1]))
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=40, help="seeds 1..N (default 40)")
    p.add_argument("--oracle", action="store_true", help="also the best possible choice (slow)")
    args = p.parse_args()
    seeds = range(1, args.seeds + 1)
    base = {s: simulate(s) for s in seeds}
    policies = {"element (2.5 x median)": element_policy}
    policies.update({f"fixed {s:.1f} s": fixed_policy(s) for s in (0.4, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0)})
    print(f"seeds 1..{args.seeds}; median over seeds of hedge / no-hedge (acceptance: total <= 0.75, "
          "stall <= 0.5, extra <= 10 %)")
    print(f"{'policy':24s} {'total':>6s} {'stall':>6s} {'max extra %':>12s}")
    for name, pol in policies.items():
        runs = [(simulate(s, pol), base[s]) for s in seeds]
        total = statistics.median(h["total"] / b["total"] for h, b in runs)
        stall = statistics.median(h["stall"] / b["stall"] for h, b in runs)
        extra = max(100.0 * h["extra"] / BLOCKS for h, _ in runs)
        print(f"{name:24s} {total:6.2f} {stall:6.2f} {extra:12.1f}")
    if args.oracle:
        best = [best_oracle(s, base[s]) for s in seeds]
        print(f"{'oracle (best 3 blocks)':24s} {statistics.median(b[0] for b in best):6.2f} "
              f"{statistics.median(b[1] for b in best):6.2f} {100.0 * int(0.1 * BLOCKS) / BLOCKS:12.1f}")


if __name__ == "__main__":
    main()
