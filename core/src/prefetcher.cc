// The engine: block store + scheduler + reader behind one mutex.
//
// Locking: every field of Impl is guarded by `mu`. Origin calls (start,
// cancel, resume) only post work to the origin's thread, so they are made
// with `mu` held; the origin's callbacks take `mu` themselves. Waits use `cv`.

#include "prefetch/prefetcher.h"

#include <glib.h>

#include <algorithm>
#include <cinttypes>
#include <cstring>
#include <deque>
#include <random>

#include "planted_race.h"
#include "prefetch/http_parse.h"

namespace prefetch {

namespace {

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

Error make_error(ErrorKind kind, int status, std::string message, bool transient = false) {
  Error e;
  e.kind = kind;
  e.http_status = status;
  e.message = std::move(message);
  e.transient = transient;
  return e;
}

// Maps a non-success HTTP status to an error. `opened` is false until the
// first good response: failures before it are failures to open.
Error status_error(int status, bool opened) {
  const std::string what = "HTTP status " + std::to_string(status);
  if (status == 404 || status == 410)
    return make_error(ErrorKind::kNotFound, status, "Resource not found (" + what + ")");
  if (status == 401 || status == 403 || status == 407)
    return make_error(ErrorKind::kNotAuthorized, status, "Not authorized (" + what + ")");
  const bool transient = status >= 500 || status == 429 || status == 408;
  return make_error(opened ? ErrorKind::kRead : ErrorKind::kOpenRead, status,
                    "The origin answered with " + what, transient);
}

}  // namespace

// One HTTP request: fills one block, or (stream mode) a run of blocks from a
// body that ignores Range. Owned jointly by the origin (until on_done) and
// the block it fills; it reaches the engine through a raw pointer, which
// close() keeps valid by waiting for every on_done.
class Request : public FetchListener {
 public:
  Request(Prefetcher::Impl* impl, uint64_t block, uint64_t pos, bool stream)
      : impl_(impl), block(block), pos(pos), stream(stream), started(Clock::now()) {}

  bool on_head(const ResponseHead& head) override;
  uint8_t* write_area(size_t* length) override;
  void on_data(size_t n) override;
  void on_done(const Error* error) override;

  Prefetcher::Impl* impl_;
  uint64_t block;  // the block being filled
  uint64_t pos;    // absolute offset of the next body byte
  bool stream;     // a sequential body of the whole resource
  Clock::time_point started;
  std::shared_ptr<Fetch> fetch;
  bool cancelled = false;
  bool paused = false;
  bool got_head = false;  // a good response head arrived
  bool got_data = false;
  bool into_scratch = false;  // the last write_area was the discard area
  bool overflowed = false;    // the body went past its range: cut
  bool full = false;          // every byte of its range arrived (block requests)
  bool read_end = false;      // a cancelled full request was given one read for the end
  std::optional<Error> failure;
  // Keeps the buffer handed out by write_area alive until on_data, even if
  // a seek drops its block meanwhile: the origin writes without our lock.
  std::shared_ptr<BlockBuffer> area_owner;
  uint8_t scratch[4096];
};

struct Prefetcher::Impl {
  Impl(Origin* origin, const Config& cfg, Logger log)
      : origin(origin),
        cfg(cfg),
        lookahead(cfg.effective_lookahead()),
        log(std::move(log)),
        plan(cfg.block_size),
        rng(std::random_device{}()),
        window(lookahead) {
    store.set_pool(std::make_shared<BufferPool>(cfg.block_size, lookahead + cfg.keep_behind + 2));
  }

  Origin* origin;
  const Config cfg;
  const unsigned lookahead;
  Logger log;

  std::mutex mu;
  std::condition_variable cv;
  BlockPlan plan;
  BlockStore store;
  uint64_t read_pos = 0;     // the next byte the reader wants
  uint64_t read_block = 0;   // the block holding it
  uint64_t batch_begin = 0;  // batch / barrier
  unsigned in_flight = 0;    // started and not yet on_done
  bool flushing = false;
  bool closed = false;
  bool opened = false;       // a good response arrived
  bool ranges_ok = false;    // a 206 arrived
  bool stream_mode = false;  // the origin ignores Range
  std::shared_ptr<Request> stream;
  std::string validator;
  std::optional<Error> fatal;
  std::mt19937 rng;

  // Statistics.
  uint64_t bytes_delivered = 0, blocks_fetched = 0, requests_started = 0, retries = 0,
           hedges_sent = 0, hedges_won = 0, cache_hits = 0;
  // Complete blocks that left the window, by index; LRU by Block::last_use.
  std::map<uint64_t, Block> cache;
  uint64_t cache_tick = 0;
  // The block the reader was in when it jumped away, still fetching outside
  // the window (see retarget). Its bytes count against the cache budget.
  std::optional<uint64_t> parked;
  // Blocks the window spans now (<= lookahead). A jump by an exact read
  // (pull mode: a demuxer probing) opens a window of two blocks, which
  // doubles with every block the reader then reads in order, as a kernel's
  // read-ahead does: random reads cost no speculative requests, a sequential
  // run soon has the whole look-ahead. Push-mode seeks open it whole.
  unsigned window = 0;
  bool exact_reads = false;  // the reads come from pull mode
  std::deque<double> ttfb_ms;
  // While the reader gathers (gather()): the byte it waits to be readable.
  // Head-block bytes short of it do not wake it.
  uint64_t gather_until = 0;
  Clock::time_point rate_since = Clock::now();
  uint64_t rate_bytes = 0;
  double rate = 0;

