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
  Behavior b;
  b.ignore_range = true;
  auto data = serve("/f", 1 * kMiB + 77, 6, b);
  Guarded p = guarded(options("/f"), config(64 * kKiB, 4), seconds(20));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  Fetched f = read_until_end(*p, 0, 64 * kKiB, ReadMode::kAvailable);
  EXPECT_FALSE(p->seekable());
  EXPECT_EQ(p->size(), std::optional<uint64_t>(data.size()));
  EXPECT_TRUE(p.close_in_time());
  expect_exact(f, data);
}

TEST_F(HttpRangesTest, RangeIgnoredWithAcceptRangesNone) {
  Behavior b;
  b.ignore_range = true;
  b.accept_ranges_none = true;
  auto data = serve("/f", 500 * kKiB, 6, b);
  Fetched f = fetch(options("/f"), config(64 * kKiB, 4), 100003, ReadMode::kExact);
  expect_exact(f, data);
}

// A demuxer reading a non-interleaved file alternates between two regions
// far apart: each keeps its window, so every block is asked for about once.
TEST_F(HttpRangesTest, PullReadsAlternatingBetweenTwoRegionsAskForEachBlockAboutOnce) {
  const uint64_t block = 64 * kKiB;
  Behavior b;
  b.first_byte_delay = testing::fixed_delay(milliseconds(5));
  b.rate_bytes_per_sec = 2 * kMiB;  // a block takes ~30 ms: switches meet blocks in flight
  auto data = serve("/f", 100 * block, 31, b);
  Guarded p = guarded(options("/f"), config(block, 4), seconds(30));
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
  EXPECT_TRUE(p.close_in_time());
  const double blocks_read = 2 * 30;
  const double requests = static_cast<double>(server_.requests("/f").size());
  std::printf("[ info ] %.0f requests for %.0f blocks read\n", requests, blocks_read);
  EXPECT_LE(requests / blocks_read, 1.2) << requests << " requests for 60 blocks read";
}

// A demuxer whose index sits at the end reads the head, jumps to the tail
// and comes back: block 0 stays in memory across the jump (as the region
// the reader left), so the way back costs no request.
TEST_F(HttpRangesTest, JumpToTheTailAndBackNeverRefetches) {
  const uint64_t size = 40 * 64 * kKiB;
  auto data = serve("/f", size, 9);
  Config c = config(64 * kKiB, 2);
  c.cache_bytes = 4 * 64 * kKiB;
  Guarded p = guarded(options("/f"), c, seconds(20));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  ReadResult r = p->read(0, 64 * kKiB, ReadMode::kExact);  // all of block 0
  ASSERT_EQ(r.status, ReadStatus::kOk);
  r = p->read(size - 1000, 1000, ReadMode::kExact);  // the tail
  ASSERT_EQ(r.status, ReadStatus::kOk);
  expect_chunk(r, data, size - 1000, size);
  r = p->read(100, 5000, ReadMode::kExact);  // back to the head
  ASSERT_EQ(r.status, ReadStatus::kOk);
  expect_chunk(r, data, 100, 5100);
  EXPECT_EQ(
      count_requests(
          "/f", [](const RequestRecord& rec) { return rec.first_byte == 0 && rec.status == 206; }),
      1u)
      << "block 0 was fetched again";
  EXPECT_TRUE(p.close_in_time());
}

// The origin's own log on a demuxer-like jump: the requests of the old
// window beyond the region it keeps are cancelled (the client goes away
// before their bodies), the block the reader was in runs on, and on the way
// back neither it nor block 0 is asked for again.
TEST_F(HttpRangesTest, JumpCancelsStaleRequestsAndNeverRefetchesKeptBlocks) {
  const uint64_t block = 64 * kKiB;
  const uint64_t size = 40 * block;
  Behavior b;
  // Block 0 at once, block 1 after 300 ms, blocks 2 and 3 after 1.5 s.
  b.first_byte_delay = testing::block_delay_schedule(
      block, {milliseconds(0), milliseconds(300), milliseconds(1500), milliseconds(1500)},
      milliseconds(0));
  auto data = serve("/f", size, 11, b);
  Config c = block_config(block, 4);
  c.hedge.enabled = false;  // the slow blocks must not be asked twice by a hedge
  Guarded p = guarded(options("/f"), c, seconds(20));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  ReadResult r = p->read(0, block, ReadMode::kExact);  // all of block 0: the reader is in block 1
  ASSERT_EQ(r.status, ReadStatus::kOk);
  ASSERT_TRUE(server_.wait_for_requests(4));
  r = p->read(size - 3000, 3000, ReadMode::kExact);  // the index at the end
  ASSERT_EQ(r.status, ReadStatus::kOk);
  expect_chunk(r, data, size - 3000, size);
  // Back: the end of block 0 and all of block 1, so that its request has
  // sent its last byte before the close below (a read of only its first
  // bytes let the close cancel it, on a loaded machine, before it ended).
  r = p->read(block - 100, block + 100, ReadMode::kExact);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  expect_chunk(r, data, block - 100, 2 * block);
  EXPECT_TRUE(p.close_in_time());
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
  serve("/f", 300 * kKiB, 6);
  Guarded p = guarded(options("/f"), config(64 * kKiB, 2), seconds(10));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  EXPECT_TRUE(p->seekable());
  EXPECT_EQ(p->size(), std::optional<uint64_t>(300 * kKiB));
  EXPECT_TRUE(p.close_in_time());
}

