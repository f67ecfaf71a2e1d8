// Automatic concurrency (Config::concurrency 0) in the engine, against the
// scripted FakeOrigin: it rises where each connection is capped, comes down
// to what the origin serves on 503 and to one for a slow consumer; the bytes
// stay exact. The policy's own rules are in concurrency_policy_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "engine_fixture.h"

namespace prefetch::testing {
namespace {

constexpr uint64_t kBlock = 64 * 1024;

Config auto_config() {
  Config c;
  c.block_size = kBlock;
  c.concurrency = 0;
  c.max_concurrency = 16;
  c.retry.backoff_base = milliseconds(2);
  c.retry.backoff_max = milliseconds(20);
  return c;
}

// Each response at about 4 MB/s: 8 KiB every 2 ms.
Reply capped() {
  Reply r;
  r.chunk = 8 * 1024;
  r.chunk_interval = microseconds(2000);
  return r;
}

class EngineConcurrencyTest : public EngineTest {
 protected:
  // An engine with automatic concurrency over an origin that caps each
  // connection (capped()).
  void make_capped(uint64_t size, Config config = auto_config(), Logger logger = test_logger()) {
    make(size, config, std::move(logger));
    origin_->set_script([](const RangeRequest&, unsigned) { return capped(); });
  }
  // Everything, to EOS, read `length` at most at a time with `pause` after
  // each read.
  std::vector<uint8_t> read_all(size_t length, microseconds pause = microseconds(0)) {
    const Drained d = drain(0, length, ReadMode::kAvailable, pause);
    EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
    return d.bytes;
  }
};

TEST_F(EngineConcurrencyTest, RisesWhereEachConnectionIsCapped) {
  make_capped(8 << 20);
  prefetcher_->begin(0);
  EXPECT_EQ(prefetcher_->stats().concurrency, Config::kAutoStart);
  EXPECT_STREQ(prefetcher_->stats().concurrency_why, "start");
  EXPECT_EQ(read_all(256 * 1024), origin_->data());
  const Stats st = prefetcher_->stats();
  EXPECT_GT(st.concurrency, Config::kAutoStart);
  EXPECT_GT(origin_->max_in_flight(), Config::kAutoStart);
  // Transfers never exceed the cap; spans sent ahead may wait beside them.
  EXPECT_LE(origin_->max_in_flight(), 2 * 16u + 1);
}

TEST_F(EngineConcurrencyTest, MaxConcurrencyCapsIt) {
  Config c = auto_config();
  c.max_concurrency = 2;
  make_capped(2 << 20, c);
  prefetcher_->begin(0);
  EXPECT_EQ(prefetcher_->stats().concurrency, 2u);
  EXPECT_EQ(read_all(256 * 1024), origin_->data());
  EXPECT_EQ(prefetcher_->stats().concurrency, 2u);
}

// An origin that answers 503 to a fourth request open at once: at the first
// 503 the count comes down to the transfers it serves, and every byte still
// comes. The cut is read from the log: what the count is at the end depends
// on how long the transfer took (a slow run lives to probe for more again).
TEST_F(EngineConcurrencyTest, CutsToWhatTheOriginServesOn503AndStaysExact) {
  LogLines log("concurrency ", LogLevel::kInfo);
  make_capped(4 << 20, auto_config(), log.logger());
  origin_->set_busy_limit(3, "0");
  prefetcher_->begin(0);
  EXPECT_EQ(read_all(256 * 1024), origin_->data());
  EXPECT_GE(origin_->busy_answers(), 1u);
  prefetcher_->close();
  const std::vector<std::string> lines = log.lines();
  // Cuts step down while refusals of the same burst come in; the lowest one
  // is where the count came down to. The origin serves 3: that (or, if a
  // fourth was refused while only two were served yet, 2).
  unsigned lowest = 0;
  for (const std::string& l : lines) {
    unsigned from = 0, to = 0;
    if (l.find(": overloaded") != std::string::npos &&
        std::sscanf(l.c_str(), "concurrency %u -> %u", &from, &to) == 2)
      lowest = lowest ? std::min(lowest, to) : to;
  }
  ASSERT_NE(lowest, 0u) << "no cut for the 503";
  EXPECT_TRUE(lowest == 3 || lowest == 2) << ::testing::PrintToString(lines);
}

// An origin that refused for load may count a connection closed a moment
// ago as open still: a span that takes the place of one ended mid-answer
// waits out the close grace (at most 50 ms) before it is sent. An origin
// that never refused gets no such wait.
TEST_F(EngineConcurrencyTest, AfterA503ANewConnectionWaitsForTheClosedOneToGo) {
  make_capped(4 << 20);
  origin_->set_busy_limit(3, "0");
  prefetcher_->begin(0);
  EXPECT_EQ(read_all(256 * 1024), origin_->data());
  ASSERT_GE(origin_->busy_answers(), 1u);
  unsigned waited = 0;
  for (const RequestRecord& r : origin_->requests()) {
    EXPECT_LE(r.delay, milliseconds(50)) << "request " << r.id;
    waited += r.delay > milliseconds(0) ? 1 : 0;
  }
  EXPECT_GE(waited, 1u) << "no request waited for a closed connection to go";
}

TEST_F(EngineConcurrencyTest, WithoutA503NoRequestWaits) {
  make_capped(4 << 20);
  prefetcher_->begin(0);
  EXPECT_EQ(read_all(256 * 1024), origin_->data());
  EXPECT_EQ(origin_->busy_answers(), 0u);
  for (const RequestRecord& r : origin_->requests())
    EXPECT_EQ(r.delay, milliseconds(0)) << "request " << r.id;
}

// A consumer far slower than one connection: the look-ahead stays full and
// the count comes down from its start (4) to one. max-concurrency 4 keeps
// it from rising first: on a loaded machine under a sanitizer the reader
// may wait for its first blocks (the engine, not the network, is slow
// then), and a count that rose to 16 would need more intervals to come
// down than the test lasts. The origin writes 32 KiB every 8 ms per
// connection (4 MB/s, as capped() but in fewer chunks, so less work).
TEST_F(EngineConcurrencyTest, ComesDownToOneForASlowConsumer) {
  Config c = auto_config();
  c.max_concurrency = 4;
  make_capped(3 << 20, c);
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.chunk = 32 * 1024;
    r.chunk_interval = microseconds(8000);
    return r;
  });
  prefetcher_->begin(0);
  // About 1.6 MB/s against 4 MB/s per connection.
  EXPECT_EQ(read_all(64 * 1024, milliseconds(40)), origin_->data());
  const Stats st = prefetcher_->stats();
  EXPECT_EQ(st.concurrency, 1u);
  EXPECT_STREQ(st.concurrency_why, "consumer slower");
}

