// Block plan: maps a resource of known (or not yet known) size onto fixed-size
// blocks. Block i covers bytes [i * block_size, min((i + 1) * block_size, size)).
#pragma once

#include <cstdint>
#include <optional>

namespace prefetch {

struct ByteRange {
  uint64_t begin = 0;
  uint64_t end = 0;  // exclusive
  uint64_t length() const { return end - begin; }
};

class BlockPlan {
 public:
  explicit BlockPlan(uint64_t block_size) : block_size_(block_size) {}

  void set_size(uint64_t size) { size_ = size; }
  const std::optional<uint64_t>& size() const { return size_; }
  uint64_t block_size() const { return block_size_; }

  uint64_t index_of(uint64_t offset) const { return offset / block_size_; }
  // Number of blocks, or nullopt while the size is unknown.
  std::optional<uint64_t> count() const {
    if (!size_) return std::nullopt;
    return (*size_ + block_size_ - 1) / block_size_;
  }
  // True if block `index` may hold data (always true while the size is unknown).
  bool exists(uint64_t index) const { return !size_ || index * block_size_ < *size_; }
  // The byte range of a block, clipped to the size when it is known.
  ByteRange range(uint64_t index) const {
    ByteRange r{index * block_size_, (index + 1) * block_size_};
    if (size_ && r.end > *size_) r.end = *size_ > r.begin ? *size_ : r.begin;
    return r;
  }

 private:
  uint64_t block_size_;
  std::optional<uint64_t> size_;
};

}  // namespace prefetch
