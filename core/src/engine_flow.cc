// A span's body as it flows: where its bytes go (span_area: the block at
// its front, made when the body reaches it), where it pauses (the
// look-ahead is full, or no transfer slot is free) and resumes, and how it
// ends at the end of its claim: quietly, or running on into the next claim
// or a free range. Spans start in engine_span.cc.

#include <algorithm>
#include <cinttypes>

#include "engine.h"

namespace prefetch {

namespace {

// A rate is told once this much came over this long.
constexpr uint64_t kRateMinBytes = 32 * 1024;
constexpr double kRateMinSeconds = 0.01;

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
        // the stream anyway: docs/design.md, HTTP/2): the span ends here
        // instead, and its rest is asked for again when the window reaches it.
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
  } else if (b->request.get() != &r && !b->is_rival(&r)) {
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
    cancel_block(*b);  // its rivals too
    b->rivals.clear();
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

}  // namespace prefetch
