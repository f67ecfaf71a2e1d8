#include "prefetch/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

namespace prefetch {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

SchedulerInput input(uint64_t read_block, unsigned concurrency, unsigned lookahead,
                     unsigned in_flight, std::set<uint64_t> held,
                     std::optional<uint64_t> count = 100) {
  SchedulerInput in;
  in.read_block = read_block;
  in.block_count = count;
  in.concurrency = concurrency;
  in.lookahead = lookahead;
  in.in_flight = in_flight;
  in.held = [held](uint64_t i) { return held.count(i) > 0; };
  return in;
}

// The schedule (batch or barrier) is the test's parameter: both decide alike
// here; they differ in the engine, which says when a batch is complete.
SchedulerInput batch_input(Schedule /*schedule*/, uint64_t read_block, unsigned concurrency,
                           unsigned in_flight, std::set<uint64_t> held, uint64_t batch_begin,
                           bool batch_complete, std::optional<uint64_t> count = 100) {
  SchedulerInput in = input(read_block, concurrency, 2 * concurrency, in_flight, held, count);
  in.batch_begin = batch_begin;
  in.batch_complete = batch_complete;
  return in;
}

// --- batch / barrier -------------------------------------------------------

class BatchScheduleTest : public ::testing::TestWithParam<Schedule> {};

TEST_P(BatchScheduleTest, NothingStartsWhileTheBatchIsIncomplete) {
  // Blocks 0 and 1 are complete, 2 and 3 still fetching: two slots are free,
  // but batch and barrier wait for the whole batch.
  SchedulerDecision d = schedule_next(batch_input(GetParam(), 0, 4, 2, {0, 1, 2, 3}, 0, false));
  EXPECT_THAT(d.start, IsEmpty());
  EXPECT_FALSE(d.new_batch_begin.has_value());
}

TEST_P(BatchScheduleTest, NeverRestartsBlocksBehindTheReadPosition) {
  // The reader drained blocks 0 and 1 of the incomplete batch 0-3 and the
  // store dropped them; they must not be fetched again.
  SchedulerDecision d = schedule_next(batch_input(GetParam(), 2, 4, 2, {2, 3}, 0, false));
  EXPECT_THAT(d.start, IsEmpty());
  EXPECT_FALSE(d.new_batch_begin.has_value());
}

TEST_P(BatchScheduleTest, IncompleteBatchRestartsItsMissingBlocks) {
  // Block 2 of the current batch failed and was dropped: only it restarts.
  SchedulerDecision d = schedule_next(batch_input(GetParam(), 0, 4, 1, {0, 1, 3}, 0, false));
  EXPECT_THAT(d.start, ElementsAre(2));
  EXPECT_FALSE(d.new_batch_begin.has_value());
}

TEST_P(BatchScheduleTest, NewBatchFollowsTheCompletedOne) {
  // Batch 0-3 is complete but not read yet; the budget (8) has room for 4-7.
  SchedulerDecision d = schedule_next(batch_input(GetParam(), 0, 4, 0, {0, 1, 2, 3}, 0, true));
  EXPECT_THAT(d.start, ElementsAre(4, 5, 6, 7));
  ASSERT_TRUE(d.new_batch_begin.has_value());
  EXPECT_EQ(*d.new_batch_begin, 4u);
}

TEST_P(BatchScheduleTest, NewBatchMustFitInTheLookahead) {
  SchedulerInput in = batch_input(GetParam(), 0, 4, 0, {0, 1, 2, 3}, 0, true);
  in.lookahead = 4;
  SchedulerDecision d = schedule_next(in);
  EXPECT_THAT(d.start, IsEmpty());
  EXPECT_FALSE(d.new_batch_begin.has_value());
}

TEST_P(BatchScheduleTest, NextBatchStartsWhenThePreviousIsComplete) {
  // The reader has drained blocks 0-3 of the first batch.
  SchedulerDecision d = schedule_next(batch_input(GetParam(), 4, 4, 0, {}, 0, true));
  EXPECT_THAT(d.start, ElementsAre(4, 5, 6, 7));
  ASSERT_TRUE(d.new_batch_begin.has_value());
  EXPECT_EQ(*d.new_batch_begin, 4u);
}

TEST_P(BatchScheduleTest, LastBatchIsTrimmedToTheBlockCount) {
  SchedulerDecision d = schedule_next(batch_input(GetParam(), 8, 4, 0, {}, 4, true, 10));
  EXPECT_THAT(d.start, ElementsAre(8, 9));
  ASSERT_TRUE(d.new_batch_begin.has_value());
  EXPECT_EQ(*d.new_batch_begin, 8u);
}

TEST_P(BatchScheduleTest, NoBatchPastTheEnd) {
  SchedulerDecision d = schedule_next(batch_input(GetParam(), 10, 4, 0, {}, 8, true, 10));
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
