// ByteBudget: one lock over a small map (see byte_budget.h).

#include "prefetch/byte_budget.h"

#include <algorithm>

namespace prefetch {

ByteBudget& ByteBudget::process() {
  static ByteBudget* budget = new ByteBudget;  // never destroyed: buffers may go at exit
  return *budget;
}

ByteBudget::ClientId ByteBudget::add_client(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  const ClientId id = next_id_++;
  clients_[id].asked = bytes;
  return id;
}

void ByteBudget::remove_client(ClientId id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  in_use_ -= it->second.held;
  clients_.erase(it);
}

void ByteBudget::add(ClientId id, int64_t delta) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  uint64_t& held = it->second.held;
  if (delta < 0) {
    const uint64_t less = std::min<uint64_t>(held, static_cast<uint64_t>(-delta));
    held -= less;
    in_use_ -= less;
  } else {
    held += static_cast<uint64_t>(delta);
    in_use_ += static_cast<uint64_t>(delta);
  }
}

uint64_t ByteBudget::budget_locked() const {
  uint64_t b = kDefaultBytes;
  for (const auto& [id, c] : clients_) b = std::max(b, c.asked);
  return b;
}

uint64_t ByteBudget::share_locked() const {
  return budget_locked() / std::max<size_t>(1, clients_.size());
}

bool ByteBudget::may_grow(ClientId id, uint64_t more, uint64_t reserve) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = clients_.find(id);
  if (it == clients_.end()) return true;
  const uint64_t budget = budget_locked();
  // Never past the budget, not even within the share: what another client
  // took beyond its share while this one held less comes back as its
  // reader moves, and until then this one waits for it.
  if (in_use_ + more > budget) return false;
  if (it->second.held + more <= share_locked()) return true;
  const uint64_t reserved = reserve * clients_.size();
  return reserved < budget && in_use_ + more <= budget - reserved;
}

ByteBudget::Standing ByteBudget::standing(ClientId id) const {
  std::lock_guard<std::mutex> lock(mu_);
  Standing s;
  const uint64_t budget = budget_locked();
  s.share = share_locked();
  auto it = clients_.find(id);
  if (it == clients_.end()) {
    s.allowance = budget;
    return s;
  }
  s.held = it->second.held;
  const uint64_t others = in_use_ - s.held;
  s.allowance = std::max(s.share, budget > others ? budget - others : 0);
  return s;
}

uint64_t ByteBudget::share() const {
  std::lock_guard<std::mutex> lock(mu_);
  return share_locked();
}

bool ByteBudget::over_share(ClientId id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return held_locked(id) > share_locked();
}

uint64_t ByteBudget::budget() const {
  std::lock_guard<std::mutex> lock(mu_);
  return budget_locked();
}

uint64_t ByteBudget::held_locked(ClientId id) const {
  auto it = clients_.find(id);
  return it == clients_.end() ? 0 : it->second.held;
}

uint64_t ByteBudget::held(ClientId id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return held_locked(id);
}

uint64_t ByteBudget::in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_;
}

size_t ByteBudget::clients() const {
  std::lock_guard<std::mutex> lock(mu_);
  return clients_.size();
}

}  // namespace prefetch
