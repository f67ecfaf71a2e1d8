// Spans in the engine (automatic span length, max_request_bytes 0): nothing
// is asked before the first answer, a span pauses at the look-ahead and goes
// on exactly, a cut span is asked again for its rest only, and the reader's
// block is never left waiting behind spans that hold every transfer slot
// and bring it nothing (paused where the look-ahead ended, for another
// region).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "engine_fixture.h"

namespace prefetch::testing {
namespace {

class EngineSpanTest : public EngineTest {
 protected:
  // Exactly `n` bytes at `offset` (pull mode); empty if the read failed
  // (the watchdog turns a read that never ends into a failure).
  std::vector<uint8_t> read_exact(uint64_t offset, size_t n) {
    const ReadResult r = prefetcher_->read(offset, n, ReadMode::kExact);
    if (r.status != ReadStatus::kOk) return {};
    return bytes_of(r);
  }
  bool same_as_origin(const std::vector<uint8_t>& got, uint64_t offset) const {
    return std::equal(got.begin(), got.end(), data().begin() + offset);
  }
};

Config span_config(unsigned concurrency = 4) {
  Config c = small_config(Schedule::kWindow, concurrency);
  c.max_request_bytes = 0;
  return c;
}

// Spans that pause at the look-ahead: about 250 kB/s per response, so a
// span's rest takes long enough for the window's other spans to be sent.
Config paused_span_config(unsigned concurrency, unsigned lookahead) {
  Config c = span_config(concurrency);
  c.lookahead_blocks = lookahead;
  c.hedge.enabled = false;
  return c;
}

Reply slow(const RangeRequest&, unsigned) {
  Reply r;
  r.chunk = 250;
  r.chunk_interval = microseconds(1000);
  return r;
}

// Until the first answer tells the size nothing else is asked: a file of one
// byte costs one request, and no request goes past the end.
TEST_F(EngineSpanTest, SpansAskNothingBeforeTheFirstAnswer) {
  make(1, span_config());
  origin_->hold_head(0);
  prefetcher_->begin(0);
  ASSERT_TRUE(origin_->wait_held(0, kHang));
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(origin_->request_count(), 1u);
  origin_->release(0);
  expect_exact_to_eos();
  ASSERT_EQ(origin_->request_count(), 1u);
  EXPECT_FALSE(origin_->requests()[0].end) << "the first span runs to the end";
}

// Where answers may come over HTTP/2 (TLS, before the first answer tells),
// the first span asks only for the look-ahead: a stream is read whether or
// not the engine reads it, so a request to the end would have a window of
// bytes buffered for it. The bytes stay exact.
TEST_F(EngineSpanTest, AMultiplexedFirstSpanAsksOnlyForTheLookAhead) {
  Config c = span_config(2);
  c.lookahead_blocks = 4;
  make(20 * kB, c);
  origin_->set_multiplex(true);
  prefetcher_->begin(0);
  ASSERT_TRUE(origin_->wait_requests(1, kHang));
  ASSERT_EQ(origin_->requests()[0].begin, 0u);
  ASSERT_TRUE(origin_->requests()[0].end);
  EXPECT_EQ(*origin_->requests()[0].end, 4 * kB);
  expect_exact_to_eos();
}

// One span carries a prompt, fast origin's whole file: it pauses where the
// look-ahead ends while the reader is away and goes on when it reads, and no
// byte is asked twice. (A reader slowed by a loaded machine grows the
// look-ahead, and the last blocks may then go to a second span split off the
// first: that is a split, not a re-ask, so the check is on bytes.)
TEST_F(EngineSpanTest, ASpanPausesAtTheLookAheadAndGoesOnExactly) {
  make(40 * kB + 123, span_config(2));
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  std::this_thread::sleep_for(milliseconds(100));  // the reader is away
  const Stats paused = prefetcher_->stats();
  EXPECT_LT(paused.bytes_received, 40 * kB) << "the span did not stop at the look-ahead";
  Drained d = drain(0, 3000);
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
TEST_F(EngineSpanTest, ACutSpanIsAskedAgainFromWhereItStopped) {
  make(6 * kB, span_config(1));
  origin_->set_script([](const RangeRequest& rq, unsigned attempt) {
    Reply r;
    if (rq.begin == 0) r.cut_after = 2 * kB + 17;  // the first answer ends early
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  expect_exact_to_eos();
  const auto reqs = origin_->requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].begin, 2 * kB + 17);
  EXPECT_EQ(prefetcher_->stats().retries, 1u);
}

// A demuxer's pattern in pull mode: a read far into the file, then one
// back before it. The spans sent for the first read run to where the
// look-ahead ends and pause there, holding both transfer slots; the block
// read back must still be asked for (one of them ends for it).
TEST_F(EngineSpanTest, AReadBehindPausedSpansIsFetched) {
  make(40 * kB, paused_span_config(2, 4));
  origin_->set_script(slow);
  prefetcher_->begin(20 * kB);
  ASSERT_EQ(read_exact(20 * kB, 100).size(), 100u);
  // Let the spans fill the look-ahead and pause (a paused fetch still runs).
  std::this_thread::sleep_for(milliseconds(300));
  const std::vector<uint8_t> got = read_exact(5 * kB + 10, 2 * kB);
  ASSERT_EQ(got.size(), 2 * kB) << "the read behind the paused spans never got its bytes";
  EXPECT_TRUE(same_as_origin(got, 5 * kB + 10));
}

// The same after a jump forward (an index at the end): the first region
// is kept, its spans paused where its look-ahead ended, holding both
// slots; the block at the jump must still be asked for.
TEST_F(EngineSpanTest, AJumpPastPausedSpansIsFetched) {
  make(40 * kB, paused_span_config(1, 4));
  origin_->set_script(slow);
  prefetcher_->begin(0);
  ASSERT_EQ(read_exact(0, 100).size(), 100u);
  std::this_thread::sleep_for(milliseconds(300));
  const std::vector<uint8_t> got = read_exact(30 * kB + 10, 2 * kB);
  ASSERT_EQ(got.size(), 2 * kB) << "the read past the paused spans never got its bytes";
  EXPECT_TRUE(same_as_origin(got, 30 * kB + 10));
}

// A demuxer's random reads in pull mode on an origin whose first byte is
// late (the element's PullModeTest, at a tenth of its times): every read
// ends, with the file's bytes.
TEST_F(EngineSpanTest, RandomReadsOnALateOriginAllEnd) {
  constexpr uint64_t kBlock = 64 * 1024;
  constexpr uint64_t kSize = 4 * 1024 * 1024 + 77;
  Config c;
  c.block_size = kBlock;
  make(kSize, c);
  origin_->set_script([](const RangeRequest& r, unsigned) {
    Reply reply;
    reply.first_byte_delay = milliseconds(10 + (r.begin / kBlock * 7919) % 15);
    reply.chunk = 16 * 1024;
    reply.chunk_interval = microseconds(1000);
    return reply;
  });
  prefetcher_->begin(0);
  std::mt19937 rng(20240606);
  std::uniform_int_distribution<uint64_t> offset_of(0, kSize - 1);
  std::uniform_real_distribution<double> log_size(std::log(16.0), std::log(300000.0));
  for (int i = 0; i < 200; ++i) {
    const uint64_t offset = offset_of(rng);
    const size_t size = static_cast<size_t>(std::exp(log_size(rng)));
    const size_t expected = static_cast<size_t>(std::min<uint64_t>(size, kSize - offset));
    const std::vector<uint8_t> got = read_exact(offset, size);
    ASSERT_EQ(got.size(), expected) << "read " << i << ": " << size << " bytes at " << offset;
    ASSERT_TRUE(same_as_origin(got, offset)) << "read " << i;
  }
}

// A demuxer reading a non-interleaved file in pull mode: its reads go back
// and forth between two regions (the video, the audio), then one region
// skips ahead a little. The spans of the region the reader left pause
// where its window ends and hold slots; every read must still end.
TEST_F(EngineSpanTest, AlternatingRegionsWithPausedSpansAllEnd) {
  make(200 * kB, paused_span_config(2, 8));
  origin_->set_script(slow);
  prefetcher_->begin(0);
  uint64_t a = 0, b = 120 * kB;
  for (int i = 0; i < 30; ++i) {
    uint64_t& at = i % 2 ? b : a;
    // Every fifth turn the region skips three blocks ahead.
    if (i % 5 == 4) at += 3 * kB;
    const std::vector<uint8_t> got = read_exact(at, 700);
    ASSERT_EQ(got.size(), 700u) << "read " << i << " at " << at << " never ended";
    ASSERT_TRUE(same_as_origin(got, at)) << "read " << i;
    at += 700;
    std::this_thread::sleep_for(milliseconds(20));  // the spans run on and pause
  }
}

}  // namespace
}  // namespace prefetch::testing
