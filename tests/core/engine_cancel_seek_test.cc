// Flushing and close() wake every wait and return promptly with requests in
// flight; a seek cancels what the new position does not need and keeps
// what a reader still holds.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "engine_fixture.h"

namespace prefetch::testing {
namespace {

class EngineCancelSeekTest : public EngineTest {
 protected:
  // A read of block 0 blocked on its body: the answer opened the transfer
  // and no body byte comes until the test releases block 0.
  std::future<ReadResult> start_blocked_read() {
    make(4 * kB);
    origin_->hold_body(0, 0);
    EXPECT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
    auto reader = std::async(std::launch::async,
                             [&] { return prefetcher_->read(0, kB, ReadMode::kAvailable); });
    EXPECT_EQ(reader.wait_for(milliseconds(50)), std::future_status::timeout);
    return reader;
  }
};

TEST_F(EngineCancelSeekTest, FlushingWakesABlockedReadWithin100ms) {
  auto reader = start_blocked_read();
  const auto t0 = std::chrono::steady_clock::now();
  prefetcher_->set_flushing(true);
  ASSERT_EQ(reader.wait_for(milliseconds(100)), std::future_status::ready)
      << "read still blocked 100 ms after set_flushing(true)";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(100));
  EXPECT_EQ(reader.get().status, ReadStatus::kFlushing);
  // While flushing, reads return at once.
  EXPECT_EQ(prefetcher_->read(0, kB, ReadMode::kAvailable).status, ReadStatus::kFlushing);
  // After the flush, reading works again.
  prefetcher_->set_flushing(false);
  origin_->release(0);
  expect_exact_to_eos();
}

TEST_F(EngineCancelSeekTest, FlushingWakesABlockedOpen) {
  make(4 * kB);
  origin_->hold_all_heads();
  auto opener = std::async(std::launch::async, [&] { return prefetcher_->open(0); });
  ASSERT_TRUE(origin_->wait_requests(1, kHang));
  ASSERT_EQ(opener.wait_for(milliseconds(50)), std::future_status::timeout);
  prefetcher_->set_flushing(true);
  ASSERT_EQ(opener.wait_for(milliseconds(100)), std::future_status::ready);
  EXPECT_EQ(opener.get().status, ReadStatus::kFlushing);
}

TEST_F(EngineCancelSeekTest, CloseReturnsPromptlyWithRequestsInFlight) {
  make(8 * kB);
  origin_->hold_all_heads();
  origin_->release(0);
  origin_->hold_body(kB, 10);  // one request stuck mid-body
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_TRUE(origin_->wait_held(kB, kHang));
  ASSERT_GT(origin_->in_flight(), 1u);
  auto closer = std::async(std::launch::async, [&] { prefetcher_->close(); });
  ASSERT_EQ(closer.wait_for(milliseconds(500)), std::future_status::ready)
      << "close() hangs with requests in flight";
  EXPECT_EQ(origin_->in_flight(), 0u);
  for (const RequestRecord& r : origin_->requests()) {
    EXPECT_TRUE(r.done) << "request at " << r.begin << " got no on_done";
  }
  // Idempotent, and reads after close do not block.
  prefetcher_->close();
}

TEST_F(EngineCancelSeekTest, CloseWakesABlockedRead) {
  auto reader = start_blocked_read();
  prefetcher_->close();
  const bool woke = reader.wait_for(milliseconds(500)) == std::future_status::ready;
  EXPECT_TRUE(woke) << "a read blocked on a block that close() cancelled stays blocked";
  if (!woke) prefetcher_->set_flushing(true);  // free the reader
  EXPECT_NE(reader.get().status, ReadStatus::kOk);
}

// ---- seek -----------------------------------------------------------------------

TEST_F(EngineCancelSeekTest, SeekCancelsRequestsOutsideTheNewWindow) {
  Config c = small_config(Schedule::kWindow, 2);
  c.lookahead_blocks = 4;
  make(100 * kB, c);
  origin_->hold_head(kB);  // block 1 stays in flight
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_TRUE(wait_done(0));
  ASSERT_TRUE(origin_->wait_held(kB, kHang));

  const uint64_t target = 50 * kB + 123;
  ReadResult r = prefetcher_->read(target, 500, ReadMode::kAvailable);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.offset, target);
  ASSERT_GT(r.chunk.size, 0u);
  EXPECT_EQ(std::vector<uint8_t>(r.chunk.data, r.chunk.data + r.chunk.size),
            slice(target, target + r.chunk.size));

  ASSERT_TRUE(wait_done(kB));
  RequestRecord old = requests_at(kB).at(0);
  EXPECT_TRUE(old.cancel_called) << "block 1's request was not cancelled by the seek";
  EXPECT_EQ(old.error, ErrorKind::kCancelled);
  for (const RequestRecord& q : origin_->requests()) {
    EXPECT_FALSE(q.begin >= 4 * kB && q.begin < 50 * kB) << "fetched skipped bytes at " << q.begin;
  }
  expect_exact_to_eos(target + r.chunk.size);
}

// The area write_area() hands out must outlive a seek that drops its block:
// the origin writes into it without the prefetcher's lock. Fails (heap use
// after free) under PREFETCHSRC_SANITIZE=address when the buffer is freed.
TEST_F(EngineCancelSeekTest, SeekWhileAnAreaIsHandedOutKeepsItAlive) {
  make(100 * kB);
  std::promise<void> handed_out, go;
  std::shared_future<void> go_f = go.get_future().share();
  std::atomic<bool> once{false};
  origin_->set_write_hook([&](uint64_t begin) {
    if (begin == kB && !once.exchange(true)) {
      handed_out.set_value();
      go_f.wait();
    }
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_EQ(handed_out.get_future().wait_for(kHang), std::future_status::ready);
  prefetcher_->seek(50 * kB);  // drops block 1 while the origin holds its area
  go.set_value();
  expect_exact_to_eos(50 * kB);
}

TEST_F(EngineCancelSeekTest, BackwardSeekDeliversTheRightBytes) {
  make(20 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained first = drain(0);
  ASSERT_EQ(first.last.status, ReadStatus::kEos);
  expect_exact_to_eos(3 * kB + 1);
}

}  // namespace
}  // namespace prefetch::testing
