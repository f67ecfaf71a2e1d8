#include "prefetch/concurrency_policy.h"

#include <gtest/gtest.h>

namespace prefetch {
namespace {

using Clock = ConcurrencyControl::Clock;
using std::chrono::milliseconds;

constexpr uint64_t kMiB = 1 << 20;

// An interval of 0.5 s in which the reader waited with every slot busy,
// bringing `mib_per_s`.
ConcurrencySample waiting(double mib_per_s) {
  ConcurrencySample s;
  s.seconds = 0.5;
  s.bytes = static_cast<uint64_t>(mib_per_s * 0.5 * kMiB);
  s.reader_waited = true;
  s.slots_full = true;
  return s;
}

struct Drive {
  ConcurrencyTuning tuning;
  Clock::time_point t0 = Clock::now();
  Clock::time_point now = t0;
  ConcurrencyControl c{tuning, t0};
  explicit Drive(ConcurrencyTuning t = {}) : tuning(t), c(t, t0) {}
  bool sample(const ConcurrencySample& s) {
    now += milliseconds(500);
    return c.on_sample(s, now);
  }
  // The sample changes the count, to `want`.
  ::testing::AssertionResult steps_to(const ConcurrencySample& s, unsigned want) {
    if (!sample(s)) return ::testing::AssertionFailure() << "no change from " << c.current();
    if (c.current() != want)
      return ::testing::AssertionFailure() << "changed to " << c.current() << ", not " << want;
    return ::testing::AssertionSuccess();
  }
};

// An origin that caps each connection at 4 MiB/s: the rate grows with the
// count, so it doubles, then quadruples, up to max.
TEST(ConcurrencyPolicy, PerConnectionCapDoublesToMax) {
  Drive r;
  EXPECT_EQ(r.c.current(), 4u);
  EXPECT_EQ(r.c.why(), ConcurrencyWhy::kStart);
  EXPECT_TRUE(r.steps_to(waiting(16), 8u));
  // 32 MiB/s at 8: it paid in full, so the next step is x4 (capped at max).
  EXPECT_TRUE(r.steps_to(waiting(32), 16u));
  EXPECT_EQ(r.c.why(), ConcurrencyWhy::kRateRose);
  // At max it stays, however the rate goes.
  EXPECT_FALSE(r.sample(waiting(64)));
  EXPECT_EQ(r.c.current(), 16u);
}

// A host capped at 24 MiB/s in total, 4 MiB/s per connection: 4 -> 8 pays
// (16 -> 24), 8 -> 16 does not: the count comes back to what 24 MiB/s needs
// at 4 MiB/s per connection, 6, and 6 is the ceiling.
TEST(ConcurrencyPolicy, SharedCapSettlesAtWhatTheRateNeeds) {
  Drive r;
  auto rate = [&] { return std::min(24.0, 4.0 * r.c.current()); };
  EXPECT_TRUE(r.steps_to(waiting(rate()), 8u));
  EXPECT_TRUE(r.steps_to(waiting(rate()), 16u));  // 24 > 16 x 1.25: raise again
  EXPECT_TRUE(r.steps_to(waiting(rate()), 6u));   // 24, not > 24 x 1.25
  EXPECT_EQ(r.c.why(), ConcurrencyWhy::kRateFlat);
  EXPECT_EQ(r.c.ceiling(), 6u);
  // It stays there until the probe interval has passed ...
  for (int i = 0; i < 9; ++i) {
    EXPECT_FALSE(r.sample(waiting(rate()))) << i;
    EXPECT_EQ(r.c.current(), 6u);
  }
  // ... then tries one more, which does not pay either.
  EXPECT_TRUE(r.steps_to(waiting(rate()), 7u));
  EXPECT_EQ(r.c.why(), ConcurrencyWhy::kProbe);
  EXPECT_TRUE(r.steps_to(waiting(rate()), 6u));
  EXPECT_EQ(r.c.why(), ConcurrencyWhy::kRateFlat);
}

// A shared bottleneck from the start (loopback, CPU): doubling gains
// nothing, and the count goes back to where it was.
TEST(ConcurrencyPolicy, AFlatRateFromTheStartKeepsTheStart) {
  Drive r;
  EXPECT_TRUE(r.steps_to(waiting(1000), 8u));
  EXPECT_TRUE(r.sample(waiting(1020)));
  EXPECT_EQ(r.c.current(), 4u);  // 2 % more is noise
  EXPECT_EQ(r.c.why(), ConcurrencyWhy::kRateFlat);
}

// A raise that pays only in part is followed by a doubling, not x4.
TEST(ConcurrencyPolicy, APartialRiseDoublesAgain) {
  ConcurrencyTuning t;
  t.start = 2;
  t.max = 64;
  Drive r(t);
  EXPECT_TRUE(r.sample(waiting(8)));          // 2 -> 4
  EXPECT_TRUE(r.steps_to(waiting(12), 8u));   // +50 %: a rise, not a strong one
  EXPECT_TRUE(r.steps_to(waiting(24), 32u));  // +100 %: strong
}

// Where first bytes take long (an interval of two of them is 200 ms or
// more) the first raise is x4: each step waits an interval to be judged.
// Later raises double as before unless the last one paid nearly in full.
TEST(ConcurrencyPolicy, TheFirstRaiseIsX4WhereIntervalsAreLong) {
  for (const double judge : {0.05, 0.2, 0.8}) {
    Drive r;
    ConcurrencySample s = waiting(6);
    s.judge_seconds = judge;
    EXPECT_TRUE(r.sample(s));
    EXPECT_EQ(r.c.current(), judge >= 0.2 ? 16u : 8u) << judge;
  }
  ConcurrencyTuning t;
  t.max = 64;
  Drive r(t);
  ConcurrencySample s = waiting(6);
  s.judge_seconds = 0.8;
  EXPECT_TRUE(r.steps_to(s, 16u));
  s = waiting(15);  // +150 % for +300 %: a rise, not a strong one
  s.judge_seconds = 0.8;
  EXPECT_TRUE(r.steps_to(s, 32u));
}

// The first raise may come before any byte (with the first answer, the
// reader waiting): the interval after it has nothing to be judged against,
// so it counts as neither flat nor strong, and the next raise doubles.
TEST(ConcurrencyPolicy, ARaiseBeforeAnyByteIsNotJudged) {
  ConcurrencyTuning t;
  t.max = 64;
  Drive r(t);
  EXPECT_TRUE(r.steps_to(waiting(0), 8u));   // 4 -> 8 with no byte yet
  EXPECT_TRUE(r.steps_to(waiting(8), 16u));  // not "paid in full" against 0: x2
  EXPECT_EQ(r.c.why(), ConcurrencyWhy::kRateRose);
  // That raise is judged against 8 MiB/s: no gain is flat.
  EXPECT_TRUE(r.sample(waiting(8.2)));
  EXPECT_LT(r.c.current(), 16u);
  EXPECT_EQ(r.c.why(), ConcurrencyWhy::kRateFlat);
}

// A small raise needs at least min_gain: noise of a few percent is flat.
TEST(ConcurrencyPolicy, AProbeThatPaysLittleIsFlat) {
  ConcurrencyTuning t;
  t.start = 8;
  Drive r(t);
  EXPECT_TRUE(r.sample(waiting(32)));        // 8 -> 16
  EXPECT_TRUE(r.steps_to(waiting(33), 8u));  // 3 % more: flat
}

// Nothing changes while the reader does not wait (the consumer keeps up
// without the look-ahead filling) or slots are free (nothing more to ask).
TEST(ConcurrencyPolicy, NoRaiseUnlessTheReaderWaitsWithEverySlotBusy) {
  Drive r;
  ConcurrencySample s = waiting(16);
  s.reader_waited = false;
  EXPECT_FALSE(r.sample(s));
  s = waiting(16);
  s.slots_full = false;
  EXPECT_FALSE(r.sample(s));
  EXPECT_EQ(r.c.current(), 4u);
}

// A consumer slower than the origin: one fewer per interval, down to one.
TEST(ConcurrencyPolicy, ASlowConsumerNeedsFewerConnections) {
  Drive r;
  ConcurrencySample s;
  s.seconds = 0.5;
  s.bytes = kMiB;
  s.lookahead_full = true;
  for (unsigned want : {3u, 2u, 1u}) {
    EXPECT_TRUE(r.sample(s));
    EXPECT_EQ(r.c.current(), want);
    EXPECT_EQ(r.c.why(), ConcurrencyWhy::kConsumerSlower);
  }
  EXPECT_FALSE(r.sample(s));
  EXPECT_EQ(r.c.current(), 1u);
  // The reader waited too: the look-ahead filled only for a moment.
  s.reader_waited = true;
  s.slots_full = true;
  EXPECT_TRUE(r.steps_to(s, 2u));
}

// 503 / 429: halve at once, once per burst (answers to requests sent before
// the cut change nothing), wait for Retry-After, then grow only by probes
// (the ceiling came down with it), one at a time.
TEST(ConcurrencyPolicy, OverloadHalvesOncePerBurstAndHoldsForRetryAfter) {
  ConcurrencyTuning t;
  t.start = 16;
  Drive r(t);
  const Clock::time_point sent = r.now - milliseconds(5);
  EXPECT_TRUE(r.c.on_overload(milliseconds(3000), sent, r.now));
  EXPECT_EQ(r.c.current(), 8u);
  EXPECT_EQ(r.c.why(), ConcurrencyWhy::kOverloaded);
  EXPECT_FALSE(r.c.on_overload(milliseconds(3000), sent, r.now + milliseconds(10)));
  EXPECT_EQ(r.c.current(), 8u);
  EXPECT_EQ(r.c.ceiling(), 8u);
  // A request sent after the cut that is refused too: still too many.
  EXPECT_TRUE(
      r.c.on_overload(milliseconds(3000), r.now + milliseconds(1), r.now + milliseconds(20)));
  EXPECT_EQ(r.c.current(), 4u);
  // Within Retry-After nothing rises, whatever the rate.
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(r.sample(waiting(100))) << i;
  // Past the probe interval: one more.
  for (int i = 0; i < 6 && r.c.current() == 4; ++i) r.sample(waiting(16));
  EXPECT_EQ(r.c.current(), 5u);
  EXPECT_EQ(r.c.why(), ConcurrencyWhy::kProbe);
  // Refused again: halve again.
  EXPECT_TRUE(r.c.on_overload(milliseconds(-1), r.now, r.now + milliseconds(1)));
  EXPECT_EQ(r.c.current(), 2u);
}

// An origin that serves 6 connections and refuses the rest: the raise to 8
// draws two 503s. The first cuts to the transfers running beside it (7:
// the other refused one is still waiting for its answer), the second,
// from the same burst, to the 6 still running; no new hold starts.
TEST(ConcurrencyPolicy, OverloadComesDownToTheTransfersTheOriginTook) {
  ConcurrencyTuning t;
  t.start = 8;
  Drive r(t);
  const Clock::time_point sent = r.now - milliseconds(5);
  EXPECT_TRUE(r.c.on_overload(milliseconds(1000), sent, r.now, 7));
  EXPECT_EQ(r.c.current(), 7u);
  EXPECT_EQ(r.c.why(), ConcurrencyWhy::kOverloaded);
  EXPECT_TRUE(r.c.on_overload(milliseconds(1000), sent, r.now + milliseconds(1), 6));
  EXPECT_EQ(r.c.current(), 6u);
  EXPECT_EQ(r.c.ceiling(), 6u);
  // Not below half the count before the burst, whatever is left running.
  EXPECT_TRUE(r.c.on_overload(milliseconds(1000), sent, r.now + milliseconds(2), 1));
  EXPECT_EQ(r.c.current(), 4u);
  // A later refusal with as many running as now: still one fewer.
  EXPECT_TRUE(
      r.c.on_overload(milliseconds(1000), r.now + milliseconds(3), r.now + milliseconds(4), 4));
  EXPECT_EQ(r.c.current(), 3u);
}

// A probe the origin refuses doubles the wait before the next one, up to
// probe_max; one that pays brings it back.
TEST(ConcurrencyPolicy, ARefusedProbeWaitsLongerForTheNext) {
  ConcurrencyTuning t;
  t.start = 6;
  t.max = 16;
  t.probe_every = milliseconds(5000);
  t.probe_max = milliseconds(20000);
  Drive r(t);
  // Overload at 6 with 5 running: ceiling 5.
  EXPECT_TRUE(r.c.on_overload(milliseconds(-1), r.now, r.now, 5));
  EXPECT_EQ(r.c.current(), 5u);
  auto probe = [&] {
    const Clock::time_point from = r.now;
    while (r.c.current() == 5) r.sample(waiting(20));
    EXPECT_EQ(r.c.why(), ConcurrencyWhy::kProbe);
    return std::chrono::duration_cast<milliseconds>(r.now - from);
  };
  EXPECT_GE(probe(), milliseconds(5000));
  EXPECT_TRUE(r.c.on_overload(milliseconds(-1), r.now, r.now, 5));
  EXPECT_EQ(r.c.probe_wait(), milliseconds(10000));
  EXPECT_GE(probe(), milliseconds(10000));
  EXPECT_TRUE(r.c.on_overload(milliseconds(-1), r.now, r.now, 5));
  EXPECT_EQ(r.c.probe_wait(), milliseconds(20000));
  EXPECT_GE(probe(), milliseconds(20000));
  EXPECT_TRUE(r.c.on_overload(milliseconds(-1), r.now, r.now, 5));
  EXPECT_EQ(r.c.probe_wait(), milliseconds(20000));  // probe_max
  // This probe pays (+25 %): the wait is back to probe_every, and while
  // probes pay the count goes on up, one at a time.
  probe();
  EXPECT_EQ(r.c.current(), 6u);
  EXPECT_TRUE(r.sample(waiting(25)));
  EXPECT_EQ(r.c.probe_wait(), milliseconds(5000));
  EXPECT_EQ(r.c.current(), 7u);
}

TEST(ConcurrencyPolicy, OverloadAtOneStaysAtOne) {
  ConcurrencyTuning t;
  t.start = 1;
  Drive r(t);
  EXPECT_FALSE(r.c.on_overload(milliseconds(-1), r.now, r.now));
  EXPECT_EQ(r.c.current(), 1u);
  EXPECT_EQ(r.c.ceiling(), 1u);
}

TEST(ConcurrencyPolicy, StartIsClampedToMax) {
  ConcurrencyTuning t;
  t.start = 8;
  t.max = 2;
  Drive r(t);
  EXPECT_EQ(r.c.current(), 2u);
  EXPECT_FALSE(r.sample(waiting(100)));
  EXPECT_EQ(r.c.current(), 2u);
}

}  // namespace
}  // namespace prefetch
