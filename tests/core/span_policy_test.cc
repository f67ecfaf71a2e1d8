#include "prefetch/span_policy.h"

#include <gtest/gtest.h>

#include <set>

namespace prefetch {
namespace {

constexpr uint64_t kB = 1 << 20;

SpanInput window(uint64_t from, uint64_t to, std::optional<uint64_t> count = 32,
                 std::set<uint64_t> held = {}) {
  SpanInput in;
  in.block_size = kB;
  in.from_block = from;
  in.to_block = to;
  in.block_count = count;
  in.held = [held](uint64_t i) { return held.count(i) > 0; };
  return in;
}

SpanView receiving(uint64_t front, uint64_t end, double rate) {
  SpanView s;
  s.front = front;
  s.end = end;
  s.receiving = true;
  s.rate = rate;
  return s;
}

TEST(SpanPolicyTest, TheFirstSpanRunsToTheEnd) {
  const auto c = choose_span(window(0, 8, std::nullopt));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->first, 0u);
  EXPECT_EQ(c->end, kOpenEnd);
  EXPECT_FALSE(c->split);
}

TEST(SpanPolicyTest, AFreeBlockRunsUpToTheNextClaim) {
  SpanInput in = window(0, 8);
  in.spans = {receiving(0, 2 * kB, 0), receiving(5 * kB, 32 * kB, 0)};
  const auto c = choose_span(in);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->first, 2u);
  EXPECT_EQ(c->end, 5u);
}

TEST(SpanPolicyTest, HeldBlocksEndASpan) {
  SpanInput in = window(0, 8, 32, {0, 3});
  const auto c = choose_span(in);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->first, 1u);
  EXPECT_EQ(c->end, 3u);
}

TEST(SpanPolicyTest, MaxBlocksAndTheHorizonCapASpan) {
  SpanInput in = window(4, 6);
  in.max_blocks = 3;
  EXPECT_EQ(choose_span(in)->end, 7u);
  in.end_at_horizon = true;
  EXPECT_EQ(choose_span(in)->end, 6u);
}

TEST(SpanPolicyTest, NoSplitBeforeAFirstByteTimeIsKnown) {
  SpanInput in = window(0, 8);
  in.spans = {receiving(100, 32 * kB, 1.5 * kB)};
  EXPECT_FALSE(choose_span(in));
}

// Late answers, fast bodies (a first byte of 1 s, 300 MiB/s): the running
// span reaches every block of the window long before a new request would.
TEST(SpanPolicyTest, AFastSpanIsNotSplitWhenFirstBytesAreSlow) {
  SpanInput in = window(0, 8);
  in.ttfb_ms = 1000;
  in.spans = {receiving(kB / 2, 32 * kB, 300.0 * kB)};
  EXPECT_FALSE(choose_span(in));
}

// A local origin (first byte 4 ms, 100 MiB/s): a split the span reaches
// within 50 ms does not pay, however quick the first bytes were.
TEST(SpanPolicyTest, NoSplitTheSpanReachesWithinTheLocalFloor) {
  SpanInput in = window(0, 8);
  in.ttfb_ms = 4;
  in.spans = {receiving(0, 32 * kB, 100.0 * kB)};
  EXPECT_FALSE(choose_span(in)) << "split at block 4, reached in 40 ms";
  in.spans[0].rate = 70.0 * kB;
  const auto c = choose_span(in);
  ASSERT_TRUE(c);
  EXPECT_NEAR(c->reach_ms, 1000.0 * 4 / 70, 1);
}

// A capped connection (1.5 MiB/s, first byte 0.4 s): the back half of the
// window goes to a new request.
TEST(SpanPolicyTest, ASlowSpanGivesTheBackHalfOfTheWindow) {
  SpanInput in = window(0, 8);
  in.ttfb_ms = 400;
  in.spans = {receiving(kB / 4, 32 * kB, 1.5 * kB)};
  const auto c = choose_span(in);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->first, 4u);
  EXPECT_EQ(c->end, 32u);
  EXPECT_EQ(c->split, 0u);
  EXPECT_NEAR(c->reach_ms, 1000.0 * 3.75 / 1.5, 1);
}

// The latest-reached split point wins: a span crawling far slower than its
// peers gives up its rest first (the slow tail).
TEST(SpanPolicyTest, TheSlowestSpanIsSplitFirst) {
  SpanInput in = window(0, 8);
  in.ttfb_ms = 100;
  in.spans = {receiving(0, 4 * kB, 4.0 * kB), receiving(4 * kB, 8 * kB, 0.25 * kB)};
  const auto c = choose_span(in);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->split, 1u);
  EXPECT_EQ(c->first, 6u);
  EXPECT_EQ(c->end, 8u);
}

TEST(SpanPolicyTest, TheBlockASpanIsInIsNeverSplit) {
  SpanInput in = window(3, 4);
  in.ttfb_ms = 10;
  in.spans = {receiving(3 * kB + 5, 4 * kB, 1.0)};
  EXPECT_FALSE(choose_span(in));
}

// A span still waiting for its first byte is reached at its remaining wait
// plus the typical connection's transfer time.
TEST(SpanPolicyTest, AWaitingSpanIsSplitByTheTypicalRate) {
  SpanInput in = window(0, 8);
  in.ttfb_ms = 100;
  SpanView s;
  s.front = 0;
  s.end = 8 * kB;
  s.waited_ms = 40;
  in.spans = {s};
  EXPECT_FALSE(choose_span(in));  // no rate known: cannot tell
  in.conn_rate = 4.0 * kB;
  const auto c = choose_span(in);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->first, 4u);
  EXPECT_NEAR(c->reach_ms, 60 + 1000, 1);
}

TEST(SpanPolicyTest, NothingPastTheEnd) {
  SpanInput in = window(0, 8, 1);
  in.spans = {receiving(0, 1 * kB, 0)};
  EXPECT_FALSE(choose_span(in));
  EXPECT_EQ(claim_end_block(kOpenEnd, kB), kOpenEnd);
  EXPECT_EQ(claim_end_block(5 * kB + 3, kB), 6u);
}

}  // namespace
}  // namespace prefetch
