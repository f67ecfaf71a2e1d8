// Scheduler: the batch and barrier schedules' choice of blocks to request
// next, one request per block. Pure logic over a view of the block store, so
// it can be tested without any I/O. The window schedule (the default) is not
// decided here: spans fill its window (span_policy.h, engine_span.cc).
//
//  batch   start N blocks, deliver each in index order once it is complete,
//          start the next N when all N are complete.
//  barrier like batch, but nothing of a batch is delivered before all of it
//          is complete (the old flow; kept so the benchmark can show it).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace prefetch {

enum class Schedule { kWindow, kBatch, kBarrier };

const char* to_string(Schedule schedule);

// Batch and barrier choose alike (they differ in what the reader may take).
struct SchedulerInput {
  uint64_t read_block = 0;              // block holding the read position
  std::optional<uint64_t> block_count;  // nullopt while the size is unknown
  unsigned concurrency = 4;             // requests in flight at most
  unsigned lookahead = 8;               // blocks held from read_block on, at most
  unsigned in_flight = 0;               // requests running now
  // Block i is held (fetching or complete) in the store.
  std::function<bool(uint64_t)> held;
  // The first block of the current batch and whether all of it is
  // complete. The caller starts a new batch at the read position after a seek.
  uint64_t batch_begin = 0;
  bool batch_complete = false;
};

struct SchedulerDecision {
  std::vector<uint64_t> start;              // blocks to request now, in order
  std::optional<uint64_t> new_batch_begin;  // a new batch starts here
};

SchedulerDecision schedule_next(const SchedulerInput& in);

}  // namespace prefetch
