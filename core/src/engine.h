// The engine's insides, shared by its source files:
//   prefetcher.cc         the public API and the reader's waits
//   engine_window.cc      what to fetch: the window, its blocks, the cache
//   engine_hedge.cc       late first bytes: the reader's raced, a late block hedged
//   engine_span.cc        spans: start, split, send ahead, the automatic look-ahead
//   engine_flow.cc        a span's body: where it goes, pause and resume, its end
//   engine_request.cc     one request's life: start, head, body, end
//   engine_stream.cc      stream mode: one sequential request (no Range, or whole)
//   engine_failure.cc     a failed request: retried, handed over, or the error
//   engine_budget.cc      the host budget: a slot per request, queued until granted
//   engine_probe.cc       is the network back? probes while every request is stalled
//   engine_concurrency.cc automatic concurrency: intervals judged, a change applied
// Impl's state and methods below are grouped by these files. The decisions
// themselves live in pure units (span_policy, access_pattern, hedge_policy,
// retry_policy, response_check, concurrency_policy, host_budget,
// byte_budget, block_cache; scheduler for batch and barrier); the engine
// holds the lock, the waits and the glue between them.
//
// Locking: every field of Impl is guarded by `mu` (the budget gate's mutex
// comes first: gate -> mu). Origin calls only post work (origin.h), so they
// are made with `mu` held; its callbacks take `mu` themselves. Waits: `cv`.
#pragma once

#include <condition_variable>
#include <mutex>
#include <random>
#include <string>

#include "prefetch/access_pattern.h"
#include "prefetch/block_cache.h"
#include "prefetch/byte_budget.h"
#include "prefetch/concurrency_policy.h"
#include "prefetch/hedge_policy.h"
#include "prefetch/host_budget.h"
#include "prefetch/prefetcher.h"
#include "prefetch/rate_meter.h"
#include "prefetch/response_check.h"
#include "prefetch/retry_policy.h"
#include "prefetch/span_policy.h"

namespace prefetch {

// Bytes one attempt must bring for its failure not to count as one in a row
// (retry_policy.h): more than a request under the low-speed floor
// (soup_origin.h) brings in any timeout up to two minutes.
constexpr uint64_t kProgressBytes = 64 * 1024;

inline double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The last block a claim or range ending at `end` (exclusive) reaches, as
// the log names it: "end" if it runs to the end of the resource.
inline std::string last_block(uint64_t end, uint64_t block_size) {
  if (end == kOpenEnd) return "end";
  return std::to_string(claim_end_block(end, block_size) - 1);
}

enum class RequestKind {
  kSpan,    // fills a run of blocks (a span: span_policy.h), or races one as a hedge
  kStream,  // a sequential body of the whole resource (the origin ignores Range)
};

enum class RequestState {
  kWaiting,    // sent (or in its retry backoff); no response head accepted yet
  kReceiving,  // its head was accepted: body bytes fill blocks
  kPaused,    // its next block is past the look-ahead, or no transfer slot is free: pump resumes it
  kFull,      // a span with every byte it asked for: it reads on to the end of body
  kCut,       // its body ran past its range (or past the size): cut, ends like a clean end
  kDraining,  // cancelled with every byte in: one more read may find the end of body
  kCancelled,  // cancelled by us (or the transfer failed); on_done is still to come
};

// One HTTP request. Owned jointly by the origin (until on_done) and the block
// it fills; it reaches the engine through a raw pointer, which close() keeps
// valid by waiting for every on_done.
class Request : public FetchListener, public std::enable_shared_from_this<Request> {
 public:
  Request(Prefetcher::Impl* impl, uint64_t block, uint64_t pos, RequestKind kind)
      : impl_(impl), block(block), pos(pos), kind(kind), started(Clock::now()) {}

  void on_sent(const SentInfo& info) override;
  bool on_head(const ResponseHead& head) override;
  uint8_t* write_area(size_t* length) override;
  void on_data(size_t n) override;
  void on_done(const Error* error) override;
  std::shared_ptr<const void> area_keeper() override;

