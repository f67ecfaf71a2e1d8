// Reads anywhere (pull mode, as demuxers read): jumps park the reader's
// block and cancel the rest, steps back and forth keep what is still
// wanted, and complete blocks are never asked for twice.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "engine_fixture.h"

namespace prefetch::testing {
namespace {

class EngineAccessTest : public EngineTest {};

std::vector<uint8_t> bytes_of(const ReadResult& r) {
  return std::vector<uint8_t>(r.chunk.data, r.chunk.data + r.chunk.size);
}

// The block the reader was in when it jumped keeps fetching (parked) and the
// return to it costs no request; the other requests of the old window are
// cancelled.
TEST_F(EngineAccessTest, JumpParksTheReadersBlockAndCancelsTheRest) {
  Config c = small_config(Schedule::kWindow, 3);
  c.lookahead_blocks = 6;
  make(100 * kB, c);
  origin_->hold_body(0, 300);
  origin_->hold_head(kB);
  origin_->hold_head(2 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ReadResult r = prefetcher_->read(0, 100, ReadMode::kExact);  // a header at 0
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(bytes_of(r), slice(0, 100));
  ASSERT_TRUE(origin_->wait_held(0, kHang));
  ASSERT_TRUE(origin_->wait_held(kB, kHang));
  ASSERT_TRUE(origin_->wait_held(2 * kB, kHang));

  r = prefetcher_->read(99 * kB + 10, 200, ReadMode::kExact);  // the index at the end
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(bytes_of(r), slice(99 * kB + 10, 99 * kB + 210));

  ASSERT_TRUE(wait_done(kB));
  ASSERT_TRUE(wait_done(2 * kB));
  EXPECT_TRUE(requests_at(kB).at(0).cancel_called) << "block 1 was not cancelled by the jump";
  EXPECT_TRUE(requests_at(2 * kB).at(0).cancel_called) << "block 2 was not cancelled by the jump";
  EXPECT_FALSE(requests_at(0).at(0).cancel_called) << "the reader's block was not parked";

  origin_->release_all();
  r = prefetcher_->read(100, 800, ReadMode::kExact);  // back to the media after the header
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(bytes_of(r), slice(100, 900));
  size_t block0 = 0;
  for (const RequestRecord& q : origin_->requests()) block0 += q.begin < kB;
  EXPECT_EQ(block0, 1u) << "block 0 was requested again after the return";
  Drained d = drain(900, 777, ReadMode::kExact);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == slice(900, 100 * kB));
}

// A two-block file whose index is in block 1: the reader steps from block 0
// to block 1 before block 0 is complete. Block 0 keeps fetching as the block
// behind the reader, not cancelled, so the way back costs no second request.
TEST_F(EngineAccessTest, AStepAheadKeepsTheBlockItLeftIncomplete) {
  make(2 * kB - 100);
  origin_->hold_body(0, 300);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ReadResult r = prefetcher_->read(0, 48, ReadMode::kExact);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(bytes_of(r), slice(0, 48));
  r = prefetcher_->read(kB + 500, 300, ReadMode::kExact);  // the index near the end
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(bytes_of(r), slice(kB + 500, kB + 800));
  origin_->release_all();
  r = prefetcher_->read(48, 900, ReadMode::kExact);  // back to the media
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(bytes_of(r), slice(48, 948));
  ASSERT_TRUE(origin_->wait_idle(kHang));
  const std::vector<RequestRecord> zero = requests_at(0);
  ASSERT_EQ(zero.size(), 1u) << "block 0 was requested again";
  EXPECT_FALSE(zero[0].cancel_called) << "block 0 was cancelled";
  for (const RequestRecord& q : origin_->requests())
    EXPECT_FALSE(q.begin > 0 && q.begin < kB) << "block 0 refetched from " << q.begin;
}

// Pull mode: a jump opens a window of two blocks, not the whole look-ahead
// (random reads should not start requests they will cancel), and the window
// doubles as the reader goes on in order. A push-mode seek opens it whole.
TEST_F(EngineAccessTest, ExactReadsAfterAJumpRampTheWindowUp) {
  Config c = small_config(Schedule::kWindow, 4);
  c.lookahead_blocks = 8;
  make(100 * kB, c);
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
  EXPECT_EQ(bytes_of(r), slice(50 * kB + 10, 50 * kB + 110));
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
  EXPECT_EQ(bytes_of(r), slice(52 * kB, 52 * kB + 100));

  prefetcher_->seek(80 * kB);  // push mode: the whole look-ahead at once
  ASSERT_TRUE(origin_->wait_idle(kHang));
  EXPECT_EQ(highest_from(80), 87u);
  expect_exact_to_eos(80 * kB);
}

// A jump lands mid-block, so the block is fetched from there; a later read
// before that byte, with no other block in between, must refetch it, not
// hand out bytes from before the block's buffer.
TEST_F(EngineAccessTest, ReadBeforeAPartlyHeldBlockRefetchesIt) {
  make(20 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ReadResult r = prefetcher_->read(5 * kB + 600, 100, ReadMode::kExact);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(bytes_of(r), slice(5 * kB + 600, 5 * kB + 700));
  r = prefetcher_->read(5 * kB + 100, 300, ReadMode::kExact);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(bytes_of(r), slice(5 * kB + 100, 5 * kB + 400));
  r = prefetcher_->read(5 * kB + 50, 20, ReadMode::kAvailable);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(r.chunk.offset, 5 * kB + 50);
  EXPECT_EQ(bytes_of(r), slice(5 * kB + 50, 5 * kB + 50 + r.chunk.size));
}

// Parking stays within the cache budget: with no cache, nothing is parked.
TEST_F(EngineAccessTest, NoParkingWithoutCacheRoom) {
  Config c = small_config(Schedule::kWindow, 2);
  c.cache_bytes = 0;
  make(100 * kB, c);
  origin_->hold_body(0, 300);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_EQ(prefetcher_->read(0, 100, ReadMode::kExact).status, ReadStatus::kOk);
  ASSERT_TRUE(origin_->wait_held(0, kHang));
  // A push-mode seek (pull-mode jumps keep the region they leave instead).
  prefetcher_->seek(50 * kB);
  ASSERT_EQ(prefetcher_->read(50 * kB, 100, ReadMode::kAvailable).status, ReadStatus::kOk);
  ASSERT_TRUE(wait_done(0));
  EXPECT_TRUE(requests_at(0).at(0).cancel_called);
  origin_->release_all();
}

// One block is parked at most: a second jump cancels the first parked block.
TEST_F(EngineAccessTest, ASecondJumpCancelsTheFirstParkedBlock) {
  Config c = small_config(Schedule::kWindow, 2);
  make(100 * kB, c);
  origin_->hold_body(0, 300);
  origin_->hold_body(50 * kB, 300);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_EQ(prefetcher_->read(0, 100, ReadMode::kExact).status, ReadStatus::kOk);
  ASSERT_TRUE(origin_->wait_held(0, kHang));
  ReadResult r = prefetcher_->read(50 * kB, 100, ReadMode::kExact);  // parks block 0
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(bytes_of(r), slice(50 * kB, 50 * kB + 100));
  ASSERT_TRUE(origin_->wait_held(50 * kB, kHang));
  EXPECT_FALSE(requests_at(0).at(0).cancel_called);
  r = prefetcher_->read(80 * kB, 100, ReadMode::kExact);  // parks block 50, drops block 0
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(bytes_of(r), slice(80 * kB, 80 * kB + 100));
  ASSERT_TRUE(wait_done(0));
  EXPECT_TRUE(requests_at(0).at(0).cancel_called) << "two blocks were parked at once";
  EXPECT_FALSE(requests_at(50 * kB).at(0).cancel_called);
  origin_->release_all();
}

// A short step back (a demuxer reading interleaved chunks a little out of
// order) keeps the far end of the window in flight.
TEST_F(EngineAccessTest, ShortStepBackKeepsTheBlocksAhead) {
  Config c = small_config(Schedule::kWindow, 2);
  c.lookahead_blocks = 4;
  make(20 * kB, c);
  origin_->hold_head(8 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  for (uint64_t at = 0; at < 5 * kB + 100; at += 100) {
    ReadResult r = prefetcher_->read(at, 100, ReadMode::kExact);
    ASSERT_EQ(r.status, ReadStatus::kOk);
    ASSERT_EQ(bytes_of(r), slice(at, at + 100)) << "at " << at;
  }
  ASSERT_TRUE(origin_->wait_held(8 * kB, kHang));  // the window's last block, in flight
  ReadResult r = prefetcher_->read(4 * kB + 500, 300, ReadMode::kExact);  // one block back
  ASSERT_EQ(r.status, ReadStatus::kOk);
  EXPECT_EQ(bytes_of(r), slice(4 * kB + 500, 4 * kB + 800));
  std::this_thread::sleep_for(milliseconds(20));
  EXPECT_FALSE(requests_at(8 * kB).at(0).cancel_called) << "a step back cancelled block 8";
  origin_->release_all();
  Drained d = drain(4 * kB + 800, 333, ReadMode::kExact);
  EXPECT_EQ(d.last.status, ReadStatus::kEos);
  EXPECT_TRUE(d.bytes == slice(4 * kB + 800, 20 * kB));
  for (uint64_t b = 0; b < 20; ++b) EXPECT_EQ(requests_at(b * kB).size(), 1u) << "block " << b;
}

// Small exact reads, one after the other, keep the window ahead of the reader.
TEST_F(EngineAccessTest, SequentialExactReadsKeepTheWindowAhead) {
  Config c = small_config(Schedule::kWindow, 2);
  c.lookahead_blocks = 4;
  make(30 * kB, c);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  for (uint64_t at = 0; at < 6 * kB + 50; at += 100) {
    ReadResult r = prefetcher_->read(at, 100, ReadMode::kExact);
    ASSERT_EQ(r.status, ReadStatus::kOk);
    ASSERT_EQ(bytes_of(r), slice(at, at + 100));
  }
  const auto deadline = FakeClock::now() + kHang;
  while (requests_at(9 * kB).empty() && FakeClock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(1));
  EXPECT_EQ(requests_at(9 * kB).size(), 1u) << "the window did not reach block 9";
  for (const RequestRecord& q : origin_->requests())
    EXPECT_LT(q.begin, 10 * kB) << "a request beyond the look-ahead budget";
}

// typefind and a demuxer: probe at 0, the tail, the header again, the tail
// again, then the media. Every read is exact and nothing complete is fetched
// twice.
TEST_F(EngineAccessTest, DemuxerPatternNeverRefetchesCompleteBlocks) {
  Config c = small_config(Schedule::kWindow, 2);
  c.lookahead_blocks = 4;
  c.cache_bytes = 10 * kB;
  make(50 * kB + 321, c);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  const std::vector<std::pair<uint64_t, size_t>> reads = {
      {0, 700},    {50 * kB + 193, 128}, {0, 32},
      {32, 8},     {49 * kB + 5, 1316},  {40, 2500},
      {2540, 100}, {50 * kB + 300, 21},  {2640, 5000},
      {7640, 100}, {49 * kB + 5, 16},    {7740, 3000}};
  for (const auto& [at, n] : reads) {
    ReadResult r = prefetcher_->read(at, n, ReadMode::kExact);
    ASSERT_EQ(r.status, ReadStatus::kOk) << "at " << at;
    EXPECT_EQ(bytes_of(r), slice(at, at + n)) << "at " << at;
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
  EXPECT_EQ(requests_at(0).size(), 1u) << "block 0 was fetched again";
  EXPECT_GE(prefetcher_->stats().cache_hits, 1u);
}

// A demuxer reading a non-interleaved file alternates between two regions
// far apart (the video, then the audio of the same moment). Each region
// keeps its window, so a switch is not a jump that cancels the other's
// look-ahead: every block is asked for about once.
TEST_F(EngineAccessTest, ReadsAlternatingBetweenTwoRegionsKeepBothWindows) {
  Config c = small_config(Schedule::kWindow, 4);
  c.lookahead_blocks = 8;
  make(100 * kB, c);
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
      ASSERT_EQ(bytes_of(r), slice(*at, *at + n)) << "at " << *at;
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
TEST_F(EngineAccessTest, ALongExactReadCountsItsCopyAgainstTheLookahead) {
  Config c = small_config(Schedule::kWindow, 2);
  c.lookahead_blocks = 4;
  make(40 * kB, c);
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
  EXPECT_TRUE(bytes_of(r) == slice(0, 30 * kB));
}

}  // namespace
}  // namespace prefetch::testing
