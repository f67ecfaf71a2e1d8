#include "prefetch/block_store.h"

namespace prefetch {

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
  b.buffer = std::make_shared<BlockBuffer>(range.length());
  return b;
}

void BlockStore::erase(uint64_t index) { blocks_.erase(index); }

uint64_t BlockStore::bytes_held() const {
  uint64_t n = 0;
  for (const auto& [i, b] : blocks_) n += b.range.length();
  return n;
}

}  // namespace prefetch
