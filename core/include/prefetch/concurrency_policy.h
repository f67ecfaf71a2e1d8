// Concurrency policy: how many transfers run at once when `concurrency` is
// automatic (0). Pure: the engine measures what its transfers brought in
// over an interval and reports it; this unit answers with the count. In the
// spirit of TCP's congestion control:
//
//  - It starts at `start`. While the reader waits for bytes and every slot is
//    in use, it doubles (slow start): an origin that caps each connection (a
//    throttled mirror) rewards every connection added. A raise that paid
//    nearly in full (`strong_gain`) is followed by a x4 one. So is the first
//    where intervals are `long_interval` or more: a step there costs two
//    first-byte times of waiting, and a step too far is undone by the next
//    judgement.
//  - Each raise is judged by the next interval: the delivered rate must beat
//    the one before it by a clear margin (`gain` of what the added
//    connections would bring at the old rate per connection, and at least
//    `min_gain`). Else the rate is flat (a shared bottleneck: the link, the
//    host's total cap, the CPU): the count comes back to what the rate it
//    reached needs at the best rate per connection seen (fewer than now),
//    and that becomes the ceiling. A raise made before any byte came (the
//    first, with the first answer) has nothing to be judged against: the
//    interval after it is its baseline. Every `probe_every` at
//    the ceiling it tries one more; each probe that does not pay (flat, or
//    refused) doubles the wait before the next, up to `probe_max`, and one
//    that pays brings it back to `probe_every`.
//  - 429, 503 or a refused connection cut it to the transfers still running
//    beside the refused one: the origin took those and refused the rest (a
//    connection limit tells its number that way), and none of them is
//    ended. The cut is by one at least, by half at most (multiplicative
//    decrease), once per burst: only a request sent after the last cut cuts
//    again, but a refusal of one the cut counted as taken lowers the count
//    to those still running. The ceiling comes down with it, nothing is
//    raised before Retry-After (at least `hold`) and from there only probes
//    raise it.
//  - When the consumer is slower than the origin (the look-ahead held spans
//    back while the reader never waited) it drops one per interval, down to
//    one: no more connections than keep the look-ahead full.
#pragma once

#include <chrono>
#include <cstdint>

namespace prefetch {

struct ConcurrencyTuning {
  unsigned start = 4;  // transfers at the start
  unsigned max = 16;   // never more (the element's max-concurrency)
  double gain = 0.25;  // of the added connections' expected rate, to count as a rise
  double min_gain = 0.1;
  double strong_gain = 0.75;             // a rise of this much of it: the next raise is x4, not x2
  std::chrono::milliseconds hold{1000};  // after an overload, at least this before a raise
  std::chrono::milliseconds probe_every{5000};
  std::chrono::milliseconds probe_max{60000};  // the longest wait between probes
  // Intervals this long or longer (first bytes take 100 ms and more): the
  // first raise is x4, not x2.
  std::chrono::milliseconds long_interval{200};
};

// What one interval showed.
struct ConcurrencySample {
  double seconds = 0;           // its length
  uint64_t bytes = 0;           // body bytes received in it
  bool reader_waited = false;   // the reader waited for bytes (the network is the bottleneck)
  bool lookahead_full = false;  // the look-ahead held spans back (the consumer is)
  bool slots_full = false;      // every slot was in use at its end
  double judge_seconds = 0;     // how long the engine's intervals are (two first-byte times)
};

enum class ConcurrencyWhy {
  kStart,           // the starting count
  kRateRose,        // the last raise paid: raised again
  kRateFlat,        // the last raise did not pay: back to where it was
  kProbe,           // a while at the ceiling: one more, to see
  kOverloaded,      // 429, 503 or a refused connection: halved
  kConsumerSlower,  // the look-ahead stays full: one fewer
};

const char* to_string(ConcurrencyWhy why);

class ConcurrencyControl {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ConcurrencyControl(const ConcurrencyTuning& tuning,
                              Clock::time_point now = Clock::now());

  unsigned current() const { return current_; }
  ConcurrencyWhy why() const { return why_; }
  // The count the rate stopped rising at (or an overload left), max if none.
  unsigned ceiling() const { return ceiling_; }

  // One interval's sample, ending at `now`. True if current() changed.
  bool on_sample(const ConcurrencySample& s, Clock::time_point now);
  // The origin refused a request for load (429, 503) or a connection was
  // refused. `retry_after` < 0 if the answer said none; `sent`: when that
  // request went out; `running`: how many of our transfers run beside the
  // refused one (0 if not known). True if current() changed.
  bool on_overload(std::chrono::milliseconds retry_after, Clock::time_point sent,
                   Clock::time_point now, unsigned running = 0);
  // How long it waits at the ceiling before the next probe.
  std::chrono::milliseconds probe_wait() const { return probe_wait_; }

 private:
  void set(unsigned n, ConcurrencyWhy why);
  void probe_failed();  // a probe did not pay: wait longer for the next

  ConcurrencyTuning tuning_;
  unsigned current_;
  unsigned ceiling_;
  ConcurrencyWhy why_ = ConcurrencyWhy::kStart;
  // A raise being judged: the count and rate before it.
  bool judging_ = false;
  unsigned before_ = 0;
  double rate_before_ = 0;
  double per_connection_ = 0;  // the best rate per connection seen, all slots busy
  bool linear_ = false;        // grow one at a time (after a flat rate or an overload)
  bool strong_ = false;        // the last raise paid nearly in full
  Clock::time_point hold_until_;
  Clock::time_point cut_at_{};    // the last overload's cut
  unsigned floor_ = 1;            // ... and the least it may come to (half the count before it)
  Clock::time_point settled_at_;  // when it last came to the ceiling
  std::chrono::milliseconds probe_wait_;
};

}  // namespace prefetch
