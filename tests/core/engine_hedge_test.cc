// Hedging: a late head block gets a second request, the loser is
// cancelled, hedges stay within their share, and a fixed-latency origin
// gets none.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "engine_fixture.h"

namespace prefetch::testing {
namespace {

class EngineHedgeTest : public EngineTest {};

Config hedge_config(unsigned concurrency = 2) {
  Config c = small_config(Schedule::kWindow, concurrency);
  c.hedge.floor = milliseconds(50);
  return c;
}

// Block 6's first request never answers in time; its hedge (a second request
// for the same bytes) answers at once and wins. The first is cancelled, the
// bytes are exact, and the hedge ran on the spare slot beyond concurrency.
TEST_F(EngineHedgeTest, ALateHeadBlockIsHedgedAndTheHedgeWins) {
  make(12 * kB, hedge_config(2));
  origin_->set_script([](const RangeRequest& req, unsigned attempt) {
    Reply r;
    if (req.begin == 6 * kB && attempt == 0) r.first_byte_delay = milliseconds(8000);
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  expect_exact_to_eos();
  ASSERT_TRUE(origin_->wait_idle(kHang));  // the records are final
  const std::vector<RequestRecord> six = requests_at(6 * kB);
  ASSERT_EQ(six.size(), 2u) << "block 6: one request and one hedge";
  EXPECT_TRUE(six[0].cancel_called) << "the losing request was not cancelled";
  EXPECT_EQ(six[0].body_bytes, 0u);
  EXPECT_EQ(six[1].body_bytes, kB);
  const Stats st = prefetcher_->stats();
  EXPECT_EQ(st.hedges_sent, 1u);
  EXPECT_EQ(st.hedges_won, 1u);
  EXPECT_EQ(st.races_sent, 0u) << "a late block while the reader reads on is the hedge's";
  EXPECT_EQ(origin_->request_count(), 13u) << "one request per block plus the hedge";
  EXPECT_LE(origin_->max_in_flight(), 3u) << "more than concurrency + the hedge's spare";
}

// The same origin with hedge off: one request per block, and the late one is
// waited for.
TEST_F(EngineHedgeTest, HedgeOffSendsNoHedge) {
  Config c = hedge_config(2);
  c.hedge.enabled = false;
  make(8 * kB, c);
  origin_->set_script([](const RangeRequest& req, unsigned) {
    Reply r;
    if (req.begin == 6 * kB) r.first_byte_delay = milliseconds(600);
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = drain(0);
  ASSERT_TRUE(origin_->wait_idle(kHang));  // the records are final
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == data());
  EXPECT_EQ(origin_->request_count(), 8u);
  EXPECT_EQ(prefetcher_->stats().hedges_sent, 0u);
  EXPECT_LE(origin_->max_in_flight(), 2u);
}

// When the first request answers before its hedge, the hedge is cancelled
// and the first one's bytes are used.
TEST_F(EngineHedgeTest, AHedgeThatLosesIsCancelled) {
  make(10 * kB, hedge_config(2));
  origin_->set_script([](const RangeRequest& req, unsigned attempt) {
    Reply r;
    if (req.begin == 6 * kB) r.first_byte_delay = milliseconds(attempt == 0 ? 400 : 8000);
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  expect_exact_to_eos();
  ASSERT_TRUE(origin_->wait_idle(kHang));  // the records are final
  const std::vector<RequestRecord> six = requests_at(6 * kB);
  ASSERT_EQ(six.size(), 2u);
  EXPECT_EQ(six[0].body_bytes, kB);
  EXPECT_TRUE(six[1].cancel_called) << "the losing hedge was not cancelled";
  EXPECT_EQ(six[1].body_bytes, 0u);
  EXPECT_EQ(prefetcher_->stats().hedges_sent, 1u);
  EXPECT_EQ(prefetcher_->stats().hedges_won, 0u);
}

// Every fifth block is late. With hedge_share 10 % of 30 blocks, three hedges
// at most, never two for one block, and the bytes stay exact.
TEST_F(EngineHedgeTest, HedgesStayWithinTheirShare) {
  Config c = hedge_config(3);
  make(30 * kB, c);
  origin_->set_script([](const RangeRequest& req, unsigned) {
    Reply r;
    const uint64_t block = req.begin / kB;
    if (block % 5 == 4) r.first_byte_delay = milliseconds(300);  // hedges are slow too
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  expect_exact_to_eos();
  ASSERT_TRUE(origin_->wait_idle(kHang));  // the records are final
  const Stats st = prefetcher_->stats();
  EXPECT_GE(st.hedges_sent, 1u) << "late blocks were not hedged";
  EXPECT_LE(st.hedges_sent, 3u) << "more than 10 % extra requests";
  EXPECT_EQ(origin_->request_count(), 30u + st.hedges_sent);
  for (uint64_t b = 0; b < 30; ++b)
    EXPECT_LE(requests_at(b * kB).size(), 2u) << "block " << b << " was hedged twice";
}

// An origin without a tail (every first byte takes the same time) gets no
// hedge: the threshold sits above its fixed wait.
TEST_F(EngineHedgeTest, AFixedLatencyOriginGetsNoHedge) {
  make(12 * kB, hedge_config(4));
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.first_byte_delay = milliseconds(200);
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  expect_exact_to_eos();
  ASSERT_TRUE(origin_->wait_idle(kHang));  // the records are final
  EXPECT_EQ(prefetcher_->stats().hedges_sent, 0u);
  EXPECT_EQ(origin_->request_count(), 12u);
  EXPECT_LE(origin_->max_in_flight(), 4u);
}

}  // namespace
}  // namespace prefetch::testing
