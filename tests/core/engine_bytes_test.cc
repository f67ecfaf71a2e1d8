// Every byte, in order: awkward sizes, reads of any length, blocks that
// complete out of order, and the head block streamed while it arrives.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "engine_fixture.h"

namespace prefetch::testing {
namespace {

class EngineBytesTest : public EngineTest {};

class EngineSizeTest : public EngineBytesTest, public ::testing::WithParamInterface<uint64_t> {};

TEST_P(EngineSizeTest, DeliversEveryByteInOrder) {
  make(GetParam());
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.chunk = 300;  // blocks arrive in several pieces
    return r;
  });
  ReadResult o = prefetcher_->open(0);
  ASSERT_EQ(o.status, ReadStatus::kOk) << o.error.message;
  EXPECT_EQ(prefetcher_->size(), GetParam());
  expect_exact_to_eos();
}

TEST_P(EngineSizeTest, ExactReadsDeliverEveryByte) {
  make(GetParam());
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = drain(0, 777, ReadMode::kExact);
  EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  EXPECT_TRUE(d.bytes == data()) << "bytes differ";
}

INSTANTIATE_TEST_SUITE_P(Sizes, EngineSizeTest,
                         ::testing::Values(0, 1, kB - 1, kB, kB + 1, 7 * kB + 13),
                         [](const auto& info) { return "size_" + std::to_string(info.param); });

TEST_F(EngineBytesTest, FiveMegabytesWithSmallBlocksAreBytesExact) {
  Config c = small_config();
  c.block_size = 16 * 1024;
  make(5 * 1000 * 1000 + 3, c);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = drain(0, 64 * 1024);
  EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  ASSERT_EQ(d.bytes.size(), data().size());
  EXPECT_EQ(checksum(d.bytes), checksum(data()));
  EXPECT_TRUE(d.bytes == data());
  EXPECT_LE(origin_->max_in_flight(), 4u);
}

TEST_F(EngineBytesTest, OpenAtAnOffsetDeliversFromThere) {
  make(10 * kB);
  ASSERT_EQ(prefetcher_->open(4 * kB + 10).status, ReadStatus::kOk);
  expect_exact_to_eos(4 * kB + 10);
  for (const RequestRecord& r : origin_->requests()) EXPECT_GE(r.begin, 4 * kB);
}

// ---- order --------------------------------------------------------------------

TEST_F(EngineBytesTest, OrderKeptWhenBlocksCompleteOutOfOrder) {
  make(4 * kB);
  // Block 0's answer opens the transfer (until then it is the only
  // request); its body and the others' answers wait.
  origin_->hold_body(0, 0);
  for (uint64_t block : {1, 2, 3}) origin_->hold_head(block * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  auto reader = std::async(std::launch::async, [&] { return drain(0, 10 * kB); });
  for (uint64_t block : {3, 2, 1, 0}) {
    origin_->release(block * kB);
    ASSERT_TRUE(wait_done(block * kB)) << "block " << block;
    if (block > 0) {
      EXPECT_EQ(reader.wait_for(milliseconds(0)), std::future_status::timeout)
          << "the reader returned before block 0 arrived";
    }
  }
  Drained d = reader.get();
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == data());
}

// ---- progressive head and schedules -----------------------------------------

TEST_F(EngineBytesTest, WindowStreamsTheHeadBlockBeforeItIsComplete) {
  open_with_block_0_held_after(100);
  ReadResult r = prefetcher_->read(0, kB, ReadMode::kAvailable);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.offset, 0u);
  ASSERT_EQ(r.chunk.size, 100u) << "the head block's first bytes should leave at once";
  EXPECT_EQ(std::vector<uint8_t>(r.chunk.data, r.chunk.data + 100), slice(0, 100));
  EXPECT_FALSE(requests_at(0).at(0).done);
  origin_->release(0);
  expect_exact_to_eos(100);
}

}  // namespace
}  // namespace prefetch::testing
