// Hedge policy: when a block near the reader waits far longer for its first
// byte than requests usually do, a second request for its missing bytes
// races the first; the first answer wins. This unit decides which block to
// hedge now. Pure: the engine passes the waits it measured.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

namespace prefetch {

struct HedgePolicy {
  static constexpr bool kDefaultEnabled = true;
  bool enabled = kDefaultEnabled;
  double percentile = 0.5;              // of recent first-byte times...
  double factor = 2.5;                  // ...times this is the threshold...
  std::chrono::milliseconds floor{50};  // ...but never below this
  double share = 0.10;                  // hedges are at most this share of the requests
  unsigned span = 3;                    // blocks from the read position that may be hedged
  unsigned min_samples = 6;             // first-byte times needed before hedging
};

// First-byte times of the most recent requests (the last 64), in ms.
class FirstByteTimes {
 public:
  void add(double ms);
  size_t size() const { return ms_.size(); }
  // The sample at quantile q (0..1) of the kept ones; nullopt while empty.
  std::optional<double> quantile(double q) const;

 private:
  std::deque<double> ms_;
};

// A block near the reader whose request still waits for its first byte and
// was not hedged yet.
struct HedgeCandidate {
  uint64_t block = 0;
  double waited_ms = 0;  // since the request was sent (negative in a backoff)
};

struct HedgeInput {
  uint64_t read_block = 0;
  unsigned in_flight = 0;    // requests running now, hedges included
  unsigned concurrency = 4;  // request slots; a hedge may take one spare beyond
  unsigned lookahead = 8;    // blocks the look-ahead holds
  uint64_t requests_started = 0;
  uint64_t hedges_sent = 0;
  std::optional<uint64_t> block_count;     // nullopt while the size is unknown
  std::vector<HedgeCandidate> candidates;  // in index order
};

struct HedgeDecision {
  uint64_t block = 0;
  double waited_ms = 0;
  double limit_ms = 0;  // the wait past which it counted as late
};

// The first-byte time past which a request counts as late, or nullopt while
// there are too few samples to tell.
std::optional<double> hedge_threshold_ms(const HedgePolicy& policy, const FirstByteTimes& times);

// Hedges left in the budget: `share` of the requests made so far plus the
// look-ahead's worth about to be made (so one hedge may go before the tenth
// request), but no more than the share of the file's blocks while the
// transfer has not made more requests than that.
double hedge_tokens(const HedgePolicy& policy, const HedgeInput& in);

// At most one block to hedge now. A block d places past the reader waits
// (1 + d) x the threshold: the budget is best spent on the block the reader
// is (about to be) stuck on. The budget's last hedge waits twice as long, so
// a very late block (the tail's tail) does not find the budget spent.
std::optional<HedgeDecision> choose_hedge(const HedgePolicy& policy, const HedgeInput& in,
                                          const FirstByteTimes& times);

}  // namespace prefetch
