// What is in flight and when it is handed out: the gather of push mode,
// the batch and barrier schedules, and the limits of concurrency and
// look-ahead.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "engine_fixture.h"

namespace prefetch::testing {
namespace {

class EngineScheduleTest : public EngineTest {};

TEST_F(EngineScheduleTest, GatherNeverHoldsTheFirstBytesOfABlock) {
  open_with_block_0_held_after(100);
  const auto start = std::chrono::steady_clock::now();
  prefetcher_->gather(0, 500, std::chrono::seconds(5));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
  ReadResult r = prefetcher_->read(0, kB, ReadMode::kAvailable);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.size, 100u);
  origin_->release(0);
}

TEST_F(EngineScheduleTest, GatherDoesNotWaitForAStalledBlock) {
  open_with_block_0_held_after(300);
  ASSERT_EQ(prefetcher_->read(0, 100, ReadMode::kAvailable).chunk.size, 100u);
  // 300 bytes in 200+ ms: the 400 more asked for are not due within 100 ms.
  std::this_thread::sleep_for(milliseconds(200));
  const auto start = std::chrono::steady_clock::now();
  prefetcher_->gather(100, 500, milliseconds(100));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(50))
      << "waited for bytes its rate says are not coming soon";
  ReadResult r = prefetcher_->read(100, kB, ReadMode::kAvailable);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.size, 200u);
  origin_->release(0);
}

TEST_F(EngineScheduleTest, GatherWaitsForBytesThatArriveFast) {
  make(4 * kB);
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.chunk = 50;
    r.chunk_interval = std::chrono::microseconds(500);  // 100 kB/s: 700 bytes in ~7 ms
    return r;
  });
  // The first 100 bytes, then a pause until the reader has taken them: the
  // rest arrives while gather() waits, however busy the machine.
  origin_->hold_body(0, 100);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_TRUE(origin_->wait_held(0, kHang));
  ReadResult first = prefetcher_->read(0, kB, ReadMode::kAvailable);
  ASSERT_EQ(first.status, ReadStatus::kOk);
  const uint64_t at = first.chunk.size;
  ASSERT_EQ(at, 100u);
  origin_->release(0);
  const auto start = std::chrono::steady_clock::now();
  prefetcher_->gather(at, 700, std::chrono::seconds(5));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
  ReadResult r = prefetcher_->read(at, kB, ReadMode::kAvailable);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_GE(r.chunk.size, std::min<uint64_t>(700, kB - at));
  EXPECT_TRUE(std::vector<uint8_t>(r.chunk.data, r.chunk.data + r.chunk.size) ==
              slice(at, at + r.chunk.size));
  Drained d = drain(at + r.chunk.size);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
}

TEST_F(EngineScheduleTest, BatchHoldsBlockZeroUntilItIsComplete) {
  make(8 * kB, small_config(Schedule::kBatch));
  origin_->hold_body(0, 100);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_TRUE(origin_->wait_held(0, kHang));
  auto first = std::async(std::launch::async,
                          [&] { return prefetcher_->read(0, 2 * kB, ReadMode::kAvailable); });
  EXPECT_EQ(first.wait_for(kNoReturn), std::future_status::timeout)
      << "batch returned bytes of an incomplete block";
  origin_->release(0);
  ReadResult r = first.get();
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.offset, 0u);
  EXPECT_EQ(r.chunk.size, kB) << "batch delivers whole blocks";
  expect_exact_to_eos(r.chunk.size);
}

TEST_F(EngineScheduleTest, BatchDeliversBlockZeroWithoutWaitingForTheBatch) {
  make(8 * kB, small_config(Schedule::kBatch));
  origin_->hold_head(3 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ReadResult r = prefetcher_->read(0, kB, ReadMode::kAvailable);  // block 3 still held
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.size, kB);
  EXPECT_FALSE(requests_at(3 * kB).at(0).done);
  origin_->release(3 * kB);
}

