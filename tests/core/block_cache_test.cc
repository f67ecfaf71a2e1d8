#include "prefetch/block_cache.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <vector>

namespace prefetch {
namespace {

Block complete_block(uint64_t index, uint64_t size = 100) {
  Block b;
  b.index = index;
  b.range = {index * size, (index + 1) * size};
  b.filled = size;
  b.state = BlockState::kComplete;
  return b;
}

std::vector<uint64_t> take(BlockCache& c, uint64_t lo, uint64_t hi) {
  std::vector<uint64_t> got;
  c.take_range(lo, hi, [&](Block&& b) { got.push_back(b.index); });
  return got;
}

// Which of `indices` the cache holds.
std::vector<uint64_t> held(const BlockCache& c, std::initializer_list<uint64_t> indices) {
  std::vector<uint64_t> out;
  for (uint64_t i : indices)
    if (c.contains(i)) out.push_back(i);
  return out;
}

TEST(BlockCacheTest, KeepsBlocksUntilTakenBack) {
  BlockCache c(1000);
  c.admit(complete_block(3));
  c.admit(complete_block(7));
  EXPECT_EQ(c.bytes(), 200u);
  EXPECT_EQ(take(c, 0, 5), std::vector<uint64_t>{3});
  EXPECT_EQ(held(c, {3, 7}), std::vector<uint64_t>{7});
  EXPECT_EQ(c.bytes(), 100u);
}

TEST(BlockCacheTest, EvictsTheLeastRecentlyAdmittedFirst) {
  BlockCache c(300);
  c.admit(complete_block(5));
  c.admit(complete_block(1));
  c.admit(complete_block(9));
  c.admit(complete_block(2));  // over 300 bytes: block 5 goes
  EXPECT_EQ(held(c, {1, 2, 5, 9}), (std::vector<uint64_t>{1, 2, 9}));
  EXPECT_EQ(c.bytes(), 300u);
}

TEST(BlockCacheTest, ABlockLargerThanTheCacheIsNotKept) {
  BlockCache c(50);
  c.admit(complete_block(1));
  EXPECT_TRUE(c.empty());
}

TEST(BlockCacheTest, AParkedBlockCountsAgainstTheCapacity) {
  BlockCache c(300);
  c.admit(complete_block(1));
  c.admit(complete_block(2));
  c.admit(complete_block(3));
  EXPECT_TRUE(c.park(8, 100));  // room is made: block 1 goes
  EXPECT_FALSE(c.contains(1));
  EXPECT_EQ(c.bytes(), 300u);
  EXPECT_TRUE(c.is_parked(8));
  c.parked_complete();  // counted as cached once admitted
  EXPECT_EQ(c.bytes(), 200u);
  c.unpark();
  EXPECT_FALSE(c.parked());
}

TEST(BlockCacheTest, ParkingReplacesTheBlockParkedBefore) {
  BlockCache c(1000);
  EXPECT_TRUE(c.park(4, 100));
  EXPECT_TRUE(c.park(6, 100));
  EXPECT_FALSE(c.is_parked(4));
  EXPECT_TRUE(c.is_parked(6));
  EXPECT_EQ(c.bytes(), 100u);
}

TEST(BlockCacheTest, ABlockTooLargeIsNotParked) {
  BlockCache c(50);
  EXPECT_FALSE(c.park(4, 100));
  EXPECT_FALSE(c.parked());
}

TEST(BlockCacheTest, ClearDropsBlocksAndThePark) {
  BlockCache c(1000);
  c.admit(complete_block(1));
  c.park(2, 100);
  c.clear();
  EXPECT_TRUE(c.empty());
  EXPECT_FALSE(c.parked());
  EXPECT_EQ(c.bytes(), 0u);
}

}  // namespace
}  // namespace prefetch
