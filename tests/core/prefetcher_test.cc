// The Prefetcher against the scripted FakeOrigin: bytes, order, progressive
// head, schedules, budget, cancellation, seeks and errors. Gates set the
// completion order; timeouts are hang guards only.
#include "prefetch/prefetcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <map>
#include <thread>

#include "fake_origin.h"

namespace prefetch {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using testing::FakeClock;
using testing::FakeOrigin;
using testing::PatternBytes;
using testing::Reply;
using testing::RequestRecord;

constexpr uint64_t kB = 1000;           // block size of most tests
constexpr milliseconds kHang{10000};    // hang guard: far beyond any honest wait
constexpr milliseconds kNoReturn{150};  // "still blocked" observation window

Config SmallConfig(Schedule schedule = Schedule::kWindow, unsigned concurrency = 4) {
  Config c;
  c.block_size = kB;
  c.concurrency = concurrency;
  c.schedule = schedule;
  c.retry.backoff_base = milliseconds(2);
  c.retry.backoff_max = milliseconds(20);
  // One block per request: these tests script the origin block by block.
  // The span tests (SpanTest) set it back to 0 (automatic).
  c.max_request_bytes = kB;
  return c;
}

// A read result reduced to what the tests compare.
struct Drained {
  std::vector<uint8_t> bytes;
  ReadResult last;  // the read that ended the loop (kEos, kError or kFlushing)
  bool offsets_ok = true;
};

class PrefetcherTest : public ::testing::Test {
 protected:
  void Make(uint64_t size, Config config = SmallConfig()) {
    origin_ = std::make_shared<FakeOrigin>(PatternBytes(size));
    // PREFETCH_TEST_LOG=1 prints the engine's log (as the http tests do).
    Logger logger;
    if (std::getenv("PREFETCH_TEST_LOG"))
      logger = Logger(
          [](LogLevel, const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); },
          LogLevel::kDebug);
    prefetcher_ = std::make_unique<Prefetcher>(origin_, config, std::move(logger));
    StartWatchdog();
  }

  void TearDown() override {
    StopWatchdog();
    if (!prefetcher_) return;
    prefetcher_->close();
    // close() waits for every on_done; the origin's records must agree.
    for (const RequestRecord& r : origin_->requests()) {
      EXPECT_TRUE(r.done) << "request " << r.id << " at " << r.begin << " never got on_done";
    }
    prefetcher_.reset();
    origin_.reset();
  }

  // Hang guard: wakes every wait of the prefetcher, so a stuck test fails
  // with kFlushing instead of hanging the suite.
  void StartWatchdog() {
    watchdog_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(watchdog_mu_);
      if (!watchdog_cv_.wait_for(lock, std::chrono::seconds(30), [&] { return watchdog_done_; })) {
        ADD_FAILURE() << "watchdog: the test hung; flushing the prefetcher";
        prefetcher_->set_flushing(true);
      }
    });
  }
  void StopWatchdog() {
    if (!watchdog_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(watchdog_mu_);
      watchdog_done_ = true;
    }
    watchdog_cv_.notify_all();
    watchdog_.join();
  }

  const std::vector<uint8_t>& data() const { return origin_->data(); }
  std::vector<uint8_t> Slice(uint64_t from, uint64_t to) const {
    return std::vector<uint8_t>(data().begin() + from, data().begin() + to);
  }

  // Reads from `offset` until anything but kOk.
  Drained Drain(uint64_t offset, size_t length = 4096, ReadMode mode = ReadMode::kAvailable) {
    Drained d;
    for (;;) {
      ReadResult r = prefetcher_->read(offset, length, mode);
      if (r.status != ReadStatus::kOk) {
        d.last = r;
        return d;
      }
      if (r.chunk.offset != offset || r.chunk.size == 0 || r.chunk.size > length || !r.chunk.data ||
          !r.chunk.owner) {
        ADD_FAILURE() << "bad chunk at " << offset << ": offset " << r.chunk.offset << " size "
                      << r.chunk.size;
        d.offsets_ok = false;
        d.last = r;
        return d;
      }
      d.bytes.insert(d.bytes.end(), r.chunk.data, r.chunk.data + r.chunk.size);
      offset += r.chunk.size;
    }
  }

  std::vector<RequestRecord> RequestsAt(uint64_t begin) const {
    std::vector<RequestRecord> out;
    for (const RequestRecord& r : origin_->requests()) {
      if (r.begin == begin) out.push_back(r);
    }
    return out;
  }

  bool WaitDone(uint64_t begin) {
    const auto deadline = std::chrono::steady_clock::now() + kHang;
    while (std::chrono::steady_clock::now() < deadline) {
      for (const RequestRecord& r : RequestsAt(begin)) {
        if (r.done) return true;
      }
      std::this_thread::sleep_for(milliseconds(1));
    }
    return false;
  }

  std::shared_ptr<FakeOrigin> origin_;
  std::unique_ptr<Prefetcher> prefetcher_;

 private:
  std::thread watchdog_;
  std::mutex watchdog_mu_;
  std::condition_variable watchdog_cv_;
  bool watchdog_done_ = false;
};

// Fingerprints bytes for readable failure messages on large buffers.
uint64_t Checksum(const std::vector<uint8_t>& v) {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : v) h = (h ^ b) * 1099511628211ull;
  return h;
}

// ---- bytes exact ------------------------------------------------------------

class PrefetcherSizeTest : public PrefetcherTest, public ::testing::WithParamInterface<uint64_t> {};

TEST_P(PrefetcherSizeTest, DeliversEveryByteInOrder) {
  Make(GetParam());
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.chunk = 300;  // blocks arrive in several pieces
    return r;
  });
  ReadResult o = prefetcher_->open(0);
  ASSERT_EQ(o.status, ReadStatus::kOk) << o.error.message;
  EXPECT_EQ(prefetcher_->size(), GetParam());
  Drained d = Drain(0);
  EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  EXPECT_EQ(d.bytes.size(), GetParam());
  EXPECT_TRUE(d.bytes == data()) << "bytes differ";
}

TEST_P(PrefetcherSizeTest, ExactReadsDeliverEveryByte) {
  Make(GetParam());
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0, 777, ReadMode::kExact);
  EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  EXPECT_TRUE(d.bytes == data()) << "bytes differ";
}

INSTANTIATE_TEST_SUITE_P(Sizes, PrefetcherSizeTest,
                         ::testing::Values(0, 1, kB - 1, kB, kB + 1, 7 * kB + 13),
                         [](const auto& info) { return "size_" + std::to_string(info.param); });

TEST_F(PrefetcherTest, FiveMegabytesWithSmallBlocksAreBytesExact) {
  Config c = SmallConfig();
  c.block_size = 16 * 1024;
  Make(5 * 1000 * 1000 + 3, c);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0, 64 * 1024);
  EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  ASSERT_EQ(d.bytes.size(), data().size());
  EXPECT_EQ(Checksum(d.bytes), Checksum(data()));
  EXPECT_TRUE(d.bytes == data());
  EXPECT_LE(origin_->max_in_flight(), 4u);
}