TEST_F(EngineScheduleTest, BarrierReturnsNothingUntilTheWholeBatchIsComplete) {
  make(8 * kB, small_config(Schedule::kBarrier));
  origin_->hold_head(3 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  for (uint64_t b : {0, 1, 2}) ASSERT_TRUE(wait_done(b * kB)) << "block " << b;
  auto first = std::async(std::launch::async,
                          [&] { return prefetcher_->read(0, kB, ReadMode::kAvailable); });
  EXPECT_EQ(first.wait_for(kNoReturn), std::future_status::timeout)
      << "barrier returned bytes before block 3 of its batch was complete";
  origin_->release(3 * kB);
  ReadResult r = first.get();
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.offset, 0u);
  Drained d = drain(r.chunk.size);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  std::vector<uint8_t> all(r.chunk.data, r.chunk.data + r.chunk.size);
  all.insert(all.end(), d.bytes.begin(), d.bytes.end());
  EXPECT_TRUE(all == data());
}

TEST_F(EngineScheduleTest, BatchStartsTheNextBatchOnlyWhenTheFirstIsComplete) {
  make(12 * kB, small_config(Schedule::kBatch));
  origin_->hold_head(2 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  for (uint64_t b : {0, 1, 3}) ASSERT_TRUE(wait_done(b * kB));
  ASSERT_TRUE(origin_->wait_held(2 * kB, kHang));
  for (const RequestRecord& r : origin_->requests()) {
    EXPECT_LT(r.begin, 4 * kB) << "a block of the next batch started early";
  }
  EXPECT_EQ(origin_->request_count(), 4u);
  origin_->release(2 * kB);
  expect_exact_to_eos();
}

TEST_F(EngineScheduleTest, BatchNeverRefetchesDeliveredBlocks) {
  make(8 * kB, small_config(Schedule::kBatch));
  origin_->hold_head(3 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  for (uint64_t b : {0, 1, 2}) {
    ReadResult r = prefetcher_->read(b * kB, kB, ReadMode::kExact);
    ASSERT_EQ(r.status, ReadStatus::kOk);
    ASSERT_EQ(r.chunk.size, kB);
  }
  // The reader is at block 3, whose request is still held.
  for (uint64_t b : {0, 1, 2}) {
    EXPECT_EQ(requests_at(b * kB).size(), 1u) << "block " << b << " fetched again";
  }
  origin_->release(3 * kB);
  expect_exact_to_eos(3 * kB);
}

// ---- budget -------------------------------------------------------------------

TEST_F(EngineScheduleTest, WindowNeverExceedsConcurrencyOrLookahead) {
  Config c = small_config(Schedule::kWindow, 3);
  c.lookahead_blocks = 6;
  const uint64_t blocks = 30;
  make(blocks * kB, c);
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.chunk = 250;
    r.chunk_interval = std::chrono::microseconds(200);  // fetches overlap
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  std::vector<uint8_t> got;
  for (uint64_t next = 0; next < blocks; ++next) {
    // The slow reader: let the prefetcher do all it wants before each read.
    ASSERT_TRUE(origin_->wait_idle(kHang));
    uint64_t highest = 0;
    for (const RequestRecord& r : origin_->requests()) highest = std::max(highest, r.begin / kB);
    EXPECT_LT(highest, next + 6) << "a block beyond the look-ahead was requested (reader at "
                                 << next << ")";
    EXPECT_EQ(highest, std::min<uint64_t>(next + 6, blocks) - 1)
        << "the look-ahead is not filled (reader at " << next << ")";
    ReadResult r = prefetcher_->read(next * kB, kB, ReadMode::kExact);
    ASSERT_EQ(r.status, ReadStatus::kOk);
    ASSERT_EQ(r.chunk.size, kB);
    got.insert(got.end(), r.chunk.data, r.chunk.data + r.chunk.size);
  }
  EXPECT_TRUE(got == data());
  EXPECT_LE(origin_->max_in_flight(), 3u);
  EXPECT_EQ(origin_->max_in_flight(), 3u) << "concurrency was not used";
  EXPECT_EQ(origin_->request_count(), blocks) << "a block was fetched twice";
}

TEST_F(EngineScheduleTest, InFlightNeverExceedsConcurrencyWithAFastReader) {
  Config c = small_config(Schedule::kWindow, 2);
  c.lookahead_blocks = 8;
  make(40 * kB, c);
  origin_->set_script([](const RangeRequest& req, unsigned) {
    Reply r;
    r.first_byte_delay = milliseconds((req.begin / kB) % 3);  // jittery completion order
    r.chunk = 400;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  expect_exact_to_eos();
  EXPECT_LE(origin_->max_in_flight(), 2u);
}

}  // namespace
}  // namespace prefetch::testing
