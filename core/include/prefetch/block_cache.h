// Block cache: complete blocks that left the window, kept (least recently
// used first out) so that a demuxer's jump to an index at the end and back,
// or a short step back, costs no request. Also accounts for the parked
// block: the one the reader jumped away from while it was still fetching,
// whose request runs on outside the window (see access_pattern.h). Cache and
// parked block together stay within `capacity` bytes, so memory stays within
// the look-ahead budget plus the cache. No I/O, no locks.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

#include "prefetch/block_store.h"

namespace prefetch {

class BlockCache {
 public:
  explicit BlockCache(uint64_t capacity) : capacity_(capacity) {}

  uint64_t capacity() const { return capacity_; }
  // A new capacity (the byte budget's room for it): evicts down to it.
  void set_capacity(uint64_t capacity) {
    capacity_ = capacity;
    trim();
  }
  bool empty() const { return blocks_.empty(); }
  // Bytes held: cached blocks plus the parked block while it is fetching.
  uint64_t bytes() const;
  bool contains(uint64_t index) const { return blocks_.count(index) > 0; }

  // Keeps a complete block (its requests already ended). A block larger than
  // the capacity is not kept; older blocks are evicted to make room.
  void admit(Block&& block);
  // Moves every cached block with an index in [lo, hi) out, in index order:
  // `take(Block&&)` gets each.
  template <typename Take>
  void take_range(uint64_t lo, uint64_t hi, Take&& take) {
    for (auto it = blocks_.lower_bound(lo); it != blocks_.end() && it->first < hi;) {
      take(std::move(it->second.block));
      it = blocks_.erase(it);
    }
  }
  // Drops everything, the parked block's account included.
  void clear();

  // Parks block `index` of `bytes` (false if it could never fit). Replaces
  // a block parked before.
  bool park(uint64_t index, uint64_t bytes);
  // The parked block completed: it is counted as cached once admitted.
  void parked_complete() { parked_bytes_ = 0; }
  void unpark();
  const std::optional<uint64_t>& parked() const { return parked_; }
  bool is_parked(uint64_t index) const { return parked_ && *parked_ == index; }

 private:
  struct Entry {
    Block block;
    uint64_t last_use = 0;
  };
  void trim();

  uint64_t capacity_;
  std::map<uint64_t, Entry> blocks_;
  uint64_t tick_ = 0;
  std::optional<uint64_t> parked_;
  uint64_t parked_bytes_ = 0;
};

}  // namespace prefetch