TEST_F(PrefetcherTest, OpenAtAnOffsetDeliversFromThere) {
  Make(10 * kB);
  ASSERT_EQ(prefetcher_->open(4 * kB + 10).status, ReadStatus::kOk);
  Drained d = Drain(4 * kB + 10);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == Slice(4 * kB + 10, 10 * kB));
  for (const RequestRecord& r : origin_->requests()) EXPECT_GE(r.begin, 4 * kB);
}

// ---- order --------------------------------------------------------------------

TEST_F(PrefetcherTest, OrderKeptWhenBlocksCompleteOutOfOrder) {
  Make(4 * kB);
  // Block 0's answer opens the transfer (until then it is the only
  // request); its body and the others' answers wait.
  origin_->hold_body(0, 0);
  for (uint64_t block : {1, 2, 3}) origin_->hold_head(block * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  auto reader = std::async(std::launch::async, [&] { return Drain(0, 10 * kB); });
  for (uint64_t block : {3, 2, 1, 0}) {
    origin_->release(block * kB);
    ASSERT_TRUE(WaitDone(block * kB)) << "block " << block;
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

TEST_F(PrefetcherTest, WindowStreamsTheHeadBlockBeforeItIsComplete) {
  Make(4 * kB);
  origin_->hold_body(0, 100);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_TRUE(origin_->wait_held(0, kHang));
  ReadResult r = prefetcher_->read(0, kB, ReadMode::kAvailable);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.offset, 0u);
  ASSERT_EQ(r.chunk.size, 100u) << "the head block's first bytes should leave at once";
  EXPECT_EQ(std::vector<uint8_t>(r.chunk.data, r.chunk.data + 100), Slice(0, 100));
  EXPECT_FALSE(RequestsAt(0).at(0).done);
  origin_->release(0);
  Drained d = Drain(100);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == Slice(100, 4 * kB));
}

// ---- gather (push mode's batching) ---------------------------------------------

TEST_F(PrefetcherTest, GatherNeverHoldsTheFirstBytesOfABlock) {
  Make(4 * kB);
  origin_->hold_body(0, 100);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_TRUE(origin_->wait_held(0, kHang));
  const auto start = std::chrono::steady_clock::now();
  prefetcher_->gather(0, 500, std::chrono::seconds(5));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
  ReadResult r = prefetcher_->read(0, kB, ReadMode::kAvailable);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.size, 100u);
  origin_->release(0);
}

TEST_F(PrefetcherTest, GatherDoesNotWaitForAStalledBlock) {
  Make(4 * kB);
  origin_->hold_body(0, 300);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_TRUE(origin_->wait_held(0, kHang));
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

TEST_F(PrefetcherTest, GatherWaitsForBytesThatArriveFast) {
  Make(4 * kB);
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
              Slice(at, at + r.chunk.size));
  Drained d = Drain(at + r.chunk.size);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
}

TEST_F(PrefetcherTest, BatchHoldsBlockZeroUntilItIsComplete) {
  Make(8 * kB, SmallConfig(Schedule::kBatch));
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
  Drained d = Drain(r.chunk.size);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == Slice(r.chunk.size, 8 * kB));
}

TEST_F(PrefetcherTest, BatchDeliversBlockZeroWithoutWaitingForTheBatch) {
  Make(8 * kB, SmallConfig(Schedule::kBatch));
  origin_->hold_head(3 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ReadResult r = prefetcher_->read(0, kB, ReadMode::kAvailable);  // block 3 still held
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.size, kB);
  EXPECT_FALSE(RequestsAt(3 * kB).at(0).done);
  origin_->release(3 * kB);
}

TEST_F(PrefetcherTest, BarrierReturnsNothingUntilTheWholeBatchIsComplete) {
  Make(8 * kB, SmallConfig(Schedule::kBarrier));
  origin_->hold_head(3 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  for (uint64_t b : {0, 1, 2}) ASSERT_TRUE(WaitDone(b * kB)) << "block " << b;
  auto first = std::async(std::launch::async,
                          [&] { return prefetcher_->read(0, kB, ReadMode::kAvailable); });
  EXPECT_EQ(first.wait_for(kNoReturn), std::future_status::timeout)
      << "barrier returned bytes before block 3 of its batch was complete";
  origin_->release(3 * kB);
  ReadResult r = first.get();
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.offset, 0u);
  Drained d = Drain(r.chunk.size);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  std::vector<uint8_t> all(r.chunk.data, r.chunk.data + r.chunk.size);
  all.insert(all.end(), d.bytes.begin(), d.bytes.end());
  EXPECT_TRUE(all == data());
}

TEST_F(PrefetcherTest, BatchStartsTheNextBatchOnlyWhenTheFirstIsComplete) {
  Make(12 * kB, SmallConfig(Schedule::kBatch));
  origin_->hold_head(2 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  for (uint64_t b : {0, 1, 3}) ASSERT_TRUE(WaitDone(b * kB));
  ASSERT_TRUE(origin_->wait_held(2 * kB, kHang));
  for (const RequestRecord& r : origin_->requests()) {
    EXPECT_LT(r.begin, 4 * kB) << "a block of the next batch started early";
  }
  EXPECT_EQ(origin_->request_count(), 4u);
  origin_->release(2 * kB);
  Drained d = Drain(0);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == data());
}

TEST_F(PrefetcherTest, BatchNeverRefetchesDeliveredBlocks) {
  Make(8 * kB, SmallConfig(Schedule::kBatch));
  origin_->hold_head(3 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  for (uint64_t b : {0, 1, 2}) {
    ReadResult r = prefetcher_->read(b * kB, kB, ReadMode::kExact);
    ASSERT_EQ(r.status, ReadStatus::kOk);
    ASSERT_EQ(r.chunk.size, kB);
  }
  // The reader is at block 3, whose request is still held.
  for (uint64_t b : {0, 1, 2}) {
    EXPECT_EQ(RequestsAt(b * kB).size(), 1u) << "block " << b << " fetched again";
  }
  origin_->release(3 * kB);
  Drained d = Drain(3 * kB);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == Slice(3 * kB, 8 * kB));
}

// ---- budget -------------------------------------------------------------------

