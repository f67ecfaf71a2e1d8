// The host budget in the engine (host_budget.h): every request holds one of
// its host's slots from its send to its on_done. A request without a slot
// is queued: it exists (in `live`, claiming its blocks, counted as taking
// a request slot by pump()) but is not sent until the budget grants a slot, and then the
// queued request nearest the reader goes first. The budget's callbacks only
// post work to the origin's thread, which reaches the engine through a gate
// that close() clears: they may be called while another engine holds its lock.

#include <algorithm>
#include <cinttypes>
#include <limits>

#include "engine.h"

namespace prefetch {

// Runs `fn` on the engine behind `gate`, under its lock, if the engine is
// still there (gate -> mu).
void Prefetcher::Impl::through_gate(const std::shared_ptr<BudgetGate>& gate, void (Impl::*fn)()) {
  std::lock_guard<std::mutex> g(gate->mu);
  if (!gate->impl) return;
  std::lock_guard<std::mutex> lock(gate->impl->mu);
  (gate->impl->*fn)();
}

// Registers with the process's budget (mu not held).
void Prefetcher::Impl::join_budget() {
  if (cfg.host.empty()) return;
  gate = std::make_shared<BudgetGate>();
  gate->impl = this;
  HostBudget::Callbacks cb;
  Origin* o = origin;
  cb.wake = [o, g = gate] { o->post([g] { through_gate(g, &Impl::slots_granted); }); };
  cb.yield = [o, g = gate] { o->post([g] { through_gate(g, &Impl::yield_host_slot); }); };
  const HostBudget::ClientId id =
      HostBudget::process().add_client(cfg.host, cfg.max_host_connections, std::move(cb));
  std::lock_guard<std::mutex> lock(mu);
  client = id;
}

// Leaves the budgets (mu not held; after close() ended every request): no
// callback comes after this, and work they posted finds the gate closed.
// The blocks still held (and buffers downstream holds) no longer count
// against the process's byte budget.
void Prefetcher::Impl::leave_budget() {
  HostBudget::ClientId id = 0;
  ByteBudget::ClientId bytes_id = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    std::swap(id, client);
    std::swap(bytes_id, memory);
    asks = 0;
  }
  ByteBudget::process().remove_client(bytes_id);
  if (id) HostBudget::process().remove_client(id);
  if (gate) {
    std::lock_guard<std::mutex> g(gate->mu);
    gate->impl = nullptr;
  }
}

// Sends request `r` if its host has a slot for it, else queues it.
void Prefetcher::Impl::send(const std::shared_ptr<Request>& r) {
  if (!client) return start_fetch(*r);
  // An ask still queued for a request that went (cancelled) serves this one.
  if (slot_queue.size() >= asks) {
    if (HostBudget::process().acquire(client, waiting_since)) {
      r->has_slot = true;
      return start_fetch(*r);
    }
    ++asks;
  }
  r->queued = true;
  slot_queue.push_back(r);
  log(LogLevel::kDebug, "%s %" PRIu64 " waits for a connection to %s",
      r->is_stream() ? "stream" : "span", r->id, cfg.host.c_str());
  make_room_for_head();
}

void Prefetcher::Impl::start_fetch(Request& r) {
  r.range.validator = if_range();
  r.range.fresh_connection = Clock::now() < fresh_until;
  r.started = Clock::now() + r.range.delay;  // first-byte times exclude backoff
  r.fetch = origin->start(r.range, r.shared_from_this());
}

// A queued request is cancelled: it was never sent, so its on_done comes
// from us (on the origin's thread, as a fetch's would). Its ask stays
// queued at the budget; the slot it brings serves the next request or goes
// back (slots_granted).
void Prefetcher::Impl::unqueue(const std::shared_ptr<Request>& r) {
  r->queued = false;
  slot_queue.erase(std::remove(slot_queue.begin(), slot_queue.end(), r), slot_queue.end());
  origin->post([r] { r->on_done(nullptr); });
}

void Prefetcher::Impl::release_slot(Request& r) {
  if (!r.has_slot) return;
  r.has_slot = false;
  if (client) HostBudget::process().release(client);
}

// The budget granted slots to our queued asks: the queued requests nearest
// the reader go; slots nobody waits for any more go back.
void Prefetcher::Impl::slots_granted() {
  if (!client) return;
  HostBudget& budget = HostBudget::process();
  unsigned n = budget.take_granted(client);
  asks -= std::min(asks, n);
  const auto distance = [&](const Request& r) -> uint64_t {
    if (r.is_stream()) return 0;
    if (r.block >= read_block) return r.block - read_block;
    return std::numeric_limits<uint64_t>::max() / 2 + (read_block - r.block);
  };
  while (n > 0 && !slot_queue.empty() && !closed) {
    auto it =
        std::min_element(slot_queue.begin(), slot_queue.end(),
                         [&](const auto& a, const auto& b) { return distance(*a) < distance(*b); });
    std::shared_ptr<Request> r = *it;
    slot_queue.erase(it);
    r->queued = false;
    r->has_slot = true;
    --n;
    start_fetch(*r);
  }
  if (n) budget.release(client, n);
}

// A needier client of the host waits: our request farthest from the reader
// that is not needed now ends (like a concurrency cut), and its on_done
// gives its slot back.
void Prefetcher::Impl::yield_host_slot() {
  if (!client || closed) return;
  end_farthest_slot_holder();
}

// Ends the request holding a slot that is farthest from the reader and not
// filling the reader's block. False if there is none.
bool Prefetcher::Impl::end_farthest_slot_holder() {
  Request* farthest = nullptr;
  for (Request* r : live) {
    if (!r->has_slot || r->cancelled() || r->block == read_block) continue;
    if (!farthest || r->ahead > farthest->ahead ||
        (r->ahead == farthest->ahead && r->pos > farthest->pos))
      farthest = r;
  }
  if (!farthest) return false;  // every slot we hold is needed now
  log(LogLevel::kDebug, "span %" PRIu64 " ends at byte %" PRIu64 ": its connection to %s yields",
      farthest->id, farthest->pos, cfg.host.c_str());
  cancel_request(farthest->shared_from_this());
  return true;
}

// The request for the reader's block waits for a slot of the host.
bool Prefetcher::Impl::head_waits_for_slot() const {
  return std::any_of(slot_queue.begin(), slot_queue.end(),
                     [&](const auto& r) { return r->is_stream() || r->block == read_block; });
}

// The reader waits for a block whose request waits for a slot: a request
// of ours farther ahead gives its slot back, unless one of ours is on its
// way back already. The budget asks other clients to yield, never the
// asker itself; without this an element whose own spans ahead (paused at
// the look-ahead, paused for a transfer slot, or sent ahead) hold every
// slot the host has would wait for itself. The slot goes to the neediest
// ask of the host: ours, unless another reader has waited longer (then
// the reader waits on, and idle_wait calls again).
void Prefetcher::Impl::make_room_for_head() {
  if (!client || closed || !waiting_since || !head_waits_for_slot()) return;
  for (const Request* r : live)
    if (r->has_slot && r->cancelled()) return;
  end_farthest_slot_holder();
}

// The reader begins or stops waiting for bytes: the budget hears of it
// (only on a change).
void Prefetcher::Impl::set_waiting(bool waiting) {
  if (waiting == waiting_since.has_value()) return;
  if (waiting)
    waiting_since = Clock::now();
  else
    waiting_since.reset();
  if (!client) return;
  HostBudget::process().set_need(client, waiting_since);
  make_room_for_head();
}

}  // namespace prefetch
