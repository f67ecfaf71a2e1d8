// Close and flushing: both return promptly while transfers run or wait for
// their first byte, and flushing wakes a blocked read.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "http_fixture.h"

namespace prefetch {
namespace {

class HttpCancelTest : public HttpTest {
 protected:
  // A 1 MiB file whose block 0 answers at once, the others only after 10 s.
  void serve_slow_after_block0() {
    Behavior b;
    b.first_byte_delay = testing::block_delay_schedule(64 * kKiB, {milliseconds(0)}, seconds(10));
    serve("/f", 1 * kMiB, 30, b);
  }
};

// How long p.close() takes.
std::chrono::steady_clock::duration time_close(Prefetcher& p) {
  const auto t0 = std::chrono::steady_clock::now();
  p.close();
  return std::chrono::steady_clock::now() - t0;
}

TEST_F(HttpCancelTest, CloseDuringTransfersReturnsPromptly) {
  Behavior b;
  b.rate_bytes_per_sec = 100 * kKiB;
  b.chunk_bytes = 4 * kKiB;
  serve("/f", 4 * kMiB, 30, b);
  {
    Guarded p = guarded(options("/f"), config(256 * kKiB, 4), seconds(20));
    ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
    ReadResult r = p->read(0, 1000, ReadMode::kAvailable);
    ASSERT_EQ(r.status, ReadStatus::kOk);
    ASSERT_TRUE(server_.wait_for([&] { return server_.in_flight() == 4; }));
    const auto took = time_close(*p);
    EXPECT_TRUE(p.in_time());
    EXPECT_LT(took, seconds(2)) << "close() waited for the transfers";
  }  // the prefetcher is gone
  // The server sees every client go away (it notices at its next write).
  EXPECT_TRUE(server_.wait_idle(seconds(10)));
  EXPECT_GE(count_requests("/f", [](const RequestRecord& rec) { return rec.client_gone; }), 1u);
}

TEST_F(HttpCancelTest, CloseWhileWaitingForFirstByteReturnsPromptly) {
  serve_slow_after_block0();
  Guarded p = guarded(options("/f"), block_config(64 * kKiB, 4), seconds(20));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  ASSERT_TRUE(server_.wait_for([&] { return server_.in_flight() >= 3; }));
  const auto took = time_close(*p);
  EXPECT_TRUE(p.in_time());
  EXPECT_LT(took, seconds(2));
}

TEST_F(HttpCancelTest, FlushingWakesABlockedRead) {
  serve_slow_after_block0();
  Guarded p = guarded(options("/f"), block_config(64 * kKiB, 2), seconds(20));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  std::thread unlock([&] {
    server_.wait_for([&] { return server_.in_flight() >= 2; });
    std::this_thread::sleep_for(milliseconds(100));
    p->set_flushing(true);
  });
  ReadResult r = p->read(64 * kKiB, 1000, ReadMode::kAvailable);  // block 1: 10 s away
  unlock.join();
  EXPECT_EQ(r.status, ReadStatus::kFlushing);
  EXPECT_TRUE(p.close_in_time());
}

}  // namespace
}  // namespace prefetch
