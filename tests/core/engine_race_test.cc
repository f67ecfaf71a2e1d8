// Racing the reader's first byte: at the start and after a seek, the
// request the reader waits on gets up to two twins when its first byte is
// late; the first answer wins, the others are cancelled, the bytes stay
// exact. Late is measured: the connection's set-up before any first byte
// was timed, the first-byte times after.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "engine_fixture.h"

namespace prefetch::testing {
namespace {

class EngineRaceTest : public EngineTest {
 protected:
  void expect_twins_within(unsigned concurrency);
};

constexpr microseconds kQuickSetUp{1000};  // 1 ms: the race's limit is its 50 ms floor
constexpr milliseconds kNever{8000};       // a first byte the test never waits for

Config race_config() {
  Config c = small_config(Schedule::kWindow, 4);
  c.hedge.race_floor = milliseconds(50);
  return c;
}

// A reply from an origin that says what opening its connection took.
Reply told(milliseconds first_byte = milliseconds(0), microseconds setup = kQuickSetUp) {
  Reply r;
  r.setup = setup;
  r.first_byte_delay = first_byte;
  return r;
}

// The start's request never answers in time; its twin answers at once and
// wins. The first is cancelled without a byte and the bytes are exact.
TEST_F(EngineRaceTest, TheStartsLateFirstByteIsRacedAndTheTwinWins) {
  make(8 * kB, race_config());
  origin_->set_script([](const RangeRequest& req, unsigned attempt) {
    return told(req.begin == 0 && attempt == 0 ? kNever : milliseconds(0));
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  expect_exact_to_eos();
  ASSERT_TRUE(origin_->wait_idle(kHang));  // the records are final
  const std::vector<RequestRecord> zero = requests_at(0);
  const Stats st = prefetcher_->stats();
  ASSERT_GE(st.races_sent, 1u);
  ASSERT_LE(st.races_sent, 2u) << "more than two twins for one start";
  EXPECT_EQ(zero.size(), 1 + st.races_sent);
  EXPECT_TRUE(zero[0].cancel_called) << "the late request was not cancelled";
  EXPECT_EQ(zero[0].body_bytes, 0u);
  EXPECT_EQ(st.races_won, 1u);
  EXPECT_EQ(st.hedges_sent, 0u) << "a race is not a hedge";
}

// The start's request answers after both twins went (its head is held
// until then): it wins, both twins are cancelled, and no third one went
// while all three waited.
TEST_F(EngineRaceTest, TwoTwinsAtMostAndTheFirstAnswerWins) {
  make(8 * kB, race_config());
  origin_->set_script([](const RangeRequest& req, unsigned attempt) {
    return told(req.begin == 0 && attempt > 0 ? kNever : milliseconds(0));
  });
  origin_->hold_head(0);
  // The reader waits for the start (races are for a reader that waits).
  std::future<ReadResult> opened =
      std::async(std::launch::async, [this] { return prefetcher_->open(0); });
  ASSERT_TRUE(origin_->wait_requests(3, kHang)) << "the late start got no two twins";
  // Several times the second twin's wait: a third would have gone by now.
  std::this_thread::sleep_for(3 * kNoReturn);
  EXPECT_EQ(origin_->request_count(), 3u) << "a third twin for one start";
  origin_->release(0);
  ASSERT_EQ(opened.get().status, ReadStatus::kOk);
  expect_exact_to_eos();
  ASSERT_TRUE(origin_->wait_idle(kHang));
  const std::vector<RequestRecord> zero = requests_at(0);
  ASSERT_EQ(zero.size(), 3u);
  EXPECT_EQ(zero[0].body_bytes, kB) << "the first answer's bytes were not used";
  for (size_t i = 1; i < zero.size(); ++i) {
    EXPECT_TRUE(zero[i].cancel_called) << "twin " << i << " was not cancelled";
    EXPECT_EQ(zero[i].body_bytes, 0u);
  }
  const Stats st = prefetcher_->stats();
  EXPECT_EQ(st.races_sent, 2u);
  EXPECT_EQ(st.races_won, 0u);
}

// An origin that cannot tell what opening a connection took gives the race
// nothing to time the start by: no twin, however late the first byte.
TEST_F(EngineRaceTest, NoSetUpToTimeByNoRaceAtTheStart) {
  make(4 * kB, race_config());
  origin_->set_script([](const RangeRequest& req, unsigned) {
    Reply r;
    if (req.begin == 0) r.first_byte_delay = milliseconds(300);
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  expect_exact_to_eos();
  ASSERT_TRUE(origin_->wait_idle(kHang));
  EXPECT_EQ(requests_at(0).size(), 1u);
  EXPECT_EQ(prefetcher_->stats().races_sent, 0u);
}

// A first byte that comes within a few set-up times is not late: a
// connection that took 1 s to open allows a 4 s wait.
TEST_F(EngineRaceTest, AnAnswerWithinAFewSetUpTimesIsNotRaced) {
  make(4 * kB, race_config());
  origin_->set_script([](const RangeRequest&, unsigned) {
    return told(milliseconds(100), std::chrono::seconds(1));
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  expect_exact_to_eos();
  ASSERT_TRUE(origin_->wait_idle(kHang));
  EXPECT_EQ(requests_at(0).size(), 1u);
  EXPECT_EQ(prefetcher_->stats().races_sent, 0u);
}

// After a seek the reader's first byte is raced again: the request at the
// seek's offset never answers in time, its twin does, and the bytes from
// the offset on are exact.
TEST_F(EngineRaceTest, ASeekIsRacedAgain) {
  make(40 * kB, race_config());
  const uint64_t target = 30 * kB;
  origin_->set_script([&](const RangeRequest& req, unsigned attempt) {
    return told(req.begin == target && attempt == 0 ? kNever : milliseconds(0));
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ReadResult first = prefetcher_->read(0, 4096, ReadMode::kAvailable);
  ASSERT_EQ(first.status, ReadStatus::kOk);
  prefetcher_->seek(target);
  expect_exact_to_eos(target);
  ASSERT_TRUE(origin_->wait_idle(kHang));
  const std::vector<RequestRecord> at = requests_at(target);
  ASSERT_GE(at.size(), 2u) << "the seek's late first byte was not raced";
  EXPECT_LE(at.size(), 3u);
  EXPECT_TRUE(at[0].cancel_called);
  EXPECT_EQ(at[0].body_bytes, 0u);
  EXPECT_GE(prefetcher_->stats().races_won, 1u);
}

// The reader's request and its twins stay within the concurrency: with
// two request slots the start's late first byte gets one twin, with one
// slot none.
void EngineRaceTest::expect_twins_within(unsigned concurrency) {
  Config c = race_config();
  c.concurrency = concurrency;
  make(4 * kB, c);
  origin_->set_script([](const RangeRequest& req, unsigned attempt) {
    return told(req.begin == 0 && attempt > 0 ? kNever : milliseconds(0));
  });
  origin_->hold_head(0);
  std::future<ReadResult> opened =
      std::async(std::launch::async, [this] { return prefetcher_->open(0); });
  ASSERT_TRUE(origin_->wait_requests(concurrency, kHang));
  // Several times the second twin's wait: another would have gone by now.
  std::this_thread::sleep_for(3 * kNoReturn);
  EXPECT_EQ(origin_->request_count(), concurrency) << "a twin beyond the concurrency";
  origin_->release(0);
  ASSERT_EQ(opened.get().status, ReadStatus::kOk);
  expect_exact_to_eos();
  EXPECT_EQ(prefetcher_->stats().races_sent, concurrency - 1);
}

TEST_F(EngineRaceTest, OneSlotRacesNothing) { expect_twins_within(1); }
TEST_F(EngineRaceTest, TwoSlotsRaceWithOneTwin) { expect_twins_within(2); }

// Where every first byte takes about as long (a fixed-latency origin),
// a twin would wait as long too: once that is measured, a seek is not
// raced.
TEST_F(EngineRaceTest, AFixedLatencyOriginIsNotRacedOnceMeasured) {
  Config c = race_config();
  c.concurrency = 4;
  make(24 * kB, c);
  origin_->set_script([](const RangeRequest&, unsigned) { return told(milliseconds(500)); });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained head = drain(0);
  ASSERT_EQ(head.last.status, ReadStatus::kEos);
  ASSERT_GE(prefetcher_->stats().requests_started, 6u) << "too few first bytes timed";
  const uint64_t before = prefetcher_->stats().races_sent;
  prefetcher_->seek(2 * kB);
  expect_exact_to_eos(2 * kB);
  EXPECT_EQ(prefetcher_->stats().races_sent, before) << "a no-tail origin was raced after a seek";
}

}  // namespace
}  // namespace prefetch::testing
