// The disk tier in front of the scripted origin: a replay reads no body
// byte from the origin, a stale entry is revalidated once, a changed
// resource gives its new bytes, a damaged block is fetched again, and an
// origin out of reach leaves what the disk holds playable.
#include "prefetch/disk_origin.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine_fixture.h"
#include "fake_origin.h"
#include "prefetch/disk_store.h"
#include "prefetch/prefetcher.h"

namespace prefetch::testing {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kSize = 10 * kBlock + 123;  // a short last block
const char* const kKey = "http://origin.test/clip.mp4";

struct Play {
  Drained drained;
  DiskStats disk;
  std::vector<RequestRecord> requests;
  std::vector<std::string> warnings;
  uint64_t body_bytes() const {
    uint64_t n = 0;
    for (const RequestRecord& r : requests) n += r.body_bytes;
    return n;
  }
};

class DiskOriginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/disk_origin_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = std::string(tmpl) + "/cache";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(fs::path(dir_).parent_path(), ec);
  }

  static Config config() {
    Config c = small_config();
    c.block_size = kBlock;
    c.max_request_bytes = 0;  // spans, as by default
    return c;
  }

  // Plays the whole resource of `origin` from `offset` (then from 0 if
  // `offset` is not 0: a demuxer's jump to the end and back) through a
  // fresh disk tier on the test's directory, and waits for its writes.
  Play play(const std::shared_ptr<FakeOrigin>& origin, uint64_t offset = 0) {
    Play out;
    std::string error;
    std::shared_ptr<DiskStore> store = DiskStore::open(dir_, 0, &error);
    EXPECT_TRUE(store) << error;
    if (!store) return out;
    auto warnings = std::make_shared<std::vector<std::string>>();
    auto mu = std::make_shared<std::mutex>();
    DiskOriginOptions opt;
    opt.key = kKey;
    opt.block_size = kBlock;
    // Every block written, however slow the machine: what is tested here
    // is what the disk holds, not how much time writing may take.
    opt.write_share = 1;
    auto disk = std::make_shared<DiskOrigin>(origin, store, opt, test_logger(),
                                             [warnings, mu](const std::string& m) {
                                               std::lock_guard<std::mutex> lock(*mu);
                                               warnings->push_back(m);
                                             });
    {
      Prefetcher p(disk, config(), test_logger());
      p.begin(offset);
      if (offset) {
        Drained tail = read_to_end(p, offset);
        EXPECT_EQ(tail.last.status, ReadStatus::kEos);
      }
      out.drained = read_to_end(p, 0);
      p.close();
    }
    disk->flush();
    out.disk = disk->stats();
    disk.reset();
    EXPECT_TRUE(origin->wait_all_done(kHang));
    out.requests = origin->requests();
    std::lock_guard<std::mutex> lock(*mu);
    out.warnings = *warnings;
    return out;
  }

  std::optional<Entry> entry() {
    std::string error;
    std::unique_ptr<DiskStore> store = DiskStore::open(dir_, 0, &error);
    return store ? store->find(kKey) : std::nullopt;
  }
  std::string data_file() {
    std::optional<Entry> e = entry();
    return e ? dir_ + "/data/" + std::to_string(e->id) : "";
  }

  static std::shared_ptr<FakeOrigin> origin(std::vector<uint8_t> data, std::string etag,
                                            HttpHeaders headers = {}) {
    auto o = std::make_shared<FakeOrigin>(std::move(data), std::move(etag));
    o->set_script([headers](const RangeRequest&, unsigned) {
      Reply r;
      r.headers = headers;
      return r;
    });
    return o;
  }

  // The origin out of reach: every request refused.
  static std::shared_ptr<FakeOrigin> unreachable(std::vector<uint8_t> data) {
    auto o = std::make_shared<FakeOrigin>(std::move(data), "\"v1\"");
    o->set_script([](const RangeRequest&, unsigned) {
      Reply r;
      r.connect_error = true;
      return r;
    });
    return o;
  }

  std::string dir_;
};

std::vector<uint8_t> other_bytes(uint64_t size) {
  std::vector<uint8_t> v = pattern_bytes(size);
  for (uint8_t& b : v) b = static_cast<uint8_t>(b ^ 0x5a);
  return v;
}

TEST_F(DiskOriginTest, AReplayReadsNoBodyByteFromTheOrigin) {
  const std::vector<uint8_t> data = pattern_bytes(kSize);
  Play cold = play(origin(data, "\"v1\""));
  ASSERT_EQ(cold.drained.last.status, ReadStatus::kEos);
  EXPECT_EQ(cold.drained.bytes, data);
  EXPECT_EQ(cold.disk.blocks_written, 11u);
  EXPECT_EQ(cold.disk.blocks_read, 0u);
  ASSERT_TRUE(entry());
  EXPECT_TRUE(entry()->complete());

  // No lifetime was given: stale, so one conditional request, answered 304.
  Play warm = play(origin(data, "\"v1\""));
  ASSERT_EQ(warm.drained.last.status, ReadStatus::kEos);
  EXPECT_EQ(warm.drained.bytes, data);
  ASSERT_EQ(warm.requests.size(), 1u);
  EXPECT_EQ(warm.requests[0].if_none_match, "\"v1\"");
  EXPECT_EQ(warm.body_bytes(), 0u);
  EXPECT_EQ(warm.disk.blocks_read, 11u);
  EXPECT_EQ(warm.disk.bytes_read, kSize);
  EXPECT_EQ(warm.disk.revalidations, 1u);
  EXPECT_EQ(warm.disk.not_modified, 1u);
  EXPECT_TRUE(warm.warnings.empty());
}

