#include "prefetch/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <set>

namespace prefetch {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

SchedulerInput Window(uint64_t read_block, unsigned concurrency, unsigned lookahead,
                      unsigned in_flight, std::set<uint64_t> held,
                      std::optional<uint64_t> count = 100) {
  SchedulerInput in;
  in.schedule = Schedule::kWindow;
  in.read_block = read_block;
  in.block_count = count;
  in.concurrency = concurrency;
  in.lookahead = lookahead;
  in.in_flight = in_flight;
  in.held = [held](uint64_t i) { return held.count(i) > 0; };
  return in;
}

SchedulerInput Batch(Schedule s, uint64_t read_block, unsigned concurrency, unsigned in_flight,
                     std::set<uint64_t> held, uint64_t batch_begin, bool batch_complete,
                     std::optional<uint64_t> count = 100) {
  SchedulerInput in = Window(read_block, concurrency, 2 * concurrency, in_flight, held, count);
  in.schedule = s;
  in.batch_begin = batch_begin;
  in.batch_complete = batch_complete;
  return in;
}

// --- window ------------------------------------------------------------------

TEST(WindowScheduleTest, StartsTheLowestBlocksUpToConcurrency) {
  EXPECT_THAT(schedule_next(Window(0, 4, 8, 0, {})).start, ElementsAre(0, 1, 2, 3));
}

TEST(WindowScheduleTest, FillsOnlyTheFreeSlots) {
  EXPECT_THAT(schedule_next(Window(0, 4, 8, 2, {0, 1})).start, ElementsAre(2, 3));
}

TEST(WindowScheduleTest, FillsHolesBeforeGoingFurther) {
  // Block 1 was dropped (e.g. failed and erased); it is the lowest missing one.
  EXPECT_THAT(schedule_next(Window(0, 4, 8, 1, {0, 2, 3})).start, ElementsAre(1, 4, 5));
}

TEST(WindowScheduleTest, StartsNothingWhenAllSlotsAreBusy) {
  EXPECT_THAT(schedule_next(Window(0, 4, 8, 4, {0, 1, 2, 3})).start, IsEmpty());
}

TEST(WindowScheduleTest, InFlightAboveConcurrencyDoesNotUnderflow) {
  // After a seek, cancelled requests may still count as in flight.
  EXPECT_THAT(schedule_next(Window(20, 4, 8, 6, {})).start, IsEmpty());
}

TEST(WindowScheduleTest, NeverGoesBeyondTheLookahead) {
  EXPECT_THAT(schedule_next(Window(0, 8, 4, 0, {})).start, ElementsAre(0, 1, 2, 3));
  // Blocks 0-3 complete (not in flight) but not read yet: the window is full.
  EXPECT_THAT(schedule_next(Window(0, 4, 4, 0, {0, 1, 2, 3})).start, IsEmpty());
}

TEST(WindowScheduleTest, LookaheadCountsFromTheReadBlock) {
  EXPECT_THAT(schedule_next(Window(10, 4, 4, 0, {10, 11})).start, ElementsAre(12, 13));
  // Blocks behind the read position (kept for backward reads) do not matter.
  EXPECT_THAT(schedule_next(Window(10, 4, 4, 0, {8, 9, 10, 11})).start, ElementsAre(12, 13));
}

TEST(WindowScheduleTest, StopsAtTheLastBlock) {
  EXPECT_THAT(schedule_next(Window(0, 4, 8, 0, {}, 3)).start, ElementsAre(0, 1, 2));
  EXPECT_THAT(schedule_next(Window(2, 4, 8, 0, {2}, 3)).start, IsEmpty());
  EXPECT_THAT(schedule_next(Window(5, 4, 8, 0, {}, 3)).start, IsEmpty());
}

TEST(WindowScheduleTest, EmptyResourceStartsNothing) {
  EXPECT_THAT(schedule_next(Window(0, 4, 8, 0, {}, 0)).start, IsEmpty());
}

TEST(WindowScheduleTest, RandomInputsKeepEveryInvariant) {
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 2000; ++iter) {
    const unsigned concurrency = 1 + rng() % 8;
    const unsigned lookahead = concurrency + rng() % 8;
    const uint64_t read_block = rng() % 20;
    const uint64_t count = rng() % 40;
    std::set<uint64_t> held;
    for (uint64_t i = read_block; i < read_block + lookahead; ++i) {
      if (rng() % 3 == 0) held.insert(i);
    }
    const unsigned in_flight = rng() % (concurrency + 2);
    SchedulerInput in = Window(read_block, concurrency, lookahead, in_flight, held, count);
    std::vector<uint64_t> start = schedule_next(in).start;
    SCOPED_TRACE(::testing::Message()
                 << "iter " << iter << " c=" << concurrency << " l=" << lookahead
                 << " r=" << read_block << " n=" << count << " f=" << in_flight);

    const size_t slots = in_flight >= concurrency ? 0 : concurrency - in_flight;
    EXPECT_LE(start.size(), slots);
    for (size_t k = 0; k < start.size(); ++k) {
      EXPECT_GE(start[k], read_block);
      EXPECT_LT(start[k], read_block + lookahead);
      EXPECT_LT(start[k], count);
      EXPECT_EQ(held.count(start[k]), 0u) << start[k] << " is already held";
      if (k > 0) {
        EXPECT_LT(start[k - 1], start[k]);
      }
    }
    // The lowest missing blocks, and as many as the slots allow.
    std::vector<uint64_t> expected;
    for (uint64_t i = read_block; i < read_block + lookahead && i < count; ++i) {
      if (expected.size() == slots) break;
      if (!held.count(i)) expected.push_back(i);
    }
    EXPECT_EQ(start, expected);
  }
}