TEST_F(PrefetcherTest, WindowNeverExceedsConcurrencyOrLookahead) {
  Config c = SmallConfig(Schedule::kWindow, 3);
  c.lookahead_blocks = 6;
  const uint64_t blocks = 30;
  Make(blocks * kB, c);
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

TEST_F(PrefetcherTest, InFlightNeverExceedsConcurrencyWithAFastReader) {
  Config c = SmallConfig(Schedule::kWindow, 2);
  c.lookahead_blocks = 8;
  Make(40 * kB, c);
  origin_->set_script([](const RangeRequest& req, unsigned) {
    Reply r;
    r.first_byte_delay = milliseconds((req.begin / kB) % 3);  // jittery completion order
    r.chunk = 400;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == data());
  EXPECT_LE(origin_->max_in_flight(), 2u);
}

// ---- cancellation -------------------------------------------------------------

TEST_F(PrefetcherTest, FlushingWakesABlockedReadWithin100ms) {
  Make(4 * kB);
  origin_->hold_body(0, 0);  // its answer opens the transfer; no body byte comes
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  auto reader = std::async(std::launch::async,
                           [&] { return prefetcher_->read(0, kB, ReadMode::kAvailable); });
  ASSERT_EQ(reader.wait_for(milliseconds(50)), std::future_status::timeout);
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
  Drained d = Drain(0);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == data());
}

TEST_F(PrefetcherTest, FlushingWakesABlockedOpen) {
  Make(4 * kB);
  origin_->hold_all_heads();
  auto opener = std::async(std::launch::async, [&] { return prefetcher_->open(0); });
  ASSERT_TRUE(origin_->wait_requests(1, kHang));
  ASSERT_EQ(opener.wait_for(milliseconds(50)), std::future_status::timeout);
  prefetcher_->set_flushing(true);
  ASSERT_EQ(opener.wait_for(milliseconds(100)), std::future_status::ready);
  EXPECT_EQ(opener.get().status, ReadStatus::kFlushing);
}

TEST_F(PrefetcherTest, CloseReturnsPromptlyWithRequestsInFlight) {
  Make(8 * kB);
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

TEST_F(PrefetcherTest, CloseWakesABlockedRead) {
  Make(4 * kB);
  origin_->hold_body(0, 0);  // its answer opens the transfer; no body byte comes
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  auto reader = std::async(std::launch::async,
                           [&] { return prefetcher_->read(0, kB, ReadMode::kAvailable); });
  ASSERT_EQ(reader.wait_for(milliseconds(50)), std::future_status::timeout);
  prefetcher_->close();
  const bool woke = reader.wait_for(milliseconds(500)) == std::future_status::ready;
  EXPECT_TRUE(woke) << "a read blocked on a block that close() cancelled stays blocked";
  if (!woke) prefetcher_->set_flushing(true);  // free the reader
  EXPECT_NE(reader.get().status, ReadStatus::kOk);
}

// ---- seek -----------------------------------------------------------------------

TEST_F(PrefetcherTest, SeekCancelsRequestsOutsideTheNewWindow) {
  Config c = SmallConfig(Schedule::kWindow, 2);
  c.lookahead_blocks = 4;
  Make(100 * kB, c);
  origin_->hold_head(kB);  // block 1 stays in flight
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_TRUE(WaitDone(0));
  ASSERT_TRUE(origin_->wait_held(kB, kHang));

  const uint64_t target = 50 * kB + 123;
  ReadResult r = prefetcher_->read(target, 500, ReadMode::kAvailable);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.offset, target);
  ASSERT_GT(r.chunk.size, 0u);
  EXPECT_EQ(std::vector<uint8_t>(r.chunk.data, r.chunk.data + r.chunk.size),
            Slice(target, target + r.chunk.size));

  ASSERT_TRUE(WaitDone(kB));
  RequestRecord old = RequestsAt(kB).at(0);
  EXPECT_TRUE(old.cancel_called) << "block 1's request was not cancelled by the seek";
  EXPECT_EQ(old.error, ErrorKind::kCancelled);
  for (const RequestRecord& q : origin_->requests()) {
    EXPECT_FALSE(q.begin >= 4 * kB && q.begin < 50 * kB) << "fetched skipped bytes at " << q.begin;
  }
  Drained d = Drain(target + r.chunk.size);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == Slice(target + r.chunk.size, 100 * kB));
}

// The area write_area() hands out must outlive a seek that drops its block:
// the origin writes into it without the prefetcher's lock. Fails (heap use
// after free) under PREFETCHSRC_SANITIZE=address when the buffer is freed.
TEST_F(PrefetcherTest, SeekWhileAnAreaIsHandedOutKeepsItAlive) {
  Make(100 * kB);
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
  Drained d = Drain(50 * kB);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == Slice(50 * kB, 100 * kB));
}

TEST_F(PrefetcherTest, BackwardSeekDeliversTheRightBytes) {
  Make(20 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained first = Drain(0);
  ASSERT_EQ(first.last.status, ReadStatus::kEos);
  Drained again = Drain(3 * kB + 1);
  EXPECT_EQ(again.last.status, ReadStatus::kEos);
  EXPECT_TRUE(again.bytes == Slice(3 * kB + 1, 20 * kB));
}

// ---- errors ---------------------------------------------------------------------

Reply Status(int status) {
  Reply r;
  r.status = status;
  return r;
}

TEST_F(PrefetcherTest, NotFoundFailsOpenWithKNotFound) {
  Make(4 * kB);
  origin_->set_script([](const RangeRequest&, unsigned) { return Status(404); });
  ReadResult o = prefetcher_->open(0);
  ASSERT_EQ(o.status, ReadStatus::kError);
  EXPECT_EQ(o.error.kind, ErrorKind::kNotFound);
  EXPECT_EQ(o.error.http_status, 404);
  EXPECT_EQ(RequestsAt(0).size(), 1u) << "a 404 is not worth a retry";
  // Later reads report the same error.
  ReadResult r = prefetcher_->read(0, kB, ReadMode::kAvailable);
  EXPECT_EQ(r.status, ReadStatus::kError);
  EXPECT_EQ(r.error.kind, ErrorKind::kNotFound);
}

TEST_F(PrefetcherTest, ForbiddenFailsOpenWithKNotAuthorized) {
  Make(4 * kB);
  origin_->set_script([](const RangeRequest&, unsigned) { return Status(403); });
  ReadResult o = prefetcher_->open(0);
  ASSERT_EQ(o.status, ReadStatus::kError);
  EXPECT_EQ(o.error.kind, ErrorKind::kNotAuthorized);
  EXPECT_EQ(o.error.http_status, 403);
}

TEST_F(PrefetcherTest, NotFoundOnALaterBlockFailsTheRead) {
  Make(8 * kB);
  origin_->set_script([](const RangeRequest& req, unsigned) {
    return req.begin == 5 * kB ? Status(404) : Reply{};
  });
  origin_->hold_head(5 * kB);  // the 404 comes after open()
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  origin_->release(5 * kB);
  Drained d = Drain(0);
  ASSERT_EQ(d.last.status, ReadStatus::kError);
  EXPECT_EQ(d.last.error.kind, ErrorKind::kNotFound);
  EXPECT_EQ(d.last.error.http_status, 404);
  ASSERT_LE(d.bytes.size(), 5 * kB);
  EXPECT_TRUE(d.bytes == Slice(0, d.bytes.size()));
}

TEST_F(PrefetcherTest, ServiceUnavailableIsRetriedToBytesExact) {
  Make(6 * kB + 5);
  origin_->set_script(
      [](const RangeRequest&, unsigned attempt) { return attempt == 0 ? Status(503) : Reply{}; });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0);
  EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  EXPECT_TRUE(d.bytes == data());
  EXPECT_EQ(RequestsAt(0).size(), 2u);
  EXPECT_GE(prefetcher_->stats().retries, 7u);
}

