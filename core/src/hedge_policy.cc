#include "prefetch/hedge_policy.h"

#include <algorithm>

namespace prefetch {

namespace {
constexpr size_t kKeptTimes = 64;
}

void FirstByteTimes::add(double ms) {
  ms_.push_back(ms);
  if (ms_.size() > kKeptTimes) ms_.pop_front();
}

std::optional<double> FirstByteTimes::quantile(double q) const {
  if (ms_.empty()) return std::nullopt;
  std::vector<double> v(ms_.begin(), ms_.end());
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

std::optional<double> hedge_threshold_ms(const HedgePolicy& policy, const FirstByteTimes& times) {
  if (times.size() < policy.min_samples) return std::nullopt;
  const std::optional<double> typical = times.quantile(policy.percentile);
  if (!typical) return std::nullopt;
  return std::max<double>(static_cast<double>(policy.floor.count()), policy.factor * *typical);
}

std::optional<RaceLimit> race_limit(const HedgePolicy& policy, const RaceInput& in,
                                    const FirstByteTimes& times) {
  if (!policy.enabled || in.twins_sent >= policy.race_twins) return std::nullopt;
  const double nth = in.twins_sent + 1;
  const double floor = static_cast<double>(policy.race_floor.count());
  if (times.size() >= policy.min_samples) {
    const double fast = times.quantile(0.1).value_or(0);
    const double slow = times.quantile(0.9).value_or(0);
    // Every wait about the same: a twin would wait as long. (Where even the
    // slow ones come before the floor, a wait past it is late all the same.)
    if (slow >= floor && slow < kNoTailSpread * fast) return std::nullopt;
    // A tail: a twin sent early is as likely as the request to draw a short
    // wait, so the set-up, not the tail, says when (below). Without a set-up
    // time to go by, later than most of the first bytes.
    if (!in.setup_ms) {
      const double step = std::max(floor, times.quantile(policy.race_percentile).value_or(0));
      return RaceLimit{nth * step, true, step};
    }
  }
  if (!in.setup_ms) return std::nullopt;
  const double step = std::max(floor, policy.race_setup_factor * *in.setup_ms);
  return RaceLimit{nth * step, false, step};
}

std::optional<RaceDecision> choose_race(const HedgePolicy& policy, const RaceInput& in,
                                        const FirstByteTimes& times) {
  const std::optional<RaceLimit> limit = race_limit(policy, in, times);
  if (!limit) return std::nullopt;
  const std::optional<double> waited = limit->since_start ? in.since_start_ms : in.since_sent_ms;
  if (!waited || *waited < limit->ms) return std::nullopt;
  if (in.since_twin_ms && *in.since_twin_ms < limit->step_ms) return std::nullopt;
  return RaceDecision{*waited, *limit};
}

double hedge_tokens(const HedgePolicy& policy, const HedgeInput& in) {
  double base = static_cast<double>(in.requests_started) + in.lookahead;
  if (in.block_count)
    base = std::min(base,
                    static_cast<double>(std::max<uint64_t>(in.requests_started, *in.block_count)));
  return policy.share * base - static_cast<double>(in.hedges_sent);
}

std::optional<HedgeDecision> choose_hedge(const HedgePolicy& policy, const HedgeInput& in,
                                          const FirstByteTimes& times) {
  // Regular requests fill `concurrency` slots; a hedge may take the one
  // spare beyond them, not more.
  if (!policy.enabled || in.in_flight > in.concurrency || in.candidates.empty())
    return std::nullopt;
  const double tokens = hedge_tokens(policy, in);
  if (tokens < 1) return std::nullopt;
  const std::optional<double> threshold = hedge_threshold_ms(policy, times);
  if (!threshold) return std::nullopt;
  const double scarcity = tokens < 2 ? 2.0 : 1.0;
  for (const HedgeCandidate& c : in.candidates) {
    if (c.block < in.read_block || c.block >= in.read_block + policy.span) continue;
    const double limit = *threshold * scarcity * static_cast<double>(1 + (c.block - in.read_block));
    if (c.waited_ms < limit) continue;
    return HedgeDecision{c.block, c.waited_ms, limit};
  }
  return std::nullopt;
}

}  // namespace prefetch