TEST_F(DiskOriginTest, AFreshEntryIsPlayedWithNoRequest) {
  const std::vector<uint8_t> data = pattern_bytes(kSize);
  const HttpHeaders fresh = {{"Cache-Control", "max-age=3600"}};
  Play cold = play(origin(data, "\"v1\"", fresh));
  ASSERT_EQ(cold.drained.bytes, data);
  Play warm = play(origin(data, "\"v1\"", fresh));
  ASSERT_EQ(warm.drained.last.status, ReadStatus::kEos);
  EXPECT_EQ(warm.drained.bytes, data);
  EXPECT_EQ(warm.requests.size(), 0u);
  EXPECT_EQ(warm.disk.revalidations, 0u);
}

TEST_F(DiskOriginTest, AJumpToTheEndAndBackIsServedFromDiskOnReplay) {
  const std::vector<uint8_t> data = pattern_bytes(kSize);
  Play cold = play(origin(data, "\"v1\""), kSize - 200);
  ASSERT_EQ(cold.drained.bytes, data);
  Play warm = play(origin(data, "\"v1\""), kSize - 200);
  EXPECT_EQ(warm.drained.bytes, data);
  EXPECT_LE(warm.requests.size(), 1u);
  EXPECT_EQ(warm.body_bytes(), 0u);
}

TEST_F(DiskOriginTest, AChangedResourceGivesItsNewBytes) {
  const HttpHeaders no_cache = {{"Cache-Control", "no-cache"}};
  const std::vector<uint8_t> data = pattern_bytes(kSize);
  ASSERT_EQ(play(origin(data, "\"v1\"", no_cache)).drained.bytes, data);
  const std::vector<uint8_t> changed = other_bytes(kSize);
  Play warm = play(origin(changed, "\"v2\"", no_cache));
  ASSERT_EQ(warm.drained.last.status, ReadStatus::kEos);
  EXPECT_EQ(warm.drained.bytes, changed);
  EXPECT_EQ(warm.disk.changed, 1u);
  EXPECT_EQ(warm.disk.blocks_read, 0u);
  // And the new bytes are what the disk keeps now.
  Play again = play(origin(changed, "\"v2\"", no_cache));
  EXPECT_EQ(again.drained.bytes, changed);
  EXPECT_EQ(again.body_bytes(), 0u);
}

TEST_F(DiskOriginTest, ADamagedOrTruncatedBlockIsFetchedAgain) {
  const std::vector<uint8_t> data = pattern_bytes(kSize);
  ASSERT_EQ(play(origin(data, "\"v1\"")).drained.bytes, data);
  {
    // A flipped byte in block 3, and the file cut inside block 9.
    std::fstream f(data_file(), std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f);
    f.seekp(3 * kBlock + 17);
    f.put(static_cast<char>(data[3 * kBlock + 17] ^ 0xff));
  }
  ASSERT_EQ(truncate(data_file().c_str(), 9 * kBlock + 5), 0);
  Play warm = play(origin(data, "\"v1\""));
  ASSERT_EQ(warm.drained.last.status, ReadStatus::kEos);
  EXPECT_EQ(warm.drained.bytes, data);
  EXPECT_EQ(warm.disk.blocks_damaged, 3u);  // blocks 3, 9 and 10
  EXPECT_EQ(warm.body_bytes(), 2 * kBlock + (kSize - 10 * kBlock));
  // Written again: the next play needs no body byte.
  EXPECT_EQ(play(origin(data, "\"v1\"")).body_bytes(), 0u);
}

TEST_F(DiskOriginTest, OfflineACompleteEntryPlaysFromDiskWithOneWarning) {
  const std::vector<uint8_t> data = pattern_bytes(kSize);
  ASSERT_EQ(play(origin(data, "\"v1\"")).drained.bytes, data);
  Play warm = play(unreachable(data));
  ASSERT_EQ(warm.drained.last.status, ReadStatus::kEos);
  EXPECT_EQ(warm.drained.bytes, data);
  EXPECT_EQ(warm.disk.offline, 1u);
  EXPECT_EQ(warm.warnings.size(), 1u);
}

