// Spans: one range request over a run of blocks (span_policy.h decides
// which). Its body fills the blocks in order, each made when the body
// reaches it; where the look-ahead ends the span pauses (it stops reading,
// TCP holds the server back) until the reader frees blocks. A connection's
// next span may be sent ahead while its current one still transfers, when
// the first-byte time says the connection would otherwise sit idle; such
// requests wait for their first byte beside the transfers, but transfers at
// once never exceed `concurrency` (a span whose answer comes early waits
// for a slot).

#include <algorithm>
#include <cinttypes>
#include <cmath>

#include "engine.h"

namespace prefetch {

namespace {

// A rate is told once this much came over this long.
constexpr uint64_t kRateMinBytes = 32 * 1024;
constexpr double kRateMinSeconds = 0.01;

constexpr std::chrono::milliseconds kCloseGrace{50};

}  // namespace

double Request::rate(Clock::time_point now) const {
  double s = flowed_s;
  if (flowing_since != Clock::time_point{})
    s += std::chrono::duration<double>(now - flowing_since).count();
  if (received < kRateMinBytes || s < kRateMinSeconds) return 0;
  return static_cast<double>(received) / s;
}

void Request::pause(Clock::time_point now) {
  if (flowing_since == Clock::time_point{}) return;
  flowed_s += std::chrono::duration<double>(now - flowing_since).count();
  flowing_since = Clock::time_point{};
}

void Request::flow(Clock::time_point now) {
  if (flowing_since == Clock::time_point{}) flowing_since = now;
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

unsigned Prefetcher::Impl::transferring() const {
  unsigned n = 0;
  for (const Request* r : live) n += r->state == RequestState::kReceiving ? 1 : 0;
  return n;
}

// What span_policy sees: the spans running (hedges race their span's
// claim, so they show the same one), from the reader to `to_block`.
SpanInput Prefetcher::Impl::span_input(uint64_t to_block, std::vector<Request*>* owners) const {
  SpanInput in;
  in.block_size = plan.block_size();
  in.from_block = read_block;
  in.to_block = to_block;
  in.block_count = block_count();
  in.held = [this](uint64_t i) { return store.find(i) != nullptr; };
  const Clock::time_point now = Clock::now();
  for (Request* r : live) {
    if (r->cancelled()) continue;
    SpanView v;
    v.front = r->pos;
    v.end = r->end;
    v.receiving = r->state != RequestState::kWaiting;
    v.waited_ms = ms_between(r->started, now);
    v.rate = r->rate(now);
    in.spans.push_back(v);
    owners->push_back(r);
  }
  in.ttfb_ms = first_byte_ms.quantile(0.5);
  in.conn_rate = conn_rate;
  const uint64_t bs = plan.block_size();
  const uint64_t max = cfg.max_request_bytes;
  in.max_blocks = max / bs + (max % bs ? 1 : 0);  // no overflow at UINT64_MAX
  // Random reads, and HTTP/2 (see http2): no span past the window.
  in.end_at_horizon = exact_reads || http2;
  return in;
}

// Chooses (span_policy) and starts the span a free connection fetches
// next, starting before `to_block`; `behind` is the span whose connection it
// follows (sent ahead), if any. False if no span is worth a request.
bool Prefetcher::Impl::start_next_span(uint64_t to_block, Request* behind) {
  std::vector<Request*> owners;
  const std::optional<SpanChoice> c = choose_span(span_input(to_block, &owners));
  if (!c) return false;
  start_span(*c, c->split ? owners[*c->split] : nullptr, behind);
  return true;
}

// On an origin that refused a request for load, a new connection right
// after one of ours closed mid-answer would likely be refused too: the
// origin may not have seen the close yet (it notices at its next write).
// The span waits out the rest of kCloseGrace from that close.
std::chrono::milliseconds Prefetcher::Impl::close_grace() const {
  if (!refuses_load) return std::chrono::milliseconds(0);
  const auto left = closed_at + kCloseGrace - Clock::now();
  return std::max(std::chrono::milliseconds(0), std::chrono::ceil<std::chrono::milliseconds>(left));
}

// Starts the span `c` chose; `owner` is the span whose claim it splits.
void Prefetcher::Impl::start_span(const SpanChoice& c, Request* owner, Request* behind) {
  const uint64_t bs = plan.block_size();
  uint64_t pos = c.first * bs;
  if (owner) {
    // The claim it splits ends at `pos` (with its hedge, if racing).
    log(LogLevel::kDebug,
        "span %" PRIu64 " split at block %" PRIu64 ": span %" PRIu64 " takes blocks %" PRIu64
        "-%s (it would come there in %.0f ms)",
        owner->id, c.first, next_span_id(), c.first,
        last_block(c.end == kOpenEnd ? owner->end : c.end * bs, bs).c_str(), c.reach_ms);
    for (Request* r : live)
      if (!r->cancelled() && r->block == owner->block && r->end > pos) r->end = pos;
  }
  if (c.first == read_block && read_pos > pos && read_pos < pos + bs) pos = read_pos;
  uint64_t end = c.end == kOpenEnd ? kOpenEnd : c.end * bs;
  if (plan.size()) end = std::min(end, *plan.size());
  if (size_bound) end = std::min(end, *size_bound);
  if (pos >= end) return;
  Block* b = nullptr;
  if (may_hold(c.first) && !store.find(c.first)) b = make_block(c.first, pos);
  // It asks for the range to the end of the resource, unless a length cap
  // or the window bounds it: where its claim ends it may then go on into the
  // next claim if that has no byte yet (take_over_next), instead of leaving
  // the reader waiting on a late first byte.
  SpanAsk a;
  a.pos = pos;
  a.end = end;
  a.asked_end = end;
  if (!cfg.max_request_bytes && !exact_reads && !http2)
    a.asked_end = plan.size() ? *plan.size() : (size_bound ? *size_bound : kOpenEnd);
  a.block = b;
  a.delay = close_grace();
  a.ahead = behind != nullptr;
  std::shared_ptr<Request> req = launch(a);
  if (behind) {
    behind->next = req;
    behind->sent_ahead = true;
  }
}

// Fills the free request slots of the reader's region (`slots` of them,
// `busy` taken), then sends spans ahead for connections about to idle.
void Prefetcher::Impl::pump_spans(unsigned slots, unsigned busy) {
  resume_paused();
  // Until the first answer tells the size, one request: a small file costs
  // one, with no 416s.
  if (!known.opened && busy > 0) return;
  if (busy >= slots && busy > 0 && reader_unserved() && end_span_for_reader()) --busy;
  while (busy < slots) {
    if (!start_next_span(read_block + window_now(), nullptr)) break;
    ++busy;
    if (!known.opened) return;
  }
  send_ahead(slots);
}

// A span whose rest transfers within the first-byte time (its 90th
// percentile) gets its connection's next span now, so the connection does
// not sit idle waiting for that first byte. At most one per slot. Over
// HTTP/1.1 that span needs a connection of its own, so only where the wait
// it hides is worth one: a tenth or more of the time a connection takes
// for its share of the look-ahead (an origin that answers in a few ms and
// caps each connection gets no extra connections).
void Prefetcher::Impl::send_ahead(unsigned slots) {
  if (!known.opened || other_region || conn_rate <= 0) return;
  const std::optional<double> lead = first_byte_ms.quantile(0.9);
  if (!lead) return;
  const double share_ms = 1000.0 * static_cast<double>(plan.block_size()) * window_now() /
                          std::max(1u, slots) / conn_rate;
  if (*lead < 0.1 * share_ms) return;
  unsigned ahead = 0;
  for (const Request* r : live) ahead += r->ahead && !r->cancelled() ? 1 : 0;
  const Clock::time_point now = Clock::now();
  const uint64_t share = std::max<uint64_t>(1, (window_now() + slots - 1) / slots);
  for (Request* r : std::vector<Request*>(live)) {
    if (ahead >= slots) return;
    if (r->cancelled() || r->is_hedge || r->sent_ahead || r->state != RequestState::kReceiving ||
        r->end == kOpenEnd)
      continue;
    const double rate = r->rate(now);
    if (rate <= 0 || 1000.0 * static_cast<double>(r->end - r->pos) / rate > *lead) continue;
    if (!start_next_span(read_block + window_now() + share, r)) return;
    ++ahead;
  }
}

// Nothing brings the reader's block: it is not held, or held incomplete
// with no request, and no span's claim reaches it.
bool Prefetcher::Impl::reader_unserved() const {
  if (!plan.exists(read_block)) return false;
  const Block* b = store.find(read_block);
  if (b && (b->complete() || b->request || b->rival)) return false;
  const uint64_t at = b ? b->range.begin + b->filled : plan.range(read_block).begin;
  for (const Request* r : live)
    if (!r->cancelled() && !r->is_stream() && r->pos <= at && at < r->end) return false;
  return true;
}

// The reader's block waits and every slot is taken, some by spans paused
// where a look-ahead ended: the farthest of those ends, so that the
// reader's block is asked for now. A running span frees its slot when it
// ends; a paused one may never (one kept for a region the reader left, in
// pull mode after a demuxer's jumps, waits for a window that does not come
// back), and the reader would wait for ever. False if none is paused.
bool Prefetcher::Impl::end_span_for_reader() {
  Request* victim = nullptr;
  for (Request* r : live) {
    if (r->state != RequestState::kPaused || r->is_hedge || r->is_stream()) continue;
    if (!victim || r->pos > victim->pos) victim = r;
  }
  if (!victim) return false;
  log(LogLevel::kDebug,
      "span %" PRIu64 " ends at byte %" PRIu64 ": the reader's block %" PRIu64 " needs its slot",
      victim->id, victim->pos, read_block);
  cancel_request(victim->shared_from_this());
  return true;
}

// Paused spans go on, lowest first, where the window now reaches and a
// transfer slot is free. One paused for longer than the pause limit is
// cancelled instead, in a window or not: the server may have given up on
// it meanwhile (a send timeout), and its rest is asked for again.
void Prefetcher::Impl::resume_paused() {
  std::vector<Request*> paused;
  for (Request* r : live)
    if (r->state == RequestState::kPaused) paused.push_back(r);
  if (paused.empty()) return;
  std::sort(paused.begin(), paused.end(),
            [](const Request* a, const Request* b) { return a->pos < b->pos; });
  const Clock::time_point now = Clock::now();
  unsigned busy = transferring();
  for (Request* r : paused) {
    if (!r->slot_wait && now - r->paused_at > cfg.pause_limit) {
      log(LogLevel::kDebug, "span %" PRIu64 " ends at byte %" PRIu64 ": paused too long (%.0f ms)",
          r->id, r->pos, ms_between(r->paused_at, now));
      cancel_request(r->shared_from_this());
      continue;
    }
    if (!r->slot_wait && !may_hold(plan.index_of(r->pos))) continue;
    if (busy >= conc() && !take_slot_from_farther(*r)) return;
    log(LogLevel::kDebug, "span %" PRIu64 " resumed at byte %" PRIu64, r->id, r->pos);
    r->state = RequestState::kReceiving;
    r->slot_wait = false;
    if (r->received > 0) r->flow(now);
    r->fetch->resume();
    ++busy;
  }
}

// The automatic look-ahead covers the bandwidth-delay product: what all
// connections bring in twice the first-byte time (its 90th percentile), on
// top of the 2 x concurrency blocks it starts with, up to 64 MiB. Where
// answers are late and each connection fast (an object store), the window
// then reaches far enough for spans to split and for the next span of each
// connection to be sent ahead of time; where answers are prompt it stays as
// it started. It only grows: memory is bounded by the largest it reached.
void Prefetcher::Impl::grow_lookahead() {
  if (cfg.lookahead_blocks || cfg.schedule != Schedule::kWindow) return;
  const std::optional<double> p90 = first_byte_ms.quantile(0.9);
  if (!p90 || conn_rate <= 0) return;  // one first byte is enough to start with
  const double bs = static_cast<double>(plan.block_size());
  const double bytes = 2.0 * conc() * conn_rate * (*p90 / 1000.0);
  const unsigned base = cfg.effective_lookahead();
  const unsigned cap = std::max<unsigned>(base, static_cast<unsigned>((64u << 20) / bs));
  const unsigned want =
      std::min<unsigned>(cap, base + static_cast<unsigned>(std::ceil(bytes / bs)));
  if (want <= lookahead) return;
  log(LogLevel::kInfo,
      "look-ahead %u -> %u blocks (first byte p90 %.0f ms, %.1f MiB/s per connection)", lookahead,
      want, *p90, conn_rate / (1 << 20));
  raise_lookahead(want);
}

// The automatic look-ahead only grows (memory is bounded by the largest it
// reached); a full window grows with it.
void Prefetcher::Impl::raise_lookahead(unsigned want) {
  if (want <= lookahead) return;
  if (window == lookahead) window = want;
  lookahead = want;
}

// The transfer slots go to the spans nearest the reader: with all taken,
// the farthest transfer (past `r`) pauses at its next write so `r` can go
// on. Without that, spans sent far ahead would hold the slots while the
// reader waits for the block in front of it.
bool Prefetcher::Impl::take_slot_from_farther(Request& r) {
  Request* far = nullptr;
  for (Request* s : live) {
    if (s != &r && s->state == RequestState::kReceiving && !s->yield && s->pos > r.pos &&
        (!far || s->pos > far->pos))
      far = s;
  }
  if (!far) return false;
  log(LogLevel::kDebug, "span %" PRIu64 " yields its transfer slot to span %" PRIu64, far->id,
      r.id);
  far->yield = true;
  return true;
}

void Prefetcher::Impl::pause_span(Request& r, bool for_slot) {
  const Clock::time_point now = Clock::now();
  r.state = RequestState::kPaused;
  r.slot_wait = for_slot;
  r.paused_at = now;
  r.pause(now);
  if (!for_slot) interval.lookahead_full = true;
  log(LogLevel::kDebug, "span %" PRIu64 " paused at byte %" PRIu64 ": %s", r.id, r.pos,
      for_slot ? "no transfer slot" : "look-ahead full");
}

// Its claim is in but the range it asked for goes on (it was split, or
// reached a block another span holds): it ends here, quietly.
void Prefetcher::Impl::span_reached_end(Request& r) {
  log(LogLevel::kDebug, "span %" PRIu64 " ends at byte %" PRIu64 ": split", r.id, r.pos);
  r.state = RequestState::kCancelled;
  close_fetch(r);
}

// Span `r` reached the end of its claim, where the span that took the rest
// has no byte yet (its first byte is still to come, maybe late: a heavy
// tail): `r`, flowing already, goes on into that claim and the other is
// cancelled. A split thus never makes a block later than it would have been.
bool Prefetcher::Impl::take_over_next(Request& r) {
  if (r.pos >= r.asked_end) return false;
  Request* next = nullptr;
  for (Request* s : live) {
    if (s != &r && !s->cancelled() && !s->is_hedge && s->pos == r.pos && s->received == 0 &&
        (s->state == RequestState::kWaiting || s->slot_wait)) {
      next = s;
      break;
    }
  }
  if (!next) return false;
  log(LogLevel::kDebug,
      "span %" PRIu64 " ends at byte %" PRIu64 ": taken over by span %" PRIu64
      " (no byte of it came yet)",
      next->id, next->pos, r.id);
  r.end = std::min(next->end, r.asked_end);
  if (Block* b = store.find(plan.index_of(r.pos)); b && b->request.get() == next) {
    cancel_block(*b);  // its hedge too
    b->rival.reset();
    b->request = r.shared_from_this();
  }
  cancel_request(next->shared_from_this());
  return true;
}

// Span `r` reached the end of its claim where nobody claims the range
// after it (a span there was refused, cut or cancelled): it runs on into
// that free range, up to the next claim, as aria2c's connections run on
// into free pieces, instead of ending and leaving it to a new request.
bool Prefetcher::Impl::run_on(Request& r) {
  if (r.pos >= r.asked_end) return false;
  uint64_t next = r.asked_end;
  for (const Request* s : live) {
    if (s == &r || s->cancelled()) continue;
    if (s->pos <= r.pos && r.pos < s->end) return false;  // claimed
    if (s->pos > r.pos) next = std::min(next, s->pos);
  }
  const Block* b = store.find(plan.index_of(r.pos));
  if (b && (b->complete() || b->request || b->range.begin + b->filled != r.pos)) return false;
  log(LogLevel::kDebug, "span %" PRIu64 " runs on at byte %" PRIu64 " into a free range", r.id,
      r.pos);
  r.end = next;
  return true;
}

// Where a span's body goes next: the block at its front, made now if the
// window holds it; a pause where the look-ahead ends.
uint8_t* Prefetcher::Impl::span_area(Request& r, size_t* length) {
  if (r.pos >= r.end && (r.winding_down || (!take_over_next(r) && !run_on(r)))) {
    if (r.pos >= r.asked_end) {
      // All it asked for is in: let the origin find the end of the body,
      // or notice it is longer than asked.
      r.into_scratch = true;
      *length = sizeof r.scratch;
      return r.scratch;
    }
    span_reached_end(r);
    return nullptr;
  }
  if (r.yield) {
    r.yield = false;
    pause_span(r, true);
    return nullptr;
  }
  if (r.received == 0 && r.state == RequestState::kReceiving && !r.http2 &&
      transferring() > conc() && !take_slot_from_farther(r)) {
    pause_span(r, true);
    return nullptr;
  }
  const uint64_t idx = plan.index_of(r.pos);
  Block* b = store.find(idx);
  if (!b) {
    if (!may_hold(idx)) {
      if (r.http2) {
        // Not reading would not hold an HTTP/2 server back (libsoup reads
        // the stream anyway, DESIGN.md): the span ends here instead, and its
        // rest is asked for again when the window reaches it.
        r.end = r.pos;
        span_reached_end(r);
        return nullptr;
      }
      pause_span(r, false);
      return nullptr;
    }
    b = make_block(idx, r.pos);
    if (!b) {
      r.end = r.pos;  // nothing lies there (past the size or its bound)
      span_reached_end(r);
      return nullptr;
    }
    b->request = r.shared_from_this();
  } else if (b->request.get() != &r && b->rival.get() != &r) {
    // Held already: a free incomplete block that stops where this span is
    // goes on with it; anything else ends the span here.
    if (b->complete() || b->request || b->range.begin + b->filled != r.pos) {
      r.end = r.pos;
      span_reached_end(r);
      return nullptr;
    }
    b->request = r.shared_from_this();
  }
  if (b->range.begin + b->filled != r.pos || r.pos >= b->range.end) {
    r.end = r.pos;  // the block ends short of the claim (a size bound): nothing lies past it
    span_reached_end(r);
    return nullptr;
  }
  r.block = idx;
  *length = std::min<uint64_t>(b->range.end, r.end) - r.pos;
  r.area_owner = b->buffer;
  return b->buffer->data() + (r.pos - b->range.begin);
}

// After the reader moved: spans whose front is behind the kept blocks (or
// about to enter a block behind the reader), or (after a jump) past them,
// are cancelled; a forward step keeps the ones sent ahead.
void Prefetcher::Impl::drop_far_spans(uint64_t keep_from, uint64_t keep_to, bool forward) {
  for (Request* r : std::vector<Request*>(live)) {
    if (r->cancelled()) continue;
    const uint64_t f = plan.index_of(r->pos);
    if (kept_elsewhere(f)) {
      // Kept for the other region: its claim ends with that region's window.
      const uint64_t end = (other_region->block + other_region->window) * plan.block_size();
      r->end = std::min(r->end, std::max(end, r->pos));
      if (r->pos >= r->end && r->state == RequestState::kPaused) span_reached_end(*r);
      continue;
    }
    if (cache.is_parked(f)) continue;  // park() ended its claim with the block
    // A span about to enter a block behind the reader would only pause there.
    const bool behind = f < read_block && !store.find(f);
    if (f < keep_from || (!forward && f >= keep_to) || behind)
      cancel_request(r->shared_from_this());
  }
}

// The size is known: no claim runs past it.
void Prefetcher::Impl::clamp_spans(uint64_t size) {
  for (Request* r : live) {
    r->end = std::min(r->end, size);
    r->asked_end = std::min(r->asked_end, size);
  }
}

}  // namespace prefetch