TEST_F(PrefetcherTest, CutConnectionResumesWhereItStopped) {
  Make(6 * kB + 5);
  origin_->set_script([](const RangeRequest&, unsigned attempt) {
    Reply r;
    if (attempt == 0) r.cut_after = 300;
    r.chunk = 100;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0);
  EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  EXPECT_TRUE(d.bytes == data());
  // The retry of block 2 asks only for what is missing.
  std::vector<RequestRecord> resumed = RequestsAt(2 * kB + 300);
  ASSERT_EQ(resumed.size(), 1u) << "block 2 was not resumed from byte 300";
  EXPECT_EQ(resumed[0].end, 3 * kB);
  EXPECT_EQ(resumed[0].validator, "\"v1\"") << "a resumed request must carry the validator";
}

TEST_F(PrefetcherTest, RetryAfterIsHonoured) {
  Make(2 * kB);
  origin_->set_script([](const RangeRequest& req, unsigned attempt) {
    Reply r;
    if (req.begin == kB && attempt == 0) {
      r.status = 503;
      r.retry_after = "1";
    }
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == data());
  std::vector<RequestRecord> block1 = RequestsAt(kB);
  ASSERT_EQ(block1.size(), 2u);
  EXPECT_GE(block1[1].delay, milliseconds(1000));
}

TEST_F(PrefetcherTest, PersistentServiceUnavailableFailsAfterTheRetries) {
  Config c = SmallConfig();
  c.retry.retries = 2;
  Make(4 * kB, c);
  origin_->set_script([](const RangeRequest&, unsigned) { return Status(503); });
  ReadResult o = prefetcher_->open(0);
  ASSERT_EQ(o.status, ReadStatus::kError);
  EXPECT_EQ(o.error.http_status, 503);
  EXPECT_THAT(o.error.kind, ::testing::AnyOf(ErrorKind::kOpenRead, ErrorKind::kRead));
  EXPECT_EQ(RequestsAt(0).size(), 3u) << "1 attempt + 2 retries";
}

TEST_F(PrefetcherTest, CutsWithoutProgressFailTheReadAfterTheRetries) {
  Config c = SmallConfig();
  c.retry.retries = 1;
  Make(4 * kB, c);
  origin_->set_script([](const RangeRequest& req, unsigned) {
    Reply r;
    if (req.begin >= 2 * kB && req.begin < 3 * kB) r.cut_after = 0;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0);
  ASSERT_EQ(d.last.status, ReadStatus::kError);
  EXPECT_EQ(d.last.error.kind, ErrorKind::kRead);
  ASSERT_LE(d.bytes.size(), 2 * kB);
  EXPECT_TRUE(d.bytes == Slice(0, d.bytes.size())) << "wrong bytes before the error";
  EXPECT_EQ(prefetcher_->stats().retries, 1u);
}

// A block ahead of the reader fails for good (404) before the reader gets
// near it: the bytes before it are right and all still come; the error
// comes with the read that reaches the failed block, not at once.
TEST_F(PrefetcherTest, AFailureAheadOfTheReaderLosesNoByteBeforeIt) {
  Make(8 * kB);
  origin_->set_script([](const RangeRequest& req, unsigned) {
    Reply r;
    if (req.begin >= 6 * kB) r.status = 404;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_TRUE(WaitDone(6 * kB)) << "block 6 was never asked for";
  Drained d = Drain(0);
  ASSERT_EQ(d.last.status, ReadStatus::kError);
  EXPECT_EQ(d.last.error.kind, ErrorKind::kNotFound);
  EXPECT_EQ(d.bytes.size(), 6 * kB) << "bytes before the failed block were lost";
  EXPECT_TRUE(d.bytes == Slice(0, d.bytes.size())) << "wrong bytes before the error";
  EXPECT_TRUE(RequestsAt(7 * kB).empty() || RequestsAt(7 * kB).size() == 1u);
}

TEST_F(PrefetcherTest, CutsThatMakeProgressNeverUseUpTheRetries) {
  // Every answer for block 2 drops after 200 bytes: each attempt makes
  // progress, so the count of failures in a row never passes 1.
  Config c = SmallConfig();
  c.retry.retries = 1;
  Make(4 * kB, c);
  origin_->set_script([](const RangeRequest& req, unsigned) {
    Reply r;
    if (req.begin >= 2 * kB && req.begin < 3 * kB) r.cut_after = 200;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0);
  ASSERT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == Slice(0, 4 * kB)) << "bytes differ";
  EXPECT_EQ(prefetcher_->stats().retries, kB / 200 - 1);  // the last answer is whole
}

// --- short answers (RFC 9110: a 206 may carry a subset of the range) ---------

TEST_F(PrefetcherTest, ShortAnswersWithAKnownTotalAreProgressNotRetries) {
  Make(8 * kB + 11);
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.max_bytes = 300;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0);
  ASSERT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  EXPECT_TRUE(d.bytes == Slice(0, 8 * kB + 11)) << "bytes differ";
  EXPECT_EQ(prefetcher_->stats().retries, 0u);
  // Each block takes four answers (300, 300, 300, 100 bytes), none failed
  // (a request may see our cancel after its last byte, when its block is
  // delivered before the origin reports the end).
  for (const auto& rec : origin_->requests())
    EXPECT_TRUE(!rec.error || *rec.error == ErrorKind::kCancelled) << "at " << rec.begin;
  EXPECT_EQ(origin_->request_count(), 8u * 4u + 1u);
}

class UnknownTotalTest : public PrefetcherTest, public ::testing::WithParamInterface<uint64_t> {};

TEST_P(UnknownTotalTest, ShortAnswersReadToTheEndExactly) {
  // Content-Range "a-b/*" with at most 300 bytes an answer, 416 without a
  // size past the end: only the 416 tells where the file ends.
  const uint64_t size = GetParam();
  Make(size);
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.max_bytes = 300;
    r.unknown_total = true;
    return r;
  });
  Drained d = Drain(0);
  ASSERT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  EXPECT_EQ(d.bytes.size(), size);
  EXPECT_TRUE(d.bytes == Slice(0, size)) << "bytes differ";
  EXPECT_EQ(prefetcher_->size(), size);
  EXPECT_EQ(prefetcher_->stats().retries, 0u);
}

TEST_P(UnknownTotalTest, WholeAnswersReadToTheEndExactly) {
  const uint64_t size = GetParam();
  Make(size);
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.unknown_total = true;
    return r;
  });
  Drained d = Drain(0);
  ASSERT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  EXPECT_TRUE(d.bytes == Slice(0, size)) << "bytes differ";
  EXPECT_EQ(prefetcher_->size(), size);
}

INSTANTIATE_TEST_SUITE_P(Sizes, UnknownTotalTest,
                         ::testing::Values(1, 299, 300, 999, 1000, 5 * kB, 5 * kB + 7, 8 * kB + 1));

TEST_F(PrefetcherTest, RangeIgnoredFallsBackToOneStreamBytesExact) {
  Make(9 * kB + 7);
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.ignore_range = true;
    r.chunk = 333;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  EXPECT_EQ(prefetcher_->size(), 9 * kB + 7);
  EXPECT_FALSE(prefetcher_->seekable());
  Drained d = Drain(0);
  EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  EXPECT_TRUE(d.bytes == data());
}

