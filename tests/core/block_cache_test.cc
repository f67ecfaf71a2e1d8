#include "prefetch/block_cache.h"

#include <gtest/gtest.h>

#include <vector>

namespace prefetch {
namespace {

Block Complete(uint64_t index, uint64_t size = 100) {
  Block b;
  b.index = index;
  b.range = {index * size, (index + 1) * size};
  b.filled = size;
  b.state = BlockState::kComplete;
  return b;
}

std::vector<uint64_t> Take(BlockCache& c, uint64_t lo, uint64_t hi) {
  std::vector<uint64_t> got;
  c.take_range(lo, hi, [&](Block&& b) { got.push_back(b.index); });
  return got;
}

TEST(BlockCacheTest, KeepsBlocksUntilTakenBack) {
  BlockCache c(1000);
  c.admit(Complete(3));
  c.admit(Complete(7));
  EXPECT_EQ(c.bytes(), 200u);
  EXPECT_EQ(Take(c, 0, 5), std::vector<uint64_t>{3});
  EXPECT_FALSE(c.contains(3));
  EXPECT_TRUE(c.contains(7));
  EXPECT_EQ(c.bytes(), 100u);
}

TEST(BlockCacheTest, EvictsTheLeastRecentlyAdmittedFirst) {
  BlockCache c(300);
  c.admit(Complete(5));
  c.admit(Complete(1));
  c.admit(Complete(9));
  c.admit(Complete(2));  // over 300 bytes: block 5 goes
  EXPECT_FALSE(c.contains(5));
  EXPECT_TRUE(c.contains(1));
  EXPECT_TRUE(c.contains(9));
  EXPECT_TRUE(c.contains(2));
  EXPECT_EQ(c.bytes(), 300u);
}

TEST(BlockCacheTest, ABlockLargerThanTheCacheIsNotKept) {
  BlockCache c(50);
  c.admit(Complete(1));
  EXPECT_TRUE(c.empty());
}

TEST(BlockCacheTest, AParkedBlockCountsAgainstTheCapacity) {
  BlockCache c(300);
  c.admit(Complete(1));
  c.admit(Complete(2));
  c.admit(Complete(3));
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
  c.admit(Complete(1));
  c.park(2, 100);
  c.clear();
  EXPECT_TRUE(c.empty());
  EXPECT_FALSE(c.parked());
  EXPECT_EQ(c.bytes(), 0u);
}

}  // namespace
}  // namespace prefetch
