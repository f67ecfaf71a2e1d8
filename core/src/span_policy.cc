#include "prefetch/span_policy.h"

#include <algorithm>

namespace prefetch {

uint64_t claim_end_block(uint64_t end, uint64_t block_size) {
  if (end == kOpenEnd) return kOpenEnd;
  return end / block_size + (end % block_size ? 1 : 0);
}

namespace {

bool exists(const SpanInput& in, uint64_t i) { return !in.block_count || i < *in.block_count; }

bool claimed(const SpanInput& in, uint64_t i) {
  for (const SpanView& s : in.spans) {
    if (i >= s.front / in.block_size && i < claim_end_block(s.end, in.block_size)) return true;
  }
  return false;
}

// Where a span starting at block `first` ends: before the next block that is
// held or claimed, at the end, at the length cap, or at the horizon.
uint64_t span_end(const SpanInput& in, uint64_t first) {
  uint64_t end = kOpenEnd;
  for (const SpanView& s : in.spans) {
    const uint64_t f = s.front / in.block_size;
    if (f > first) end = std::min(end, f);
  }
  if (in.block_count) end = std::min(end, *in.block_count);
  if (in.max_blocks) end = std::min(end, first + in.max_blocks);
  if (in.end_at_horizon) end = std::min(end, std::max(in.to_block, first + 1));
  // Held blocks (complete, or a parked one) end it too; past the horizon
  // the store holds none of the reader's.
  const uint64_t scan_to = std::min(end, in.to_block);
  for (uint64_t i = first + 1; i < scan_to; ++i) {
    if (in.held(i)) return i;
  }
  return end;
}

}  // namespace

std::optional<double> time_to_reach(const SpanInput& in, const SpanView& s, uint64_t at) {
  const double bytes = at > s.front ? static_cast<double>(at - s.front) : 0.0;
  if (s.receiving) {
    if (s.rate <= 0) return std::nullopt;
    return 1000.0 * bytes / s.rate;
  }
  if (in.conn_rate <= 0 || !in.ttfb_ms) return std::nullopt;
  return std::max(0.0, *in.ttfb_ms - s.waited_ms) + 1000.0 * bytes / in.conn_rate;
}

std::optional<SpanChoice> choose_span(const SpanInput& in) {
  // A block nobody fetches.
  for (uint64_t i = in.from_block; i < in.to_block && exists(in, i); ++i) {
    if (in.held(i) || claimed(in, i)) continue;
    return SpanChoice{i, span_end(in, i), std::nullopt, 0};
  }
  // The back half of a claim, where its span would come late.
  if (!in.ttfb_ms) return std::nullopt;
  const double pays = std::max(in.split_floor_ms, in.split_margin * *in.ttfb_ms);
  std::optional<SpanChoice> best;
  for (size_t k = 0; k < in.spans.size(); ++k) {
    const SpanView& s = in.spans[k];
    const uint64_t front = s.front / in.block_size;
    uint64_t hi = std::min(claim_end_block(s.end, in.block_size), in.to_block);
    if (in.block_count) hi = std::min(hi, *in.block_count);
    // Not the block it is in; and a span coming from behind the horizon
    // gives up the horizon whole.
    const uint64_t lo = std::max(front + 1, in.from_block);
    if (hi <= lo) continue;
    const uint64_t at = front + 1 >= in.from_block ? front + (hi - front + 1) / 2 : lo;
    const std::optional<double> reach = time_to_reach(in, s, at * in.block_size);
    if (!reach || *reach <= pays) continue;
    if (best && *reach <= best->reach_ms) continue;
    uint64_t end = claim_end_block(s.end, in.block_size);
    if (in.max_blocks) end = std::min(end, at + in.max_blocks);
    if (in.end_at_horizon) end = std::min(end, std::max(in.to_block, at + 1));
    best = SpanChoice{at, end, k, *reach};
  }
  return best;
}

}  // namespace prefetch