// --- batch / barrier -------------------------------------------------------

class BatchScheduleTest : public ::testing::TestWithParam<Schedule> {};

TEST_P(BatchScheduleTest, NothingStartsWhileTheBatchIsIncomplete) {
  // Blocks 0 and 1 are complete, 2 and 3 still fetching: two slots are free,
  // but batch and barrier wait for the whole batch.
  SchedulerDecision d = schedule_next(Batch(GetParam(), 0, 4, 2, {0, 1, 2, 3}, 0, false));
  EXPECT_THAT(d.start, IsEmpty());
  EXPECT_FALSE(d.new_batch_begin.has_value());
}

TEST_P(BatchScheduleTest, NeverRestartsBlocksBehindTheReadPosition) {
  // The reader drained blocks 0 and 1 of the incomplete batch 0-3 and the
  // store dropped them; they must not be fetched again.
  SchedulerDecision d = schedule_next(Batch(GetParam(), 2, 4, 2, {2, 3}, 0, false));
  EXPECT_THAT(d.start, IsEmpty());
  EXPECT_FALSE(d.new_batch_begin.has_value());
}

TEST_P(BatchScheduleTest, IncompleteBatchRestartsItsMissingBlocks) {
  // Block 2 of the current batch failed and was dropped: only it restarts.
  SchedulerDecision d = schedule_next(Batch(GetParam(), 0, 4, 1, {0, 1, 3}, 0, false));
  EXPECT_THAT(d.start, ElementsAre(2));
  EXPECT_FALSE(d.new_batch_begin.has_value());
}

TEST_P(BatchScheduleTest, NewBatchFollowsTheCompletedOne) {
  // Batch 0-3 is complete but not read yet; the budget (8) has room for 4-7.
  SchedulerDecision d = schedule_next(Batch(GetParam(), 0, 4, 0, {0, 1, 2, 3}, 0, true));
  EXPECT_THAT(d.start, ElementsAre(4, 5, 6, 7));
  ASSERT_TRUE(d.new_batch_begin.has_value());
  EXPECT_EQ(*d.new_batch_begin, 4u);
}

TEST_P(BatchScheduleTest, NewBatchMustFitInTheLookahead) {
  SchedulerInput in = Batch(GetParam(), 0, 4, 0, {0, 1, 2, 3}, 0, true);
  in.lookahead = 4;
  SchedulerDecision d = schedule_next(in);
  EXPECT_THAT(d.start, IsEmpty());
  EXPECT_FALSE(d.new_batch_begin.has_value());
}

TEST_P(BatchScheduleTest, NextBatchStartsWhenThePreviousIsComplete) {
  // The reader has drained blocks 0-3 of the first batch.
  SchedulerDecision d = schedule_next(Batch(GetParam(), 4, 4, 0, {}, 0, true));
  EXPECT_THAT(d.start, ElementsAre(4, 5, 6, 7));
  ASSERT_TRUE(d.new_batch_begin.has_value());
  EXPECT_EQ(*d.new_batch_begin, 4u);
}

TEST_P(BatchScheduleTest, LastBatchIsTrimmedToTheBlockCount) {
  SchedulerDecision d = schedule_next(Batch(GetParam(), 8, 4, 0, {}, 4, true, 10));
  EXPECT_THAT(d.start, ElementsAre(8, 9));
  ASSERT_TRUE(d.new_batch_begin.has_value());
  EXPECT_EQ(*d.new_batch_begin, 8u);
}

TEST_P(BatchScheduleTest, NoBatchPastTheEnd) {
  SchedulerDecision d = schedule_next(Batch(GetParam(), 10, 4, 0, {}, 8, true, 10));
  EXPECT_THAT(d.start, IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(BatchAndBarrier, BatchScheduleTest,
                         ::testing::Values(Schedule::kBatch, Schedule::kBarrier),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(ScheduleTest, NamesAreDistinct) {
  EXPECT_STRNE(to_string(Schedule::kWindow), to_string(Schedule::kBatch));
  EXPECT_STRNE(to_string(Schedule::kBatch), to_string(Schedule::kBarrier));
  EXPECT_STRNE(to_string(Schedule::kWindow), to_string(Schedule::kBarrier));
}

}  // namespace
}  // namespace prefetch