  // ---- called with mu held ----

  void fail(Error e) {
    if (fatal) return;
    log(LogLevel::kError, "fatal: %s (status %d): %s", to_string(e.kind), e.http_status,
        e.message.c_str());
    fatal = std::move(e);
    cancel_all();
    cv.notify_all();
  }

  void cancel_request(const std::shared_ptr<Request>& r) {
    if (!r || r->cancelled) return;
    r->cancelled = true;
    if (r->fetch) r->fetch->cancel();
  }

  void cancel_block(Block& b) {
    cancel_request(b.request);
    cancel_request(b.hedge);
  }

  void cancel_all() {
    store.drop_outside(0, 0, [&](Block& b) { cancel_block(b); });
    parked.reset();
    cache.clear();
    cancel_request(stream);
    stream.reset();
  }

  void set_size(uint64_t size) {
    plan.set_size(size);
    const uint64_t count = *plan.count();
    log(LogLevel::kInfo, "resource size %" PRIu64 " bytes, %" PRIu64 " blocks", size, count);
    // Speculative requests past the end are dropped; the last block is trimmed.
    store.drop_outside(0, count, [&](Block& b) { cancel_block(b); });
    if (count > 0) {
      if (Block* last = store.find(count - 1)) {
        last->range.end = plan.range(count - 1).end;
        if (last->range.begin >= last->range.end) {  // a jump past the end
          cancel_block(*last);
          store.erase(count - 1);
        }
      }
    }
  }

  // True if every block of the batch starting at `first` is complete (or
  // already delivered: the reader is past it).
  bool batch_complete_from(uint64_t first) const {
    for (uint64_t i = first; i < first + cfg.concurrency && plan.exists(i); ++i) {
      if (i < read_block) continue;
      const Block* b = store.find(i);
      if (!b || !b->complete()) return false;
    }
    return true;
  }
  bool batch_complete() const { return batch_complete_from(batch_begin); }

  // Bytes of block `b` the reader may take now, from the block's start.
  size_t readable(const Block& b) const {
    switch (cfg.schedule) {
      case Schedule::kWindow:
        return b.filled;
      case Schedule::kBatch:
        return b.complete() ? b.filled : 0;
      case Schedule::kBarrier: {
        // The batch holding b must be complete as a whole. Batches are
        // `concurrency` blocks long, aligned on batch_begin.
        const uint64_t n = cfg.concurrency;
        const uint64_t first = b.index - (b.index % n + n - batch_begin % n) % n;
        return batch_complete_from(first) ? b.filled : 0;
      }
    }
    return 0;
  }

  // Starts a request for the rest of block `b`: its main one, or a hedge.
  void launch(Block& b, std::chrono::milliseconds delay, bool as_hedge = false) {
    auto req = std::make_shared<Request>(this, b.index, b.range.begin + b.filled, false);
    RangeRequest rr;
    rr.begin = req->pos;
    rr.end = b.range.end;
    rr.validator = validator;
    rr.delay = delay;
    (as_hedge ? b.hedge : b.request) = req;
    req->started = Clock::now() + delay;  // first-byte times exclude backoff
    ++in_flight;
    if (as_hedge) {
      ++hedges_sent;
      log(LogLevel::kDebug, "block %" PRIu64 " hedge requested bytes=%" PRIu64 "-%" PRIu64, b.index,
          rr.begin, b.range.end - 1);
    } else {
      ++requests_started;
      log(LogLevel::kDebug, "block %" PRIu64 " requested bytes=%" PRIu64 "-%" PRIu64 " attempt %u",
          b.index, rr.begin, b.range.end - 1, b.attempts);
    }
    req->fetch = origin->start(rr, req);
  }

  // The first-byte time past which a request counts as late, or nullopt
  // while there are too few samples to tell.
  std::optional<double> hedge_threshold_ms() const {
    if (ttfb_ms.size() < cfg.hedge_min_samples) return std::nullopt;
    std::vector<double> v(ttfb_ms.begin(), ttfb_ms.end());
    const size_t k = std::min(v.size() - 1, static_cast<size_t>(cfg.hedge_percentile * v.size()));
    std::nth_element(v.begin(), v.begin() + k, v.end());
    return std::max<double>(cfg.hedge_floor.count(), cfg.hedge_factor * v[k]);
  }

  // Hedges left in the budget: hedge_share of the requests made so far plus
  // the look-ahead's worth about to be made (so one hedge may go before the
  // tenth request), but no more than the share of the file's blocks while the
  // transfer has not made more requests than that.
  double hedge_tokens() const {
    double base = static_cast<double>(requests_started) + lookahead;
    if (plan.count())
      base =
          std::min(base, static_cast<double>(std::max<uint64_t>(requests_started, *plan.count())));
    return cfg.hedge_share * base - static_cast<double>(hedges_sent);
  }

