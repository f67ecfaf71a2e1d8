#include "prefetch/scheduler.h"

#include <algorithm>

namespace prefetch {

const char* to_string(Schedule schedule) {
  static const char* const kNames[] = {"window", "batch", "barrier"};
  const auto i = static_cast<size_t>(schedule);
  return i < sizeof kNames / sizeof kNames[0] ? kNames[i] : "unknown";
}

namespace {

bool exists(const SchedulerInput& in, uint64_t index) {
  return !in.block_count || index < *in.block_count;
}

}  // namespace

SchedulerDecision schedule_next(const SchedulerInput& in) {
  SchedulerDecision out;
  unsigned free_slots = in.in_flight < in.concurrency ? in.concurrency - in.in_flight : 0;
  const uint64_t budget_end = in.read_block + in.lookahead;

  // A batch is `concurrency` consecutive blocks. The next one
  // starts only when the current one is complete and fits in the budget.
  uint64_t begin = in.batch_begin;
  if (in.batch_complete) {
    const uint64_t next = begin + in.concurrency;
    if (next + in.concurrency > budget_end || !exists(in, next)) return out;
    begin = next;
    out.new_batch_begin = begin;
  }
  // Blocks of the batch behind the reader were delivered already.
  for (uint64_t i = std::max(begin, in.read_block);
       i < begin + in.concurrency && free_slots > 0 && exists(in, i); ++i) {
    if (in.held(i)) continue;
    out.start.push_back(i);
    --free_slots;
  }
  return out;
}

}  // namespace prefetch
