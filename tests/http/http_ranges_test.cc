// Reading anywhere in the file: origins that ignore Range, pull-mode reads
// that jump between regions, seeks, opening at an offset, reading past the end.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>
#include <vector>

#include "http_fixture.h"

namespace prefetch {
namespace {

class HttpRangesTest : public HttpTest {};

// Origins that do not honour ranges.

TEST_F(HttpRangesTest, RangeIgnoredGivesExactBytes) {
  auto data = testing::make_pattern(1 * kMiB + 77, 6);
  server_.add_file("/f", data);
  Behavior b;
  b.ignore_range = true;
  server_.set_behavior("/f", b);
  auto p = make(options("/f"), config(64 * kKiB, 4));
  Watchdog dog(p.get(), seconds(20));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  Fetched f = read_until_end(*p, 0, 64 * kKiB, ReadMode::kAvailable);
  EXPECT_FALSE(p->seekable());
  EXPECT_EQ(p->size(), std::optional<uint64_t>(data.size()));
  p->close();
  EXPECT_FALSE(dog.stop());
  expect_exact(f, data);
}

TEST_F(HttpRangesTest, RangeIgnoredWithAcceptRangesNone) {
  auto data = testing::make_pattern(500 * kKiB, 6);
  server_.add_file("/f", data);
  Behavior b;
  b.ignore_range = true;
  b.accept_ranges_none = true;
  server_.set_behavior("/f", b);
  Fetched f = fetch(options("/f"), config(64 * kKiB, 4), 100003, ReadMode::kExact);
  expect_exact(f, data);
}

// A demuxer whose index sits at the end reads the head, jumps to the tail
// and comes back: the head comes from the cache, not from a second request.
// A demuxer reading a non-interleaved file alternates between two regions
// far apart: each keeps its window, so every block is asked for about once.
TEST_F(HttpRangesTest, PullReadsAlternatingBetweenTwoRegionsAskForEachBlockAboutOnce) {
  const uint64_t block = 64 * kKiB;
  auto data = testing::make_pattern(100 * block, 31);
  server_.add_file("/f", data);
  Behavior b;
  b.first_byte_delay = testing::fixed_delay(milliseconds(5));
  b.rate_bytes_per_sec = 2 * kMiB;  // a block takes ~30 ms: switches meet blocks in flight
  server_.set_behavior("/f", b);
  auto p = make(options("/f"), config(block, 4));
  Watchdog dog(p.get(), seconds(30));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  uint64_t video = 0, audio = 50 * block;
  const size_t n = 16 * kKiB;  // four reads a block
  for (int i = 0; i < 4 * 30; ++i) {
    for (uint64_t* at : {&video, &audio}) {
      ReadResult r = p->read(*at, n, ReadMode::kExact);
      ASSERT_EQ(r.status, ReadStatus::kOk) << "at " << *at;
      ASSERT_EQ(std::vector<uint8_t>(r.chunk.data, r.chunk.data + r.chunk.size),
                slice(data, *at, *at + n))
          << "at " << *at;
      *at += n;
    }
  }
  p->close();
  EXPECT_FALSE(dog.stop());
  const double blocks_read = 2 * 30;
  const double requests = static_cast<double>(server_.requests("/f").size());
  std::printf("[ info ] %.0f requests for %.0f blocks read\n", requests, blocks_read);
  EXPECT_LE(requests / blocks_read, 1.2) << requests << " requests for 60 blocks read";
}

// Block 0 stays in memory across the jump (as the region the reader left),
// so the way back costs no request.
TEST_F(HttpRangesTest, JumpToTheTailAndBackNeverRefetches) {
  const uint64_t size = 40 * 64 * kKiB;
  auto data = testing::make_pattern(size, 9);
  server_.add_file("/f", data);
  Config c = config(64 * kKiB, 2);
  c.cache_bytes = 4 * 64 * kKiB;
  auto p = make(options("/f"), c);
  Watchdog dog(p.get(), seconds(20));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  ReadResult r = p->read(0, 64 * kKiB, ReadMode::kExact);  // all of block 0
  ASSERT_EQ(r.status, ReadStatus::kOk);
  r = p->read(size - 1000, 1000, ReadMode::kExact);  // the tail
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(std::vector<uint8_t>(r.chunk.data, r.chunk.data + 1000),
            slice(data, size - 1000, size));
  r = p->read(100, 5000, ReadMode::kExact);  // back to the head
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(std::vector<uint8_t>(r.chunk.data, r.chunk.data + 5000), slice(data, 100, 5100));
  int block0 = 0;
  for (const auto& rec : server_.requests("/f")) block0 += rec.first_byte == 0 && rec.status == 206;
  EXPECT_EQ(block0, 1) << "block 0 was fetched again";
  p->close();
  EXPECT_FALSE(dog.stop());
}

// The origin's own log on a demuxer-like jump: the requests of the old
// window beyond the region it keeps are cancelled (the client goes away
// before their bodies), the block the reader was in runs on, and on the way
// back neither it nor block 0 is asked for again.
TEST_F(HttpRangesTest, JumpCancelsStaleRequestsAndNeverRefetchesKeptBlocks) {
  const uint64_t block = 64 * kKiB;
  const uint64_t size = 40 * block;
  auto data = testing::make_pattern(size, 11);
  server_.add_file("/f", data);
  Behavior b;
  // Block 0 at once, block 1 after 300 ms, blocks 2 and 3 after 1.5 s.
  b.first_byte_delay = testing::block_delay_schedule(
      block, {milliseconds(0), milliseconds(300), milliseconds(1500), milliseconds(1500)},
      milliseconds(0));
  server_.set_behavior("/f", b);
  Config c = block_config(block, 4);
  c.hedge.enabled = false;  // the slow blocks must not be asked twice by a hedge
  auto p = make(options("/f"), c);
  Watchdog dog(p.get(), seconds(20));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  ReadResult r = p->read(0, block, ReadMode::kExact);  // all of block 0: the reader is in block 1
  ASSERT_EQ(r.status, ReadStatus::kOk);
  ASSERT_TRUE(server_.wait_for_requests(4));
  r = p->read(size - 3000, 3000, ReadMode::kExact);  // the index at the end
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(std::vector<uint8_t>(r.chunk.data, r.chunk.data + r.chunk.size),
            slice(data, size - 3000, size));
  r = p->read(block - 100, 5000, ReadMode::kExact);  // back: the end of block 0, into block 1
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(std::vector<uint8_t>(r.chunk.data, r.chunk.data + r.chunk.size),
            slice(data, block - 100, block + 4900));
  p->close();
  EXPECT_FALSE(dog.stop());
  ASSERT_TRUE(server_.wait_idle());

  std::map<uint64_t, std::vector<RequestRecord>> by_first;
  for (const RequestRecord& rec : server_.requests("/f")) by_first[rec.first_byte].push_back(rec);
  ASSERT_EQ(by_first[0].size(), 1u) << "cached block 0 was fetched again";
  EXPECT_TRUE(by_first[0][0].complete);
  ASSERT_EQ(by_first[block].size(), 1u) << "parked block 1 was fetched again";
  EXPECT_TRUE(by_first[block][0].complete) << "parked block 1 did not run to its end";
  // The region the reader left keeps half the look-ahead (blocks 0-2: one
  // behind, two from the reader), so block 2 runs on and is asked once;
  // block 3, outside it, is cancelled.
  ASSERT_EQ(by_first[2 * block].size(), 1u) << "block 2 of the kept region was fetched again";
  ASSERT_GE(by_first[3 * block].size(), 1u) << "block 3 never requested";
  const RequestRecord& stale = by_first[3 * block][0];
  EXPECT_FALSE(stale.complete) << "block 3 was not cancelled";
  EXPECT_LT(stale.bytes_sent, stale.body_length);
}

TEST_F(HttpRangesTest, SeekableWhenRangesHonoured) {
  server_.add_file("/f", testing::make_pattern(300 * kKiB, 6));
  auto p = make(options("/f"), config(64 * kKiB, 2));
  Watchdog dog(p.get(), seconds(10));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  EXPECT_TRUE(p->seekable());
  EXPECT_EQ(p->size(), std::optional<uint64_t>(300 * kKiB));
  p->close();
  EXPECT_FALSE(dog.stop());
}

// Seeks and reads at an offset.

TEST_F(HttpRangesTest, SeekReturnsBytesStartingExactlyThere) {
  const uint64_t size = 5000003;
  auto data = testing::make_pattern(size, 21);
  server_.add_file("/f", data);
  auto p = make(options("/f"), config(256 * kKiB, 4));
  Watchdog dog(p.get(), seconds(20));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);

