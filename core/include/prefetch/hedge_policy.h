// Hedge policy: a first byte that is late gets a second request for the same
// bytes on another connection; the first answer wins, the other is
// cancelled. Two cases, one rule each, both pure (the engine passes what it
// measured):
//  - the race: the request the reader waits on at the start, or after a
//    seek or a jump, gets up to two twins (choose_race);
//  - the hedge: a block near the reader that waits far longer than
//    requests usually do (choose_hedge), within a share of the requests.
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
  // The race (choose_race): twins per start or seek, at most...
  unsigned race_twins = 2;
  // ...the first one after this many times its connection's set-up time
  // while no first-byte times are known (an origin that answers within a
  // few round trips never sees one)...
  double race_setup_factor = 4;
  // ...and the same once they are, unless they show no tail (an origin
  // whose first bytes all take about the same time gets none); without a
  // set-up time, past this quantile of them...
  double race_percentile = 0.5;
  // ...never sooner than this: on a local origin the machine's own
  // scheduling, not the origin, makes a first byte this late...
  std::chrono::milliseconds race_floor{20};
  // ...and twin n goes after n times that wait.
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

// The request the reader waits on, still without its first byte.
struct RaceInput {
  unsigned twins_sent = 0;              // for this start or seek so far
  double since_start_ms = 0;            // since it started: its first-byte clock
  std::optional<double> since_sent_ms;  // since its head went out; nullopt before
  std::optional<double> setup_ms;       // what opening its connection took, if known
  std::optional<double> since_twin_ms;  // since the last twin went; nullopt before the first
};

// How long the reader's request may wait before its next twin goes, and
// on which clock: since it started (a limit from first-byte times, which
// are timed that way) or since its head went out (one from the set-up).
struct RaceLimit {
  double ms = 0;
  bool since_start = false;
  // One twin's wait (ms for the first): the next twin also waits this long
  // after the last one went, so twins come one by one, each when the one
  // before it is late as well.
  double step_ms = 0;
};

// A first-byte wait is about the same for every request when the slowest
// tenth waits less than this many times the fastest tenth.
constexpr double kNoTailSpread = 1.5;

// The wait after which the reader's request gets its next twin; nullopt:
// none (twins spent, racing off, or nothing to tell from): race_setup_factor
// x the set-up of its connection, since its head went out (twin n after n
// times that). With min_samples first-byte times, none if they show no tail
// above the floor; where no set-up time is known, race_percentile of them
// since the request started (none before). Never below race_floor (times n).
std::optional<RaceLimit> race_limit(const HedgePolicy& policy, const RaceInput& in,
                                    const FirstByteTimes& times);

struct RaceDecision {
  double waited_ms = 0;  // on the limit's clock
  RaceLimit limit;
};

// Whether the reader's request gets its next twin now (race_limit passed).
std::optional<RaceDecision> choose_race(const HedgePolicy& policy, const RaceInput& in,
                                        const FirstByteTimes& times);

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
