// Retry policy: which failed requests get another attempt, and how long each
// waits before it. Pure: the random part of the wait comes in as a number.
#pragma once

#include <chrono>
#include <cstdint>

#include "prefetch/error.h"

namespace prefetch {

struct RetryPolicy {
  static constexpr int kDefaultRetries = 3;
  int retries = kDefaultRetries;  // attempts after the first, per block; -1 = forever
  std::chrono::milliseconds backoff_base{200};
  std::chrono::milliseconds backoff_max{5000};
};

struct RetryDecision {
  bool retry = false;
  std::chrono::milliseconds wait{0};  // before the next attempt
};

// The failure `e` ended attempt number `attempt` (1 for the first request).
// Transient failures (resets, timeouts, 5xx, 429, a cancel we did not ask
// for) are retried while attempts remain, after an exponential backoff with
// "equal jitter" (half fixed, half drawn from `draw`, so retries of many
// blocks spread out), never sooner than Retry-After and never after more
// than a minute.
RetryDecision decide_retry(const RetryPolicy& policy, const Error& e, unsigned attempt,
                           uint64_t draw);

// The backoff alone (see decide_retry).
std::chrono::milliseconds backoff(const RetryPolicy& policy, unsigned attempt,
                                  std::chrono::milliseconds retry_after, uint64_t draw);

}  // namespace prefetch