  // Sends at most one hedge for a late block near the reader. Regular
  // requests fill `concurrency` slots; a hedge may also take the one spare
  // beyond them. Returns true if it sent one.
  bool maybe_hedge() {
    if (!cfg.hedge || stream_mode || in_flight > cfg.concurrency) return false;
    const double tokens = hedge_tokens();
    if (tokens < 1) return false;
    // The last hedge in the budget waits for a block twice as late: a very
    // late block (the tail's tail) should not find the budget spent.
    const double scarcity = tokens < 2 ? 2.0 : 1.0;
    std::optional<double> threshold;  // computed only once a candidate exists
    const Clock::time_point now = Clock::now();
    for (uint64_t i = read_block; i < read_block + cfg.hedge_span; ++i) {
      Block* b = store.find(i);
      if (!b || b->complete() || b->hedged || !b->request || b->request->got_head) continue;
      if (!threshold && !(threshold = hedge_threshold_ms())) return false;
      // Blocks further from the reader wait longer before a hedge: the budget
      // is best spent on the block the reader is (about to be) stuck on.
      const double limit = *threshold * scarcity * static_cast<double>(1 + (i - read_block));
      // Only a request that is actually waiting on the origin, not a backoff.
      if (ms_between(b->request->started, now) < limit) continue;
      b->hedged = true;
      log(LogLevel::kInfo,
          "block %" PRIu64 ": no answer after %.0f ms (threshold %.0f ms): hedging", i,
          ms_between(b->request->started, now), limit);
      launch(*b, std::chrono::milliseconds(0), true);
      return true;
    }
    return false;
  }

  void launch_stream(uint64_t from, std::chrono::milliseconds delay) {
    stream = std::make_shared<Request>(this, plan.index_of(from), from, true);
    RangeRequest rr;
    rr.begin = from;
    rr.validator = validator;
    rr.delay = delay;
    ++in_flight;
    ++requests_started;
    log(LogLevel::kDebug, "stream requested from byte %" PRIu64, from);
    stream->fetch = origin->start(rr, stream);
  }

  // Starts whatever the schedule allows now.
  void pump() {
    if (closed || fatal || flushing) return;
    if (stream_mode) return pump_stream();
    // A late block at the head of the line matters more than one far ahead.
    maybe_hedge();
    SchedulerInput in;
    in.schedule = cfg.schedule;
    in.read_block = read_block;
    in.block_count = plan.count();
    in.concurrency = cfg.concurrency;
    in.lookahead = window;
    in.in_flight = in_flight;
    in.held = [this](uint64_t i) { return store.find(i) != nullptr; };
    in.batch_begin = batch_begin;
    in.batch_complete = cfg.schedule != Schedule::kWindow && batch_complete();
    SchedulerDecision d = schedule_next(in);
    if (d.new_batch_begin) batch_begin = *d.new_batch_begin;
    for (uint64_t i : d.start) {
      // The reader's own block starts at the reader: after a jump, the bytes
      // before it in the block would only delay the first buffer.
      ByteRange r = plan.range(i);
      if (i == read_block && read_pos > r.begin && read_pos < r.end) r.begin = read_pos;
      Block& b = store.insert(i, r);
      b.attempts = 1;
      launch(b, std::chrono::milliseconds(0));
    }
  }

  void pump_stream() {
    if (!stream) {
      // The stream ended early or the reader went back before it: restart at
      // the reader's block (the origin sends from 0; we skip ahead).
      if (!plan.exists(read_block) || store.find(read_block)) return;
      launch_stream(plan.range(read_block).begin, std::chrono::milliseconds(0));
      return;
    }
    if (stream->paused && plan.index_of(stream->pos) < read_block + lookahead) {
      stream->paused = false;
      stream->fetch->resume();
    }
  }

  // A block leaves the window: its requests end; if complete, it is cached.
  void retire(Block& b) {
    cancel_block(b);
    if (!b.complete() || b.range.length() > cfg.cache_bytes) return;
    b.request.reset();
    b.hedge.reset();
    b.last_use = ++cache_tick;
    const uint64_t index = b.index;
    cache[index] = std::move(b);
    trim_cache();
  }

  // Evicts least recently used blocks until the cache and the parked block
  // fit in cache_bytes.
  void trim_cache() {
    uint64_t bytes = 0;
    for (const auto& [i, c] : cache) bytes += c.range.length();
    // A parked block that completed is being moved to the cache (counted there).
    const Block* p = parked ? store.find(*parked) : nullptr;
    if (p && !p->complete()) bytes += p->range.length();
    while (bytes > cfg.cache_bytes && !cache.empty()) {
      auto oldest = cache.begin();
      for (auto it = cache.begin(); it != cache.end(); ++it)
        if (it->second.last_use < oldest->second.last_use) oldest = it;
      bytes -= oldest->second.range.length();
      cache.erase(oldest);
    }
  }

  // Cached blocks inside [lo, hi) come back into the window.
  void restore_from_cache(uint64_t lo, uint64_t hi) {
    for (auto it = cache.lower_bound(lo); it != cache.end() && it->first < hi;) {
      if (!store.find(it->first)) {
        ++cache_hits;
        log(LogLevel::kDebug, "block %" PRIu64 " from cache", it->first);
        store.put(std::move(it->second));
      }
      it = cache.erase(it);
    }
  }

