// Spans in the engine, against the FakeOrigin: the reader's block is never
// left waiting behind spans that hold every transfer slot and bring it
// nothing (paused where the look-ahead ended, for another region).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <future>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "fake_origin.h"
#include "prefetch/prefetcher.h"

namespace prefetch {
namespace {

using std::chrono::milliseconds;
using testing::FakeOrigin;
using testing::PatternBytes;
using testing::Reply;

constexpr uint64_t kB = 1000;

// About 250 kB/s per response: a span's rest takes long enough for the
// window's other spans to be sent.
Reply Slow(const RangeRequest&, unsigned) {
  Reply r;
  r.chunk = 250;
  r.chunk_interval = std::chrono::microseconds(1000);
  return r;
}

// Exactly `n` bytes at `offset` (pull mode), within `limit`; empty if the
// read did not end in time or failed.
std::vector<uint8_t> ReadWithin(Prefetcher& p, uint64_t offset, size_t n, milliseconds limit) {
  auto read = std::async(std::launch::async, [&] { return p.read(offset, n, ReadMode::kExact); });
  if (read.wait_for(limit) != std::future_status::ready) {
    p.close();  // ends the read
    read.wait();
    return {};
  }
  const ReadResult r = read.get();
  if (r.status != ReadStatus::kOk) return {};
  return std::vector<uint8_t>(r.chunk.data, r.chunk.data + r.chunk.size);
}

// A demuxer's pattern in pull mode: a read far into the file, then one
// back before it. The spans sent for the first read run to where the
// look-ahead ends and pause there, holding both transfer slots; the block
// read back must still be asked for (one of them ends for it).
TEST(SpanEngineTest, AReadBehindPausedSpansIsFetched) {
  auto origin = std::make_shared<FakeOrigin>(PatternBytes(40 * kB));
  origin->set_script(Slow);
  Config c;
  c.block_size = kB;
  c.concurrency = 2;
  c.lookahead_blocks = 4;
  c.max_request_bytes = 0;  // spans ask to the end: they pause at the look-ahead
  c.hedge.enabled = false;
  Prefetcher p(origin, c);
  p.begin(20 * kB);
  std::vector<uint8_t> got = ReadWithin(p, 20 * kB, 100, milliseconds(5000));
  ASSERT_EQ(got.size(), 100u);
  // Let the spans fill the look-ahead and pause (a paused fetch still runs).
  std::this_thread::sleep_for(milliseconds(300));
  got = ReadWithin(p, 5 * kB + 10, 2 * kB, milliseconds(5000));
  ASSERT_EQ(got.size(), 2 * kB) << "the read behind the paused spans never got its bytes";
  EXPECT_TRUE(std::equal(got.begin(), got.end(), origin->data().begin() + 5 * kB + 10));
  p.close();
}

// The same after a jump forward (an index at the end): the first region
// is kept, its spans paused where its look-ahead ended, holding both
// slots; the block at the jump must still be asked for.
TEST(SpanEngineTest, AJumpPastPausedSpansIsFetched) {
  auto origin = std::make_shared<FakeOrigin>(PatternBytes(40 * kB));
  origin->set_script(Slow);
  Config c;
  c.block_size = kB;
  c.concurrency = 1;
  c.lookahead_blocks = 4;
  c.max_request_bytes = 0;
  c.hedge.enabled = false;
  Prefetcher p(origin, c);
  p.begin(0);
  std::vector<uint8_t> got = ReadWithin(p, 0, 100, milliseconds(5000));
  ASSERT_EQ(got.size(), 100u);
  std::this_thread::sleep_for(milliseconds(300));
  got = ReadWithin(p, 30 * kB + 10, 2 * kB, milliseconds(5000));
  ASSERT_EQ(got.size(), 2 * kB) << "the read past the paused spans never got its bytes";
  EXPECT_TRUE(std::equal(got.begin(), got.end(), origin->data().begin() + 30 * kB + 10));
  p.close();
}

// A demuxer's random reads in pull mode on an origin whose first byte is
// late (the element's PullModeTest, at a tenth of its times): every read
// ends, with the file's bytes.
TEST(SpanEngineTest, RandomReadsOnALateOriginAllEnd) {
  constexpr uint64_t kBlock = 64 * 1024;
  constexpr uint64_t kSize = 4 * 1024 * 1024 + 77;
  auto origin = std::make_shared<FakeOrigin>(PatternBytes(kSize));
  origin->set_script([](const RangeRequest& r, unsigned) {
    Reply reply;
    reply.first_byte_delay = milliseconds(10 + (r.begin / kBlock * 7919) % 15);
    reply.chunk = 16 * 1024;
    reply.chunk_interval = std::chrono::microseconds(1000);
    return reply;
  });
  Config c;
  c.block_size = kBlock;
  Prefetcher p(origin, c);
  p.begin(0);
  std::mt19937 rng(20240606);
  std::uniform_int_distribution<uint64_t> offset_of(0, kSize - 1);
  std::uniform_real_distribution<double> log_size(std::log(16.0), std::log(300000.0));
  for (int i = 0; i < 200; ++i) {
    const uint64_t offset = offset_of(rng);
    const size_t size = static_cast<size_t>(std::exp(log_size(rng)));
    const size_t expected = static_cast<size_t>(std::min<uint64_t>(size, kSize - offset));
    std::vector<uint8_t> got = ReadWithin(p, offset, size, milliseconds(10000));
    ASSERT_EQ(got.size(), expected) << "read " << i << ": " << size << " bytes at " << offset;
    ASSERT_TRUE(std::equal(got.begin(), got.end(), origin->data().begin() + offset))
        << "read " << i;
  }
  p.close();
}

// A demuxer reading a non-interleaved file in pull mode: its reads go back
// and forth between two regions (the video, the audio), then one region
// skips ahead a little. The spans of the region the reader left pause
// where its window ends and hold slots; every read must still end.
TEST(SpanEngineTest, AlternatingRegionsWithPausedSpansAllEnd) {
  constexpr uint64_t kSize = 200 * kB;
  auto origin = std::make_shared<FakeOrigin>(PatternBytes(kSize));
  origin->set_script(Slow);
  Config c;
  c.block_size = kB;
  c.concurrency = 2;
  c.lookahead_blocks = 8;
  c.max_request_bytes = 0;
  c.hedge.enabled = false;
  Prefetcher p(origin, c);
  p.begin(0);
  uint64_t a = 0, b = 120 * kB;
  for (int i = 0; i < 30; ++i) {
    uint64_t& at = i % 2 ? b : a;
    // Every fifth turn the region skips three blocks ahead.
    if (i % 5 == 4) at += 3 * kB;
    std::vector<uint8_t> got = ReadWithin(p, at, 700, milliseconds(5000));
    ASSERT_EQ(got.size(), 700u) << "read " << i << " at " << at << " never ended";
    ASSERT_TRUE(std::equal(got.begin(), got.end(), origin->data().begin() + at)) << "read " << i;
    at += 700;
    std::this_thread::sleep_for(milliseconds(20));  // the spans run on and pause
  }
  p.close();
}

}  // namespace
}  // namespace prefetch
