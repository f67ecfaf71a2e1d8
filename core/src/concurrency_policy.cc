#include "prefetch/concurrency_policy.h"

#include <algorithm>
#include <cmath>

namespace prefetch {

const char* to_string(ConcurrencyWhy why) {
  switch (why) {
    case ConcurrencyWhy::kStart:
      return "start";
    case ConcurrencyWhy::kRateRose:
      return "rate rose";
    case ConcurrencyWhy::kRateFlat:
      return "rate flat";
    case ConcurrencyWhy::kProbe:
      return "probe";
    case ConcurrencyWhy::kOverloaded:
      return "overloaded";
    case ConcurrencyWhy::kConsumerSlower:
      return "consumer slower";
  }
  return "?";
}

ConcurrencyControl::ConcurrencyControl(const ConcurrencyTuning& tuning, Clock::time_point now)
    : tuning_(tuning), hold_until_(now), settled_at_(now), probe_wait_(tuning.probe_every) {
  tuning_.max = std::max(1u, tuning_.max);
  current_ = std::clamp(tuning_.start, 1u, tuning_.max);
  ceiling_ = tuning_.max;
}

void ConcurrencyControl::set(unsigned n, ConcurrencyWhy why) {
  current_ = n;
  why_ = why;
}

void ConcurrencyControl::probe_failed() {
  probe_wait_ = std::min(tuning_.probe_max, 2 * probe_wait_);
}

bool ConcurrencyControl::on_sample(const ConcurrencySample& s, Clock::time_point now) {
  if (s.seconds <= 0) return false;
  const double rate = static_cast<double>(s.bytes) / s.seconds;
  if (judging_ && rate_before_ <= 0) {
    // Raised before any byte came (the first raise, with the first
    // answer): there is nothing to judge it against, so this interval is
    // its baseline, and the next raise doubles.
    judging_ = false;
    strong_ = false;
  }
  if (judging_) {
    judging_ = false;
    const double added = static_cast<double>(current_ - before_) / before_;
    const double need = rate_before_ * (1.0 + std::max(tuning_.min_gain, tuning_.gain * added));
    // Nearly what the added connections would bring at the old rate each:
    // each connection is capped on its own, so the next step is larger.
    strong_ = rate >= rate_before_ * (1.0 + tuning_.strong_gain * added);
    const bool probe = why_ == ConcurrencyWhy::kProbe;
    if (probe && rate >= need) probe_wait_ = tuning_.probe_every;
    if (rate < need) {
      if (probe) probe_failed();
      // Flat: as many as the rate reached needs at the best rate per
      // connection seen (a host capped in total at 6 connections' worth
      // settles at 6), fewer than now.
      unsigned to = before_;
      if (per_connection_ > 0) {
        // Within min_gain of the rate is as good as it (noise).
        const double reached = std::max(rate, rate_before_) * (1.0 - tuning_.min_gain);
        const double want = std::ceil(reached / per_connection_);
        to = static_cast<unsigned>(std::clamp<double>(want, 1, current_ - 1));
      }
      ceiling_ = to;
      linear_ = true;
      settled_at_ = now;
      set(to, ConcurrencyWhy::kRateFlat);
      return true;
    }
  }
  if (s.lookahead_full && !s.reader_waited) {
    if (current_ <= 1) return false;
    set(current_ - 1, ConcurrencyWhy::kConsumerSlower);
    return true;
  }
  if (!s.reader_waited || !s.slots_full) return false;
  per_connection_ = std::max(per_connection_, rate / current_);
  if (now < hold_until_) return false;
  unsigned to = 0;
  ConcurrencyWhy why = ConcurrencyWhy::kRateRose;
  if (current_ < ceiling_) {
    // The first raise (from a guess, nothing judged) is x4 where judging
    // one takes long: each step costs an interval of two first-byte times.
    const bool first_long =
        why_ == ConcurrencyWhy::kStart &&
        s.judge_seconds >= std::chrono::duration<double>(tuning_.long_interval).count();
    to = linear_ ? current_ + 1 : current_ * (strong_ || first_long ? 4 : 2);
    to = std::min(to, ceiling_);
  } else if (current_ < tuning_.max && now - settled_at_ >= probe_wait_) {
    to = current_ + 1;
    ceiling_ = to;
    why = ConcurrencyWhy::kProbe;
  }
  if (!to) return false;
  judging_ = true;
  before_ = current_;
  rate_before_ = rate;
  set(to, why);
  return true;
}

bool ConcurrencyControl::on_overload(std::chrono::milliseconds retry_after, Clock::time_point sent,
                                     Clock::time_point now, unsigned running) {
  if (sent < cut_at_) {
    // The same burst: the cut stands, but a request it counted as taken
    // was refused after all, so the count follows those still running
    // (not below the cut's floor).
    const unsigned to = std::max(floor_, running);
    if (!running || to >= current_) return false;
    ceiling_ = to;
    set(to, ConcurrencyWhy::kOverloaded);
    return true;
  }
  if (judging_ && why_ == ConcurrencyWhy::kProbe) probe_failed();
  cut_at_ = now;
  judging_ = false;
  linear_ = true;
  hold_until_ = now + std::max(tuning_.hold, retry_after);
  settled_at_ = now;
  // Those running beside the refused one; one fewer than now at least, half
  // of now at most.
  floor_ = std::max(1u, current_ / 2);
  const unsigned to = std::max(floor_, std::min(running, current_ - 1));
  ceiling_ = to;
  if (to == current_) return false;
  set(to, ConcurrencyWhy::kOverloaded);
  return true;
}

}  // namespace prefetch
