// One request's life in the engine: it starts, its head is checked
// (response_check), its body fills blocks, it ends (a failure goes on in
// engine_failure.cc). These run on the origin's thread (each callback takes
// the lock) or from the window's glue.

#include <glib.h>

#include <algorithm>
#include <cinttypes>

#include "engine.h"
#include "planted_race.h"
#include "prefetch/http_parse.h"

namespace prefetch {

// ---- Request: forwards to the engine ----

void Request::on_sent(const SentInfo& info) { impl_->on_sent(*this, info); }
bool Request::on_head(const ResponseHead& head) { return impl_->on_head(*this, head); }
uint8_t* Request::write_area(size_t* length) { return impl_->write_area(*this, length); }
void Request::on_data(size_t n) { impl_->on_data(*this, n); }
void Request::on_done(const Error* error) { impl_->on_done(*this, error); }

// ---- starting and cancelling ----

// Starts the span `a` describes (see SpanAsk).
std::shared_ptr<Request> Prefetcher::Impl::launch(const SpanAsk& a) {
  auto req = std::make_shared<Request>(this, plan.index_of(a.pos), a.pos, RequestKind::kSpan);
  req->id = next_span_id();
  req->end = a.end;
  req->asked_end = std::max(a.end, a.asked_end);
  const uint64_t end = req->asked_end;
  req->attempts = a.attempts;
  req->is_hedge = a.hedge_of != nullptr;
  req->is_race = a.race;
  req->ahead = a.ahead;
  req->range.begin = a.pos;
  if (end != kOpenEnd) req->range.end = end;
  req->range.delay = a.delay;
  if (a.block && a.hedge_of)
    a.block->rivals.push_back(req);
  else if (a.block)
    a.block->request = req;
  ++in_flight;
  live.push_back(req.get());
  if (a.race)
    ++counts.races_sent;
  else if (a.hedge_of)
    ++counts.hedges_sent;
  else
    ++counts.requests_started;
  const std::string last = end == kOpenEnd ? "" : std::to_string(end - 1);
  std::string note = a.ahead ? " (ahead)" : "";
  if (a.hedge_of)
    note = std::string(a.race ? " (race twin of span " : " (hedge of span ") +
           std::to_string(a.hedge_of->id) + ")";
  log(LogLevel::kDebug,
      "span %" PRIu64 " requested bytes=%" PRIu64 "-%s blocks %" PRIu64 "-%s attempt %u%s", req->id,
      a.pos, last.c_str(), plan.index_of(a.pos), last_block(end, plan.block_size()).c_str(),
      a.attempts, note.c_str());
  send(req);
  return req;
}

// A span's rest [r.pos, r.end) again, after `delay`: a retry, or the rest of
// a short answer. Nothing if the block there is another span's now.
void Prefetcher::Impl::relaunch(Request& r, std::chrono::milliseconds delay, unsigned attempts) {
  Block* b = store.find(plan.index_of(r.pos));
  if (b && b->request.get() != &r &&
      (b->complete() || b->request || b->range.begin + b->filled != r.pos))
    return;
  if (b && b->request.get() == &r) b->request.reset();
  SpanAsk a;
  a.pos = r.pos;
  a.end = r.end;
  a.asked_end = r.asked_end;
  a.block = b;
  a.delay = delay;
  a.attempts = attempts;
  launch(a);
}

// What later requests send as If-Range: a strong ETag, else the
// Last-Modified date (a weak ETag may not be used for ranges, RFC 9110).
std::string Prefetcher::Impl::if_range() const {
  if (!known.etag.empty() && !is_weak_etag(known.etag)) return known.etag;
  return known.last_modified;
}

void Prefetcher::Impl::cancel_request(const std::shared_ptr<Request>& r) {
  if (!r || r->cancelled()) return;
  // A request with all its bytes may still read the end of its body: with
  // the end read, libsoup hands the connection back for the next request
  // instead of closing it.
  const bool full = r->state == RequestState::kFull || r->state == RequestState::kCut;
  r->state = full ? RequestState::kDraining : RequestState::kCancelled;
  if (r->queued) return unqueue(r);
  // Its connection closes unless the answer's end is about to be read.
  if (r->pos < r->asked_end) return close_fetch(*r);
  if (r->fetch) r->fetch->cancel();
}

// Cancels `r`'s transfer mid-answer: its connection closes (see close_grace).
void Prefetcher::Impl::close_fetch(Request& r) {
  if (!r.fetch) return;
  closed_at = Clock::now();
  r.fetch->cancel();
}

// Block `b` lost its request: unless complete, raced by a hedge or parked,
// nobody fills it now and it goes (asked for again when wanted). True if
// it went.
bool Prefetcher::Impl::forget_unfilled(Block& b) {
  if (b.complete() || !b.rivals.empty() || cache.is_parked(b.index)) return false;
  store.erase(b.index);
  return true;
}

void Prefetcher::Impl::cancel_block(Block& b) {
  cancel_request(b.request);
  for (const std::shared_ptr<Request>& rival : b.rivals) cancel_request(rival);
}

void Prefetcher::Impl::cancel_all() {
  store.drop_outside(0, 0, [&](Block& b) { cancel_block(b); });
  for (Request* r : std::vector<Request*>(live)) cancel_request(r->shared_from_this());
  cache.clear();
  cancel_request(stream);
  stream.reset();
}

// ---- the head ----

bool Prefetcher::Impl::on_head(Request& r, const ResponseHead& head) {
  std::lock_guard<std::mutex> lock(mu);
  if (r.cancelled() || fatal) return false;
  // What the answers so far established, with the size the plan holds.
  KnownResource seen = known;
  seen.size = plan.size();
  ResponseVerdict v = check_response(r.pos, seen, head, g_get_real_time() / G_USEC_PER_SEC);
  if (v.verdict == Verdict::kFatal) {
    fail(std::move(*v.error));
    return false;
  }
  if (v.verdict == Verdict::kReject) {
    r.failure = std::move(v.error);
    return false;
  }
  if (!v.etag.empty()) known.etag = v.etag;
  if (!v.last_modified.empty()) known.last_modified = v.last_modified;
  switch (v.verdict) {
    case Verdict::kAccept: {
      if (v.size) set_size(*v.size);
      if (fatal || r.cancelled()) return false;
      const bool first_answer = !known.opened;
      known.opened = known.ranges_ok = true;
      keep_resource(head);
      r.state = RequestState::kReceiving;
      r.from_disk = head.from_disk;
      // The origin's wait ends with its answer: the first byte is timed
      // here, not when a span that waits for a transfer slot reads it.
      note_first_byte(r, Clock::now());
      r.http2 = head.http2;
      if (head.http2 && !http2) {
        http2 = true;
        log(LogLevel::kInfo, "HTTP/2: spans end at the look-ahead");
        const uint64_t window_end = (read_block + window_now()) * plan.block_size();
        for (Request* s : live) s->end = std::min(s->end, std::max(window_end, s->pos));
      }
      r.promised_end = head.last + 1;
      settle_hedge(r);
      cv.notify_all();
      if (first_answer) first_answer_came(r.first_byte);
      pump();  // the first answer opens the other slots
      return true;
    }
    case Verdict::kStream:
      keep_resource(head);
      enter_stream_mode(r, v.size);
      return !fatal;
    case Verdict::kPastEnd:
      known.opened = true;
      if (v.size) set_size(*v.size);
      if (v.bound) end_at_most(r, *v.bound);
      cv.notify_all();
      return false;
    default:
      return false;
  }
}

// Request `r`'s answer came at `now`: one first-byte time.
void Prefetcher::Impl::note_first_byte(Request& r, Clock::time_point now) {
  r.first_byte = now;
  if (r.from_disk) {
    log(LogLevel::kDebug, "span %" PRIu64 " answered from disk", r.id);
    return;  // the origin's first-byte times decide races, splits and probes
  }
  const double ms = ms_between(r.started, now);
  first_byte_ms.add(ms);
  if (cfg.auto_concurrency()) set_interval_length();
  first_byte_total_ms += ms;
  ++first_bytes;
  if (!r.is_stream()) log(LogLevel::kDebug, "span %" PRIu64 " first-byte after %.0f ms", r.id, ms);
}

// An accepted answer's head, kept for applications when it is the first, or
// the first from another URI (a new redirect target).
void Prefetcher::Impl::keep_resource(const ResponseHead& head) {
  if (resource.serial && head.uri == resource.head.uri) return;
  resource.head = head;
  ++resource.serial;
}

// A 416 without a size for request `r`: nothing exists from `bound` on. The
// request ends quietly; its block goes if it holds nothing before the bound.
void Prefetcher::Impl::end_at_most(Request& r, uint64_t bound) {
  size_bound = size_bound ? std::min(*size_bound, bound) : bound;
  log(LogLevel::kDebug, "nothing at byte %" PRIu64 ": the size is at most that", bound);
  r.state = RequestState::kCancelled;  // its on_done is no failure
  Block* b = store.find(r.block);
  if (b && b->request.get() == &r && b->filled == 0 && b->range.begin >= *size_bound) {
    cancel_block(*b);
    store.erase(b->index);
  }
  settle_bound();
}

// ---- the body ----

uint8_t* Prefetcher::Impl::write_area(Request& r, size_t* length) {
  std::lock_guard<std::mutex> lock(mu);
  *length = 0;
  r.into_scratch = false;
  r.area_owner.reset();
  if (r.cancelled() || fatal) {
    // One read only, to find the end of the body: a longer body is cut anyway.
    if (r.state != RequestState::kDraining && r.state != RequestState::kFull &&
        r.state != RequestState::kCut)
      return nullptr;
    r.state = RequestState::kCancelled;
    r.into_scratch = true;
    *length = sizeof r.scratch;
    return r.scratch;
  }
  if (r.is_stream()) return stream_area(r, length);
  return span_area(r, length);
}

// A block's buffer is only ever appended to, and goes back to its pool only
// once no one holds it: what was written in it stays while it is held.
std::shared_ptr<const void> Request::area_keeper() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (into_scratch) return nullptr;
  return area_owner;
}

