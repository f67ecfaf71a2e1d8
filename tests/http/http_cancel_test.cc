// Close and flushing: both return promptly while transfers run or wait for
// their first byte, and flushing wakes a blocked read.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "http_fixture.h"

namespace prefetch {
namespace {

class HttpCancelTest : public HttpTest {};

TEST_F(HttpCancelTest, CloseDuringTransfersReturnsPromptly) {
  server_.add_file("/f", testing::make_pattern(4 * kMiB, 30));
  Behavior b;
  b.rate_bytes_per_sec = 100 * kKiB;
  b.chunk_bytes = 4 * kKiB;
  server_.set_behavior("/f", b);
  auto p = make(options("/f"), config(256 * kKiB, 4));
  Watchdog dog(p.get(), seconds(20));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  ReadResult r = p->read(0, 1000, ReadMode::kAvailable);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  ASSERT_TRUE(server_.wait_for([&] { return server_.in_flight() == 4; }));
  auto t0 = std::chrono::steady_clock::now();
  p->close();
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_FALSE(dog.stop());
  EXPECT_LT(took, seconds(2)) << "close() waited for the transfers";
  p.reset();
  // The server sees every client go away (it notices at its next write).
  EXPECT_TRUE(server_.wait_idle(seconds(10)));
  int gone = 0;
  for (const auto& rec : server_.requests("/f")) gone += rec.client_gone;
  EXPECT_GE(gone, 1);
}

TEST_F(HttpCancelTest, CloseWhileWaitingForFirstByteReturnsPromptly) {
  server_.add_file("/f", testing::make_pattern(1 * kMiB, 30));
  Behavior b;
  // Block 0 answers at once, the others only after 10 s.
  b.first_byte_delay = testing::block_delay_schedule(64 * kKiB, {milliseconds(0)}, seconds(10));
  server_.set_behavior("/f", b);
  auto p = make(options("/f"), block_config(64 * kKiB, 4));
  Watchdog dog(p.get(), seconds(20));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  ASSERT_TRUE(server_.wait_for([&] { return server_.in_flight() >= 3; }));
  auto t0 = std::chrono::steady_clock::now();
  p->close();
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_FALSE(dog.stop());
  EXPECT_LT(took, seconds(2));
}

TEST_F(HttpCancelTest, FlushingWakesABlockedRead) {
  server_.add_file("/f", testing::make_pattern(1 * kMiB, 30));
  Behavior b;
  b.first_byte_delay = testing::block_delay_schedule(64 * kKiB, {milliseconds(0)}, seconds(10));
  server_.set_behavior("/f", b);
  auto p = make(options("/f"), block_config(64 * kKiB, 2));
  Watchdog dog(p.get(), seconds(20));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  std::thread unlock([&] {
    server_.wait_for([&] { return server_.in_flight() >= 2; });
    std::this_thread::sleep_for(milliseconds(100));
    p->set_flushing(true);
  });
  ReadResult r = p->read(64 * kKiB, 1000, ReadMode::kAvailable);  // block 1: 10 s away
  unlock.join();
  EXPECT_EQ(r.status, ReadStatus::kFlushing);
  p->close();
  EXPECT_FALSE(dog.stop());
}

}  // namespace
}  // namespace prefetch