// compress: a body in a content coding has no byte ranges, so the engine
// asks once for the whole resource (no Range) and reads it as one stream.
TEST_F(PrefetcherTest, WholeAsksOnceWithoutARangeAndReadsOneStream) {
  Config config = SmallConfig();
  config.whole = true;
  Make(9 * kB + 7, config);
  std::mutex mu;
  std::vector<bool> whole;
  origin_->set_script([&](const RangeRequest& request, unsigned) {
    {
      std::lock_guard<std::mutex> lock(mu);
      whole.push_back(request.whole);
    }
    Reply r;
    r.ignore_range = true;  // what a server answers to a request without Range
    r.chunk = 333;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  EXPECT_FALSE(prefetcher_->seekable());
  EXPECT_EQ(prefetcher_->size(), 9 * kB + 7);  // an identity answer's Content-Length
  Drained d = Drain(0);
  EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  EXPECT_TRUE(d.bytes == data());
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(whole, std::vector<bool>{true}) << "one request, asked whole";
}

TEST_F(PrefetcherTest, RangeIgnoredFromAnOffsetSkipsToIt) {
  Make(9 * kB + 7);
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.ignore_range = true;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(5 * kB + 3).status, ReadStatus::kOk);
  Drained d = Drain(5 * kB + 3);
  EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  EXPECT_TRUE(d.bytes == Slice(5 * kB + 3, 9 * kB + 7));
}

TEST_F(PrefetcherTest, RangesHonouredMeansSeekable) {
  Make(3 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  EXPECT_TRUE(prefetcher_->seekable());
}

TEST_F(PrefetcherTest, ChangedValidatorIsResourceChanged) {
  Make(8 * kB);
  origin_->hold_all_heads();
  origin_->release(0);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_TRUE(WaitDone(0));
  std::vector<uint8_t> changed = data();
  for (auto& b : changed) b ^= 0x5A;
  origin_->change_resource(changed, "\"v2\"");
  origin_->release_all();
  Drained d = Drain(0);
  ASSERT_EQ(d.last.status, ReadStatus::kError);
  EXPECT_EQ(d.last.error.kind, ErrorKind::kResourceChanged);
  EXPECT_TRUE(d.bytes == Slice(0, d.bytes.size())) << "bytes of the new resource were spliced in";
  // Requests started once the first response was in carry its validator.
  const FakeClock::time_point first_done = RequestsAt(0).at(0).ended;
  size_t later = 0;
  for (const RequestRecord& r : origin_->requests()) {
    if (r.started < first_done) continue;
    ++later;
    EXPECT_EQ(r.validator, "\"v1\"") << "request at " << r.begin << " sent no validator";
  }
  EXPECT_GT(later, 0u);
}

TEST_F(PrefetcherTest, IfRangeFullBodyOfAChangedResourceIsResourceChanged) {
  // A real origin answers If-Range with a changed validator by a 200 with the
  // new body: that must not be taken for "ranges are ignored".
  Make(8 * kB);
  std::atomic<bool> changed{false};
  origin_->set_script([&changed](const RangeRequest& req, unsigned) {
    Reply r;
    if (changed && !req.validator.empty()) r.ignore_range = true;
    return r;
  });
  origin_->hold_all_heads();
  origin_->release(0);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_TRUE(WaitDone(0));
  std::vector<uint8_t> other = data();
  for (auto& b : other) b ^= 0xA5;
  origin_->change_resource(other, "\"v2\"");
  changed = true;
  origin_->release_all();
  Drained d = Drain(0);
  ASSERT_EQ(d.last.status, ReadStatus::kError);
  EXPECT_EQ(d.last.error.kind, ErrorKind::kResourceChanged);
  EXPECT_TRUE(d.bytes == Slice(0, d.bytes.size()));
}

TEST_F(PrefetcherTest, WrongContentRangeIsNeverSpliced) {
  Make(6 * kB);
  origin_->set_script([](const RangeRequest& req, unsigned) {
    Reply r;
    if (req.begin == 3 * kB) r.content_range = std::make_pair(req.begin + 1, req.begin + kB);
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0);
  ASSERT_EQ(d.last.status, ReadStatus::kError);
  EXPECT_EQ(d.last.error.kind, ErrorKind::kRead);
  EXPECT_LE(d.bytes.size(), 3 * kB);
  EXPECT_TRUE(d.bytes == Slice(0, d.bytes.size()));
}

TEST_F(PrefetcherTest, BodyLongerThanItsRangeIsCut) {
  Make(4 * kB);
  origin_->set_script([](const RangeRequest& req, unsigned) {
    Reply r;
    if (req.begin == kB) r.extra_bytes = 5000;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0);
  EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  EXPECT_TRUE(d.bytes == data());
  EXPECT_LT(RequestsAt(kB).at(0).body_bytes, kB + 5000) << "the overlong body was read to its end";
}

// ---- access pattern: reads anywhere (pull mode) ------------------------------------

std::vector<uint8_t> Bytes(const ReadResult& r) {
  return std::vector<uint8_t>(r.chunk.data, r.chunk.data + r.chunk.size);
}

// The block the reader was in when it jumped keeps fetching (parked) and the
// return to it costs no request; the other requests of the old window are
// cancelled.
TEST_F(PrefetcherTest, JumpParksTheReadersBlockAndCancelsTheRest) {
  Config c = SmallConfig(Schedule::kWindow, 3);
  c.lookahead_blocks = 6;
  Make(100 * kB, c);
  origin_->hold_body(0, 300);
  origin_->hold_head(kB);
  origin_->hold_head(2 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ReadResult r = prefetcher_->read(0, 100, ReadMode::kExact);  // a header at 0
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(Bytes(r), Slice(0, 100));
  ASSERT_TRUE(origin_->wait_held(0, kHang));
  ASSERT_TRUE(origin_->wait_held(kB, kHang));
  ASSERT_TRUE(origin_->wait_held(2 * kB, kHang));

  r = prefetcher_->read(99 * kB + 10, 200, ReadMode::kExact);  // the index at the end
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(Bytes(r), Slice(99 * kB + 10, 99 * kB + 210));

  ASSERT_TRUE(WaitDone(kB));
  ASSERT_TRUE(WaitDone(2 * kB));
  EXPECT_TRUE(RequestsAt(kB).at(0).cancel_called) << "block 1 was not cancelled by the jump";
  EXPECT_TRUE(RequestsAt(2 * kB).at(0).cancel_called) << "block 2 was not cancelled by the jump";
  EXPECT_FALSE(RequestsAt(0).at(0).cancel_called) << "the reader's block was not parked";

  origin_->release_all();
  r = prefetcher_->read(100, 800, ReadMode::kExact);  // back to the media after the header
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(Bytes(r), Slice(100, 900));
  size_t block0 = 0;
  for (const RequestRecord& q : origin_->requests()) block0 += q.begin < kB;
  EXPECT_EQ(block0, 1u) << "block 0 was requested again after the return";
  Drained d = Drain(900, 777, ReadMode::kExact);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == Slice(900, 100 * kB));
}

// A two-block file whose index is in block 1: the reader steps from block 0
// to block 1 before block 0 is complete. Block 0 keeps fetching as the block
// behind the reader, not cancelled, so the way back costs no second request.
TEST_F(PrefetcherTest, AStepAheadKeepsTheBlockItLeftIncomplete) {
  Make(2 * kB - 100);
  origin_->hold_body(0, 300);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ReadResult r = prefetcher_->read(0, 48, ReadMode::kExact);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(Bytes(r), Slice(0, 48));
  r = prefetcher_->read(kB + 500, 300, ReadMode::kExact);  // the index near the end
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(Bytes(r), Slice(kB + 500, kB + 800));
  origin_->release_all();
  r = prefetcher_->read(48, 900, ReadMode::kExact);  // back to the media
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(Bytes(r), Slice(48, 948));
  ASSERT_TRUE(origin_->wait_idle(kHang));
  const std::vector<RequestRecord> zero = RequestsAt(0);
  ASSERT_EQ(zero.size(), 1u) << "block 0 was requested again";
  EXPECT_FALSE(zero[0].cancel_called) << "block 0 was cancelled";
  for (const RequestRecord& q : origin_->requests())
    EXPECT_FALSE(q.begin > 0 && q.begin < kB) << "block 0 refetched from " << q.begin;
}

// Pull mode: a jump opens a window of two blocks, not the whole look-ahead
// (random reads should not start requests they will cancel), and the window
// doubles as the reader goes on in order. A push-mode seek opens it whole.
TEST_F(PrefetcherTest, ExactReadsAfterAJumpRampTheWindowUp) {
  Config c = SmallConfig(Schedule::kWindow, 4);
  c.lookahead_blocks = 8;
  Make(100 * kB, c);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_TRUE(origin_->wait_idle(kHang));
  auto highest_from = [&](uint64_t from) {
    uint64_t highest = 0;
    for (const RequestRecord& q : origin_->requests())
      if (q.begin >= from * kB) highest = std::max(highest, q.begin / kB);
    return highest;
  };
  ReadResult r = prefetcher_->read(50 * kB + 10, 100, ReadMode::kExact);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(Bytes(r), Slice(50 * kB + 10, 50 * kB + 110));
  ASSERT_TRUE(origin_->wait_idle(kHang));
  EXPECT_EQ(highest_from(50), 51u) << "a random read started more than two blocks";

  r = prefetcher_->read(51 * kB, 100, ReadMode::kExact);  // in order: 4 blocks
  ASSERT_EQ(r.status, ReadStatus::kOk);
  ASSERT_TRUE(origin_->wait_idle(kHang));
  EXPECT_EQ(highest_from(50), 54u);
  r = prefetcher_->read(52 * kB, 100, ReadMode::kExact);  // 8: the whole look-ahead
  ASSERT_EQ(r.status, ReadStatus::kOk);
  ASSERT_TRUE(origin_->wait_idle(kHang));
  EXPECT_EQ(highest_from(50), 59u);
  EXPECT_EQ(Bytes(r), Slice(52 * kB, 52 * kB + 100));

  prefetcher_->seek(80 * kB);  // push mode: the whole look-ahead at once
  ASSERT_TRUE(origin_->wait_idle(kHang));
  EXPECT_EQ(highest_from(80), 87u);
  Drained d = Drain(80 * kB);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == Slice(80 * kB, 100 * kB));
}

// A jump lands mid-block, so the block is fetched from there; a later read
// before that byte, with no other block in between, must refetch it, not
// hand out bytes from before the block's buffer.
TEST_F(PrefetcherTest, ReadBeforeAPartlyHeldBlockRefetchesIt) {
  Make(20 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ReadResult r = prefetcher_->read(5 * kB + 600, 100, ReadMode::kExact);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(Bytes(r), Slice(5 * kB + 600, 5 * kB + 700));
  r = prefetcher_->read(5 * kB + 100, 300, ReadMode::kExact);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(Bytes(r), Slice(5 * kB + 100, 5 * kB + 400));
  r = prefetcher_->read(5 * kB + 50, 20, ReadMode::kAvailable);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.offset, 5 * kB + 50);
  EXPECT_EQ(Bytes(r), Slice(5 * kB + 50, 5 * kB + 50 + r.chunk.size));
}

// Parking stays within the cache budget: with no cache, nothing is parked.
TEST_F(PrefetcherTest, NoParkingWithoutCacheRoom) {
  Config c = SmallConfig(Schedule::kWindow, 2);
  c.cache_bytes = 0;
  Make(100 * kB, c);
  origin_->hold_body(0, 300);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_EQ(prefetcher_->read(0, 100, ReadMode::kExact).status, ReadStatus::kOk);
  ASSERT_TRUE(origin_->wait_held(0, kHang));
  // A push-mode seek (pull-mode jumps keep the region they leave instead).
  prefetcher_->seek(50 * kB);
  ASSERT_EQ(prefetcher_->read(50 * kB, 100, ReadMode::kAvailable).status, ReadStatus::kOk);
  ASSERT_TRUE(WaitDone(0));
  EXPECT_TRUE(RequestsAt(0).at(0).cancel_called);
  origin_->release_all();
}

// One block is parked at most: a second jump cancels the first parked block.
TEST_F(PrefetcherTest, ASecondJumpCancelsTheFirstParkedBlock) {
  Config c = SmallConfig(Schedule::kWindow, 2);
  Make(100 * kB, c);
  origin_->hold_body(0, 300);
  origin_->hold_body(50 * kB, 300);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_EQ(prefetcher_->read(0, 100, ReadMode::kExact).status, ReadStatus::kOk);
  ASSERT_TRUE(origin_->wait_held(0, kHang));
  ReadResult r = prefetcher_->read(50 * kB, 100, ReadMode::kExact);  // parks block 0
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(Bytes(r), Slice(50 * kB, 50 * kB + 100));
  ASSERT_TRUE(origin_->wait_held(50 * kB, kHang));
  EXPECT_FALSE(RequestsAt(0).at(0).cancel_called);
  r = prefetcher_->read(80 * kB, 100, ReadMode::kExact);  // parks block 50, drops block 0
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(Bytes(r), Slice(80 * kB, 80 * kB + 100));
  ASSERT_TRUE(WaitDone(0));
  EXPECT_TRUE(RequestsAt(0).at(0).cancel_called) << "two blocks were parked at once";
  EXPECT_FALSE(RequestsAt(50 * kB).at(0).cancel_called);
  origin_->release_all();
}

// A short step back (a demuxer reading interleaved chunks a little out of
// order) keeps the far end of the window in flight.
TEST_F(PrefetcherTest, ShortStepBackKeepsTheBlocksAhead) {
  Config c = SmallConfig(Schedule::kWindow, 2);
  c.lookahead_blocks = 4;
  Make(20 * kB, c);
  origin_->hold_head(8 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  for (uint64_t at = 0; at < 5 * kB + 100; at += 100) {
    ReadResult r = prefetcher_->read(at, 100, ReadMode::kExact);
    ASSERT_EQ(r.status, ReadStatus::kOk);
    ASSERT_EQ(Bytes(r), Slice(at, at + 100)) << "at " << at;
  }
  ASSERT_TRUE(origin_->wait_held(8 * kB, kHang));  // the window's last block, in flight
  ReadResult r = prefetcher_->read(4 * kB + 500, 300, ReadMode::kExact);  // one block back
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(Bytes(r), Slice(4 * kB + 500, 4 * kB + 800));
  std::this_thread::sleep_for(milliseconds(20));
  EXPECT_FALSE(RequestsAt(8 * kB).at(0).cancel_called) << "a step back cancelled block 8";
  origin_->release_all();
  Drained d = Drain(4 * kB + 800, 333, ReadMode::kExact);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == Slice(4 * kB + 800, 20 * kB));
  for (uint64_t b = 0; b < 20; ++b) EXPECT_EQ(RequestsAt(b * kB).size(), 1u) << "block " << b;
}

// Small exact reads, one after the other, keep the window ahead of the reader.
TEST_F(PrefetcherTest, SequentialExactReadsKeepTheWindowAhead) {
  Config c = SmallConfig(Schedule::kWindow, 2);
  c.lookahead_blocks = 4;
  Make(30 * kB, c);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  for (uint64_t at = 0; at < 6 * kB + 50; at += 100) {
    ReadResult r = prefetcher_->read(at, 100, ReadMode::kExact);
    ASSERT_EQ(r.status, ReadStatus::kOk);
    ASSERT_EQ(Bytes(r), Slice(at, at + 100));
  }
  const auto deadline = FakeClock::now() + kHang;
  while (RequestsAt(9 * kB).empty() && FakeClock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(1));
  EXPECT_EQ(RequestsAt(9 * kB).size(), 1u) << "the window did not reach block 9";
  for (const RequestRecord& q : origin_->requests())
    EXPECT_LT(q.begin, 10 * kB) << "a request beyond the look-ahead budget";
}

// typefind and a demuxer: probe at 0, the tail, the header again, the tail
// again, then the media. Every read is exact and nothing complete is fetched
// twice.
TEST_F(PrefetcherTest, DemuxerPatternNeverRefetchesCompleteBlocks) {
  Config c = SmallConfig(Schedule::kWindow, 2);
  c.lookahead_blocks = 4;
  c.cache_bytes = 10 * kB;
  Make(50 * kB + 321, c);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  const std::vector<std::pair<uint64_t, size_t>> reads = {
      {0, 700},    {50 * kB + 193, 128}, {0, 32},
      {32, 8},     {49 * kB + 5, 1316},  {40, 2500},
      {2540, 100}, {50 * kB + 300, 21},  {2640, 5000},
      {7640, 100}, {49 * kB + 5, 16},    {7740, 3000}};
  for (const auto& [at, n] : reads) {
    ReadResult r = prefetcher_->read(at, n, ReadMode::kExact);
    ASSERT_EQ(r.status, ReadStatus::kOk) << "at " << at;
    EXPECT_EQ(Bytes(r), Slice(at, at + n)) << "at " << at;
  }
  // In-flight blocks that leave the window are cancelled and may be asked
  // again later; requests that ended cleanly are never asked twice. Block 0
  // was complete (the first read took 700 of its 1000 bytes, which come in
  // one chunk) before the reader left it: cached, so asked for once. (Its
  // request may still see a cancel after its last byte, when the block goes
  // to the cache before the origin reports the end.)
  ASSERT_TRUE(origin_->wait_idle(kHang));
  std::map<uint64_t, int> completed;
  for (const RequestRecord& q : origin_->requests())
    completed[q.begin] += q.done && !q.cancel_called && !q.error;
  for (const auto& [begin, n] : completed) EXPECT_LE(n, 1) << "bytes from " << begin;
  EXPECT_EQ(RequestsAt(0).size(), 1u) << "block 0 was fetched again";
  EXPECT_GE(prefetcher_->stats().cache_hits, 1u);
}

// A demuxer reading a non-interleaved file alternates between two regions
// far apart (the video, then the audio of the same moment). Each region
// keeps its window, so a switch is not a jump that cancels the other's
// look-ahead: every block is asked for about once.
TEST_F(PrefetcherTest, ReadsAlternatingBetweenTwoRegionsKeepBothWindows) {
  Config c = SmallConfig(Schedule::kWindow, 4);
  c.lookahead_blocks = 8;
  Make(100 * kB, c);
  // Blocks take a while to arrive, so the reader switches regions while
  // the other region's look-ahead is still in flight.
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.first_byte_delay = milliseconds(2);
    r.chunk = 100;
    r.chunk_interval = microseconds(500);
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  uint64_t video = 0, audio = 50 * kB;
  const size_t n = 250;  // four reads a block
  for (int i = 0; i < 160; ++i) {
    for (uint64_t* at : {&video, &audio}) {
      ReadResult r = prefetcher_->read(*at, n, ReadMode::kExact);
      ASSERT_EQ(r.status, ReadStatus::kOk) << "at " << *at;
      ASSERT_EQ(Bytes(r), Slice(*at, *at + n)) << "at " << *at;
      *at += n;
    }
  }
  ASSERT_TRUE(origin_->wait_idle(kHang));
  // 40 blocks each; the windows' last few blocks are the only extra.
  const double blocks_read = 2 * 40;
  const double requests = static_cast<double>(origin_->request_count());
  std::printf("[ info ] %.0f requests for %.0f blocks read\n", requests, blocks_read);
  EXPECT_LE(requests / blocks_read, 1.2)
      << requests << " requests for " << blocks_read << " blocks read";
}

// A read across blocks in pull mode copies into one buffer: the bytes copied
// count against the look-ahead, so memory stays within the budget however
// long the read.
TEST_F(PrefetcherTest, ALongExactReadCountsItsCopyAgainstTheLookahead) {
  Config c = SmallConfig(Schedule::kWindow, 2);
  c.lookahead_blocks = 4;
  Make(40 * kB, c);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  origin_->hold_head(10 * kB);
  ReadResult r;
  std::thread reader([&] { r = prefetcher_->read(0, 30 * kB, ReadMode::kExact); });
  ASSERT_TRUE(origin_->wait_held(10 * kB, kHang));
  std::this_thread::sleep_for(milliseconds(50));  // let any request that would go, go
  // Ten blocks are copied: the window is down to the block being waited for.
  for (const RequestRecord& q : origin_->requests())
    EXPECT_LE(q.begin, 10 * kB) << "block " << q.begin / kB << " was asked while 10 were copied";
  origin_->release_all();
  reader.join();
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_TRUE(Bytes(r) == Slice(0, 30 * kB));
}

// ---- hedging ----------------------------------------------------------------

Config HedgeConfig(unsigned concurrency = 2) {
  Config c = SmallConfig(Schedule::kWindow, concurrency);
  c.hedge.floor = milliseconds(50);
  return c;
}

// Block 6's first request never answers in time; its hedge (a second request
// for the same bytes) answers at once and wins. The first is cancelled, the
// bytes are exact, and the hedge ran on the spare slot beyond concurrency.
TEST_F(PrefetcherTest, ALateHeadBlockIsHedgedAndTheHedgeWins) {
  Make(12 * kB, HedgeConfig(2));
  origin_->set_script([](const RangeRequest& req, unsigned attempt) {
    Reply r;
    if (req.begin == 6 * kB && attempt == 0) r.first_byte_delay = milliseconds(8000);
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0);
  ASSERT_TRUE(origin_->wait_idle(kHang));  // the records are final
  EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  EXPECT_TRUE(d.bytes == data());
  const std::vector<RequestRecord> six = RequestsAt(6 * kB);
  ASSERT_EQ(six.size(), 2u) << "block 6: one request and one hedge";
  EXPECT_TRUE(six[0].cancel_called) << "the losing request was not cancelled";
  EXPECT_EQ(six[0].body_bytes, 0u);
  EXPECT_EQ(six[1].body_bytes, kB);
  const Stats st = prefetcher_->stats();
  EXPECT_EQ(st.hedges_sent, 1u);
  EXPECT_EQ(st.hedges_won, 1u);
  EXPECT_EQ(origin_->request_count(), 13u) << "one request per block plus the hedge";
  EXPECT_LE(origin_->max_in_flight(), 3u) << "more than concurrency + the hedge's spare";
}

// The same origin with hedge off: one request per block, and the late one is
// waited for.
TEST_F(PrefetcherTest, HedgeOffSendsNoHedge) {
  Config c = HedgeConfig(2);
  c.hedge.enabled = false;
  Make(8 * kB, c);
  origin_->set_script([](const RangeRequest& req, unsigned) {
    Reply r;
    if (req.begin == 6 * kB) r.first_byte_delay = milliseconds(600);
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0);
  ASSERT_TRUE(origin_->wait_idle(kHang));  // the records are final
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == data());
  EXPECT_EQ(origin_->request_count(), 8u);
  EXPECT_EQ(prefetcher_->stats().hedges_sent, 0u);
  EXPECT_LE(origin_->max_in_flight(), 2u);
}

// When the first request answers before its hedge, the hedge is cancelled
// and the first one's bytes are used.
TEST_F(PrefetcherTest, AHedgeThatLosesIsCancelled) {
  Make(10 * kB, HedgeConfig(2));
  origin_->set_script([](const RangeRequest& req, unsigned attempt) {
    Reply r;
    if (req.begin == 6 * kB) r.first_byte_delay = milliseconds(attempt == 0 ? 400 : 8000);
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0);
  ASSERT_TRUE(origin_->wait_idle(kHang));  // the records are final
  EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  EXPECT_TRUE(d.bytes == data());
  const std::vector<RequestRecord> six = RequestsAt(6 * kB);
  ASSERT_EQ(six.size(), 2u);
  EXPECT_EQ(six[0].body_bytes, kB);
  EXPECT_TRUE(six[1].cancel_called) << "the losing hedge was not cancelled";
  EXPECT_EQ(six[1].body_bytes, 0u);
  EXPECT_EQ(prefetcher_->stats().hedges_sent, 1u);
  EXPECT_EQ(prefetcher_->stats().hedges_won, 0u);
}

// Every fifth block is late. With hedge_share 10 % of 30 blocks, three hedges
// at most, never two for one block, and the bytes stay exact.
TEST_F(PrefetcherTest, HedgesStayWithinTheirShare) {
  Config c = HedgeConfig(3);
  Make(30 * kB, c);
  origin_->set_script([](const RangeRequest& req, unsigned) {
    Reply r;
    const uint64_t block = req.begin / kB;
    if (block % 5 == 4) r.first_byte_delay = milliseconds(300);  // hedges are slow too
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0);
  ASSERT_TRUE(origin_->wait_idle(kHang));  // the records are final
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == data());
  const Stats st = prefetcher_->stats();
  EXPECT_GE(st.hedges_sent, 1u) << "late blocks were not hedged";
  EXPECT_LE(st.hedges_sent, 3u) << "more than 10 % extra requests";
  EXPECT_EQ(origin_->request_count(), 30u + st.hedges_sent);
  for (uint64_t b = 0; b < 30; ++b)
    EXPECT_LE(RequestsAt(b * kB).size(), 2u) << "block " << b << " was hedged twice";
}

// An origin without a tail (every first byte takes the same time) gets no
// hedge: the threshold sits above its fixed wait.
TEST_F(PrefetcherTest, AFixedLatencyOriginGetsNoHedge) {
  Make(12 * kB, HedgeConfig(4));
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.first_byte_delay = milliseconds(200);
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0);
  ASSERT_TRUE(origin_->wait_idle(kHang));  // the records are final
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == data());
  EXPECT_EQ(prefetcher_->stats().hedges_sent, 0u);
  EXPECT_EQ(origin_->request_count(), 12u);
  EXPECT_LE(origin_->max_in_flight(), 4u);
}

}  // namespace
}  // namespace prefetch

namespace prefetch {
namespace {

// ---- request spans (automatic span length: max_request_bytes 0) ----------

Config SpanConfig(unsigned concurrency = 4) {
  Config c = SmallConfig(Schedule::kWindow, concurrency);
  c.max_request_bytes = 0;
  return c;
}

// Until the first answer tells the size nothing else is asked: a file of one
// byte costs one request, and no request goes past the end.
TEST_F(PrefetcherTest, SpansAskNothingBeforeTheFirstAnswer) {
  Make(1, SpanConfig());
  origin_->hold_head(0);
  prefetcher_->begin(0);
  ASSERT_TRUE(origin_->wait_held(0, kHang));
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(origin_->request_count(), 1u);
  origin_->release(0);
  Drained d = Drain(0);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == data());
  ASSERT_EQ(origin_->request_count(), 1u);
  EXPECT_FALSE(origin_->requests()[0].end) << "the first span runs to the end";
}

// One span carries a prompt, fast origin's whole file: it pauses where the
// look-ahead ends while the reader is away and goes on when it reads, and no
// byte is asked twice. (A reader slowed by a loaded machine grows the
// look-ahead, and the last blocks may then go to a second span split off the
// first: that is a split, not a re-ask, so the check is on bytes.)
TEST_F(PrefetcherTest, ASpanPausesAtTheLookAheadAndGoesOnExactly) {
  Make(40 * kB + 123, SpanConfig(2));
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  std::this_thread::sleep_for(milliseconds(100));  // the reader is away
  const Stats paused = prefetcher_->stats();
  EXPECT_LT(paused.bytes_received, 40 * kB) << "the span did not stop at the look-ahead";
  Drained d = Drain(0, 3000);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == data());
  EXPECT_EQ(prefetcher_->stats().bytes_received, data().size());
  prefetcher_->close();  // every request done: the origin's counts are final
  const auto reqs = origin_->requests();
  ASSERT_FALSE(reqs.empty());
  EXPECT_EQ(reqs[0].begin, 0u);
  EXPECT_GT(reqs[0].body_bytes, paused.bytes_received) << "the span did not go on after its pause";
  uint64_t body = 0;
  for (const RequestRecord& r : reqs) body += r.body_bytes;
  EXPECT_EQ(body, data().size()) << reqs.size() << " requests: a byte was asked twice";
}

// A span cut short (its connection drops) is asked again from where it
// stopped, for the rest of its claim only.
TEST_F(PrefetcherTest, ACutSpanIsAskedAgainFromWhereItStopped) {
  Make(6 * kB, SpanConfig(1));
  origin_->set_script([](const RangeRequest& rq, unsigned attempt) {
    Reply r;
    if (rq.begin == 0) r.cut_after = 2 * kB + 17;  // the first answer ends early
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = Drain(0);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == data());
  const auto reqs = origin_->requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].begin, 2 * kB + 17);
  EXPECT_EQ(prefetcher_->stats().retries, 1u);
}

}  // namespace
}  // namespace prefetch