  ReadResult r = p->read(0, 1000, ReadMode::kExact);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  ASSERT_EQ(r.chunk.size, 1000u);
  EXPECT_EQ(std::vector<uint8_t>(r.chunk.data, r.chunk.data + 1000), slice(data, 0, 1000));

  // Far forward, mid-block.
  const uint64_t far = 3000001;
  r = p->read(far, 500000, ReadMode::kExact);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.offset, far);
  ASSERT_EQ(r.chunk.size, 500000u);
  EXPECT_EQ(std::vector<uint8_t>(r.chunk.data, r.chunk.data + r.chunk.size),
            slice(data, far, far + 500000));
  // The jump's own block is asked from the jump, not from the block's start,
  // so the first bytes after a seek wait for nothing before them.
  bool asked_from_far = false;
  for (const auto& rec : server_.requests("/f")) asked_from_far |= rec.first_byte == far;
  EXPECT_TRUE(asked_from_far);
  // What was requested up to the jump (later reads move the window again).
  const auto until_jump = server_.requests("/f");

  // Push-mode read right after it.
  r = p->read(far + 500000, 64 * kKiB, ReadMode::kAvailable);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.offset, far + 500000);
  ASSERT_GT(r.chunk.size, 0u);
  EXPECT_EQ(std::vector<uint8_t>(r.chunk.data, r.chunk.data + r.chunk.size),
            slice(data, far + 500000, far + 500000 + r.chunk.size));

  // Far backward.
  r = p->read(123457, 300000, ReadMode::kExact);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  ASSERT_EQ(r.chunk.size, 300000u);
  EXPECT_EQ(std::vector<uint8_t>(r.chunk.data, r.chunk.data + r.chunk.size),
            slice(data, 123457, 423457));

  // Near the end, then to EOS.
  Fetched tail = read_until_end(*p, size - 700000, 64 * kKiB, ReadMode::kAvailable);
  EXPECT_EQ(tail.status, ReadStatus::kEos);
  EXPECT_TRUE(tail.order_ok);
  EXPECT_EQ(tail.bytes, slice(data, size - 700000, size));

  p->close();
  EXPECT_FALSE(dog.stop());

  // The seek really fetched from the middle: some request started in the
  // block holding `far`, and the blocks in between were not all fetched.
  bool far_block = false;
  std::set<int64_t> firsts;
  for (const auto& rec : until_jump) {
    int64_t first = range_first(rec);
    firsts.insert(first);
    if (first >= 0 && static_cast<uint64_t>(first) / (256 * kKiB) == far / (256 * kKiB))
      far_block = true;
  }
  EXPECT_TRUE(far_block);
  EXPECT_EQ(firsts.count(static_cast<int64_t>(8 * 256 * kKiB)), 0u)
      << "block 8 (2 MiB) lies between the first window and the seek target";
}