  // Moves the window so that it starts at the block holding `offset`. This
  // is the whole access-pattern logic, for push-mode seeks and for pull-mode
  // reads at any offset alike:
  //  - the next block: a sequential run; the window slides one block ahead.
  //  - a step back of at most keep_behind blocks (a demuxer reading
  //    interleaved chunks a little out of order): the blocks ahead stay.
  //  - anything else is a jump: the window moves at once; requests outside it
  //    are cancelled and complete blocks go to the cache, except that the
  //    block the reader was in, if still fetching, is parked: its request runs
  //    on to completion (then the block is cached like any other), because a
  //    reader that jumps away from a block it was reading usually comes back
  //    (a demuxer reads the header, jumps to the index at the end, returns to
  //    the media right after the header). A step to the next block that
  //    leaves this one incomplete keeps it fetching as the block behind.
  //    One block is parked at most, only if it fits in cache_bytes, and it
  //    counts against them: memory stays within the look-ahead budget plus
  //    the cache.
  //  - after a jump by an exact (pull-mode) read, the window is two blocks and
  //    doubles with each forward step (see `window`).
  void retarget(uint64_t offset) {
    read_pos = offset;
    const uint64_t idx = plan.index_of(offset);
    if (!cache.empty()) restore_from_cache(idx, idx + lookahead);
    if (Block* held = store.find(idx); held && offset < held->range.begin) {
      // Held from a later byte (an earlier jump): refetch from the reader.
      cancel_block(*held);
      store.erase(idx);
    }
    if (idx == read_block && (store.find(idx) || stream_mode)) return pump();
    const uint64_t old = read_block;
    const bool forward_step = idx == old + 1;
    const bool step_back = idx < old && old - idx <= cfg.keep_behind;
    const bool jump = idx != old && !forward_step && !step_back;
    if (jump)
      log(LogLevel::kDebug, "reader jumps to byte %" PRIu64 " (block %" PRIu64 ")", offset, idx);
    read_block = idx;
    if (jump) window = exact_reads ? std::min(2u, lookahead) : lookahead;
    if (forward_step) window = std::min(2 * window, lookahead);
    if (jump && !stream_mode) park(old);
    const uint64_t keep_from = idx > cfg.keep_behind ? idx - cfg.keep_behind : 0;
    const uint64_t keep_to = (step_back ? old : idx) + lookahead;
    store.drop_outside(
        keep_from, keep_to,
        [&](const Block& b) { return parked && b.index == *parked && !b.complete(); },
        [&](Block& b) { retire(b); });
    // Blocks kept behind the reader are only worth it when complete, or when
    // the reader just stepped past the rest of one: it may come back (a
    // two-block file's index is in the second block).
    for (uint64_t i = keep_from; i < idx; ++i) {
      Block* b = store.find(i);
      if (b && !b->complete() && !(parked && *parked == i) && !(forward_step && i == old)) {
        cancel_block(*b);
        store.erase(i);
      }
    }
    // Unparked once it is back in the window (or gone).
    if (parked && (!store.find(*parked) || (*parked >= keep_from && *parked < keep_to)))
      parked.reset();
    if (stream_mode && stream && plan.index_of(stream->pos) > idx && !store.find(idx)) {
      log(LogLevel::kDebug, "stream at byte %" PRIu64 " is past the reader: restarting",
          stream->pos);
      cancel_request(stream);  // it is past what the reader wants now
      stream.reset();
    }
    if (!forward_step && cfg.schedule != Schedule::kWindow &&
        (idx < batch_begin || idx >= batch_begin + cfg.concurrency)) {
      batch_begin = idx;  // a seek starts a new batch at the reader
    }
    pump();
  }

  // The reader jumps away from block `i`: park it if it is still fetching
  // (see retarget). A block parked before is dropped with the window.
  void park(uint64_t i) {
    Block* b = store.find(i);
    if (!b || b->complete() || !b->request || b->range.length() > cfg.cache_bytes) return;
    log(LogLevel::kDebug, "block %" PRIu64 " parked: its request runs on after the jump", i);
    parked = i;
    trim_cache();
  }

  std::chrono::milliseconds backoff(unsigned attempt, const Error& e) {
    const int64_t base = cfg.backoff_base.count();
    const int64_t cap = cfg.backoff_max.count();
    int64_t ceiling = base << std::min<unsigned>(attempt - 1, 20);
    if (ceiling > cap) ceiling = cap;
    // "Equal jitter": half fixed, half random, so retries of many blocks spread.
    std::uniform_int_distribution<int64_t> jitter(0, ceiling / 2);
    int64_t wait = ceiling - ceiling / 2 + jitter(rng);
    if (e.retry_after.count() >= 0) wait = std::max<int64_t>(wait, e.retry_after.count());
    return std::chrono::milliseconds(std::min<int64_t>(wait, 60000));
  }

  bool may_retry(unsigned attempts) const {
    return cfg.retries < 0 || attempts <= static_cast<unsigned>(cfg.retries);
  }

  void check_validator(const ResponseHead& head) {
    if (head.validator.empty()) return;
    if (validator.empty()) {
      validator = head.validator;
      return;
    }
    if (head.validator != validator) {
      Error e = make_error(ErrorKind::kResourceChanged, head.status,
                           "The resource changed on the server during the transfer");
      e.detail = "validator was " + validator + ", now " + head.validator;
      fail(std::move(e));
    }
  }

