// What the engine fetches: the window follows the reader (access_pattern),
// spans fill it (span_policy, engine_span.cc; the batch and barrier
// schedules ask the scheduler instead), late blocks near the reader are
// hedged (hedge_policy), and blocks that leave it go to the cache
// (block_cache), all within the process's byte budget (byte_budget).

#include <algorithm>
#include <cinttypes>
#include <map>

#include "engine.h"

namespace prefetch {

namespace {

// a - b, or 0 if b is larger.
uint64_t less(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

}  // namespace

Prefetcher::Impl::Impl(Origin* origin, const Config& cfg, Logger log)
    : origin(origin),
      cfg(cfg),
      retry(cfg.retry),
      hedge_policy(cfg.hedge),
      log(std::move(log)),
      lookahead(cfg.effective_lookahead()),
      window(lookahead),
      plan(cfg.block_size),
      cache(cfg.cache_bytes),
      rng(std::random_device{}()),
      control(ConcurrencyTuning{cfg.start_concurrency(), cfg.max_concurrency}) {
  interval.from = Clock::now();
  // The byte budget: what this configuration holds at most (an explicit
  // look-ahead may ask for more than the default budget).
  memory = ByteBudget::process().add_client(
      static_cast<uint64_t>(cfg.effective_lookahead()) * cfg.block_size + cfg.cache_bytes);
  store.set_pool(std::make_shared<BufferPool>(cfg.block_size, lookahead + cfg.keep_behind + 2,
                                              &ByteBudget::process(), memory));
  known.stream_mode = cfg.whole;  // read whole: one stream from the start
}

void Prefetcher::Impl::set_size(uint64_t size) {
  plan.set_size(size);
  size_bound.reset();
  const uint64_t count = *plan.count();
  log(LogLevel::kInfo, "resource size %" PRIu64 " bytes, %" PRIu64 " blocks", size, count);
  clamp_spans(size);
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

// Without a size, a 416 bounds the end from above; the size is that bound
// once every byte before it is there (then nothing lies between them).
void Prefetcher::Impl::settle_bound() {
  if (plan.size() || !size_bound) return;
  const uint64_t bound = *size_bound;
  if (bound > 0) {
    const Block* b = store.find(plan.index_of(bound - 1));
    if (!b || b->range.begin + b->filled != bound) return;
  }
  set_size(bound);
  if (bound > 0) {
    Block* last = store.find(plan.index_of(bound - 1));
    if (last && last->filled == last->range.length()) {
      if (!last->complete()) ++counts.blocks_fetched;
      last->state = BlockState::kComplete;
    }
  }
  cv.notify_all();
}

// Blocks that may exist: all of the size, or up to a 416's bound.
std::optional<uint64_t> Prefetcher::Impl::block_count() const {
  std::optional<uint64_t> n = plan.count();
  if (!n && size_bound) n = (*size_bound + plan.block_size() - 1) / plan.block_size();
  // Nothing past a failure ahead is fetched: the reader stops there.
  if (failure_ahead) n = std::min(n.value_or(UINT64_MAX), plan.index_of(failure_ahead->pos) + 1);
  return n;
}

// True if every block of the batch starting at `first` is complete (or
// already delivered: the reader is past it).
bool Prefetcher::Impl::batch_complete_from(uint64_t first) const {
  for (uint64_t i = first; i < first + conc() && plan.exists(i); ++i) {
    if (i < read_block) continue;
    const Block* b = store.find(i);
    if (!b || !b->complete()) return false;
  }
  return true;
}

// The window the schedule may fill now: what the access pattern allows,
// less what counts against the same look-ahead elsewhere (the other
// region's blocks, an exact read's copy), but never less than one block.
unsigned Prefetcher::Impl::window_now() const {
  uint64_t used = (copied + plan.block_size() - 1) / plan.block_size();
  if (other_region) {
    store.for_each([&](const Block& b) {
      if (kept_elsewhere(b.index)) ++used;
    });
  }
  const unsigned left = used >= lookahead ? 1u : lookahead - static_cast<unsigned>(used);
  return std::max(1u, std::min({window, left, memory_window()}));
}

// The blocks the window may span under the process's byte budget: the
// engine's allowance less what it holds outside the window (its cache,
// buffers downstream still holds, buffers kept for reuse); one at least
// (the reader's, which it takes while it arrives).
unsigned Prefetcher::Impl::memory_window() const {
  const ByteBudget::Standing s = ByteBudget::process().standing(memory);
  uint64_t in_window = 0;
  store.for_each([&](const Block& b) { in_window += b.buffer ? b.buffer->capacity() : 0; });
  const uint64_t blocks = less(s.allowance, less(s.held, in_window)) / plan.block_size();
  return static_cast<unsigned>(std::clamp<uint64_t>(blocks, 1, 1u << 20));
}

// Whether the engine's share of the byte budget holds the blocks kept
// behind the reader beside the reader's own.
bool Prefetcher::Impl::keeps_behind() const {
  return ByteBudget::process().share() >= (uint64_t{cfg.keep_behind} + 1) * plan.block_size();
}

// The cache lives within the engine's share of the byte budget, less what
// it holds besides, and at least the block the reader takes next (never on
// what other engines have not taken: it could not give that back when they
// need it). `leaving`: bytes of a block about to move into it, counted as
// cache already.
void Prefetcher::Impl::fit_cache(uint64_t leaving) {
  const ByteBudget::Standing s = ByteBudget::process().standing(memory);
  const uint64_t besides = std::max(less(s.held, cache.bytes() + leaving), plan.block_size());
  cache.set_capacity(std::min(cfg.cache_bytes, less(s.share, besides)));
}

// Block `i` may be made now: it lies in the reader's window or the other
// region's.
bool Prefetcher::Impl::may_hold(uint64_t i) const {
  const bool in_window =
      (i >= read_block && i < read_block + window_now()) ||
      (other_region && i >= other_region->block && region_keeps(*other_region, i, 0));
  return in_window && memory_allows(i);
}

// The process's byte budget lets block `i` be made now: the reader's block
// always (so the reader moves whatever the others hold), any other within
// the engine's share or while the process is under budget.
bool Prefetcher::Impl::memory_allows(uint64_t i) const {
  if (i == read_block) return true;
  return ByteBudget::process().may_grow(memory, plan.block_size(), plan.block_size());
}

// Makes block `i`, from byte `from` on (the reader's or a span's first
// byte), up to its end, the size or a 416's bound. Nullptr if nothing of it
// lies there: no block of negative length is ever made.
Block* Prefetcher::Impl::make_block(uint64_t i, uint64_t from) {
  if (plan.count() && i >= *plan.count()) return nullptr;
  ByteRange range = plan.range(i);
  range.begin = std::max(range.begin, from);
  if (size_bound) range.end = std::min(range.end, *size_bound);
  if (range.begin >= range.end) return nullptr;
  return &store.insert(i, range);
}

// Requests running for the other region's blocks.
unsigned Prefetcher::Impl::requests_elsewhere() const {
  unsigned n = 0;
  store.for_each([&](const Block& b) {
    if (kept_elsewhere(b.index)) n += (b.request ? 1 : 0) + static_cast<unsigned>(b.rivals.size());
  });
  return n;
}

// The reader's block waits for a slot that the other region holds more than
// its share of: its furthest fetching block gives one up (and goes, so that
// it is asked again if the reader comes back), one with no bytes yet first.
void Prefetcher::Impl::yield_slot() {
  std::optional<uint64_t> furthest;
  bool empty = false;
  store.for_each([&](const Block& b) {
    if (!kept_elsewhere(b.index) || b.complete() || !b.request) return;
    if (empty && b.filled > 0) return;
    furthest = b.index;
    empty = b.filled == 0;
  });
  if (!furthest) return;
  log(LogLevel::kDebug, "block %" PRIu64 " gives its slot to the reader's block", *furthest);
  cancel_block(*store.find(*furthest));
  store.erase(*furthest);
}

// Block `i` is held for the other region, not the reader's.
bool Prefetcher::Impl::kept_elsewhere(uint64_t i) const {
  return other_region && region_keeps(*other_region, i, cfg.keep_behind) &&
         !region_keeps(Region{read_block, window}, i, cfg.keep_behind);
}

// Starts whatever the schedule allows now.
void Prefetcher::Impl::pump() {
  if (closed || fatal || flushing) return;
  if (known.stream_mode) return pump_stream();
  // A late block at the head of the line matters more than one far ahead.
  maybe_hedge();
  // With two regions the reader's takes at most half the slots (rounded
  // up), so the other keeps the rest and a switch finds them free.
  unsigned slots = conc(), busy = in_flight;
  if (other_region) {
    const unsigned share = (conc() + 1) / 2;
    const unsigned other_busy = std::min(in_flight, requests_elsewhere());
    if (other_busy > conc() - share && !store.find(read_block)) yield_slot();
    slots = std::min(share, conc() - std::min(conc(), other_busy));
    busy = in_flight - other_busy;
  }
  if (cfg.schedule == Schedule::kWindow) {
    // Spans: hedges and spans sent ahead take no slot of their own.
    unsigned spans = 0;
    for (const Request* r : live) spans += r->is_hedge || r->ahead ? 0 : 1;
    const unsigned other = other_region ? std::min(spans, requests_elsewhere()) : 0;
    return pump_spans(slots, spans - other);
  }
  // batch / barrier: one request per block, as the seed made them.
  SchedulerInput in;
  in.read_block = read_block;
  in.block_count = block_count();
  in.concurrency = slots;
  in.lookahead = window_now();
  in.in_flight = busy;
  in.held = [this](uint64_t i) { return store.find(i) != nullptr; };
  in.batch_begin = batch_begin;
  in.batch_complete = batch_complete_from(batch_begin);
  SchedulerDecision d = schedule_next(in);
  if (d.new_batch_begin) batch_begin = *d.new_batch_begin;
  for (uint64_t i : d.start) {
    // The reader's own block starts at the reader: after a jump, the bytes
    // before it in the block would only delay the first buffer.
    ByteRange r = plan.range(i);
    if (i == read_block && read_pos > r.begin && read_pos < r.end) r.begin = read_pos;
    if (size_bound) r.end = std::min(r.end, *size_bound);  // nothing lies past it
    if (r.begin >= r.end) continue;
    SpanAsk a;
    a.pos = r.begin;
    a.end = r.end;
    a.block = &store.insert(i, r);
    launch(a);
  }
}

// A block leaves the window: its requests end; if complete, it is cached.
void Prefetcher::Impl::retire(Block& b) {
  cancel_block(b);
  if (cache.is_parked(b.index)) cache.unpark();
  if (!b.complete()) return;
  b.request.reset();
  b.rivals.clear();
  fit_cache(b.buffer ? b.buffer->capacity() : 0);
  cache.admit(std::move(b));
}

// Moves the window so that it starts at the block holding `offset`, by the
// rule in access_pattern.h.
void Prefetcher::Impl::retarget(uint64_t offset) {
  read_pos = offset;
  const uint64_t idx = plan.index_of(offset);
  if (!cache.empty()) {
    // Cached blocks the window reaches come back into it.
    cache.take_range(idx, idx + lookahead, [&](Block&& b) {
      if (store.find(b.index)) return;
      ++counts.cache_hits;
      log(LogLevel::kDebug, "block %" PRIu64 " from cache", b.index);
      store.put(std::move(b));
    });
  }
  if (Block* held = store.find(idx); held && offset < held->range.begin) {
    // Held from a later byte (an earlier jump): refetch from the reader.
    cancel_block(*held);
    store.erase(idx);
  }
  if (idx == read_block && (store.find(idx) || known.stream_mode)) return pump();

  const AccessInput in{read_block, idx, cfg.keep_behind, lookahead, window, exact_reads};
  const RegionMove m = step_regions(in, other_region);
  const AccessStep& step = m.step;
  if (m.switched)
    log(LogLevel::kDebug, "reader goes back to its other region at byte %" PRIu64, offset);
  else if (step.move == Move::kJump)
    log(LogLevel::kDebug, "reader jumps to byte %" PRIu64 " (block %" PRIu64 ")", offset, idx);
  if (m.switched || step.move == Move::kJump) race_anew();
  const uint64_t from = m.switched ? other_region->block : read_block;
  read_block = idx;
  window = step.window;
  other_region = m.other;
  if (step.park_from && !known.stream_mode) park(from);
  // Blocks behind the reader only while its share of the byte budget holds
  // them beside the reader's block (32 engines in the default budget have a
  // block each: what they keep behind would double their memory).
  const uint64_t keep_from =
      keeps_behind() ? step.keep_from : std::max(step.keep_from, std::min(idx, step.keep_to));
  store.drop_outside(
      keep_from, step.keep_to,
      [&](const Block& b) {
        return (cache.is_parked(b.index) && !b.complete()) || kept_elsewhere(b.index);
      },
      [&](Block& b) { retire(b); });
  drop_far_spans(keep_from, step.keep_to, step.move != Move::kJump);
  // Blocks kept behind the reader are only worth it when complete (or by the
  // rule in keeps_incomplete_behind).
  AccessInput moved = in;
  moved.from = from;
  for (uint64_t i = keep_from; i < idx; ++i) {
    Block* b = store.find(i);
    if (b && !b->complete() && !kept_elsewhere(i) &&
        !keeps_incomplete_behind(step, moved, i, cache.is_parked(i))) {
      cancel_block(*b);
      store.erase(i);
    }
  }
  // Unparked once it is back in the window (or gone).
  if (const auto& p = cache.parked();
      p && (!store.find(*p) || (*p >= keep_from && *p < step.keep_to)))
    cache.unpark();
  if (known.stream_mode && stream && plan.index_of(stream->pos) > idx && !store.find(idx)) {
    log(LogLevel::kDebug, "stream at byte %" PRIu64 " is past the reader: restarting", stream->pos);
    cancel_request(stream);  // it is past what the reader wants now
    stream.reset();
  }
  if (step.move != Move::kForward && cfg.schedule != Schedule::kWindow &&
      (idx < batch_begin || idx >= batch_begin + conc())) {
    batch_begin = idx;  // a seek starts a new batch at the reader
  }
  pump();
}

// The reader jumps away from block `i`: park it if it is still fetching
// (see access_pattern.h). A block parked before is dropped with the window.
void Prefetcher::Impl::park(uint64_t i) {
  Block* b = store.find(i);
  if (!b || b->complete() || !b->request) return;
  fit_cache(0);
  if (cache.park(i, b->range.length())) {
    log(LogLevel::kDebug, "block %" PRIu64 " parked: its request runs on after the jump", i);
    // Its span ends with it: the blocks after it are not the reader's now.
    for (Request* r : live)
      if (r->block == i) r->end = std::min(r->end, b->range.end);
  }
}

}  // namespace prefetch
