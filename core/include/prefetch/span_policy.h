// Span policy: what a free connection fetches next. A span is one range
// request over a run of consecutive blocks; its body fills them in order.
// Every request pays the origin's first-byte time, so a span runs on for as
// long as that is the fastest way to get its blocks:
//  - a free connection first takes the lowest block of the horizon that no
//    span claims; its span runs up to the next claimed block (or the end).
//  - with none free, it takes the back half of a running span's claim within
//    the horizon, but only where that span would reach the split point later
//    than a new request's first byte would come, and never where it would
//    within a few tens of ms (aria2c splits the largest gap; here the
//    latest-reached point wins, which also rescues the rest of a span
//    running far slower than its peers). On an origin that answers late but
//    sends fast, no split pays: one connection carries the file.
// Pure: the engine passes what it measured.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace prefetch {

constexpr uint64_t kOpenEnd = UINT64_MAX;  // a span that runs to the resource's end

// A running span as the policy sees it.
struct SpanView {
  uint64_t front = 0;       // the byte it writes next
  uint64_t end = kOpenEnd;  // the end of its claim (exclusive byte)
  bool receiving = false;   // its body flows; else it waits for its first byte
  double waited_ms = 0;     // waiting: how long since it was sent
  double rate = 0;          // receiving: its bytes/s while flowing; 0 = not known yet
};

struct SpanInput {
  uint64_t block_size = 1 << 20;
  // New spans start in [from_block, to_block): the look-ahead window.
  uint64_t from_block = 0;
  uint64_t to_block = 0;
  std::optional<uint64_t> block_count;  // nullopt while the size is unknown
  std::function<bool(uint64_t)> held;   // block i is in the store already
  std::vector<SpanView> spans;
  std::optional<double> ttfb_ms;  // a typical first-byte wait; nullopt: none measured
  double conn_rate = 0;           // a typical connection's bytes/s; 0 = not known
  uint64_t max_blocks = 0;        // a span's length at most (max-request-size), 0 = any
  bool end_at_horizon = false;    // spans end at to_block (exact reads after a jump)
  double split_margin = 1.25;     // a split pays when reach > margin x ttfb...
  // ...and this: no new request's first byte can be counted on sooner, as a
  // busy machine's own scheduling can make a local answer this late. (A
  // split the span reaches first costs what the origin sent it: on a fast
  // origin, a socket buffer.)
  double split_floor_ms = 50;
};

struct SpanChoice {
  uint64_t first = 0;           // its first block
  uint64_t end = kOpenEnd;      // its end block (exclusive), or kOpenEnd
  std::optional<size_t> split;  // the span (index into spans) whose claim now ends at `first`
  double reach_ms = 0;          // split: when that span would have reached `first`
};

// The span a free connection should fetch, or nullopt (nothing worth a request).
std::optional<SpanChoice> choose_span(const SpanInput& in);

// When (ms from now) span `s` would write byte `at`, or nullopt if it cannot
// be told (no rate known).
std::optional<double> time_to_reach(const SpanInput& in, const SpanView& s, uint64_t at);

// The blocks a span claims: from the one holding its front to the one
// holding its last byte (exclusive end, kOpenEnd if open).
uint64_t claim_end_block(uint64_t end, uint64_t block_size);

}  // namespace prefetch