  void check_total(uint64_t total, int status) {
    if (!plan.size()) return set_size(total);
    if (*plan.size() != total) {
      Error e = make_error(ErrorKind::kResourceChanged, status,
                           "The resource changed size on the server during the transfer");
      e.detail = "size was " + std::to_string(*plan.size()) + ", now " + std::to_string(total);
      fail(std::move(e));
    }
  }

  bool on_head(Request& r, const ResponseHead& head) {
    std::lock_guard<std::mutex> lock(mu);
    if (r.cancelled || fatal) return false;
    if (head.status == 206 && head.has_range) {
      if (head.first != r.pos) {
        r.failure = make_error(ErrorKind::kRead, 206, "The origin sent a different range", true);
        r.failure->detail =
            "asked from " + std::to_string(r.pos) + ", got from " + std::to_string(head.first);
        return false;
      }
      check_validator(head);
      if (head.total) check_total(*head.total, head.status);
      if (fatal || r.cancelled) return false;
      opened = ranges_ok = true;
      r.got_head = true;
      settle_hedge(r);
      cv.notify_all();
      return true;
    }
    if (head.status == 206) {
      r.failure =
          make_error(ErrorKind::kRead, 206, "The origin sent 206 without a valid range", true);
      return false;
    }
    if (head.status == 200) {
      // A whole body to a ranged request.
      if (!validator.empty() && !head.validator.empty() && head.validator != validator) {
        check_validator(head);  // fails: the origin's If-Range said "changed"
        return false;
      }
      if (ranges_ok && !stream_mode) {
        r.failure = make_error(ErrorKind::kRead, 200, "The origin ignored a range request", true);
        return false;
      }
      check_validator(head);
      enter_stream_mode(r, head);
      return !fatal;
    }
    if (head.status == 416) {
      if (head.total && r.pos >= *head.total) {
        // A speculative request past the end: it tells us the size.
        check_total(*head.total, head.status);
        opened = true;
        cv.notify_all();
        return false;
      }
      r.failure = make_error(ErrorKind::kSeek, 416, "The origin cannot serve the range");
      return false;
    }
    r.failure = status_error(head.status, opened);
    if (!head.retry_after.empty()) {
      if (auto ra = parse_retry_after(head.retry_after, g_get_real_time() / 1000000))
        r.failure->retry_after = *ra;
    }
    return false;
  }

  // The first of a block's two requests to answer wins; the other is cancelled.
  void settle_hedge(Request& r) {
    Block* b = store.find(r.block);
    if (!b || !b->hedge) return;
    if (b->hedge.get() == &r) {
      ++hedges_won;
      log(LogLevel::kDebug, "block %" PRIu64 " hedge won", b->index);
      cancel_request(b->request);
      b->request = std::move(b->hedge);
    } else {
      cancel_request(b->hedge);
    }
    b->hedge.reset();
  }

  void enter_stream_mode(Request& r, const ResponseHead& head) {
    if (!stream_mode) {
      log(LogLevel::kWarning,
          "the origin ignores Range requests: falling back to one sequential stream");
      stream_mode = true;
      // Keep only this request, as the stream; drop every block and request.
      std::shared_ptr<Request> self;
      store.for_each([&](Block& b) {
        if (b.request.get() == &r)
          self = b.request;
        else
          cancel_request(b.request);
      });
      store.drop_outside(0, 0, [](Block&) {});
      if (stream.get() != &r) cancel_request(stream);
      stream = self ? self : stream;
      opened = true;
      if (head.content_length) set_size(*head.content_length);
    }
    r.stream = true;
    r.pos = head.status == 206 && head.has_range ? head.first : 0;
    r.block = plan.index_of(r.pos);
    cv.notify_all();
  }

  uint8_t* write_area(Request& r, size_t* length) {
    std::lock_guard<std::mutex> lock(mu);
    *length = 0;
    r.into_scratch = false;
    r.area_owner.reset();
    if (r.cancelled || fatal) {
      // A request that has all its bytes (its block delivered and retired
      // meanwhile, say) may still read the end of its body: with the end
      // read, libsoup hands the connection back for the next request
      // instead of closing it. One read only: a longer body is cut anyway.
      if (!r.full || r.read_end) return nullptr;
      r.read_end = r.into_scratch = true;
      *length = sizeof r.scratch;
      return r.scratch;
    }
    if (!r.stream) {
      Block* b = store.find(r.block);
      if (!b) return nullptr;
      const uint64_t end = b->range.end;
      if (r.pos >= end) {
        // The block is full: let the origin find the end of the body, or
        // notice it is longer than asked.
        r.into_scratch = true;
        *length = sizeof r.scratch;
        return r.scratch;
      }
      *length = end - r.pos;
      r.area_owner = b->buffer;
      return b->buffer->data() + (r.pos - b->range.begin);
    }
    // Stream mode. Skip what the reader no longer wants and what is held already.
    const auto& size = plan.size();
    const uint64_t idx = plan.index_of(r.pos);
    uint64_t want_from = plan.range(read_block).begin;
    if (const Block* held = store.find(idx))
      want_from = std::max(want_from, held->range.begin + held->filled);
    if ((size && r.pos >= *size) || r.pos < want_from) {
      // Past the end (a lie, cut) or before the reader: discard.
      r.into_scratch = true;
      *length = size && r.pos >= *size ? sizeof r.scratch
                                       : std::min<uint64_t>(sizeof r.scratch, want_from - r.pos);
      return r.scratch;
    }
    if (idx >= read_block + lookahead) {
      r.paused = true;  // the budget is full: pump_stream() resumes us
      return nullptr;
    }
    Block* b = store.find(idx);
    if (!b) {
      b = &store.insert(idx, plan.range(idx));
      b->attempts = 1;
    }
    r.block = idx;  // the block does not own the stream: dropping it must not cancel it
    *length = b->range.end - r.pos;
    r.area_owner = b->buffer;
    return b->buffer->data() + (r.pos - b->range.begin);
  }

