#include "prefetch/block_store.h"

#include <sys/mman.h>

#include <new>

namespace prefetch {

namespace {
constexpr size_t kMapAtLeast = 64 * 1024;
}

BlockBuffer::BlockBuffer(size_t n) : capacity_(n), mapped_(n >= kMapAtLeast) {
  if (mapped_) {
    void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    bytes_ = static_cast<uint8_t*>(p);
  } else {
    bytes_ = new uint8_t[n ? n : 1];
  }
}

BlockBuffer::~BlockBuffer() {
  if (mapped_)
    munmap(bytes_, capacity_);
  else
    delete[] bytes_;
}

BufferPool::~BufferPool() {
  for (const auto& b : free_) account_.drop(b.get());
}

std::shared_ptr<BlockBuffer> BufferPool::get(size_t n) {
  const Account account = account_;
  if (n > size_) {
    account.add(static_cast<int64_t>(n));
    return std::shared_ptr<BlockBuffer>(new BlockBuffer(n), [account](BlockBuffer* p) {
      account.drop(p);
      delete p;
    });
  }
  BlockBuffer* b = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!free_.empty()) {
      b = free_.back().release();
      free_.pop_back();
    }
  }
  if (!b) {
    b = new BlockBuffer(size_);
    account.add(static_cast<int64_t>(size_));
  }
  std::weak_ptr<BufferPool> home = weak_from_this();
  return std::shared_ptr<BlockBuffer>(b, [home, account](BlockBuffer* p) {
    if (auto pool = home.lock()) {
      pool->put(p);
    } else {
      account.drop(p);
      delete p;
    }
  });
}

void BufferPool::put(BlockBuffer* b) {
  std::unique_ptr<BlockBuffer> owned(b);
  const bool over = account_.budget && account_.budget->over_share(account_.client);
  if (!over) {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < max_free_) {
      free_.push_back(std::move(owned));
      return;
    }
  }
  account_.drop(b);
}

Block* BlockStore::find(uint64_t index) {
  auto it = blocks_.find(index);
  return it == blocks_.end() ? nullptr : &it->second;
}

const Block* BlockStore::find(uint64_t index) const {
  auto it = blocks_.find(index);
  return it == blocks_.end() ? nullptr : &it->second;
}

Block& BlockStore::insert(uint64_t index, const ByteRange& range) {
  Block& b = blocks_[index];
  b = Block{};
  b.index = index;
  b.range = range;
  b.buffer = pool_ ? pool_->get(range.length()) : std::make_shared<BlockBuffer>(range.length());
  return b;
}

Block& BlockStore::put(Block&& block) {
  const uint64_t index = block.index;
  return blocks_[index] = std::move(block);
}

void BlockStore::erase(uint64_t index) { blocks_.erase(index); }

}  // namespace prefetch
