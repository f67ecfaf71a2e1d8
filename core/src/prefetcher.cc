// The engine's public face and the reader's side of it: read() waits for
// the block at the read position and hands out the bytes already there (the
// head block while it arrives), gather() lets a fast head block fill a
// little first, and every wait ends at once when flushing or closed. The
// rest of the engine is in the engine_*.cc files (engine.h says what is
// where).

#include "prefetch/prefetcher.h"

#include <algorithm>
#include <cinttypes>
#include <cstring>

#include "engine.h"
#include "planted_race.h"

namespace prefetch {

// ---- the reader's side of the engine (mu held) ----

// Bytes of block `b` the reader may take now, from the block's start.
size_t Prefetcher::Impl::readable(const Block& b) const {
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

namespace {

// A view of bytes [offset, offset + n) of block `b`, keeping its buffer alive.
Chunk chunk_of(const Block& b, uint64_t offset, size_t n) {
  Chunk c;
  c.owner = std::shared_ptr<const void>(b.buffer, b.buffer.get());
  c.data = b.buffer->data() + (offset - b.range.begin);
  c.size = n;
  c.offset = offset;
  return c;
}

}  // namespace

// After the reader took bytes [offset, offset + n), n > 0, all in one block.
void Prefetcher::Impl::delivered(uint64_t offset, size_t n) {
  counts.bytes_delivered += n;
  set_waiting(false);
  racing = false;  // the start's (or the seek's) first byte came: later ones are the hedge's
  const uint64_t end = offset + n;
  const uint64_t last = plan.index_of(end - 1);
  if (plan.range(last).end == end) log(LogLevel::kDebug, "block %" PRIu64 " delivered", last);
  retarget(end);  // moves the window as soon as a block is used up
  // While the look-ahead holds every span back no bytes come in: the reads
  // end the concurrency's intervals then.
  measure_interval(0, Clock::now());
}

// Waits until some bytes at `offset` are readable. Returns the block or
// sets `result` to a terminal status.
Block* Prefetcher::Impl::wait_block(std::unique_lock<std::mutex>& lock, uint64_t offset,
                                    ReadResult* result) {
  for (;;) {
    if (failure_ahead && offset >= failure_ahead->pos) fail(failure_ahead->error);
    if (flushing || closed || fatal) set_waiting(false);  // it returns without bytes
    if (flushing || closed) {
      result->status = ReadStatus::kFlushing;
      return nullptr;
    }
    if (fatal) {
      result->status = ReadStatus::kError;
      result->error = *fatal;
      return nullptr;
    }
    if ((plan.size() && offset >= *plan.size()) || (size_bound && offset >= *size_bound)) {
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
    interval.reader_waited = true;
    set_waiting(true);
    idle_wait(lock);
  }
}

// The reader's wait. With hedging on it wakes now and then to see whether
// the block it waits for has become late, or every request is stalled (a
// probe, engine_probe.cc); while that block's request waits
// for a slot of the host, to make room for it again (the slot ours gave
// back may have gone to a reader that had waited longer).
void Prefetcher::Impl::idle_wait(std::unique_lock<std::mutex>& lock) {
  const bool for_slot = head_waits_for_slot();
  const bool hedging = hedge_policy.enabled && !known.stream_mode;
  const bool probing = cfg.probe && !known.stream_mode && !live.empty();
  if (!hedging && !for_slot && !probing) return cv.wait(lock);
  Clock::time_point until = Clock::now() + std::chrono::milliseconds(hedging ? 20 : 100);
  if (const std::optional<Clock::time_point> race = race_due()) until = std::min(until, *race);
  cv.wait_until(lock, until);
  if (flushing || closed || fatal) return;
  if (hedging) maybe_race() || maybe_hedge();
  maybe_probe();
  make_room_for_head();
}

// ---- Prefetcher ----

Prefetcher::Prefetcher(std::shared_ptr<Origin> origin, Config config, Logger logger)
    : origin_(std::move(origin)), config_(config) {
  if (config_.block_size == 0) config_.block_size = Config::kDefaultBlockSize;
  if (config_.max_concurrency == 0) config_.max_concurrency = 1;
  if (config_.concurrency == 0 && !config_.auto_concurrency())
    config_.concurrency = config_.start_concurrency();
  impl_ = std::make_unique<Impl>(origin_.get(), config_, std::move(logger));
  impl_->join_budget();
}

Prefetcher::~Prefetcher() { close(); }

void Prefetcher::begin(uint64_t offset) {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.mu);
  s.log(LogLevel::kInfo,
        "open at byte %" PRIu64 ": block size %" PRIu64
        ", concurrency %u%s, look-ahead %u blocks, schedule %s",
        offset, config_.block_size, s.conc(), config_.auto_concurrency() ? " (automatic)" : "",
        s.lookahead, to_string(config_.schedule));
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
  const auto done = [&] { return s.known.opened || s.fatal || s.flushing || s.closed; };
  // The reader waits for the first answer: the host budget hears of it.
  if (!done()) s.set_waiting(true);
  // Its first byte may be raced meanwhile: the wait wakes when a twin is due.
  const Clock::time_point end = timeout == std::chrono::milliseconds::max()
                                    ? Clock::time_point::max()
                                    : Clock::now() + timeout;
  while (!done() && Clock::now() < end) {
    const std::optional<Clock::time_point> race = s.race_due();
    if (!race || *race >= end) {
      if (end == Clock::time_point::max())
        s.cv.wait(lock);
      else
        s.cv.wait_until(lock, end);
    } else {
      s.cv.wait_until(lock, *race);
      if (!done()) s.maybe_race();
    }
  }
  // Opened is opened, even if a later block has failed since: that error
  // comes with the next read, whoever waited here.
  if (s.fatal && !s.known.opened) {
    r.status = ReadStatus::kError;
    r.error = *s.fatal;
  } else if (!s.known.opened) {
    r.status = ReadStatus::kFlushing;
  }
  if (!s.known.opened || s.fatal) s.set_waiting(false);
  return r;
}

std::optional<uint64_t> Prefetcher::size() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->plan.size();
}

bool Prefetcher::seekable() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return !impl_->known.stream_mode;
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
    r.chunk = chunk_of(*b, offset, n);
    s.delivered(offset, n);
    return r;
  }
  // Exact read: gather across blocks (one copy; pull mode only). The copy
  // counts against the look-ahead while it grows (see window_now).
  auto bytes = std::make_shared<std::vector<uint8_t>>(want);
  size_t got = 0;
  struct Uncount {
    uint64_t& copied;
    ~Uncount() { copied = 0; }
  } uncount{s.copied};
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
    s.copied = got;
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
  impl_->race_anew();          // its first byte may be raced as the start's
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
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.closed = true;
    s.cancel_all();  // queued requests too: their on_done comes at once
    s.cancel_probes();
    s.cv.notify_all();
    s.cv.wait(lock, [&] { return s.in_flight == 0 && s.probes.empty(); });
  }
  s.leave_budget();
}

Stats Prefetcher::stats() const {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.mu);
  Stats st = s.counts;
  st.bytes_per_request =
      st.requests_started ? static_cast<double>(st.bytes_received) / st.requests_started : 0;
  st.ttfb_mean_ms = s.first_bytes ? s.first_byte_total_ms / s.first_bytes : 0;
  st.in_flight = s.in_flight;
  st.host_connections = s.client ? HostBudget::process().held(s.client) : 0;
  st.concurrency = s.conc();
  st.concurrency_why = s.cfg.auto_concurrency() ? to_string(s.control.why()) : "";
  st.ttfb_median_ms = s.first_byte_ms.quantile(0.5).value_or(0);
  st.ttfb_p95_ms = s.first_byte_ms.quantile(0.95).value_or(0);
  st.throughput_bytes_per_s = s.rate.rate(Clock::now());
  return st;
}

ResourceInfo Prefetcher::resource_info(uint64_t known_serial) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->resource.serial == known_serial) return ResourceInfo{known_serial, {}};
  return impl_->resource;
}

}  // namespace prefetch