  void on_data(Request& r, size_t n) {
    planted::planted_race_write();
    std::lock_guard<std::mutex> lock(mu);
    std::shared_ptr<BlockBuffer> area = std::move(r.area_owner);
    if (r.cancelled || fatal) return;
    if (r.into_scratch) {
      if (!r.stream || (plan.size() && r.pos >= *plan.size())) {
        log(LogLevel::kWarning, "block %" PRIu64 ": body longer than its range, cut", r.block);
        r.overflowed = true;
        r.fetch->cancel();
      } else {
        r.pos += n;  // skipping towards the reader in stream mode
      }
      return;
    }
    Block* b = store.find(r.block);
    if (!b || b->buffer != area) return;  // dropped (and maybe re-made) meanwhile
    if (!r.got_data) {
      r.got_data = true;
      ttfb_ms.push_back(ms_between(r.started, Clock::now()));
      if (ttfb_ms.size() > 64) ttfb_ms.pop_front();
      log(LogLevel::kDebug, "block %" PRIu64 " first-byte", b->index);
    }
    if (b->filled == 0) b->first_byte = Clock::now();
    b->filled += n;
    r.pos += n;
    rate_bytes += n;
    if (r.pos >= b->range.end) r.full = true;
    if (b->filled == b->range.length()) {
      b->state = BlockState::kComplete;
      ++blocks_fetched;
      log(LogLevel::kDebug, "block %" PRIu64 " complete %" PRIu64 " bytes", b->index,
          b->range.length());
      cv.notify_all();
    } else if (b->index == read_block && b->range.begin + b->filled >= gather_until) {
      cv.notify_all();  // the reader may take the head block's new bytes
    }
  }

  void on_done(Request& r, const Error* error) {
    std::lock_guard<std::mutex> lock(mu);
    r.area_owner.reset();
    --in_flight;
    if (r.stream)
      log(LogLevel::kDebug, "stream ends at byte %" PRIu64 "%s: %s", r.pos,
          r.cancelled ? " (cancelled)" : "", error ? error->message.c_str() : "end of body");
    const bool is_stream = stream.get() == &r;
    if (is_stream) stream.reset();
    Block* b = r.stream ? nullptr : store.find(r.block);
    if (b && b->hedge.get() == &r) {
      // A hedge that ended before it won: the main request carries on.
      b->hedge.reset();
      if (!r.cancelled && error)
        log(LogLevel::kDebug, "block %" PRIu64 " hedge failed: %s", b->index,
            error->message.c_str());
      cv.notify_all();
      return pump();
    }
    if (b && b->request.get() != &r) b = nullptr;  // the block was dropped and re-made
    if (b) b->request.reset();
    if (r.cancelled || closed || fatal) {
      cv.notify_all();
      return pump();
    }
    std::optional<Error> e = r.failure;
    if (!e && error && !(error->kind == ErrorKind::kCancelled && r.overflowed)) e = *error;
    if (!e) {
      if (r.stream) {
        if (!plan.size()) {
          set_size(r.pos);
          if (Block* last = store.find(plan.index_of(r.pos ? r.pos - 1 : 0))) {
            last->range.end = plan.range(last->index).end;
            if (last->filled == last->range.length()) last->state = BlockState::kComplete;
          }
        } else if (r.pos < *plan.size()) {
          e = make_error(ErrorKind::kRead, 0, "The origin's body ended early", true);
        }
      } else if (b && b->filled < b->range.length()) {
        if (!plan.size() && b->filled > 0) {
          // No size was given: a short block is the last one.
          set_size(b->range.begin + b->filled);
          b = store.find(r.block);
          if (b) b->state = BlockState::kComplete;
        } else {
          e = make_error(ErrorKind::kRead, 0, "The origin's body ended early", true);
        }
      }
    }
    if (e && b && parked && b->index == *parked) {
      // Parked blocks are speculative: no retry; a reader coming back refetches.
      log(LogLevel::kDebug, "block %" PRIu64 " (parked) dropped: %s", b->index, e->message.c_str());
      cancel_block(*b);  // a hedge, if any
      store.erase(b->index);
      parked.reset();
      b = nullptr;
      e.reset();
    }
    if (e && b && b->hedge) {
      // The main request failed while a hedge runs: the hedge takes over.
      log(LogLevel::kDebug, "block %" PRIu64 ": %s; its hedge takes over", b->index,
          e->message.c_str());
      b->request = std::move(b->hedge);
      b->hedge.reset();
      e.reset();
    }
    if (e) {
      if (e->kind == ErrorKind::kCancelled) e->transient = true;  // not ours: retry
      const unsigned attempts = b ? b->attempts : 1;
      if (e->transient && may_retry(attempts) && (b || r.stream)) {
        ++retries;
        const auto wait = backoff(attempts, *e);
        log(LogLevel::kInfo, "%s %" PRIu64 ": %s; retry %u in %" PRId64 " ms",
            r.stream ? "stream at block" : "block", r.block, e->message.c_str(), attempts,
            static_cast<int64_t>(wait.count()));
        if (b) {
          ++b->attempts;
          launch(*b, wait);
        } else {
          launch_stream(r.pos, wait);
        }
      } else {
        if (e->transient && !opened && e->kind == ErrorKind::kRead) e->kind = ErrorKind::kOpenRead;
        fail(std::move(*e));
      }
    }
    cv.notify_all();
    pump();
  }

