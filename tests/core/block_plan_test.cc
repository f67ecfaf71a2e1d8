#include "prefetch/block_plan.h"

#include <gtest/gtest.h>

namespace prefetch {
namespace {

constexpr uint64_t kBlock = 1000;

TEST(BlockPlanTest, UnknownSizeHasNoCountAndEveryBlockMayExist) {
  BlockPlan plan(kBlock);
  EXPECT_FALSE(plan.size().has_value());
  EXPECT_FALSE(plan.count().has_value());
  EXPECT_TRUE(plan.exists(0));
  EXPECT_TRUE(plan.exists(1'000'000));
  ByteRange r = plan.range(3);
  EXPECT_EQ(r.begin, 3000u);
  EXPECT_EQ(r.end, 4000u);
  EXPECT_EQ(r.length(), kBlock);
}

TEST(BlockPlanTest, RangesAreContiguousAndCoverTheSize) {
  BlockPlan plan(kBlock);
  plan.set_size(4321);
  ASSERT_EQ(plan.count(), 5u);
  uint64_t expected_begin = 0;
  for (uint64_t i = 0; i < *plan.count(); ++i) {
    ByteRange r = plan.range(i);
    EXPECT_EQ(r.begin, expected_begin) << "block " << i;
    EXPECT_GT(r.end, r.begin) << "block " << i;
    expected_begin = r.end;
  }
  EXPECT_EQ(expected_begin, 4321u);
}

TEST(BlockPlanTest, LastBlockIsTrimmedToTheSize) {
  BlockPlan plan(kBlock);
  plan.set_size(4321);
  EXPECT_EQ(plan.range(3).length(), kBlock);
  ByteRange last = plan.range(4);
  EXPECT_EQ(last.begin, 4000u);
  EXPECT_EQ(last.end, 4321u);
  EXPECT_EQ(last.length(), 321u);
}

TEST(BlockPlanTest, BlocksPastTheEndDoNotExistAndHaveEmptyRanges) {
  BlockPlan plan(kBlock);
  plan.set_size(2500);
  EXPECT_TRUE(plan.exists(2));
  EXPECT_FALSE(plan.exists(3));
  EXPECT_FALSE(plan.exists(100));
  EXPECT_EQ(plan.range(3).length(), 0u);
  EXPECT_EQ(plan.range(100).length(), 0u);
}

TEST(BlockPlanTest, IndexOfMapsEveryOffsetToItsBlock) {
  BlockPlan plan(kBlock);
  EXPECT_EQ(plan.index_of(0), 0u);
  EXPECT_EQ(plan.index_of(kBlock - 1), 0u);
  EXPECT_EQ(plan.index_of(kBlock), 1u);
  EXPECT_EQ(plan.index_of(kBlock + 1), 1u);
  EXPECT_EQ(plan.index_of(7 * kBlock + 999), 7u);
  for (uint64_t off : {0u, 1u, 999u, 1000u, 1001u, 4320u}) {
    ByteRange r = plan.range(plan.index_of(off));
    EXPECT_LE(r.begin, off);
    EXPECT_LT(off, r.end);
  }
}

struct SizeCase {
  uint64_t size;
  uint64_t count;
  uint64_t last_length;
};

class BlockPlanSizeTest : public ::testing::TestWithParam<SizeCase> {};

TEST_P(BlockPlanSizeTest, CountAndLastBlockLength) {
  const SizeCase& c = GetParam();
  BlockPlan plan(kBlock);
  plan.set_size(c.size);
  ASSERT_EQ(plan.count(), c.count);
  if (c.count == 0) {
    EXPECT_FALSE(plan.exists(0));
    EXPECT_EQ(plan.range(0).length(), 0u);
    return;
  }
  EXPECT_TRUE(plan.exists(c.count - 1));
  EXPECT_FALSE(plan.exists(c.count));
  EXPECT_EQ(plan.range(c.count - 1).length(), c.last_length);
  EXPECT_EQ(plan.range(c.count - 1).end, c.size);
}

INSTANTIATE_TEST_SUITE_P(Sizes, BlockPlanSizeTest,
                         ::testing::Values(SizeCase{0, 0, 0}, SizeCase{1, 1, 1},
                                           SizeCase{kBlock - 1, 1, kBlock - 1},
                                           SizeCase{kBlock, 1, kBlock}, SizeCase{kBlock + 1, 2, 1},
                                           SizeCase{2 * kBlock, 2, kBlock}),
                         [](const auto& info) {
                           return "size_" + std::to_string(info.param.size);
                         });

TEST(BlockPlanTest, BlockSizeOneMapsEachByteToItsOwnBlock) {
  BlockPlan plan(1);
  plan.set_size(3);
  EXPECT_EQ(plan.count(), 3u);
  EXPECT_EQ(plan.index_of(2), 2u);
  EXPECT_EQ(plan.range(2).begin, 2u);
  EXPECT_EQ(plan.range(2).end, 3u);
}

TEST(BlockPlanTest, HugeSizeDoesNotOverflowCount) {
  BlockPlan plan(1 << 20);
  const uint64_t size = uint64_t{1} << 50;
  plan.set_size(size);
  EXPECT_EQ(plan.count(), uint64_t{1} << 30);
  EXPECT_EQ(plan.range(*plan.count() - 1).end, size);
}

}  // namespace
}  // namespace prefetch