void Prefetcher::Impl::on_data(Request& r, size_t n) {
  planted::planted_race_write();
  std::lock_guard<std::mutex> lock(mu);
  std::shared_ptr<BlockBuffer> area = std::move(r.area_owner);
  counts.bytes_received += n;
  if (r.cancelled() || fatal) return;
  if (r.into_scratch) {
    if (!r.is_stream() || (plan.size() && r.pos >= *plan.size())) {
      log(LogLevel::kWarning, "span %" PRIu64 ": body longer than its range, cut", r.id);
      r.state = RequestState::kCut;
      close_fetch(r);
    } else {
      r.pos += n;  // skipping towards the reader in stream mode
    }
    return;
  }
  Block* b = store.find(r.block);
  if (!b || b->buffer != area) return;  // dropped (and maybe re-made) meanwhile
  const Clock::time_point now = Clock::now();
  if (r.first_byte == Clock::time_point{}) note_first_byte(r, now);
  r.flow(now);
  r.last_byte = now;
  if (b->filled == 0) {
    b->first_byte = now;
    log(LogLevel::kDebug, "block %" PRIu64 " first-byte", b->index);
  }
  b->filled += n;
  r.pos += n;
  r.received += n;
  rate.add(n, now);
  bool repump = false;
  if (!r.rate_known && !r.from_disk && r.rate(now) > 0) {
    r.rate_known = true;  // the span policy can tell now whether to split it
    if (conn_rate <= 0) conn_rate = r.rate(now);
    repump = true;
  }
  // At the end of its claim a span ends in span_area (or takes over the
  // next claim); with all it asked for, it reads on to the end of body.
  if (!r.is_stream() && r.pos >= r.end && r.pos >= r.asked_end) r.state = RequestState::kFull;
  if (b->filled == b->range.length()) {
    b->state = BlockState::kComplete;
    ++counts.blocks_fetched;
    if (b->request.get() == &r && !r.is_stream()) b->request.reset();
    if (cache.is_parked(b->index)) cache.parked_complete();
    log(LogLevel::kDebug, "block %" PRIu64 " complete %" PRIu64 " bytes from %s", b->index,
        b->range.length(), r.from_disk ? "disk" : "the origin");
    if (const double v = r.from_disk ? 0 : r.rate(now); v > 0) {
      conn_rate = conn_rate > 0 ? 0.8 * conn_rate + 0.2 * v : v;
      grow_lookahead();
    }
    cv.notify_all();
    repump = true;
  } else if (b->index == read_block && b->range.begin + b->filled >= gather_until) {
    cv.notify_all();  // the reader may take the head block's new bytes
  }
  if (size_bound && b->range.begin + b->filled == *size_bound) settle_bound();
  measure_interval(r.from_disk ? 0 : n, now);  // the concurrency judges the origin
  if (repump && !r.is_stream()) pump();
}