TEST_F(HttpRangesTest, OpenAtOffset) {
  const uint64_t size = 1 * kMiB + 5;
  auto data = testing::make_pattern(size, 22);
  server_.add_file("/f", data);
  auto p = make(options("/f"), config(64 * kKiB, 4));
  Watchdog dog(p.get(), seconds(20));
  const uint64_t start = 700001;
  ASSERT_EQ(p->open(start).status, ReadStatus::kOk);
  EXPECT_EQ(p->size(), std::optional<uint64_t>(size));
  Fetched f = read_until_end(*p, start, 64 * kKiB, ReadMode::kAvailable);
  p->close();
  EXPECT_FALSE(dog.stop());
  EXPECT_EQ(f.status, ReadStatus::kEos);
  EXPECT_EQ(f.bytes, slice(data, start, size));
  for (const auto& rec : server_.requests("/f")) {
    EXPECT_GE(range_first(rec), static_cast<int64_t>(start / (64 * kKiB) * 64 * kKiB))
        << "no request before the open offset's block: " << rec.range;
  }
}

TEST_F(HttpRangesTest, ReadPastEndIsEos) {
  server_.add_file("/f", testing::make_pattern(1000, 1));
  auto p = make(options("/f"), config(64 * kKiB, 2));
  Watchdog dog(p.get(), seconds(10));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  EXPECT_EQ(p->read(1000, 10, ReadMode::kAvailable).status, ReadStatus::kEos);
  EXPECT_EQ(p->read(5000, 10, ReadMode::kExact).status, ReadStatus::kEos);
  ReadResult r = p->read(990, 100, ReadMode::kExact);
  EXPECT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.size, 10u);
  p->close();
  EXPECT_FALSE(dog.stop());
}

}  // namespace
}  // namespace prefetch
