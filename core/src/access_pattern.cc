#include "prefetch/access_pattern.h"

#include <algorithm>

namespace prefetch {

const char* to_string(Move move) {
  switch (move) {
    case Move::kStay:
      return "stay";
    case Move::kForward:
      return "forward";
    case Move::kBack:
      return "back";
    case Move::kJump:
      return "jump";
  }
  return "unknown";
}

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

}  // namespace prefetch