// A host capped in total at two connections' worth (8 KiB per ms over all,
// 8 KiB per 2 ms each): a raise past it is flat, and the cut lets the
// spans it ends finish what they claimed within the look-ahead instead of
// throwing their partial blocks away (which cost 4 blocks here when they
// were cancelled): what came from the origin is the resource, less than a
// block more.
TEST_F(EngineConcurrencyTest, AFlatRateCutThrowsNoByteAway) {
  make_capped(8 << 20);
  // The host sends 2 MB/s in all (8 KiB every 4 ms), half of one
  // connection's 4 MB/s: the 4 connections at the start are well past it even
  // where a loaded sanitized build serves each connection at a fraction of
  // its cap, so more connections never bring a higher rate.
  origin_->set_total_chunk_interval(microseconds(4000));
  prefetcher_->begin(0);
  EXPECT_EQ(read_all(256 * 1024), origin_->data());
  const std::string why = prefetcher_->stats().concurrency_why;
  prefetcher_->close();  // every request done: the origin's counts are final
  uint64_t body = 0;
  for (const RequestRecord& r : origin_->requests()) body += r.body_bytes;
  EXPECT_LT(body, origin_->data().size() + kBlock) << origin_->requests().size() << " requests";
  // A TSan build judged the raise from 4 against an interval that held the
  // connections' start and saw the rate rise (1 of 4 fresh-clone runs): then
  // no cut came, and the run says so instead of passing as if it had tried one.
  if (why != "rate flat")
    GTEST_SKIP() << "no flat-rate cut in this run (ended on \"" << why << "\")";
}

// First bytes of 150 ms: the reader waits for the first answer, and the
// first raise (x4, to 16) comes with it, before pump() opens the other
// slots, so the spans are laid out once for 16 as a fixed 16 lays them out
// (each request meets the same waits where an origin's waits depend on the
// offset). Raised a chunk later, 3 spans were laid out for the starting 4
// and the other 12 split the rest unevenly. Where the spans begin also
// depends on the rates measured, so on the machine's load (a sanitized run
// on a loaded machine lays out even a fixed 16 otherwise): the test reads
// the order of the log's lines, not offsets.
TEST_F(EngineConcurrencyTest, TheFirstRaiseComesBeforeTheOtherSlotsOpen) {
  LogLines log;
  make_capped(8 << 20, auto_config(), log.logger());
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r = capped();
    r.first_byte_delay = milliseconds(150);
    return r;
  });
  prefetcher_->begin(0);
  EXPECT_EQ(read_all(256 * 1024), origin_->data());
  EXPECT_EQ(prefetcher_->stats().concurrency, 16u);
  prefetcher_->close();
  const std::vector<std::string> lines = log.lines();
  auto first = [&](auto&& pred) {
    return std::find_if(lines.begin(), lines.end(), pred) - lines.begin();
  };
  const auto raise =
      first([](const std::string& l) { return l.rfind("concurrency 4 -> ", 0) == 0; });
  // The first request other than span 1's (a hedge is not a slot's).
  const auto second = first([](const std::string& l) {
    return l.rfind("span ", 0) == 0 && l.rfind("span 1 ", 0) != 0 &&
           l.find(" requested bytes=") != std::string::npos &&
           l.find("(hedge of") == std::string::npos;
  });
  ASSERT_LT(raise, static_cast<std::ptrdiff_t>(lines.size())) << "no raise from 4";
  ASSERT_LT(second, static_cast<std::ptrdiff_t>(lines.size())) << "one request only";
  EXPECT_EQ(lines[raise].rfind("concurrency 4 -> 16: ", 0), 0u) << lines[raise];
  EXPECT_LT(raise, second) << lines[second] << " came before " << lines[raise];
}

TEST_F(EngineConcurrencyTest, AFixedConcurrencyStaysAndSaysNoReason) {
  Config c = auto_config();
  c.concurrency = 3;
  make_capped(1 << 20, c);
  prefetcher_->begin(0);
  EXPECT_EQ(read_all(256 * 1024), origin_->data());
  EXPECT_EQ(prefetcher_->stats().concurrency, 3u);
  EXPECT_STREQ(prefetcher_->stats().concurrency_why, "");
}

// batch and barrier keep a fixed count: automatic is the window's.
TEST_F(EngineConcurrencyTest, BatchRunsTheStartCount) {
  Config c = auto_config();
  c.schedule = Schedule::kBatch;
  make_capped(1 << 20, c);
  prefetcher_->begin(0);
  EXPECT_EQ(read_all(256 * 1024), origin_->data());
  EXPECT_EQ(prefetcher_->stats().concurrency, Config::kAutoStart);
  EXPECT_LE(origin_->max_in_flight(), Config::kAutoStart);
}

}  // namespace
}  // namespace prefetch::testing
