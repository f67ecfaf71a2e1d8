#include "prefetch/access_pattern.h"

#include <gtest/gtest.h>

namespace prefetch {
namespace {

AccessInput from_to(uint64_t from, uint64_t to, unsigned window = 8, bool exact = false) {
  AccessInput in;
  in.from = from;
  in.to = to;
  in.keep_behind = 1;
  in.lookahead = 8;
  in.window = window;
  in.exact_reads = exact;
  return in;
}

TEST(AccessPatternTest, TheNextBlockIsAForwardStepThatSlidesTheWindow) {
  const AccessStep s = step_access(from_to(5, 6));
  EXPECT_EQ(s.move, Move::kForward);
  EXPECT_EQ(s.window, 8u);
  EXPECT_EQ(s.keep_from, 5u);
  EXPECT_EQ(s.keep_to, 14u);
  EXPECT_FALSE(s.park_from);
}

TEST(AccessPatternTest, ForwardStepsDoubleASmallWindowUpToTheLookahead) {
  EXPECT_EQ(step_access(from_to(5, 6, 2)).window, 4u);
  EXPECT_EQ(step_access(from_to(6, 7, 4)).window, 8u);
  EXPECT_EQ(step_access(from_to(7, 8, 8)).window, 8u);
}

TEST(AccessPatternTest, AShortStepBackKeepsTheBlocksAhead) {
  const AccessStep s = step_access(from_to(5, 4));
  EXPECT_EQ(s.move, Move::kBack);
  EXPECT_EQ(s.keep_from, 3u);
  EXPECT_EQ(s.keep_to, 13u);  // from the old position
  EXPECT_EQ(s.window, 8u);
}

TEST(AccessPatternTest, AnythingElseIsAJumpThatParks) {
  const AccessStep s = step_access(from_to(5, 40));
  EXPECT_EQ(s.move, Move::kJump);
  EXPECT_TRUE(s.park_from);
  EXPECT_EQ(s.keep_from, 39u);
  EXPECT_EQ(s.keep_to, 48u);
  EXPECT_EQ(step_access(from_to(5, 3)).move, Move::kJump);  // two back
  EXPECT_EQ(step_access(from_to(5, 7)).move, Move::kJump);  // two ahead
}

TEST(AccessPatternTest, AJumpByExactReadsOpensTwoBlocksAPushSeekAll) {
  EXPECT_EQ(step_access(from_to(5, 40, 8, true)).window, 2u);
  EXPECT_EQ(step_access(from_to(5, 40, 2, false)).window, 8u);
}

TEST(AccessPatternTest, TheSameBlockChangesNothing) {
  const AccessStep s = step_access(from_to(5, 5, 4));
  EXPECT_EQ(s.move, Move::kStay);
  EXPECT_EQ(s.window, 4u);
  EXPECT_FALSE(s.park_from);
}

TEST(AccessPatternTest, TheWindowStartsAtZeroNearTheStart) {
  EXPECT_EQ(step_access(from_to(9, 0)).keep_from, 0u);
}

TEST(AccessPatternTest, IncompleteBlocksBehindStayOnlyIfJustLeftOrParked) {
  const AccessInput fwd = from_to(5, 6);
  const AccessStep s = step_access(fwd);
  EXPECT_TRUE(keeps_incomplete_behind(s, fwd, 5, false));
  const AccessInput back = from_to(6, 5);
  const AccessStep b = step_access(back);
  EXPECT_FALSE(keeps_incomplete_behind(b, back, 4, false));
  EXPECT_TRUE(keeps_incomplete_behind(b, back, 4, true));
}

}  // namespace
}  // namespace prefetch

namespace prefetch {
namespace {

AccessInput exact_from_to(uint64_t from, uint64_t to, unsigned window) {
  AccessInput in = from_to(from, to, window, true);
  return in;
}

TEST(RegionsTest, AJumpByExactReadsKeepsTheRegionItLeaves) {
  const RegionMove m = step_regions(exact_from_to(5, 40, 8), std::nullopt);
  EXPECT_EQ(m.step.move, Move::kJump);
  EXPECT_FALSE(m.switched);
  EXPECT_FALSE(m.step.park_from);  // kept whole, so nothing to park
  ASSERT_TRUE(m.other);
  EXPECT_EQ(m.other->block, 5u);
  EXPECT_EQ(m.other->window, 4u);  // half the look-ahead each
  EXPECT_EQ(m.step.window, 2u);
  EXPECT_EQ(m.step.keep_to, 44u);
}

TEST(RegionsTest, ASeekKeepsNoOtherRegion) {
  const RegionMove m = step_regions(from_to(5, 40, 8, false), Region{90, 4, 0});
  EXPECT_EQ(m.step.move, Move::kJump);
  EXPECT_FALSE(m.other);
  EXPECT_TRUE(m.step.park_from);
}

TEST(RegionsTest, AReadNearTheOtherRegionSwitchesBack) {
  const RegionMove m = step_regions(exact_from_to(40, 6, 2), Region{5, 4, 0});
  EXPECT_TRUE(m.switched);
  EXPECT_EQ(m.step.move, Move::kForward);  // relative to the other region
  EXPECT_EQ(m.step.window, 4u);            // doubled, capped at half
  ASSERT_TRUE(m.other);
  EXPECT_EQ(m.other->block, 40u);
  EXPECT_EQ(m.other->window, 2u);
}

TEST(RegionsTest, AThirdRegionReplacesTheOlderOne) {
  const RegionMove m = step_regions(exact_from_to(40, 80, 2), Region{5, 4, 0});
  EXPECT_FALSE(m.switched);
  ASSERT_TRUE(m.other);
  EXPECT_EQ(m.other->block, 40u);
}

TEST(RegionsTest, TheOtherRegionGoesAfterTwoStepsElsewhere) {
  RegionMove m = step_regions(exact_from_to(40, 41, 2), Region{5, 4, 0});
  ASSERT_TRUE(m.other);
  EXPECT_EQ(m.other->idle, 1u);
  m = step_regions(exact_from_to(41, 42, 4), m.other);
  EXPECT_FALSE(m.other);
  EXPECT_EQ(m.step.window, 8u);  // the whole look-ahead again
}

TEST(RegionsTest, RegionsThatMeetBecomeOne) {
  const RegionMove m = step_regions(exact_from_to(8, 9, 4), Region{11, 4, 0});
  EXPECT_FALSE(m.other);
}

TEST(RegionsTest, ARegionKeepsFromBehindItsBlockToItsWindowsEnd) {
  const Region r{10, 4, 0};
  EXPECT_FALSE(region_keeps(r, 8, 1));
  EXPECT_TRUE(region_keeps(r, 9, 1));
  EXPECT_TRUE(region_keeps(r, 13, 1));
  EXPECT_FALSE(region_keeps(r, 14, 1));
}

}  // namespace
}  // namespace prefetch
