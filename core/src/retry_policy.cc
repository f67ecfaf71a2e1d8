#include "prefetch/retry_policy.h"

#include <algorithm>

namespace prefetch {

std::chrono::milliseconds backoff(const RetryPolicy& policy, unsigned attempt,
                                  std::chrono::milliseconds retry_after, uint64_t draw) {
  const int64_t base = policy.backoff_base.count();
  const int64_t cap = policy.backoff_max.count();
  int64_t ceiling = base << std::min<unsigned>(attempt > 0 ? attempt - 1 : 0, 20);
  if (ceiling > cap) ceiling = cap;
  const int64_t half = ceiling / 2;
  int64_t wait = ceiling - half + static_cast<int64_t>(draw % static_cast<uint64_t>(half + 1));
  if (retry_after.count() >= 0) wait = std::max<int64_t>(wait, retry_after.count());
  return std::chrono::milliseconds(std::min<int64_t>(wait, 60000));
}

RetryDecision decide_retry(const RetryPolicy& policy, const Error& e, unsigned attempt,
                           uint64_t draw) {
  RetryDecision d;
  // A cancel that reaches here was not ours (ours end quietly): retry it.
  const bool transient = e.transient || e.kind == ErrorKind::kCancelled;
  const bool attempts_left = policy.retries < 0 || attempt <= static_cast<unsigned>(policy.retries);
  if (!transient || !attempts_left) return d;
  d.retry = true;
  d.wait = backoff(policy, attempt, e.retry_after, draw);
  return d;
}

}  // namespace prefetch