  bool cancelled() const {
    return state == RequestState::kDraining || state == RequestState::kCancelled;
  }
  bool is_stream() const { return kind == RequestKind::kStream; }
  // Bytes per second while its body flowed (pauses excluded); 0 until
  // enough came to tell.
  double rate(Clock::time_point now) const;
  // This attempt's number among the failures in a row, ended by `e` (or
  // by a short answer): retries count failures in a row, so an attempt
  // that brought bytes counts from 1 again. Not a stall's trickle, though
  // (fewer than kProgressBytes): else a trickling origin is retried forever.
  unsigned in_a_row(const Error* e) const {
    return received >= (e && e->stalled ? kProgressBytes : 1) ? 1 : attempts;
  }
  void pause(Clock::time_point now);
  void flow(Clock::time_point now);

  Prefetcher::Impl* impl_;
  uint64_t block;  // the block being filled
  uint64_t pos;    // absolute offset of the next body byte
  RequestKind kind;
  RequestState state = RequestState::kWaiting;
  uint64_t id = 0;  // "span N" in the log
  // Its claim: it fills [pos, end). A split moves `end` down; the range it
  // asked for ends at `asked_end` (kOpenEnd: "bytes=a-").
  uint64_t end = kOpenEnd;
  uint64_t asked_end = kOpenEnd;
  unsigned attempts = 1;        // failures in a row before it, plus one (in_a_row())
  bool is_hedge = false;        // races the span of the block it was sent for
  bool is_race = false;         // ... as a twin for the reader's first byte (engine_hedge.cc)
  bool ahead = false;           // sent while its connection's current span still transfers
  std::weak_ptr<Request> next;  // the span sent ahead for this one's connection
  bool sent_ahead = false;      // ... once
  bool rate_known = false;      // rate() told something (the policy may use it now)
  bool http2 = false;           // its answer came over HTTP/2: it may not pause
  bool from_disk = false;       // answered by the disk tier: says nothing of the origin
  bool slot_wait = false;       // paused for a transfer slot (else for the look-ahead)
  bool yield = false;           // gives its transfer slot to a span nearer the reader
  bool winding_down = false;    // cut by the concurrency: ends with its block, runs on nowhere
  // The host budget (engine_budget.cc): queued while no slot is granted (it
  // claims its blocks and a request slot, but is not sent); holds one from
  // its send to its on_done.
  bool queued = false;
  bool has_slot = false;
  RangeRequest range;  // what it asks (the validator is filled in at its send)
  Clock::time_point paused_at{};
  // Its rate: bytes received over the time they flowed.
  uint64_t received = 0;
  double flowed_s = 0;
  Clock::time_point flowing_since{};  // epoch while not flowing
  Clock::time_point started;          // when it was sent (after its backoff)
  Clock::time_point sent_at;          // when its head went out (on_sent); epoch until then
  std::optional<double> setup_ms;     // what opening its connection took, if the origin said
  Clock::time_point first_byte;       // when its first body byte came; epoch until then
  Clock::time_point last_byte;        // when its latest body bytes came; epoch until then
  std::shared_ptr<Fetch> fetch;
  std::optional<Error> failure;  // why its head was refused
  // Where its answer's range ends (exclusive): a 206 may carry less than was
  // asked (RFC 9110), and a body that ends there ended well.
  std::optional<uint64_t> promised_end;
  // Where the last write_area pointed: the discard area, or a block whose buffer it keeps
  // alive until on_data even if a seek drops it (the origin writes without our lock).
  bool into_scratch = false;
  std::shared_ptr<BlockBuffer> area_owner;
  uint8_t scratch[4096];
};

// What launch() sends: a span that claims [pos, end) and asks for the range
// up to `asked_end`, after `delay`.
struct SpanAsk {
  uint64_t pos = 0;
  uint64_t end = kOpenEnd;  // kOpenEnd: to the end of the resource
  // 0: `end`; further lets it go on into the next claim (take_over_next).
  uint64_t asked_end = 0;
  // The block at `pos`, if made: the span fills it, or races the span there
  // (as a hedge of `hedge_of`).
  Block* block = nullptr;
  Request* hedge_of = nullptr;
  bool race = false;                   // the hedge is a twin racing the reader's first byte
  std::chrono::milliseconds delay{0};  // a retry's backoff, a close grace
  unsigned attempts = 1;               // failures in a row before it, plus one
  bool ahead = false;                  // sent ahead for a connection whose span still transfers
};

class Probe;  // engine_probe.cc

struct Prefetcher::Impl {
  Impl(Origin* origin, const Config& cfg, Logger log);  // engine_window.cc

