// Automatic concurrency: the engine's side of concurrency_policy.h. The
// bytes the transfers bring are counted per interval; at its end the policy
// hears what the interval showed (did the reader wait, did the look-ahead
// hold spans back, were all slots busy) and may change the count. A raise
// lets pump() start more spans; a cut (a flat rate, a slow consumer) ends
// the farthest transfers with the block each is filling (their connections
// close, their rest is asked for again when a slot is free). A cut for
// overload comes down to the transfers the origin took, so it ends none:
// the refused ones are what it sheds.

#include <algorithm>
#include <cinttypes>

#include "engine.h"

namespace prefetch {

// An interval holds two first-byte times (median), so a raise's new spans
// bring bytes within it; at least 50 ms (a rate over less is mostly
// noise), at most 1 s. Set when a first byte adds a sample, so the reads
// and writes that end intervals only compare times.
void Prefetcher::Impl::set_interval_length() {
  const double p50 = first_byte_ms.quantile(0.5).value_or(0);
  interval_length =
      std::chrono::milliseconds(std::clamp<int64_t>(static_cast<int64_t>(2 * p50), 50, 1000));
}

void Prefetcher::Impl::measure_interval(size_t n, Clock::time_point now) {
  if (!cfg.auto_concurrency()) return;
  interval.bytes += n;
  // The starting count is a guess with nothing to judge: the first raise
  // comes as soon as the reader waits with every slot busy, not an interval
  // later (the interval after it judges it). This runs per chunk on the I/O
  // thread: the slots are counted (a walk of the live requests) only once
  // an interval is due or that first raise may be.
  const bool due = now - interval.from >= interval_length;
  if (!due && !first_raise_may_come(now)) return;
  const bool slots_full = spans_running() >= conc();
  if (!due && !slots_full) return;
  judge_interval(now, slots_full);
}

// The first answer to a request came: until now the reader waited with the
// other slots shut (spans are laid out once the size is known). The count
// is still the starting guess, so the first raise may come now, before
// pump() opens the slots, with the slots counted as full when the resource
// holds more than the look-ahead: the spans are then laid out once for the
// raised count (as a fixed count lays them out) rather than for the guess
// and again, unevenly, for the raise a chunk later.
void Prefetcher::Impl::first_answer_came(Clock::time_point now) {
  if (!cfg.auto_concurrency() || !first_raise_may_come(now)) return;
  const std::optional<uint64_t> blocks = block_count();
  if (blocks && *blocks <= read_block + window_now()) return;
  judge_interval(now, true);
}

// The count is still the starting guess and the reader has waited in this
// interval: the first raise may come before the interval is due.
bool Prefetcher::Impl::first_raise_may_come(Clock::time_point now) const {
  return control.why() == ConcurrencyWhy::kStart && interval.reader_waited && now > interval.from;
}

// The interval ends at `now`: the policy hears what it showed.
void Prefetcher::Impl::judge_interval(Clock::time_point now, bool slots_full) {
  ConcurrencySample s;
  s.seconds = std::chrono::duration<double>(now - interval.from).count();
  s.bytes = interval.bytes;
  s.reader_waited = interval.reader_waited;
  s.judge_seconds = std::chrono::duration<double>(interval_length).count();
  s.lookahead_full = interval.lookahead_full;
  for (const Request* r : live) {
    if (r->state == RequestState::kPaused && !r->slot_wait) s.lookahead_full = true;
  }
  s.slots_full = slots_full;
  const unsigned before = conc();
  interval = Interval{now};
  if (control.on_sample(s, now)) {
    log(LogLevel::kInfo, "concurrency %u -> %u: %s (%.1f MiB/s over %.0f ms)", before, conc(),
        to_string(control.why()), static_cast<double>(s.bytes) / s.seconds / (1 << 20),
        1000 * s.seconds);
    concurrency_changed(before);
  }
}

// The spans that take a slot of the concurrency (not hedges, not those sent
// ahead on a connection still busy).
unsigned Prefetcher::Impl::spans_running() const {
  unsigned n = 0;
  for (const Request* r : live) n += r->is_hedge || r->ahead || r->cancelled() ? 0 : 1;
  return n;
}

namespace {

// 429 and 503: the origin refused the request for load.
bool refused_for_load(const Error& e) { return e.http_status == 429 || e.http_status == 503; }

}  // namespace

// 429 and 503 say the origin wants less; so does a refused connection once
// it has answered before.
void Prefetcher::Impl::note_overload(const Error& e, Clock::time_point sent) {
  if (refused_for_load(e)) refuses_load = true;
  if (!cfg.auto_concurrency()) return;
  const bool refused = e.kind == ErrorKind::kOpenRead && e.transient && known.opened;
  if (!refused_for_load(e) && !refused) return;
  const unsigned before = conc();
  const Clock::time_point now = Clock::now();
  if (!control.on_overload(e.retry_after, sent, now, spans_running())) return;
  interval = Interval{now};
  log(LogLevel::kInfo, "concurrency %u -> %u: %s (%s)", before, conc(), to_string(control.why()),
      e.message.c_str());
  concurrency_changed(before);
}

// With automatic concurrency, a span refused for load (429, 503) while
// others transfer is not retried after Retry-After with its range waiting
// behind it: the cut left fewer spans, and its range goes to them (a span
// reaching it goes on into it, a free slot asks for it). With nothing else
// transferring it is retried as any failure is, after Retry-After.
bool Prefetcher::Impl::hand_back_refused(Request& r, Block* b, const Error& e) {
  if (!cfg.auto_concurrency() || r.is_stream() || r.is_hedge || !known.opened) return false;
  if (!refused_for_load(e) || transferring() == 0) return false;
  if (b) forget_unfilled(*b);
  log(LogLevel::kDebug, "span %" PRIu64 " refused (%d): its range goes to the running spans", r.id,
      e.http_status);
  return true;
}

void Prefetcher::Impl::concurrency_changed(unsigned before) {
  const unsigned to = conc();
  if (to > before) {
    // Each transfer needs room in the look-ahead (2 blocks each, as a fixed
    // concurrency starts with).
    if (!cfg.lookahead_blocks) raise_lookahead(2 * to);
    return pump();
  }
  // Fewer: the farthest spans end, those sent ahead too, keeping `to` of
  // each. One with no byte yet ends now. For a flat rate the others finish
  // their claim within the look-ahead (what they were sent for; only they
  // are not replaced); for a slow consumer each ends with the block it
  // fills, so no byte it brought is thrown away.
  for (const bool ahead : {false, true}) {
    std::vector<Request*> spans;
    for (Request* r : live)
      if (!r->is_hedge && !r->cancelled() && !r->winding_down && r->ahead == ahead)
        spans.push_back(r);
    if (spans.size() <= to) continue;
    std::sort(spans.begin(), spans.end(),
              [](const Request* a, const Request* b) { return a->pos < b->pos; });
    for (size_t i = to; i < spans.size(); ++i) wind_down(*spans[i], to);
  }
}

void Prefetcher::Impl::wind_down(Request& r, unsigned to) {
  const ByteRange block = plan.range(plan.index_of(r.pos));
  if (r.first_byte != Clock::time_point{} && r.pos > block.begin && r.pos < r.end) {
    uint64_t until = block.end;
    if (control.why() == ConcurrencyWhy::kRateFlat)
      until = std::max(until, (read_block + window_now()) * plan.block_size());
    r.end = std::min(r.end, until);
    r.winding_down = true;
    log(LogLevel::kDebug,
        "span %" PRIu64 " winds down: it ends at byte %" PRIu64 ", concurrency %u", r.id, r.end,
        to);
    return;
  }
  log(LogLevel::kDebug, "span %" PRIu64 " ends at byte %" PRIu64 ": concurrency %u", r.id, r.pos,
      to);
  cancel_request(r.shared_from_this());
}

}  // namespace prefetch
