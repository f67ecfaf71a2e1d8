// Block store: the blocks held in memory, keyed by index. Each is fetching
// (with the bytes received so far), complete or failed. The Prefetcher keeps
// it within the look-ahead budget; delivered blocks may stay a little longer
// so short backward reads are served from memory.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "prefetch/block_plan.h"
#include "prefetch/byte_budget.h"

namespace prefetch {

using Clock = std::chrono::steady_clock;

// A block's bytes. Shared with whoever holds a view (downstream buffers), so
// it outlives its removal from the store. Written only beyond `filled`.
// Large blocks are mapped directly: malloc would keep freed blocks in its
// arenas, and memory would then sit at twice the look-ahead budget.
class BlockBuffer {
 public:
  explicit BlockBuffer(size_t n);
  ~BlockBuffer();
  BlockBuffer(const BlockBuffer&) = delete;
  BlockBuffer& operator=(const BlockBuffer&) = delete;

  uint8_t* data() { return bytes_; }
  const uint8_t* data() const { return bytes_; }
  size_t capacity() const { return capacity_; }

 private:
  uint8_t* bytes_;
  size_t capacity_;
  bool mapped_;
};

// Recycles block buffers: a fresh mapping faults in every page, which on a
// fast origin costs more than the transfer. Buffers come back here when the
// last view of them (a downstream GstBuffer, say) goes, from any thread;
// at most `max_free` wait for reuse (none while its owner holds more than
// its share of the process's byte budget), the rest are unmapped.
//
// Every buffer it makes, until unmapped, counts as resident for its
// owner's ByteBudget client (if it has one): the look-ahead, the cache,
// what downstream still holds and what waits for reuse.
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  BufferPool(size_t buffer_size, size_t max_free, ByteBudget* budget = nullptr,
             ByteBudget::ClientId client = 0)
      : size_(buffer_size), max_free_(max_free), account_{budget, client} {}
  ~BufferPool();
  std::shared_ptr<BlockBuffer> get(size_t n);

 private:
  // Where its buffers' bytes count (none without a budget). Copied into
  // each buffer's deleter: a buffer may outlive the pool (an unknown
  // client's change is ignored).
  struct Account {
    ByteBudget* budget = nullptr;
    ByteBudget::ClientId client = 0;
    void add(int64_t delta) const {
      if (budget) budget->add(client, delta);
    }
    void drop(const BlockBuffer* b) const { add(-static_cast<int64_t>(b->capacity())); }
  };

  void put(BlockBuffer* b);

  const size_t size_;
  const size_t max_free_;
  const Account account_;
  std::mutex mu_;
  std::vector<std::unique_ptr<BlockBuffer>> free_;
};

enum class BlockState { kFetching, kComplete };

class Request;  // engine.h

struct Block {
  uint64_t index = 0;
  ByteRange range;
  std::shared_ptr<BlockBuffer> buffer;
  size_t filled = 0;               // bytes [range.begin, range.begin + filled) are valid
  Clock::time_point first_byte{};  // when its first bytes arrived (its fill rate)
  BlockState state = BlockState::kFetching;
  std::shared_ptr<Request> request;  // the fetch filling it, if any
  // Fetches racing `request` for the same bytes (a hedge, or the twins of a
  // race for the reader's first byte), in the order they went.
  std::vector<std::shared_ptr<Request>> rivals;
  bool hedged = false;  // a hedge was sent for it (one per block)

  bool complete() const { return state == BlockState::kComplete; }
  bool is_rival(const Request* r) const { return find_rival(r) != rivals.end(); }
  // Takes `r` out of the rivals (it may not be one).
  std::shared_ptr<Request> take_rival(const Request* r) {
    const auto it = find_rival(r);
    if (it == rivals.end()) return nullptr;
    std::shared_ptr<Request> out = std::move(*it);
    rivals.erase(it);
    return out;
  }

 private:
  std::vector<std::shared_ptr<Request>>::const_iterator find_rival(const Request* r) const {
    return std::find_if(rivals.begin(), rivals.end(),
                        [r](const std::shared_ptr<Request>& x) { return x.get() == r; });
  }
};

class BlockStore {
 public:
  void set_pool(std::shared_ptr<BufferPool> pool) { pool_ = std::move(pool); }
  Block* find(uint64_t index);
  const Block* find(uint64_t index) const;
  Block& insert(uint64_t index, const ByteRange& range);
  Block& put(Block&& block);  // a block made elsewhere (the cache)
  void erase(uint64_t index);
  size_t size() const { return blocks_.size(); }

  // Visits blocks in index order; the visitor may not insert or erase.
  template <typename F>
  void for_each(F&& f) {
    for (auto& [i, b] : blocks_) f(b);
  }
  template <typename F>
  void for_each(F&& f) const {
    for (const auto& [i, b] : blocks_) f(b);
  }
  // Removes every block outside [lo, hi), calling `on_drop` first (to cancel
  // its request).
  template <typename Drop>
  void drop_outside(uint64_t lo, uint64_t hi, Drop&& on_drop) {
    drop_outside(
        lo, hi, [](const Block&) { return false; }, on_drop);
  }
  // The same, but blocks for which `keep` is true stay.
  template <typename Keep, typename Drop>
  void drop_outside(uint64_t lo, uint64_t hi, Keep&& keep, Drop&& on_drop) {
    for (auto it = blocks_.begin(); it != blocks_.end();) {
      if ((it->first < lo || it->first >= hi) && !keep(it->second)) {
        on_drop(it->second);
        it = blocks_.erase(it);
      } else {
        ++it;
      }
    }
  }

 private:
  std::map<uint64_t, Block> blocks_;
  std::shared_ptr<BufferPool> pool_;
};

}  // namespace prefetch