  Chunk chunk_of(const Block& b, uint64_t offset, size_t n) {
    Chunk c;
    c.owner = std::shared_ptr<const void>(b.buffer, b.buffer.get());
    c.data = b.buffer->data() + (offset - b.range.begin);
    c.size = n;
    c.offset = offset;
    return c;
  }

  // After the reader took bytes [offset, offset + n).
  // After the reader took bytes [offset, offset + n), n > 0, all in one block.
  void delivered(uint64_t offset, size_t n) {
    bytes_delivered += n;
    const uint64_t end = offset + n;
    const uint64_t last = plan.index_of(end - 1);
    if (plan.range(last).end == end) log(LogLevel::kDebug, "block %" PRIu64 " delivered", last);
    retarget(end);  // moves the window as soon as a block is used up
  }

  // Waits until some bytes at `offset` are readable. Returns the block or
  // sets `result` to a terminal status.
  Block* wait_block(std::unique_lock<std::mutex>& lock, uint64_t offset, ReadResult* result) {
    for (;;) {
      if (flushing || closed) {
        result->status = ReadStatus::kFlushing;
        return nullptr;
      }
      if (fatal) {
        result->status = ReadStatus::kError;
        result->error = *fatal;
        return nullptr;
      }
      if (plan.size() && offset >= *plan.size()) {
        result->status = ReadStatus::kEos;
        return nullptr;
      }
      // A new block, or the reader's block held only from a later byte (it
      // was requested from a jump's offset): re-target, which refetches it.
      const Block* at = store.find(plan.index_of(offset));
      if (plan.index_of(offset) != read_block || (at && offset < at->range.begin)) retarget(offset);
      Block* b = store.find(read_block);
      if (b && offset >= b->range.begin && offset < b->range.begin + readable(*b)) return b;
      if (!b) pump();
      idle_wait(lock);
    }
  }

  // The reader's wait. With hedging on it wakes now and then to see whether
  // the block it waits for has become late.
  void idle_wait(std::unique_lock<std::mutex>& lock) {
    if (!cfg.hedge || stream_mode) return cv.wait(lock);
    cv.wait_for(lock, std::chrono::milliseconds(20));
    if (!flushing && !closed && !fatal) maybe_hedge();
  }
};

// ---- Request: forwards to the engine ----

bool Request::on_head(const ResponseHead& head) { return impl_->on_head(*this, head); }
uint8_t* Request::write_area(size_t* length) { return impl_->write_area(*this, length); }
void Request::on_data(size_t n) { impl_->on_data(*this, n); }
void Request::on_done(const Error* error) { impl_->on_done(*this, error); }

// ---- Prefetcher ----

Prefetcher::Prefetcher(std::shared_ptr<Origin> origin, Config config, Logger logger)
    : origin_(std::move(origin)), config_(config) {
  if (config_.block_size == 0) config_.block_size = 1 << 20;
  if (config_.concurrency == 0) config_.concurrency = 1;
  impl_ = std::make_unique<Impl>(origin_.get(), config_, std::move(logger));
}

Prefetcher::~Prefetcher() { close(); }

void Prefetcher::begin(uint64_t offset) {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.mu);
  s.log(LogLevel::kInfo,
        "open at byte %" PRIu64 ": block size %" PRIu64
        ", concurrency %u, look-ahead %u blocks, schedule %s",
        offset, config_.block_size, config_.concurrency, s.lookahead, to_string(config_.schedule));
  s.read_block = s.plan.index_of(offset);
  s.batch_begin = s.read_block;
  s.pump();
}

ReadResult Prefetcher::open(uint64_t offset) {
  begin(offset);
  return wait_open(std::chrono::milliseconds::max());
}

ReadResult Prefetcher::wait_open(std::chrono::milliseconds timeout) {
  Impl& s = *impl_;
  std::unique_lock<std::mutex> lock(s.mu);
  ReadResult r;
  const auto done = [&] { return s.opened || s.fatal || s.flushing || s.closed; };
  if (timeout == std::chrono::milliseconds::max())
    s.cv.wait(lock, done);
  else
    s.cv.wait_for(lock, timeout, done);
  // Opened is opened, even if a later block has failed since: that error
  // comes with the next read, whoever waited here.
  if (s.fatal && !s.opened) {
    r.status = ReadStatus::kError;
    r.error = *s.fatal;
  } else if (!s.opened) {
    r.status = ReadStatus::kFlushing;
  }
  return r;
}

std::optional<uint64_t> Prefetcher::size() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->plan.size();
}

