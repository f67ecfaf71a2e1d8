// Access pattern: how the reader moves from block to block, and what the
// window does about it. One rule for push-mode seeks and pull-mode reads at
// any offset alike:
//  - the next block: a sequential run; the window slides one block ahead and
//    (after a jump by exact reads) doubles, as a kernel's read-ahead does.
//  - a step back of at most keep_behind blocks (a demuxer reading
//    interleaved chunks a little out of order): the blocks ahead stay.
//  - anything else is a jump: the window moves at once; what it leaves is
//    cancelled or cached, except the block the reader jumped away from,
//    which is parked if still fetching (a reader that jumps away from a
//    block it was reading usually comes back: a demuxer reads the header,
//    jumps to the index at the end, returns to the media after the header).
//    After a jump by exact (pull-mode) reads the window is two blocks, so
//    random reads cost no speculative requests; push seeks open it whole.
// Pure: no I/O, no locks.
#pragma once

#include <cstdint>
#include <optional>

namespace prefetch {

enum class Move {
  kStay,     // the same block
  kForward,  // the next block
  kBack,     // at most keep_behind blocks back
  kJump,     // anywhere else
};

struct AccessInput {
  uint64_t from = 0;  // the reader's block before the read
  uint64_t to = 0;    // the block the read is in
  unsigned keep_behind = 1;
  unsigned lookahead = 8;    // the window's largest size, in blocks
  unsigned window = 8;       // its size now
  bool exact_reads = false;  // the reads come from pull mode
};

struct AccessStep {
  Move move = Move::kStay;
  unsigned window = 0;  // the window's size after the move
  // Blocks outside [keep_from, keep_to) leave the window (cancelled if
  // fetching, cached if complete). A step back keeps the blocks ahead of
  // where the reader was.
  uint64_t keep_from = 0;
  uint64_t keep_to = 0;
  bool park_from = false;  // park block `from` if it is still fetching
};

AccessStep step_access(const AccessInput& in);

// Whether an incomplete block `i` behind the reader (keep_from <= i < to)
// stays after `step`: only the block a forward step just left (a two-block
// file's index is in its second block, and the reader may come back for the
// first) or the parked one. Complete blocks behind always stay.
bool keeps_incomplete_behind(const AccessStep& step, const AccessInput& in, uint64_t i,
                             bool parked);

// Pull-mode reads may alternate between two regions far apart (a demuxer
// reading a non-interleaved file: the video, then the audio of the same
// moment). A jump by exact reads keeps the region it leaves as the other
// region, with its window; a later read that lands near it switches back
// instead of jumping. A push-mode seek keeps no other region.
// While there are two, each window is at most half the look-ahead, so
// both fit in the budget; the other region goes once the reader has stepped
// on twice in its own region without coming back to it. The reader's region
// comes first: when it needs a request slot the other region's furthest
// request gives its slot up.
struct Region {
  uint64_t block = 0;   // the reader's block in it
  unsigned window = 0;  // the blocks its window spans from there
  unsigned idle = 0;    // forward steps the reader took elsewhere since
};

struct RegionMove {
  AccessStep step;              // the move within the region the read lands in
  std::optional<Region> other;  // the region kept besides the reader's
  bool switched = false;        // the read went back to the other region
};

RegionMove step_regions(const AccessInput& in, const std::optional<Region>& other);

// Whether region `r` keeps block `i`: from keep_behind blocks before its
// read block to the end of its window.
bool region_keeps(const Region& r, uint64_t i, unsigned keep_behind);

}  // namespace prefetch