TEST_F(DiskOriginTest, OfflineAPartialEntryFailsAfterItsBlocks) {
  const std::vector<uint8_t> data = pattern_bytes(kSize);
  ASSERT_EQ(play(origin(data, "\"v1\"")).drained.bytes, data);
  ASSERT_EQ(truncate(data_file().c_str(), 4 * kBlock), 0);
  Play warm = play(unreachable(data));
  ASSERT_EQ(warm.drained.last.status, ReadStatus::kError);
  EXPECT_EQ(warm.drained.last.error.kind, ErrorKind::kOpenRead);
  EXPECT_EQ(warm.drained.bytes, std::vector<uint8_t>(data.begin(), data.begin() + 4 * kBlock));
}

// An entry that holds a few scattered blocks and one long run (a cold
// play that wrote only part of what it fetched): a network request runs
// through the scattered ones (stopping at each would cost a first byte per
// block on a slow origin) and stops at the run, which comes from disk.
TEST_F(DiskOriginTest, ANetworkRequestRunsThroughShortHeldRunsAndStopsAtALongOne) {
  constexpr uint64_t kBlocks = 24, kRun = 12;  // blocks 12-23 held, and 2 and 5
  const std::vector<uint8_t> data = pattern_bytes(kBlocks * kBlock);
  {
    std::string error;
    std::unique_ptr<DiskStore> store = DiskStore::open(dir_, 0, &error);
    ASSERT_TRUE(store) << error;
    EntryMeta m;
    m.key = m.final_url = kKey;
    m.size = data.size();
    m.block_size = kBlock;
    m.etag = "\"v1\"";
    std::optional<Entry> e = store->put(m, &error);
    ASSERT_TRUE(e) << error;
    for (uint64_t i : {uint64_t{2}, uint64_t{5}})
      ASSERT_EQ(store->write(e->id, i, &data[i * kBlock], kBlock), BlockWrite::kWritten);
    for (uint64_t i = kRun; i < kBlocks; ++i)
      ASSERT_EQ(store->write(e->id, i, &data[i * kBlock], kBlock), BlockWrite::kWritten);
  }
  Play warm = play(origin(data, "\"v1\""));
  ASSERT_EQ(warm.drained.last.status, ReadStatus::kEos);
  EXPECT_EQ(warm.drained.bytes, data);
  for (const RequestRecord& r : warm.requests) {
    EXPECT_LT(r.begin, kRun * kBlock) << "request " << r.id;
    EXPECT_NE(r.end, std::optional<uint64_t>(2 * kBlock)) << "request " << r.id;
    EXPECT_NE(r.end, std::optional<uint64_t>(5 * kBlock)) << "request " << r.id;
  }
  EXPECT_EQ(warm.disk.blocks_read, kBlocks - kRun);
  EXPECT_EQ(warm.body_bytes(), kRun * kBlock);
}

TEST_F(DiskOriginTest, NoStoreIsNeverWritten) {
  const std::vector<uint8_t> data = pattern_bytes(kSize);
  Play cold = play(origin(data, "\"v1\"", {{"Cache-Control", "no-store"}}));
  ASSERT_EQ(cold.drained.bytes, data);
  EXPECT_EQ(cold.disk.blocks_written, 0u);
  EXPECT_FALSE(entry());
}

// Two elements (as in two processes: each with its own store and claims)
// play one resource at once: what one fetches the other waits for and
// reads from disk, so the origins send less than two plays alone would.
// (How much less depends on how the two engines' spans meet and how fast
// the machine runs: the benchmark measures it.)
TEST_F(DiskOriginTest, TwoElementsAtOnceShareWhatTheyFetch) {
  constexpr uint64_t kBig = 64 * kBlock;
  const std::vector<uint8_t> data = pattern_bytes(kBig);
  const auto paced = [&] {
    auto o = std::make_shared<FakeOrigin>(data, "\"v1\"");
    o->set_script([](const RangeRequest&, unsigned) {
      Reply r;
      r.chunk = 1024;
      r.chunk_interval = std::chrono::microseconds(500);  // 2 MB/s a request
      return r;
    });
    return o;
  };
  std::shared_ptr<FakeOrigin> a = paced(), b = paced();
  Play pa, pb;
  std::thread other([&] { pb = play(b); });
  pa = play(a);
  other.join();
  EXPECT_EQ(pa.drained.bytes, data);
  EXPECT_EQ(pb.drained.bytes, data);
  const uint64_t sent = pa.body_bytes() + pb.body_bytes();
  EXPECT_LT(sent, 2 * kBig) << "a: " << pa.body_bytes() << " b: " << pb.body_bytes();
  EXPECT_GT(pa.disk.blocks_read + pb.disk.blocks_read, 0u);
}

TEST_F(DiskOriginTest, TheDirectoryIsPrivate) {
  const std::vector<uint8_t> data = pattern_bytes(kSize);
  ASSERT_EQ(play(origin(data, "\"v1\"")).drained.bytes, data);
  struct stat st {};
  ASSERT_EQ(stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(stat(data_file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

}  // namespace
}  // namespace prefetch::testing