bool Prefetcher::seekable() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return !impl_->stream_mode;
}

ReadResult Prefetcher::read(uint64_t offset, size_t length, ReadMode mode) {
  planted::planted_race_read();
  Impl& s = *impl_;
  std::unique_lock<std::mutex> lock(s.mu);
  ReadResult r;
  if (length == 0) return r;
  s.exact_reads = mode == ReadMode::kExact;
  Block* b = s.wait_block(lock, offset, &r);
  if (!b) return r;
  const uint64_t total = s.plan.size() ? *s.plan.size() : UINT64_MAX;
  const size_t want = static_cast<size_t>(std::min<uint64_t>(length, total - offset));
  if (mode == ReadMode::kExact && offset + want <= b->range.end) {
    // Inside one block: wait for all of it and hand it out without a copy.
    while (b && b->range.begin + s.readable(*b) < offset + want) {
      s.idle_wait(lock);
      b = s.wait_block(lock, offset, &r);
    }
    if (!b) return r;
  }
  const size_t ready = b->range.begin + s.readable(*b) - offset;
  if (mode == ReadMode::kAvailable || want <= ready) {
    const size_t n = std::min(ready, want);
    r.chunk = s.chunk_of(*b, offset, n);
    s.delivered(offset, n);
    return r;
  }
  // Exact read: gather across blocks (one copy; pull mode only).
  auto bytes = std::make_shared<std::vector<uint8_t>>(want);
  size_t got = 0;
  while (got < want) {
    Block* cur = s.wait_block(lock, offset + got, &r);
    if (!cur) {
      if (r.status != ReadStatus::kEos) return r;
      bytes->resize(got);  // the size shrank under us: deliver what exists
      break;
    }
    const uint64_t at = offset + got;
    const size_t n = std::min<uint64_t>(cur->range.begin + s.readable(*cur) - at, want - got);
    std::memcpy(bytes->data() + got, cur->buffer->data() + (at - cur->range.begin), n);
    got += n;
    s.delivered(at, n);
  }
  r.status = ReadStatus::kOk;
  r.chunk.data = bytes->data();
  r.chunk.size = bytes->size();
  r.chunk.offset = offset;
  r.chunk.owner = std::move(bytes);
  return r;
}

void Prefetcher::gather(uint64_t offset, size_t want, std::chrono::microseconds max_wait) {
  Impl& s = *impl_;
  std::unique_lock<std::mutex> lock(s.mu);
  const uint64_t idx = s.plan.index_of(offset);
  const Block* b = s.store.find(idx);
  // The first bytes of a block are never held back (nor is anything of a
  // block whose rate cannot be told yet).
  if (!b || b->complete() || offset <= b->range.begin || b->filled == 0) return;
  const uint64_t have = b->range.begin + s.readable(*b);
  const uint64_t target = std::min<uint64_t>(offset + want, b->range.end);
  if (have >= target) return;
  const Clock::time_point now = Clock::now();
  const double secs = std::chrono::duration<double>(now - b->first_byte).count();
  const double due = std::chrono::duration<double>(max_wait).count();
  // The bytes still missing, at the rate this block has filled so far.
  if (secs <= 0 || static_cast<double>(target - have) * secs > b->filled * due) return;
  s.gather_until = target;
  s.cv.wait_until(lock, now + max_wait, [&] {
    if (s.flushing || s.closed || s.fatal) return true;
    const Block* cur = s.store.find(idx);
    return !cur || cur->complete() || cur->range.begin + s.readable(*cur) >= target;
  });
  s.gather_until = 0;
}

void Prefetcher::seek(uint64_t offset) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->exact_reads = false;  // a push-mode seek: the reader goes on in order
  impl_->retarget(offset);
}

void Prefetcher::set_flushing(bool flushing) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->flushing = flushing;
  impl_->cv.notify_all();
  if (!flushing) impl_->pump();
}

void Prefetcher::close() {
  Impl& s = *impl_;
  std::unique_lock<std::mutex> lock(s.mu);
  s.closed = true;
  s.cancel_all();
  s.cv.notify_all();
  s.cv.wait(lock, [&] { return s.in_flight == 0; });
}

Stats Prefetcher::stats() const {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.mu);
  Stats st;
  st.bytes_delivered = s.bytes_delivered;
  st.blocks_fetched = s.blocks_fetched;
  st.requests_started = s.requests_started;
  st.retries = s.retries;
  st.hedges_sent = s.hedges_sent;
  st.hedges_won = s.hedges_won;
  st.cache_hits = s.cache_hits;
  st.in_flight = s.in_flight;
  if (!s.ttfb_ms.empty()) {
    std::vector<double> v(s.ttfb_ms.begin(), s.ttfb_ms.end());
    std::sort(v.begin(), v.end());
    st.ttfb_median_ms = v[v.size() / 2];
    st.ttfb_p95_ms = v[std::min(v.size() - 1, v.size() * 95 / 100)];
  }
  const Clock::time_point now = Clock::now();
  const double secs = std::chrono::duration<double>(now - s.rate_since).count();
  if (secs >= 0.5) {
    s.rate = s.rate_bytes / secs;
    s.rate_since = now;
    s.rate_bytes = 0;
  }
  st.throughput_bytes_per_s = s.rate;
  return st;
}

}  // namespace prefetch