// Seeks and reads at an offset.
TEST_F(HttpRangesTest, SeekReturnsBytesStartingExactlyThere) {
  const uint64_t size = 5000003;
  auto data = serve("/f", size, 21);
  Guarded p = guarded(options("/f"), config(256 * kKiB, 4), seconds(20));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);

  ReadResult r = p->read(0, 1000, ReadMode::kExact);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  ASSERT_EQ(r.chunk.size, 1000u);
  expect_chunk(r, data, 0, 1000);

  // Far forward, mid-block.
  const uint64_t far = 3000001;
  r = p->read(far, 500000, ReadMode::kExact);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.offset, far);
  ASSERT_EQ(r.chunk.size, 500000u);
  expect_chunk(r, data, far, far + 500000);
  // The jump's own block is asked from the jump, not from the block's start,
  // so the first bytes after a seek wait for nothing before them.
  EXPECT_GE(count_requests("/f", [&](const RequestRecord& rec) { return rec.first_byte == far; }),
            1u);
  // What was requested up to the jump (later reads move the window again).
  const auto until_jump = server_.requests("/f");

  // Push-mode read right after it.
  r = p->read(far + 500000, 64 * kKiB, ReadMode::kAvailable);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.offset, far + 500000);
  ASSERT_GT(r.chunk.size, 0u);
  expect_chunk(r, data, far + 500000, far + 500000 + r.chunk.size);

  // Far backward.
  r = p->read(123457, 300000, ReadMode::kExact);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  ASSERT_EQ(r.chunk.size, 300000u);
  expect_chunk(r, data, 123457, 423457);

  // Near the end, then to EOS.
  Fetched tail = read_until_end(*p, size - 700000, 64 * kKiB, ReadMode::kAvailable);
  EXPECT_EQ(tail.status, ReadStatus::kEos);
  EXPECT_TRUE(tail.order_ok);
  EXPECT_EQ(tail.bytes, slice(data, size - 700000, size));

  EXPECT_TRUE(p.close_in_time());

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
  auto data = serve("/f", size, 22);
  Guarded p = guarded(options("/f"), config(64 * kKiB, 4), seconds(20));
  const uint64_t start = 700001;
  ASSERT_EQ(p->open(start).status, ReadStatus::kOk);
  EXPECT_EQ(p->size(), std::optional<uint64_t>(size));
  Fetched f = read_until_end(*p, start, 64 * kKiB, ReadMode::kAvailable);
  EXPECT_TRUE(p.close_in_time());
  EXPECT_EQ(f.status, ReadStatus::kEos);
  EXPECT_EQ(f.bytes, slice(data, start, size));
  for (const auto& rec : server_.requests("/f")) {
    EXPECT_GE(range_first(rec), static_cast<int64_t>(start / (64 * kKiB) * 64 * kKiB))
        << "no request before the open offset's block: " << rec.range;
  }
}

TEST_F(HttpRangesTest, ReadPastEndIsEos) {
  serve("/f", 1000, 1);
  Guarded p = guarded(options("/f"), config(64 * kKiB, 2), seconds(10));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  EXPECT_EQ(p->read(1000, 10, ReadMode::kAvailable).status, ReadStatus::kEos);
  EXPECT_EQ(p->read(5000, 10, ReadMode::kExact).status, ReadStatus::kEos);
  ReadResult r = p->read(990, 100, ReadMode::kExact);
  EXPECT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.size, 10u);
  EXPECT_TRUE(p.close_in_time());
}

}  // namespace
}  // namespace prefetch