  // ==== State, by the file that mainly keeps it ====

  // ---- Fixed at the start ----
  Origin* origin;
  const Config cfg;
  const RetryPolicy retry;
  const HedgePolicy hedge_policy;
  Logger log;

  // ---- The lock (see the top of the file) ----
  std::mutex mu;
  std::condition_variable cv;

  // ---- The reader (prefetcher.cc) ----
  uint64_t read_pos = 0;     // the next byte the reader wants
  uint64_t read_block = 0;   // the block holding it
  bool exact_reads = false;  // the reads come from pull mode
  // Bytes an exact read across blocks has copied so far: they count against
  // the look-ahead until the read returns.
  uint64_t copied = 0;
  // While the reader gathers (gather()): the byte it waits to be readable.
  // Head-block bytes short of it do not wake it.
  uint64_t gather_until = 0;
  bool flushing = false;
  bool closed = false;

  // ---- The window and its blocks (engine_window.cc) ----
  // Blocks held from the reader on, at most. Automatic (lookahead_blocks 0)
  // in the window schedule: it grows to cover what the connections bring
  // in a first-byte time (grow_lookahead, engine_span.cc).
  unsigned lookahead;
  // Blocks the window spans now (<= lookahead); see access_pattern.h.
  unsigned window = 0;
  // Pull mode: the region the reader jumped away from, kept with its window.
  std::optional<Region> other_region;
  BlockPlan plan;
  BlockStore store;
  BlockCache cache;
  // This engine's client of the process's byte budget (byte_budget.h):
  // its block buffers count there (the store's pool reports them).
  ByteBudget::ClientId memory = 0;
  uint64_t batch_begin = 0;  // batch / barrier

  // ---- Spans (engine_span.cc, engine_flow.cc) ----
  // Every span request running (hedges included), in the order they
  // started; each leaves in its on_done.
  std::vector<Request*> live;
  double conn_rate = 0;  // a typical connection's rate (bytes/s), for span_policy
  // An answer came over HTTP/2: spans end at the window (libsoup reads an h2
  // stream whether or not we do, so only the range asked bounds memory).
  bool http2 = false;
  // Over HTTP/2, or possibly so until the first answer tells (TLS).
  bool multiplexed() const { return http2 || (!known.opened && origin->may_multiplex()); }

  // ---- The resource and the requests (engine_request.cc, engine_stream.cc,
  // engine_failure.cc) ----
  unsigned in_flight = 0;  // started and not yet on_done
  // What the responses so far established (size: see plan). A resource
  // read whole (Config::whole) is one stream from the start: pump() asks for
  // it (pump_stream) instead of blocks.
  KnownResource known;
  // For applications: the answers' heads (see keep_resource()).
  ResourceInfo resource;
  // While the size is unknown: an upper bound a 416 gave (see settle_bound).
  std::optional<uint64_t> size_bound;
  std::shared_ptr<Request> stream;  // stream mode's one request
  std::optional<Error> fatal;
  // A request failed for good at `pos`, ahead of the reader: the bytes
  // before it are right and still come; the error comes when the reader
  // gets there (fail_ahead).
  struct FailureAhead {
    uint64_t pos = 0;
    Error error;
  };
  std::optional<FailureAhead> failure_ahead;
  std::mt19937_64 rng;  // a retry's random part of the backoff

