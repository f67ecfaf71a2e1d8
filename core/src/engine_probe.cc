// Is the network back? While every request the engine has out is stalled
// (no byte for a while, or no first byte long after the origin's usual
// time) and the reader waits, a probe goes out once a second: a small range
// request (kProbeBytes at the reader) on a fresh connection with a short
// deadline, the way a browser probes a network that dropped. The stalled
// requests are left alone (they time out and retry as ever, so an outage
// longer than the element's patience still ends in its error); when a probe
// brings all its bytes in time the origin is reachable again, and every
// stalled request is cancelled at once and asked for again on a fresh
// connection, instead of waiting out its timeout on a connection the outage
// killed. A head alone proves nothing: an origin that answers at once and
// then trickles (which the low-speed limit fails) must not pass for one
// that came back.
//
// Probes take no slot of the host budget (the slots are held by the stalled
// requests they would replace) and are never retried: one that fails or
// passes its deadline is dropped.

#include <algorithm>
#include <cinttypes>

#include "engine.h"

namespace prefetch {

namespace {

// A request silent this long mid-body, or past its first-byte time by
// this much, counts as stalled; a probe goes at most this often.
constexpr std::chrono::milliseconds kSilence{1000};
// Probes out at once, at most; the bytes each asks for.
constexpr size_t kMaxProbes = 2;
constexpr uint64_t kProbeBytes = 4096;
// After an outage the pool's idle connections may be dead ones: requests
// sent within this time after the probe's answer open their own (libsoup
// drops an idle connection after a minute).
constexpr std::chrono::seconds kFreshAfterOutage{60};

}  // namespace

class Probe : public FetchListener, public std::enable_shared_from_this<Probe> {
 public:
  Probe(Prefetcher::Impl* impl, uint64_t id) : impl_(impl), id(id), sent(Clock::now()) {}

  bool on_head(const ResponseHead& head) override { return head.status == 206; }
  uint8_t* write_area(size_t* length) override {
    *length = got < expected ? static_cast<size_t>(expected - got) : sizeof scratch;
    return scratch;
  }
  void on_data(size_t n) override {
    got += n;
    if (got < expected) return;
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->probe_answered(*this);
  }
  void on_done(const Error*) override {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->probe_done(*this);
  }

  Prefetcher::Impl* impl_;
  const uint64_t id;
  const Clock::time_point sent;
  std::shared_ptr<Fetch> fetch;
  bool cancelled = false;
  uint64_t expected = 0;  // the bytes it asked for
  uint64_t got = 0;       // on the origin's thread only
  uint8_t scratch[kProbeBytes];
};

// How long a request may wait for its first byte before it counts as
// stalled: several times the origin's usual (95th percentile) first byte,
// at least kSilence. Without a first byte measured, any wait is normal.
std::optional<std::chrono::milliseconds> Prefetcher::Impl::first_byte_limit() const {
  const std::optional<double> p95 = first_byte_ms.quantile(0.95);
  if (!p95) return std::nullopt;
  return std::max(kSilence, std::chrono::milliseconds(static_cast<int64_t>(4 * *p95)));
}

// Whether request `r` counts as stalled at `now` (see the top of the file).
bool Prefetcher::Impl::stalled(const Request& r, Clock::time_point now) const {
  if (r.state == RequestState::kWaiting) {
    const std::optional<std::chrono::milliseconds> limit = first_byte_limit();
    return limit && now - r.started >= *limit;
  }
  const Clock::time_point last = r.last_byte == Clock::time_point{} ? r.started : r.last_byte;
  return now - last >= kSilence;
}

// True if the engine has requests out and every one of them is stalled.
// Paused spans (flow control) and queued ones wait for us, not the origin;
// one in its retry backoff has not been sent yet.
bool Prefetcher::Impl::all_stalled(Clock::time_point now) const {
  bool any = false;
  for (const Request* r : live) {
    if (r->cancelled() || r->queued || r->state == RequestState::kPaused) continue;
    if (r->started > now || !stalled(*r, now)) return false;
    any = true;
  }
  return any;
}

// The reader waits (called from its wait, mu held): drops probes past their
// deadline, and sends one when every request is stalled.
void Prefetcher::Impl::maybe_probe() {
  if (!cfg.probe || known.stream_mode || !known.opened || !waiting_since) return;
  const Clock::time_point now = Clock::now();
  const std::chrono::milliseconds deadline = first_byte_limit().value_or(kSilence);
  for (const auto& p : probes) {
    if (p->cancelled || now - p->sent < deadline) continue;
    log(LogLevel::kDebug, "probe %" PRIu64 ": no answer within its deadline", p->id);
    p->cancelled = true;
    if (p->fetch) p->fetch->cancel();
  }
  if (now - *waiting_since < kSilence || now - last_probe < kSilence) return;
  if (probes.size() >= kMaxProbes || !all_stalled(now)) return;
  const uint64_t end = std::min(read_pos + kProbeBytes, plan.size().value_or(UINT64_MAX));
  if (end <= read_pos) return;
  last_probe = now;
  auto p = std::make_shared<Probe>(this, ++counts.probes_sent);
  p->expected = end - read_pos;
  probes.push_back(p);
  RangeRequest range;
  range.begin = read_pos;
  range.end = end;
  range.fresh_connection = true;
  log(LogLevel::kInfo,
      "probe %" PRIu64
      ": every request is stalled, the reader has waited %.1f s: asking bytes=%" PRIu64 "-%" PRIu64
      " on a fresh connection (deadline %" PRId64 " ms)",
      p->id, ms_between(*waiting_since, now) / 1000.0, read_pos, end - 1,
      static_cast<int64_t>(deadline.count()));
  p->fetch = origin->start(range, p);
}

// A probe brought all its bytes: the origin is reachable. Every stalled
// request is cancelled (its connection is likely dead); pump() asks for the
// blocks again as their on_done come, on fresh connections.
void Prefetcher::Impl::probe_answered(Probe& p) {
  if (p.cancelled || closed) return;
  const Clock::time_point now = Clock::now();
  std::vector<Request*> dead;
  for (Request* r : live)
    if (!r->cancelled() && !r->queued && r->state != RequestState::kPaused && stalled(*r, now))
      dead.push_back(r);
  log(LogLevel::kInfo,
      "probe %" PRIu64
      " answered in %.0f ms: the origin is back; asking again for %zu stalled "
      "request(s)",
      p.id, ms_between(p.sent, now), dead.size());
  fresh_until = now + kFreshAfterOutage;
  for (Request* r : dead) {
    log(LogLevel::kDebug, "span %" PRIu64 " at byte %" PRIu64 " is stalled: cancelled", r->id,
        r->pos);
    cancel_request(r->shared_from_this());
  }
  cancel_probes();  // the others have done their work too
}

void Prefetcher::Impl::cancel_probes() {
  for (const auto& p : probes) {
    if (p->cancelled) continue;
    p->cancelled = true;
    if (p->fetch) p->fetch->cancel();
  }
}

void Prefetcher::Impl::probe_done(Probe& p) {
  probes.erase(std::remove_if(probes.begin(), probes.end(),
                              [&](const std::shared_ptr<Probe>& q) { return q.get() == &p; }),
               probes.end());
  cv.notify_all();  // close() waits for the last one
}

}  // namespace prefetch