// ---- the end ----

void Prefetcher::Impl::on_done(Request& r, const Error* error) {
  std::lock_guard<std::mutex> lock(mu);
  r.area_owner.reset();
  release_slot(r);
  --in_flight;
  live.erase(std::remove(live.begin(), live.end(), &r), live.end());
  r.pause(Clock::now());
  if (std::shared_ptr<Request> next = r.next.lock()) next->ahead = false;  // it has the slot now
  if (r.is_stream())
    log(LogLevel::kDebug, "stream ends at byte %" PRIu64 "%s: %s", r.pos,
        r.cancelled() ? " (cancelled)" : "", error ? error->message.c_str() : "end of body");
  if (stream.get() == &r) stream.reset();
  Block* b = r.is_stream() ? nullptr : store.find(r.block);
  if (b && b->is_rival(&r)) {
    // A hedge that ended before it won: the main request carries on. If
    // that went before it (all cancelled), nobody fills the block: it goes.
    b->take_rival(&r);
    const Error* why = r.failure ? &*r.failure : error;  // a refused head, or the transfer's
    if (!r.cancelled() && why) {
      log(LogLevel::kDebug, "block %" PRIu64 " %s failed: %s", b->index,
          r.is_race ? "race twin" : "hedge", why->message.c_str());
      note_overload(*why, r.started);  // a 503 or 429 to a twin is load, as to any request
    }
    if (!b->request) forget_unfilled(*b);
    cv.notify_all();
    return pump();
  }
  if (b && b->request.get() != &r) b = nullptr;  // the block was dropped and re-made
  if (b) {
    b->request.reset();
    if (r.cancelled() && forget_unfilled(*b)) b = nullptr;
  }
  if (r.cancelled() || closed || fatal) {
    cv.notify_all();
    return pump();
  }
  Error e;
  switch (body_outcome(r, b, error, &e)) {
    case Outcome::kDone:
      break;
    case Outcome::kShort:
      // A subset of the range asked, all of it there: progress, not a
      // failure. The rest is asked for at once, no retry counted.
      log(LogLevel::kDebug,
          "span %" PRIu64 ": the answer ended at byte %" PRIu64 " as its range said; asking on",
          r.id, r.pos);
      if (size_bound && r.pos >= *size_bound)
        settle_bound();
      else
        relaunch(r, std::chrono::milliseconds(0), r.in_a_row(nullptr));
      break;
    case Outcome::kFailed:
      failed(r, b, std::move(e));
      break;
  }
  cv.notify_all();
  pump();
}

