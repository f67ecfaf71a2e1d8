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

}  // namespace
}  // namespace prefetch
