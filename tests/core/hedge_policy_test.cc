#include "prefetch/hedge_policy.h"

#include <gtest/gtest.h>

namespace prefetch {
namespace {

FirstByteTimes times(std::initializer_list<double> ms) {
  FirstByteTimes t;
  for (double m : ms) t.add(m);
  return t;
}

HedgeInput input(std::vector<HedgeCandidate> candidates, uint64_t requests = 20,
                 uint64_t hedges = 0) {
  HedgeInput in;
  in.read_block = 10;
  in.in_flight = 4;
  in.concurrency = 4;
  in.lookahead = 8;
  in.requests_started = requests;
  in.hedges_sent = hedges;
  in.candidates = std::move(candidates);
  return in;
}

const FirstByteTimes kTypical = times({100, 100, 100, 100, 100, 100});

// The decision is a hedge of `block` whose first request passed `limit_ms`.
::testing::AssertionResult hedges(const std::optional<HedgeDecision>& d, uint64_t block,
                                  double limit_ms) {
  if (!d) return ::testing::AssertionFailure() << "no hedge";
  if (d->block != block || d->limit_ms != limit_ms)
    return ::testing::AssertionFailure()
           << "hedge of block " << d->block << " at " << d->limit_ms << " ms";
  return ::testing::AssertionSuccess();
}

TEST(FirstByteTimesTest, QuantilesOfTheKeptSamples) {
  FirstByteTimes t = times({5, 1, 4, 2, 3});
  EXPECT_EQ(t.quantile(0.5), 3);
  EXPECT_EQ(t.quantile(0.0), 1);
  EXPECT_EQ(t.quantile(1.0), 5);
  EXPECT_FALSE(FirstByteTimes().quantile(0.5));
}

TEST(FirstByteTimesTest, KeepsTheLast64) {
  FirstByteTimes t;
  for (int i = 0; i < 100; ++i) t.add(i);
  EXPECT_EQ(t.size(), 64u);
  EXPECT_EQ(t.quantile(0.0), 36);
}

TEST(HedgePolicyTest, ThresholdNeedsEnoughSamples) {
  HedgePolicy p;
  EXPECT_FALSE(hedge_threshold_ms(p, times({100, 100, 100, 100, 100})));
  EXPECT_EQ(hedge_threshold_ms(p, kTypical), 250);
}

TEST(HedgePolicyTest, ThresholdHasAFloor) {
  HedgePolicy p;
  EXPECT_EQ(hedge_threshold_ms(p, times({1, 1, 1, 1, 1, 1})), 50);
}

TEST(HedgePolicyTest, TheHeadBlockIsHedgedOnceLate) {
  HedgePolicy p;
  EXPECT_FALSE(choose_hedge(p, input({{10, 200}}), kTypical));
  EXPECT_TRUE(hedges(choose_hedge(p, input({{10, 260}}), kTypical), 10u, 250));
}

TEST(HedgePolicyTest, BlocksFurtherAheadWaitLonger) {
  HedgePolicy p;
  // Block 12 is two places past the reader: it waits 3 x 250 ms.
  EXPECT_FALSE(choose_hedge(p, input({{12, 700}}), kTypical));
  EXPECT_TRUE(hedges(choose_hedge(p, input({{11, 100}, {12, 760}}), kTypical), 12u, 750));
}

TEST(HedgePolicyTest, OnlyBlocksWithinTheSpan) {
  HedgePolicy p;
  EXPECT_FALSE(choose_hedge(p, input({{13, 100000}}), kTypical));
}

TEST(HedgePolicyTest, NoHedgeBeyondTheSpareSlot) {
  HedgePolicy p;
  HedgeInput in = input({{10, 1000}});
  in.in_flight = 5;  // the spare slot is taken
  EXPECT_FALSE(choose_hedge(p, in, kTypical));
}

TEST(HedgePolicyTest, TheBudgetIsAShareOfTheRequests) {
  HedgePolicy p;
  // 10 % of (20 + 8) = 2.8 tokens; two spent leave 0.8: no hedge.
  EXPECT_FALSE(choose_hedge(p, input({{10, 1000}}, 20, 2), kTypical));
  EXPECT_NEAR(hedge_tokens(p, input({}, 20, 2)), 0.8, 1e-9);
  EXPECT_TRUE(choose_hedge(p, input({{10, 1000}}, 20, 1), kTypical));
}

TEST(HedgePolicyTest, TheLastTokenWaitsTwiceAsLong) {
  HedgePolicy p;
  // 10 % of (12 + 8) = 2 tokens minus 1 sent = 1 left: the scarce rule.
  EXPECT_FALSE(choose_hedge(p, input({{10, 400}}, 12, 1), kTypical));
  const auto d = choose_hedge(p, input({{10, 510}}, 12, 1), kTypical);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->limit_ms, 500);
}

TEST(HedgePolicyTest, ASmallFileLimitsTheBudget) {
  HedgePolicy p;
  HedgeInput in = input({{10, 1000}}, 4, 0);
  in.block_count = 8;  // 10 % of 8 blocks: under one hedge
  EXPECT_FALSE(choose_hedge(p, in, kTypical));
}

TEST(HedgePolicyTest, DisabledSendsNone) {
  HedgePolicy p;
  p.enabled = false;
  EXPECT_FALSE(choose_hedge(p, input({{10, 100000}}), kTypical));
}

// ---- the race for the reader's first byte ----

namespace race {

HedgePolicy policy() {
  HedgePolicy p;
  p.race_floor = std::chrono::milliseconds(20);
  return p;
}

RaceInput waiting(double since_sent_ms, std::optional<double> setup_ms = 1.0, unsigned twins = 0) {
  RaceInput in;
  in.twins_sent = twins;
  in.since_start_ms = since_sent_ms + 5;
  in.since_sent_ms = since_sent_ms;
  in.setup_ms = setup_ms;
  return in;
}

const FirstByteTimes kNone;

// Before any first byte was timed: a few set-up times since the head went
// out, never below the floor; nothing to go by, no twin.
TEST(RacePolicyTest, BeforeFirstBytesTheSetUpSetsTheWait) {
  EXPECT_FALSE(choose_race(policy(), waiting(19), kNone));
  ASSERT_TRUE(choose_race(policy(), waiting(20), kNone));
  EXPECT_EQ(choose_race(policy(), waiting(20), kNone)->limit.ms, 20);  // 4 x 1 ms under the floor
  EXPECT_FALSE(choose_race(policy(), waiting(39, 10.0), kNone));       // 4 x 10 ms
  EXPECT_TRUE(choose_race(policy(), waiting(40, 10.0), kNone));
  EXPECT_FALSE(choose_race(policy(), waiting(5000, std::nullopt), kNone)) << "no yardstick";
  RaceInput unsent = waiting(0);
  unsent.since_sent_ms.reset();
  EXPECT_FALSE(choose_race(policy(), unsent, kNone)) << "a request not yet out";
}

// Twin n waits n times as long, and as long again after the twin before it;
// two at most; none with hedging off.
TEST(RacePolicyTest, TwinsComeOneByOneTwoAtMost) {
  RaceInput second = waiting(40, 1.0, 1);
  second.since_twin_ms = 19;
  EXPECT_FALSE(choose_race(policy(), second, kNone)) << "the first twin is not late yet";
  second.since_twin_ms = 20;
  ASSERT_TRUE(choose_race(policy(), second, kNone));
  EXPECT_EQ(choose_race(policy(), second, kNone)->limit.ms, 40);
  second.since_sent_ms = 39;
  EXPECT_FALSE(choose_race(policy(), second, kNone));
  RaceInput third = waiting(10000, 1.0, 2);
  third.since_twin_ms = 10000;
  EXPECT_FALSE(choose_race(policy(), third, kNone));
  HedgePolicy off = policy();
  off.enabled = false;
  EXPECT_FALSE(choose_race(off, waiting(10000), kNone));
}

// Once first bytes were timed: a tail says whether, the set-up still says
// when; none where they show no tail. Without a set-up time, later than
// their median, on the clock they were timed by (since the start).
TEST(RacePolicyTest, AfterFirstBytesATailIsRacedByTheSetUp) {
  const FirstByteTimes tail = times({100, 150, 200, 300, 400, 800, 1600});
  EXPECT_FALSE(choose_race(policy(), waiting(39, 10.0), tail));
  ASSERT_TRUE(choose_race(policy(), waiting(40, 10.0), tail));
  EXPECT_FALSE(choose_race(policy(), waiting(40, 10.0), tail)->limit.since_start);
  const FirstByteTimes fixed = times({1000, 1010, 990, 1005, 1000, 995});
  EXPECT_FALSE(choose_race(policy(), waiting(5000), fixed)) << "a no-tail origin was raced";
  // All far under the floor (a local origin): past the floor is late.
  const FirstByteTimes local = times({0.2, 0.2, 0.2, 0.2, 0.2, 0.2});
  EXPECT_FALSE(choose_race(policy(), waiting(19), local));
  EXPECT_TRUE(choose_race(policy(), waiting(20), local));
}

TEST(RacePolicyTest, AfterFirstBytesWithoutSetUpTheMedianSetsTheWait) {
  const FirstByteTimes tail = times({100, 150, 200, 300, 400, 800, 1600});
  RaceInput in = waiting(10, std::nullopt);
  in.since_start_ms = 299;
  EXPECT_FALSE(choose_race(policy(), in, tail));
  in.since_start_ms = 300;
  ASSERT_TRUE(choose_race(policy(), in, tail));
  EXPECT_TRUE(choose_race(policy(), in, tail)->limit.since_start);
  in.since_start_ms = 5000;
  EXPECT_FALSE(choose_race(policy(), in, times({1000, 1010, 990, 1005, 1000, 995})));
}

}  // namespace race

}  // namespace
}  // namespace prefetch