  // ---- The host side: its budget (engine_budget.cc) and probes
  // (engine_probe.cc) ----
  // The budget's callbacks reach the engine through `gate` (on the origin's
  // thread), which close() clears.
  struct BudgetGate {
    std::mutex mu;
    Impl* impl = nullptr;
  };
  std::shared_ptr<BudgetGate> gate;
  HostBudget::ClientId client = 0;                   // 0: no budget
  unsigned asks = 0;                                 // asks queued at the budget
  std::vector<std::shared_ptr<Request>> slot_queue;  // requests waiting for a slot
  // Since when the reader waits for bytes (the need it tells the budget).
  std::optional<Clock::time_point> waiting_since;
  // Probes: in flight, and when the last went.
  std::vector<std::shared_ptr<Probe>> probes;
  Clock::time_point last_probe{};
  // Until then requests go on fresh connections (after an outage).
  Clock::time_point fresh_until{};

  // ---- Late first bytes (engine_hedge.cc) ----
  // The reader waits for its first bytes since the start, or since the last
  // seek or jump (until it has some: later waits are the hedge's), and the
  // twins sent for them.
  bool racing = true;
  unsigned race_twins = 0;
  Clock::time_point last_twin{};  // when the last of them went
  // The quickest connection set-up the origin reported (ms): the race's
  // yardstick for a request on a connection whose own is not known.
  std::optional<double> setup_ms;

  // ---- Automatic concurrency (engine_concurrency.cc) ----
  // Config::auto_concurrency: the policy, and what the interval being
  // measured shows so far.
  ConcurrencyControl control;
  struct Interval {
    Clock::time_point from;
    uint64_t bytes = 0;
    bool reader_waited = false;
    bool lookahead_full = false;
  } interval;
  std::chrono::milliseconds interval_length{50};
  // An origin that refused a request for load (429, 503) may count a
  // connection we closed a moment ago as open still: a span that would
  // take its place waits kCloseGrace after the close (close_grace).
  bool refuses_load = false;
  Clock::time_point closed_at{};
  // The transfers allowed now.
  unsigned conc() const { return cfg.auto_concurrency() ? control.current() : cfg.concurrency; }

  // ---- Counters (stats()); first_byte_ms also feeds the decisions ----
  // stats() starts from `counts` (its counter fields; the rest it computes).
  Stats counts;
  uint64_t first_bytes = 0;
  double first_byte_total_ms = 0;
  FirstByteTimes first_byte_ms;
  RateMeter rate;

  // ==== Methods, by the file that defines them ====
  // All are called with mu held, except where a heading says otherwise.

  // ---- prefetcher.cc: the reader ----
  size_t readable(const Block& b) const;
  Block* wait_block(std::unique_lock<std::mutex>& lock, uint64_t offset, ReadResult* result);
  void idle_wait(std::unique_lock<std::mutex>& lock);
  void delivered(uint64_t offset, size_t n);

  // ---- engine_window.cc: what to fetch, the window, its blocks, the cache ----
  void pump();
  void retarget(uint64_t offset);
  void park(uint64_t i);
  void retire(Block& b);
  void set_size(uint64_t size);
  void settle_bound();
  std::optional<uint64_t> block_count() const;
  bool batch_complete_from(uint64_t first) const;
  unsigned window_now() const;
  unsigned memory_window() const;
  bool keeps_behind() const;
  void fit_cache(uint64_t leaving);
  bool may_hold(uint64_t i) const;
  bool memory_allows(uint64_t i) const;
  Block* make_block(uint64_t i, uint64_t from);
  bool kept_elsewhere(uint64_t i) const;
  unsigned requests_elsewhere() const;
  void yield_slot();

  // ---- engine_span.cc: starting spans, the automatic look-ahead ----
  void pump_spans(unsigned slots, unsigned busy);
  SpanInput span_input(uint64_t to_block, std::vector<Request*>* owners) const;
  bool start_next_span(uint64_t to_block, Request* behind);
  void start_span(const SpanChoice& c, Request* owner, Request* behind);
  std::chrono::milliseconds close_grace() const;
  void send_ahead(unsigned slots);
  bool reader_unserved() const;
  bool end_span_for_reader();
  unsigned transferring() const;
  void drop_far_spans(uint64_t keep_from, uint64_t keep_to, bool forward);
  void clamp_spans(uint64_t size);
  void grow_lookahead();
  void raise_lookahead(unsigned want);

