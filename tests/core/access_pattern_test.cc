#include "prefetch/access_pattern.h"

#include <gtest/gtest.h>

namespace prefetch {
namespace {

AccessInput From(uint64_t from, uint64_t to, unsigned window = 8, bool exact = false) {
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
  const AccessStep s = step_access(From(5, 6));
  EXPECT_EQ(s.move, Move::kForward);
  EXPECT_EQ(s.window, 8u);
  EXPECT_EQ(s.keep_from, 5u);
  EXPECT_EQ(s.keep_to, 14u);
  EXPECT_FALSE(s.park_from);
}

TEST(AccessPatternTest, ForwardStepsDoubleASmallWindowUpToTheLookahead) {
  EXPECT_EQ(step_access(From(5, 6, 2)).window, 4u);
  EXPECT_EQ(step_access(From(6, 7, 4)).window, 8u);
  EXPECT_EQ(step_access(From(7, 8, 8)).window, 8u);
}

TEST(AccessPatternTest, AShortStepBackKeepsTheBlocksAhead) {
  const AccessStep s = step_access(From(5, 4));
  EXPECT_EQ(s.move, Move::kBack);
  EXPECT_EQ(s.keep_from, 3u);
  EXPECT_EQ(s.keep_to, 13u);  // from the old position
  EXPECT_EQ(s.window, 8u);
}

TEST(AccessPatternTest, AnythingElseIsAJumpThatParks) {
  const AccessStep s = step_access(From(5, 40));
  EXPECT_EQ(s.move, Move::kJump);
  EXPECT_TRUE(s.park_from);
  EXPECT_EQ(s.keep_from, 39u);
  EXPECT_EQ(s.keep_to, 48u);
  EXPECT_EQ(step_access(From(5, 3)).move, Move::kJump);  // two back
  EXPECT_EQ(step_access(From(5, 7)).move, Move::kJump);  // two ahead
}

TEST(AccessPatternTest, AJumpByExactReadsOpensTwoBlocksAPushSeekAll) {
  EXPECT_EQ(step_access(From(5, 40, 8, true)).window, 2u);
  EXPECT_EQ(step_access(From(5, 40, 2, false)).window, 8u);
}

TEST(AccessPatternTest, TheSameBlockChangesNothing) {
  const AccessStep s = step_access(From(5, 5, 4));
  EXPECT_EQ(s.move, Move::kStay);
  EXPECT_EQ(s.window, 4u);
  EXPECT_FALSE(s.park_from);
}

TEST(AccessPatternTest, TheWindowStartsAtZeroNearTheStart) {
  EXPECT_EQ(step_access(From(9, 0)).keep_from, 0u);
}

TEST(AccessPatternTest, IncompleteBlocksBehindStayOnlyIfJustLeftOrParked) {
  const AccessInput fwd = From(5, 6);
  const AccessStep s = step_access(fwd);
  EXPECT_TRUE(keeps_incomplete_behind(s, fwd, 5, false));
  const AccessInput back = From(6, 5);
  const AccessStep b = step_access(back);
  EXPECT_FALSE(keeps_incomplete_behind(b, back, 4, false));
  EXPECT_TRUE(keeps_incomplete_behind(b, back, 4, true));
}

}  // namespace
}  // namespace prefetch
