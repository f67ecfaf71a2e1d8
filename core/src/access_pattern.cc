#include "prefetch/access_pattern.h"

#include <algorithm>

namespace prefetch {

AccessStep step_access(const AccessInput& in) {
  AccessStep s;
  if (in.to == in.from)
    s.move = Move::kStay;
  else if (in.to == in.from + 1)
    s.move = Move::kForward;
  else if (in.to < in.from && in.from - in.to <= in.keep_behind)
    s.move = Move::kBack;
  else
    s.move = Move::kJump;

  s.window = in.window;
  if (s.move == Move::kJump) s.window = in.exact_reads ? std::min(2u, in.lookahead) : in.lookahead;
  if (s.move == Move::kForward) s.window = std::min(2 * in.window, in.lookahead);
  s.park_from = s.move == Move::kJump;
  s.keep_from = in.to > in.keep_behind ? in.to - in.keep_behind : 0;
  s.keep_to = (s.move == Move::kBack ? in.from : in.to) + in.lookahead;
  return s;
}

bool keeps_incomplete_behind(const AccessStep& step, const AccessInput& in, uint64_t i,
                             bool parked) {
  return parked || (step.move == Move::kForward && i == in.from);
}

namespace {

constexpr unsigned kRegionIdleSteps = 2;

// Two regions share the look-ahead: each window at most half of it.
void share(const AccessInput& in, RegionMove* m) {
  if (!m->other) return;
  const unsigned half = std::max(1u, in.lookahead / 2);
  m->step.window = std::min(m->step.window, half);
  m->other->window = std::min(m->other->window, half);
  const uint64_t base = m->step.move == Move::kBack ? in.from : in.to;
  m->step.keep_to = std::min(m->step.keep_to, base + half);
}

}  // namespace

RegionMove step_regions(const AccessInput& in, const std::optional<Region>& other) {
  RegionMove m;
  m.step = step_access(in);
  const Region left{in.from, in.window, 0};
  if (m.step.move != Move::kJump) {
    // Still in the same region. The other one goes once the reader has
    // stepped on twice here without coming back (it has settled), or when
    // the two meet.
    m.other = other;
    if (m.other && m.step.move == Move::kForward) ++m.other->idle;
    if (m.other && (m.other->idle >= kRegionIdleSteps ||
                    (m.other->block + m.other->window >= m.step.keep_from &&
                     m.other->block < m.step.keep_to + in.keep_behind)))
      m.other.reset();
  } else if (in.exact_reads && other &&
             step_access(AccessInput{other->block, in.to, in.keep_behind, in.lookahead,
                                     other->window, true})
                     .move != Move::kJump) {
    // Back to the other region: the one left becomes the other.
    m.step = step_access(
        AccessInput{other->block, in.to, in.keep_behind, in.lookahead, other->window, true});
    m.other = left;
    m.switched = true;
  } else if (in.exact_reads) {
    // A new region; the one left stays, so nothing of it needs parking.
    m.step.park_from = false;
    m.other = left;
  }
  share(in, &m);
  return m;
}

bool region_keeps(const Region& r, uint64_t i, unsigned keep_behind) {
  return i + keep_behind >= r.block && i < r.block + r.window;
}

}  // namespace prefetch