// How a request that was not cancelled ended: with all its bytes (kDone;
// a stream without a size learns it here), with all its answer promised but
// less than its block (kShort: a 206 may carry a subset), or failed (the
// error in `failure`).
Prefetcher::Impl::Outcome Prefetcher::Impl::body_outcome(Request& r, Block*& b, const Error* error,
                                                         Error* failure) {
  const auto failed_with = [&](Error e) {
    *failure = std::move(e);
    return Outcome::kFailed;
  };
  if (r.failure) return failed_with(*r.failure);
  // A cut body ends with our own cancel: that is its clean end.
  if (error && !(error->kind == ErrorKind::kCancelled && r.state == RequestState::kCut))
    return failed_with(*error);
  const Error ended_early = make_error(ErrorKind::kRead, 0, "The origin's body ended early", true);
  if (r.is_stream()) {
    if (!plan.size()) {
      set_size(r.pos);
      if (Block* last = store.find(plan.index_of(r.pos ? r.pos - 1 : 0))) {
        last->range.end = plan.range(last->index).end;
        if (last->filled == last->range.length()) last->state = BlockState::kComplete;
      }
    } else if (r.pos < *plan.size()) {
      return failed_with(ended_early);
    }
    return Outcome::kDone;
  }
  if (r.pos >= r.end) return Outcome::kDone;
  if (r.promised_end && r.pos == *r.promised_end) return Outcome::kShort;
  return failed_with(ended_early);
}

}  // namespace prefetch
