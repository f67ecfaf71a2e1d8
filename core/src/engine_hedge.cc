// Late first bytes (hedge_policy.h decides, this file acts): the request
// the reader waits on at the start, or after a seek or a jump, gets twins on
// other connections when its first byte is late (the race), and a block near
// the reader whose first byte is far later than usual gets one second
// request (the hedge). A twin or a hedge asks for the same bytes and writes
// into the same block: the first answer wins (settle_hedge), the others are
// cancelled, so racing adds requests but no memory.

#include <cinttypes>
#include <map>

#include "engine.h"

namespace prefetch {

// ---- the race ----

// Request `r`'s head went out (the origin's thread): its first-byte wait on
// the origin's side starts now, on a connection that took `info.setup` to
// open.
void Prefetcher::Impl::on_sent(Request& r, const SentInfo& info) {
  std::lock_guard<std::mutex> lock(mu);
  r.sent_at = Clock::now();
  if (info.setup) {
    const double ms = std::chrono::duration<double, std::milli>(*info.setup).count();
    r.setup_ms = ms;
    setup_ms = setup_ms ? std::min(*setup_ms, ms) : ms;
  }
  if (!r.is_stream() && r.setup_ms)
    log(LogLevel::kLog, "span %" PRIu64 " went out on a %s connection (opened in %.1f ms)", r.id,
        info.reused ? "reused" : "new", *r.setup_ms);
  // A reader waiting on it times its race from here.
  if (waiting_since && plan.index_of(r.pos) == read_block) cv.notify_all();
}

// The request whose first byte the reader waits for: the one that fills
// the reader's block from its start, sent and still without an answer.
Request* Prefetcher::Impl::reader_request() {
  const Block* b = store.find(read_block);
  if (b && b->complete()) return nullptr;
  for (Request* r : live) {
    if (r->is_hedge || r->cancelled() || r->is_stream() || r->queued ||
        r->state != RequestState::kWaiting || plan.index_of(r->pos) != read_block)
      continue;
    if (b && b->request.get() != r) continue;
    return r;
  }
  return nullptr;
}

RaceInput Prefetcher::Impl::race_input(const Request& r, Clock::time_point now) const {
  RaceInput in;
  in.twins_sent = race_twins;
  in.since_start_ms = ms_between(r.started, now);
  if (r.sent_at != Clock::time_point{}) in.since_sent_ms = ms_between(r.sent_at, now);
  in.setup_ms = r.setup_ms ? r.setup_ms : setup_ms;
  if (race_twins > 0) in.since_twin_ms = ms_between(last_twin, now);
  return in;
}

// The reader's request and its twins together stay within the concurrency
// (fixed or found): concurrency=1 races nothing, 2 allows one twin. The
// look-ahead's spans do not count: a race lasts until the reader's first
// byte, and the reader waits on nothing else.
bool Prefetcher::Impl::race_slot_free() const { return race_twins + 1 < conc(); }

// When the reader's request gets its next twin if no answer comes first;
// nullopt if it gets none (or nothing is known to time it by yet).
std::optional<Clock::time_point> Prefetcher::Impl::race_due() {
  if (!hedge_policy.enabled || !racing || known.stream_mode || !waiting_since || !race_slot_free())
    return std::nullopt;
  const Request* r = reader_request();
  if (!r) return std::nullopt;
  const std::optional<RaceLimit> limit =
      race_limit(hedge_policy, race_input(*r, Clock::now()), first_byte_ms);
  if (!limit) return std::nullopt;
  const Clock::time_point from = limit->since_start ? r->started : r->sent_at;
  if (from == Clock::time_point{}) return std::nullopt;
  const auto after = [](Clock::time_point t, double ms) {
    return t + std::chrono::duration_cast<Clock::duration>(
                   std::chrono::duration<double, std::milli>(ms));
  };
  Clock::time_point due = after(from, limit->ms);
  if (race_twins > 0) due = std::max(due, after(last_twin, limit->step_ms));
  return due;
}

// Sends the reader's request a twin if its first byte is late (choose_race).
// Only while the reader waits: a late request ahead of it is the hedge's.
bool Prefetcher::Impl::maybe_race() {
  if (!hedge_policy.enabled || !racing || known.stream_mode || !waiting_since || closed || fatal ||
      flushing)
    return false;
  Request* main = reader_request();
  if (!main || !race_slot_free()) return false;
  const std::optional<RaceDecision> d =
      choose_race(hedge_policy, race_input(*main, Clock::now()), first_byte_ms);
  if (!d) return false;
  Block* b = store.find(read_block);
  if (!b) {
    b = make_block(read_block, main->pos);  // the reader's block is always made
    if (!b) return false;
    b->request = main->shared_from_this();
  }
  ++race_twins;
  last_twin = Clock::now();
  log(LogLevel::kInfo,
      "block %" PRIu64 ": no first byte %.0f ms after span %" PRIu64
      " %s (twin %u after %.0f ms: %s): racing it",
      read_block, d->waited_ms, main->id, d->limit.since_start ? "started" : "went out", race_twins,
      d->limit.ms,
      d->limit.since_start ? "the origin's first-byte times" : "its connection's set-up");
  launch_rival(*b, *main, /*race=*/true);
  return true;
}

// A seek or a jump: the reader's next first byte is raced as the start's.
void Prefetcher::Impl::race_anew() {
  racing = true;
  race_twins = 0;
}

// ---- the hedge ----

// Sends at most one hedge for a late block near the reader (hedge_policy.h).
// Returns true if it sent one.
bool Prefetcher::Impl::maybe_hedge() {
  if (!hedge_policy.enabled || known.stream_mode) return false;
  HedgeInput in;
  in.read_block = read_block;
  // The hedge's spare slot is counted against the slots' own spans (and
  // hedges); spans sent ahead, and ones already cancelled, have their own
  // allowance of connections.
  in.in_flight = 0;
  for (const Request* r : live) in.in_flight += r->ahead || r->cancelled() ? 0 : 1;
  in.concurrency = conc();
  in.lookahead = lookahead;
  in.requests_started = counts.requests_started;
  in.hedges_sent = counts.hedges_sent;
  in.block_count = block_count();
  const Clock::time_point now = Clock::now();
  // Spans waiting for their first byte at a block near the reader. Only a
  // request actually waiting on the origin (not one in its backoff: its
  // wait is negative); a span sent ahead has made no block yet.
  std::map<uint64_t, Request*> waiting;
  for (Request* r : live) {
    if (r->is_hedge || r->cancelled() || r->state != RequestState::kWaiting) continue;
    const uint64_t i = plan.index_of(r->pos);
    if (i < read_block || i >= read_block + hedge_policy.span) continue;
    const Block* b = store.find(i);
    if (b && (b->complete() || b->hedged || !b->rivals.empty() || b->request.get() != r)) continue;
    waiting[i] = r;
  }
  for (const auto& [i, r] : waiting) in.candidates.push_back({i, ms_between(r->started, now)});
  const std::optional<HedgeDecision> d = choose_hedge(hedge_policy, in, first_byte_ms);
  if (!d) return false;
  Request* main = waiting[d->block];
  Block* b = store.find(d->block);
  if (!b) {
    if (!may_hold(d->block)) return false;  // within the byte budget, as any block
    b = make_block(d->block, main->pos);
    if (!b) return false;
    b->request = main->shared_from_this();
  }
  b->hedged = true;
  log(LogLevel::kInfo, "block %" PRIu64 ": no answer after %.0f ms (threshold %.0f ms): hedging",
      d->block, d->waited_ms, d->limit_ms);
  launch_rival(*b, *main, /*race=*/false);
  return true;
}

// A twin or a hedge of `main`: the same bytes from where block `b` has
// them, into `b`.
void Prefetcher::Impl::launch_rival(Block& b, Request& main, bool race) {
  SpanAsk a;
  a.pos = b.range.begin + b.filled;
  a.end = main.end;
  a.asked_end = main.asked_end;
  a.block = &b;
  a.hedge_of = &main;
  a.race = race;
  launch(a);
}

// ---- the winner ----

// The first of a block's requests to answer wins; the others are cancelled.
void Prefetcher::Impl::settle_hedge(Request& r) {
  Block* b = store.find(r.block);
  if (!b || b->rivals.empty()) return;
  if (std::shared_ptr<Request> won = b->take_rival(&r)) {
    ++(r.is_race ? counts.races_won : counts.hedges_won);
    log(LogLevel::kDebug, "block %" PRIu64 " %s won (span %" PRIu64 ")", b->index,
        r.is_race ? "race twin" : "hedge", r.id);
    cancel_request(b->request);
    b->request = std::move(won);
  }
  for (const std::shared_ptr<Request>& other : b->rivals) cancel_request(other);
  b->rivals.clear();
}

}  // namespace prefetch
