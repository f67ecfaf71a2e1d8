// How a request's failure ends: another attempt after a backoff
// (retry_policy), a hedge taking over, a parked block dropped, or the
// transfer's error: at once, or (a permanent failure ahead of the reader)
// when the reader gets there, so that no byte before it is lost.

#include <cinttypes>

#include "engine.h"

namespace prefetch {

// A request failed (not by our cancel): a parked block is dropped, a hedge
// takes over, or another attempt follows after a backoff; else the transfer
// fails.
void Prefetcher::Impl::failed(Request& r, Block* b, Error e) {
  note_overload(e, r.started);
  if (hand_back_refused(r, b, e)) return;
  if (b && cache.is_parked(b->index)) {
    // Parked blocks are speculative: no retry; a reader coming back refetches.
    log(LogLevel::kDebug, "block %" PRIu64 " (parked) dropped: %s", b->index, e.message.c_str());
    cancel_block(*b);  // a hedge, if any
    store.erase(b->index);
    cache.unpark();
    return;
  }
  if (b && !b->rivals.empty()) {
    log(LogLevel::kDebug, "block %" PRIu64 ": %s; its hedge takes over", b->index,
        e.message.c_str());
    b->request = std::move(b->rivals.front());  // the first to go takes over
    b->rivals.erase(b->rivals.begin());
    return;
  }
  if (e.stalled) ++counts.stalls;
  const unsigned attempts = r.in_a_row(&e);
  const RetryDecision d = decide_retry(retry, e, attempts, rng());
  if (d.retry) {
    ++counts.retries;
    log(LogLevel::kInfo, "%s %" PRIu64 " at byte %" PRIu64 ": %s; retry %u in %" PRId64 " ms",
        r.is_stream() ? "stream" : "span", r.id, r.pos, e.message.c_str(), attempts,
        static_cast<int64_t>(d.wait.count()));
    if (r.is_stream())
      launch_stream(r.pos, d.wait, attempts + 1);
    else
      relaunch(r, d.wait, attempts + 1);
    return;
  }
  if ((e.transient || e.kind == ErrorKind::kCancelled) && !known.opened &&
      e.kind == ErrorKind::kRead)
    e.kind = ErrorKind::kOpenRead;
  if (r.is_stream()) return fail(std::move(e));
  fail_ahead(r.pos, std::move(e));
}

// A request failed for good at byte `pos`. If the reader is not there yet,
// nothing is lost: the bytes before `pos` still come (requests past it end),
// and the error comes with the read that reaches it. Only a permanent
// failure waits so (a 404, a 416): a transient one that used up its retries
// (an outage) ends the transfer at once, as the patience promises. A
// changed resource fails at once too (the bytes held may be of either
// version), and so does a failure before the first answer (open() waits
// for one or the other).
void Prefetcher::Impl::fail_ahead(uint64_t pos, Error e) {
  if (!known.opened || pos <= read_pos || e.transient || e.kind == ErrorKind::kResourceChanged)
    return fail(std::move(e));
  if (failure_ahead && failure_ahead->pos <= pos) return;
  log(LogLevel::kInfo, "byte %" PRIu64 " failed (%s: %s): the bytes before it come first", pos,
      to_string(e.kind), e.message.c_str());
  for (Request* r : std::vector<Request*>(live))
    if (r->pos >= pos) cancel_request(r->shared_from_this());
  clamp_spans(pos);
  failure_ahead = FailureAhead{pos, std::move(e)};
  cv.notify_all();
}

void Prefetcher::Impl::fail(Error e) {
  if (fatal) return;
  log(LogLevel::kError, "fatal: %s (status %d): %s", to_string(e.kind), e.http_status,
      e.message.c_str());
  fatal = std::move(e);
  cancel_all();
  cv.notify_all();
}

}  // namespace prefetch