  // ---- engine_flow.cc: a span's body as it flows ----
  uint8_t* span_area(Request& r, size_t* length);
  void span_reached_end(Request& r);
  bool take_over_next(Request& r);
  bool run_on(Request& r);
  void pause_span(Request& r, bool for_slot);
  bool take_slot_from_farther(Request& r);
  void resume_paused();

  // ---- engine_request.cc: one request's life. The origin's callbacks
  // (on_head, write_area, on_data, on_done) take mu themselves ----
  std::shared_ptr<Request> launch(const SpanAsk& a);
  uint64_t next_span_id() const {
    return counts.requests_started + counts.hedges_sent + counts.races_sent + 1;
  }
  void relaunch(Request& r, std::chrono::milliseconds delay, unsigned attempts);
  std::string if_range() const;
  void cancel_request(const std::shared_ptr<Request>& r);
  void close_fetch(Request& r);
  bool forget_unfilled(Block& b);
  void cancel_block(Block& b);
  void cancel_all();
  bool on_head(Request& r, const ResponseHead& head);
  void note_first_byte(Request& r, Clock::time_point now);
  void keep_resource(const ResponseHead& head);
  void end_at_most(Request& r, uint64_t bound);
  uint8_t* write_area(Request& r, size_t* length);
  void on_data(Request& r, size_t n);
  void on_done(Request& r, const Error* error);
  enum class Outcome { kDone, kShort, kFailed };
  Outcome body_outcome(Request& r, Block*& b, const Error* error, Error* failure);

  // ---- engine_hedge.cc: late first bytes. on_sent takes mu itself ----
  void on_sent(Request& r, const SentInfo& info);
  Request* reader_request();
  RaceInput race_input(const Request& r, Clock::time_point now) const;
  bool race_slot_free() const;
  std::optional<Clock::time_point> race_due();
  bool maybe_race();
  void race_anew();
  void launch_rival(Block& b, Request& main, bool race);
  bool maybe_hedge();
  void settle_hedge(Request& r);

  // ---- engine_stream.cc: stream mode ----
  void launch_stream(uint64_t from, std::chrono::milliseconds delay, unsigned attempts = 1);
  void pump_stream();
  void enter_stream_mode(Request& r, std::optional<uint64_t> size);
  uint8_t* stream_area(Request& r, size_t* length);

  // ---- engine_failure.cc: a failed request ----
  void failed(Request& r, Block* b, Error e);
  void fail_ahead(uint64_t pos, Error e);
  void fail(Error e);

  // ---- engine_budget.cc: the host budget. through_gate, join_budget and
  // leave_budget take the locks themselves (mu not held) ----
  static void through_gate(const std::shared_ptr<BudgetGate>& gate, void (Impl::*fn)());
  void join_budget();
  void leave_budget();
  void send(const std::shared_ptr<Request>& r);
  void start_fetch(Request& r);
  void unqueue(const std::shared_ptr<Request>& r);
  void release_slot(Request& r);
  void slots_granted();
  void yield_host_slot();
  bool end_farthest_slot_holder();
  bool head_waits_for_slot() const;
  void make_room_for_head();
  void set_waiting(bool waiting);

  // ---- engine_probe.cc: is the network back? ----
  std::optional<std::chrono::milliseconds> first_byte_limit() const;
  bool stalled(const Request& r, Clock::time_point now) const;
  bool all_stalled(Clock::time_point now) const;
  void maybe_probe();
  void probe_answered(Probe& p);
  void cancel_probes();
  void probe_done(Probe& p);

  // ---- engine_concurrency.cc: automatic concurrency ----
  void set_interval_length();
  void measure_interval(size_t n, Clock::time_point now);
  void first_answer_came(Clock::time_point now);
  bool first_raise_may_come(Clock::time_point now) const;
  void judge_interval(Clock::time_point now, bool slots_full);
  unsigned spans_running() const;
  void note_overload(const Error& e, Clock::time_point sent);
  bool hand_back_refused(Request& r, Block* b, const Error& e);
  void concurrency_changed(unsigned before);
  void wind_down(Request& r, unsigned to);
};

}  // namespace prefetch
