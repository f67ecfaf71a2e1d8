// Spans: one range request over a run of blocks (span_policy.h decides
// which). Its body fills the blocks in order, each made when the body
// reaches it; where the look-ahead ends the span pauses (it stops reading,
// TCP holds the server back) until the reader frees blocks. A connection's
// next span may be sent ahead while its current one still transfers, when
// the first-byte time says the connection would otherwise sit idle; such
// requests wait for their first byte beside the transfers, but transfers at
// once never exceed `concurrency` (a span whose answer comes early waits
// for a slot). This file starts spans and sizes the look-ahead; a span's
// body as it flows (its pauses, resumes and end) is in engine_flow.cc.

#include <algorithm>
#include <cinttypes>
#include <cmath>

#include "engine.h"

namespace prefetch {

namespace {

constexpr std::chrono::milliseconds kCloseGrace{50};

}  // namespace

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
  in.end_at_horizon = exact_reads || multiplexed();
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
  if (!cfg.max_request_bytes && !exact_reads && !multiplexed())
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
  if (b && (b->complete() || b->request || !b->rivals.empty())) return false;
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
