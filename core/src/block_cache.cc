#include "prefetch/block_cache.h"

namespace prefetch {

uint64_t BlockCache::bytes() const {
  uint64_t n = parked_bytes_;
  for (const auto& [i, e] : blocks_) n += e.block.range.length();
  return n;
}

void BlockCache::admit(Block&& block) {
  if (block.range.length() > capacity_) return;
  const uint64_t index = block.index;
  blocks_[index] = Entry{std::move(block), ++tick_};
  trim();
}

void BlockCache::clear() {
  blocks_.clear();
  unpark();
}

bool BlockCache::park(uint64_t index, uint64_t bytes) {
  if (bytes > capacity_) return false;
  parked_ = index;
  parked_bytes_ = bytes;
  trim();
  return true;
}

void BlockCache::unpark() {
  parked_.reset();
  parked_bytes_ = 0;
}

// Evicts least recently used blocks until everything fits.
void BlockCache::trim() {
  uint64_t held = bytes();
  while (held > capacity_ && !blocks_.empty()) {
    auto oldest = blocks_.begin();
    for (auto it = blocks_.begin(); it != blocks_.end(); ++it)
      if (it->second.last_use < oldest->second.last_use) oldest = it;
    held -= oldest->second.block.range.length();
    blocks_.erase(oldest);
  }
}

}  // namespace prefetch
