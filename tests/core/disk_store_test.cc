#include "prefetch/disk_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

using prefetch::BlockRead;
using prefetch::BlockWrite;
using prefetch::DiskStore;
using prefetch::Entry;
using prefetch::EntryMeta;

namespace {

constexpr uint64_t kBlock = 1000;
constexpr uint64_t kGiB = uint64_t{1} << 30;

// A fresh directory under /tmp, removed with everything in it.
struct TempDir {
  TempDir() {
    char name[] = "/tmp/disk_store_test.XXXXXX";
    path = mkdtemp(name) ? name : "";
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::string path;
};

// A tmpfs of `size` mounted on a fresh directory (root only); mounted() false
// if that is not allowed here.
struct SmallFs {
  explicit SmallFs(const char* size) {
    ok = geteuid() == 0 &&
         mount("tmpfs", dir.path.c_str(), "tmpfs", 0, (std::string("size=") + size).c_str()) == 0;
  }
  ~SmallFs() {
    if (ok) umount2(dir.path.c_str(), MNT_DETACH);
  }
  TempDir dir;
  bool ok = false;
};

EntryMeta meta_for(const std::string& key, uint64_t size, uint64_t block = kBlock,
                   const std::string& etag = "\"v1\"") {
  EntryMeta m;
  m.key = key;
  m.final_url = key + "?final";
  m.size = size;
  m.block_size = block;
  m.etag = etag;
  m.last_modified = "Mon, 01 Jan 2024 00:00:00 GMT";
  m.fresh_until = 1'700'000'000;
  m.headers = "Content-Type: video/mp4\nAccept-Ranges: bytes\n";
  return m;
}

std::vector<uint8_t> random_bytes(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(gen());
  return out;
}

// Block `i` of `all`, cut at block_size.
std::vector<uint8_t> block_of(const std::vector<uint8_t>& all, uint64_t i,
                              uint64_t block = kBlock) {
  uint64_t begin = i * block, end = std::min<uint64_t>(all.size(), begin + block);
  return std::vector<uint8_t>(all.begin() + begin, all.begin() + end);
}

BlockWrite write_block(DiskStore& s, int64_t id, uint64_t i, const std::vector<uint8_t>& all,
                       uint64_t block = kBlock) {
  std::vector<uint8_t> b = block_of(all, i, block);
  return s.write(id, i, b.data(), b.size());
}

BlockRead read_block(DiskStore& s, int64_t id, uint64_t i, size_t length,
                     std::vector<uint8_t>* out) {
  out->assign(length, 0);
  return s.read(id, i, out->data(), length);
}

std::string data_path(const std::string& dir, int64_t id) {
  return dir + "/data/" + std::to_string(id);
}

bool exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

mode_t mode_of(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
}

std::unique_ptr<DiskStore> open_store(const std::string& dir, uint64_t max_bytes = 100 * kBlock) {
  std::string error;
  auto s = DiskStore::open(dir, max_bytes, &error);
  EXPECT_NE(s, nullptr) << error;
  return s;
}

}  // namespace

TEST(DiskStoreTest, PutThenFindGivesTheEntryBack) {
  TempDir dir;
  auto s = open_store(dir.path);
  ASSERT_NE(s, nullptr);
  EntryMeta m = meta_for("https://example.com/a.mp4", 4321);
  auto put = s->put(m);
  ASSERT_TRUE(put.has_value());
  EXPECT_GT(put->id, 0);
  EXPECT_EQ(put->blocks_held, 0u);
  EXPECT_EQ(put->bytes_held, 0u);
  EXPECT_EQ(put->block_count(), 5u);
  EXPECT_FALSE(put->complete());

  auto found = s->find(m.key);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, put->id);
  EXPECT_EQ(found->meta.key, m.key);
  EXPECT_EQ(found->meta.final_url, m.final_url);
  EXPECT_EQ(found->meta.size, 4321u);
  EXPECT_EQ(found->meta.block_size, kBlock);
  EXPECT_EQ(found->meta.etag, m.etag);
  EXPECT_EQ(found->meta.last_modified, m.last_modified);
  EXPECT_EQ(found->meta.fresh_until, m.fresh_until);
  EXPECT_EQ(found->meta.headers, m.headers);
  EXPECT_EQ(found->blocks_held, 0u);
  EXPECT_EQ(found->bytes_held, 0u);
  EXPECT_TRUE(exists(data_path(dir.path, put->id)));
  EXPECT_FALSE(s->find("https://example.com/other.mp4").has_value());
}

TEST(DiskStoreTest, WriteThenReadGivesTheSameBytes) {
  TempDir dir;
  auto s = open_store(dir.path);
  ASSERT_NE(s, nullptr);
  const uint64_t size = 3 * kBlock + 321;  // the last block is short
  auto all = random_bytes(size, 1);
  auto e = s->put(meta_for("k", size));
  ASSERT_TRUE(e.has_value());
  for (uint64_t i = 0; i < 4; ++i) EXPECT_EQ(write_block(*s, e->id, i, all), BlockWrite::kWritten);

  std::vector<uint8_t> got, whole;
  for (uint64_t i = 0; i < 4; ++i) {
    size_t length = i < 3 ? kBlock : 321;
    ASSERT_EQ(read_block(*s, e->id, i, length, &got), BlockRead::kOk) << "block " << i;
    EXPECT_EQ(got, block_of(all, i)) << "block " << i;
    whole.insert(whole.end(), got.begin(), got.end());
  }
  EXPECT_EQ(whole, all);
  auto found = s->find("k");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->blocks_held, 4u);
  EXPECT_EQ(found->bytes_held, size);
  EXPECT_TRUE(found->complete());
  EXPECT_EQ(s->bytes_held(), size);
}

// Page-aligned bytes (the disk tier's buffers) go past the page cache where
// the file system allows it; a short last block goes through it. Either
// way a read gives the same bytes, and damage is still caught.
TEST(DiskStoreTest, APageAlignedBlockIsWrittenPastThePageCache) {
  TempDir dir;
  auto s = open_store(dir.path, 64 * kGiB);
  ASSERT_NE(s, nullptr);
  constexpr uint64_t kBig = 1 << 20;
  const uint64_t size = 2 * kBig + 1000;
  auto all = random_bytes(size, 7);
  auto e = s->put(meta_for("aligned", size, kBig));
  ASSERT_TRUE(e.has_value());
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t[], Free> buffer(
      static_cast<uint8_t*>(std::aligned_alloc(prefetch::kDiskPage, kBig)));
  ASSERT_NE(buffer, nullptr);
  for (uint64_t i = 0; i < 3; ++i) {
    auto b = block_of(all, i, kBig);
    std::memcpy(buffer.get(), b.data(), b.size());
    EXPECT_EQ(s->write(e->id, i, buffer.get(), b.size()), BlockWrite::kWritten) << "block " << i;
  }

  // What the page cache holds of block 0: none if it was written directly.
  const std::string path = data_path(dir.path, e->id);
  int fd = open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  void* map = mmap(nullptr, kBig, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED);
  std::vector<unsigned char> resident(kBig / prefetch::kDiskPage);
  ASSERT_EQ(mincore(map, kBig, resident.data()), 0);
  munmap(map, kBig);
  close(fd);
  size_t cached = 0;
  for (unsigned char r : resident) cached += r & 1;
  int probe = open(path.c_str(), O_WRONLY | O_DIRECT);
  const bool direct_allowed = probe >= 0;
  if (probe >= 0) close(probe);
  if (direct_allowed) {
    EXPECT_EQ(cached, 0u) << "pages of block 0 in the page cache";
  }

  std::vector<uint8_t> got, whole;
  for (uint64_t i = 0; i < 3; ++i) {
    ASSERT_EQ(read_block(*s, e->id, i, i < 2 ? kBig : 1000, &got), BlockRead::kOk) << i;
    whole.insert(whole.end(), got.begin(), got.end());
  }
  EXPECT_EQ(whole, all);

  // A flipped byte in the directly written block is caught.
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(kBig + 12345);
  char c = static_cast<char>(all[kBig + 12345] ^ 0x20);
  f.write(&c, 1);
  f.close();
  EXPECT_EQ(read_block(*s, e->id, 1, kBig, &got), BlockRead::kDamaged);
  EXPECT_EQ(read_block(*s, e->id, 1, kBig, &got), BlockRead::kMissing);
}

TEST(DiskStoreTest, HeldAndHeldBlocksListWhatWasWritten) {
  TempDir dir;
  auto s = open_store(dir.path);
  ASSERT_NE(s, nullptr);
  auto all = random_bytes(5 * kBlock, 2);
  auto e = s->put(meta_for("k", all.size()));
  ASSERT_TRUE(e.has_value());
  for (uint64_t i : {3, 0, 2}) EXPECT_EQ(write_block(*s, e->id, i, all), BlockWrite::kWritten);
  EXPECT_TRUE(s->held(e->id, 0));
  EXPECT_FALSE(s->held(e->id, 1));
  EXPECT_TRUE(s->held(e->id, 2));
  EXPECT_TRUE(s->held(e->id, 3));
  EXPECT_FALSE(s->held(e->id, 4));
  EXPECT_FALSE(s->held(e->id + 1, 0));
  EXPECT_EQ(s->held_blocks(e->id), (std::vector<uint64_t>{0, 2, 3}));
  EXPECT_TRUE(s->held_blocks(e->id + 1).empty());

  EXPECT_EQ(write_block(*s, e->id, 2, all), BlockWrite::kHeld);
  EXPECT_EQ(s->bytes_held(), 3 * kBlock);
  std::vector<uint8_t> got;
  EXPECT_EQ(read_block(*s, e->id, 1, kBlock, &got), BlockRead::kMissing);
}

TEST(DiskStoreTest, WriteThatDoesNotFitTheResourceFails) {
  TempDir dir;
  auto s = open_store(dir.path);
  ASSERT_NE(s, nullptr);
  auto e = s->put(meta_for("k", 2 * kBlock + 10));
  ASSERT_TRUE(e.has_value());
  std::vector<uint8_t> bytes(kBlock, 7);
  std::string error;
  EXPECT_EQ(s->write(e->id, 0, bytes.data(), kBlock - 1, &error), BlockWrite::kFailed);
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(s->write(e->id, 2, bytes.data(), kBlock), BlockWrite::kFailed);  // last is 10
  EXPECT_EQ(s->write(e->id, 3, bytes.data(), 10), BlockWrite::kFailed);
  EXPECT_EQ(s->write(e->id, 2, bytes.data(), 10), BlockWrite::kWritten);
  EXPECT_EQ(s->held_blocks(e->id), (std::vector<uint64_t>{2}));
  EXPECT_EQ(s->bytes_held(), 10u);
}

TEST(DiskStoreTest, FlippedByteIsDamagedThenMissing) {
  TempDir dir;
  auto s = open_store(dir.path);
  ASSERT_NE(s, nullptr);
  auto all = random_bytes(2 * kBlock, 3);
  auto e = s->put(meta_for("k", all.size()));
  ASSERT_TRUE(e.has_value());
  ASSERT_EQ(write_block(*s, e->id, 0, all), BlockWrite::kWritten);
  ASSERT_EQ(write_block(*s, e->id, 1, all), BlockWrite::kWritten);

  int fd = open(data_path(dir.path, e->id).c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  uint8_t byte = all[kBlock + 7] ^ 0x01;
  ASSERT_EQ(pwrite(fd, &byte, 1, kBlock + 7), 1);
  close(fd);

  std::vector<uint8_t> got;
  EXPECT_EQ(read_block(*s, e->id, 1, kBlock, &got), BlockRead::kDamaged);
  EXPECT_EQ(read_block(*s, e->id, 1, kBlock, &got), BlockRead::kMissing);
  EXPECT_FALSE(s->held(e->id, 1));
  EXPECT_EQ(s->bytes_held(), kBlock);
  EXPECT_EQ(s->find("k")->blocks_held, 1u);
  ASSERT_EQ(read_block(*s, e->id, 0, kBlock, &got), BlockRead::kOk);
  EXPECT_EQ(got, block_of(all, 0));

  // Fetched again, it is whole again.
  EXPECT_EQ(write_block(*s, e->id, 1, all), BlockWrite::kWritten);
  ASSERT_EQ(read_block(*s, e->id, 1, kBlock, &got), BlockRead::kOk);
  EXPECT_EQ(got, block_of(all, 1));
  EXPECT_EQ(s->bytes_held(), 2 * kBlock);
}

TEST(DiskStoreTest, TruncatedDataFileIsDamaged) {
  TempDir dir;
  auto s = open_store(dir.path);
  ASSERT_NE(s, nullptr);
  auto all = random_bytes(2 * kBlock, 4);
  auto e = s->put(meta_for("k", all.size()));
  ASSERT_TRUE(e.has_value());
  ASSERT_EQ(write_block(*s, e->id, 0, all), BlockWrite::kWritten);
  ASSERT_EQ(write_block(*s, e->id, 1, all), BlockWrite::kWritten);
  ASSERT_EQ(truncate(data_path(dir.path, e->id).c_str(), kBlock + 10), 0);

  std::vector<uint8_t> got;
  EXPECT_EQ(read_block(*s, e->id, 1, kBlock, &got), BlockRead::kDamaged);
  EXPECT_FALSE(s->held(e->id, 1));
  EXPECT_EQ(s->bytes_held(), kBlock);
  ASSERT_EQ(read_block(*s, e->id, 0, kBlock, &got), BlockRead::kOk);
  EXPECT_EQ(got, block_of(all, 0));
}

TEST(DiskStoreTest, PutWithOtherValidatorsDropsTheOldBlocks) {
  TempDir dir;
  auto s = open_store(dir.path);
  ASSERT_NE(s, nullptr);
  auto all = random_bytes(2 * kBlock, 5);
  EntryMeta m = meta_for("k", all.size());
  auto first = s->put(m);
  ASSERT_TRUE(first.has_value());
  int64_t old_id = first->id;
  for (int change = 0; change < 4; ++change) {
    ASSERT_EQ(write_block(*s, old_id, 0, all), BlockWrite::kWritten);
    EntryMeta n = m;
    if (change == 0) n.etag = "\"v2\"";
    if (change == 1) n.last_modified = "Tue, 02 Jan 2024 00:00:00 GMT";
    if (change == 2) n.size = all.size() + 1;
    if (change == 3) n.block_size = 2 * kBlock;
    auto next = s->put(n);
    ASSERT_TRUE(next.has_value()) << "change " << change;
    EXPECT_GT(next->id, old_id) << "change " << change;
    EXPECT_TRUE(s->held_blocks(next->id).empty());
    EXPECT_TRUE(s->held_blocks(old_id).empty());
    EXPECT_EQ(s->find("k")->id, next->id);
    EXPECT_EQ(s->find("k")->blocks_held, 0u);
    EXPECT_EQ(s->bytes_held(), 0u);
    EXPECT_FALSE(exists(data_path(dir.path, old_id)));
    EXPECT_TRUE(exists(data_path(dir.path, next->id)));
    EXPECT_EQ(write_block(*s, old_id, 0, all), BlockWrite::kGone);
    m = n;
    old_id = next->id;
    all = random_bytes(m.size, 6 + change);
  }
}

TEST(DiskStoreTest, PutWithTheSameValidatorsKeepsBlocksAndRefreshes) {
  TempDir dir;
  auto s = open_store(dir.path);
  ASSERT_NE(s, nullptr);
  auto all = random_bytes(2 * kBlock, 7);
  EntryMeta m = meta_for("k", all.size());
  auto first = s->put(m);
  ASSERT_TRUE(first.has_value());
  ASSERT_EQ(write_block(*s, first->id, 1, all), BlockWrite::kWritten);

  m.fresh_until += 3600;
  m.final_url = "https://cdn.example.com/k";
  m.headers = "Content-Type: video/webm\n";
  auto again = s->put(m);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->id, first->id);
  EXPECT_EQ(again->blocks_held, 1u);
  EXPECT_EQ(again->bytes_held, kBlock);
  EXPECT_EQ(again->meta.fresh_until, m.fresh_until);
  auto found = s->find("k");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->meta.fresh_until, m.fresh_until);
  EXPECT_EQ(found->meta.final_url, m.final_url);
  EXPECT_EQ(found->meta.headers, m.headers);
  EXPECT_EQ(s->held_blocks(first->id), (std::vector<uint64_t>{1}));
  std::vector<uint8_t> got;
  ASSERT_EQ(read_block(*s, first->id, 1, kBlock, &got), BlockRead::kOk);
  EXPECT_EQ(got, block_of(all, 1));

  s->refresh(first->id, 42);
  EXPECT_EQ(s->find("k")->meta.fresh_until, 42);
}

TEST(DiskStoreTest, DropRemovesTheBlocksAndTheFile) {
  TempDir dir;
  auto s = open_store(dir.path);
  ASSERT_NE(s, nullptr);
  auto all = random_bytes(2 * kBlock, 8);
  auto e = s->put(meta_for("k", all.size()));
  ASSERT_TRUE(e.has_value());
  ASSERT_EQ(write_block(*s, e->id, 0, all), BlockWrite::kWritten);
  s->drop(e->id);
  EXPECT_FALSE(s->find("k").has_value());
  EXPECT_FALSE(exists(data_path(dir.path, e->id)));
  EXPECT_EQ(s->bytes_held(), 0u);
  EXPECT_TRUE(s->held_blocks(e->id).empty());
  std::vector<uint8_t> got;
  EXPECT_EQ(read_block(*s, e->id, 0, kBlock, &got), BlockRead::kMissing);
  EXPECT_EQ(write_block(*s, e->id, 1, all), BlockWrite::kGone);
  EXPECT_EQ(s->pin(e->id), nullptr);
}

TEST(DiskStoreTest, EvictsTheLeastRecentlyUsedEntryForRoom) {
  TempDir dir;
  auto s = open_store(dir.path, 3 * kBlock);
  ASSERT_NE(s, nullptr);
  auto a_bytes = random_bytes(2 * kBlock, 9), b_bytes = random_bytes(2 * kBlock, 10);
  auto a = s->put(meta_for("a", a_bytes.size()));
  auto b = s->put(meta_for("b", b_bytes.size()));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(write_block(*s, a->id, 0, a_bytes), BlockWrite::kWritten);
  EXPECT_EQ(write_block(*s, a->id, 1, a_bytes), BlockWrite::kWritten);
  EXPECT_EQ(s->bytes_held(), 2 * kBlock);
  EXPECT_EQ(write_block(*s, b->id, 0, b_bytes), BlockWrite::kWritten);
  EXPECT_EQ(s->bytes_held(), 3 * kBlock);
  EXPECT_EQ(write_block(*s, b->id, 1, b_bytes), BlockWrite::kWritten);
  EXPECT_EQ(s->bytes_held(), 2 * kBlock);
  EXPECT_LE(s->bytes_held(), s->max_bytes());

  EXPECT_FALSE(s->find("a").has_value());
  EXPECT_FALSE(exists(data_path(dir.path, a->id)));
  EXPECT_EQ(s->held_blocks(b->id), (std::vector<uint64_t>{0, 1}));
  std::vector<uint8_t> got;
  ASSERT_EQ(read_block(*s, b->id, 1, kBlock, &got), BlockRead::kOk);
  EXPECT_EQ(got, block_of(b_bytes, 1));
}

TEST(DiskStoreTest, EvictsAsManyEntriesAsItTakes) {
  TempDir dir;
  auto s = open_store(dir.path, 3 * kBlock);
  ASSERT_NE(s, nullptr);
  auto bytes = random_bytes(3 * kBlock, 22);
  std::vector<int64_t> small;
  for (const char* key : {"a", "b", "c"}) {
    auto e = s->put(meta_for(key, kBlock));
    ASSERT_TRUE(e.has_value());
    ASSERT_EQ(write_block(*s, e->id, 0, bytes), BlockWrite::kWritten);
    small.push_back(e->id);
  }
  auto big = s->put(meta_for("big", 3 * kBlock, 3 * kBlock));
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(write_block(*s, big->id, 0, bytes, 3 * kBlock), BlockWrite::kWritten);
  EXPECT_EQ(s->bytes_held(), 3 * kBlock);
  for (int64_t id : small) {
    EXPECT_TRUE(s->held_blocks(id).empty());
    EXPECT_FALSE(exists(data_path(dir.path, id)));
  }
  EXPECT_FALSE(s->find("a") || s->find("b") || s->find("c"));
  std::vector<uint8_t> got;
  ASSERT_EQ(read_block(*s, big->id, 0, 3 * kBlock, &got), BlockRead::kOk);
  EXPECT_EQ(got, bytes);
  // Larger than the whole budget: no room however much goes.
  auto huge = s->put(meta_for("huge", 4 * kBlock, 4 * kBlock));
  ASSERT_TRUE(huge.has_value());
  auto four = random_bytes(4 * kBlock, 23);
  EXPECT_EQ(write_block(*s, huge->id, 0, four, 4 * kBlock), BlockWrite::kNoRoom);
  EXPECT_TRUE(s->find("big").has_value());
  EXPECT_EQ(s->bytes_held(), 3 * kBlock);
}

TEST(DiskStoreTest, TouchMakesAnEntryTheMostRecentlyUsed) {
  TempDir dir;
  auto s = open_store(dir.path, 3 * kBlock);
  ASSERT_NE(s, nullptr);
  auto bytes = random_bytes(2 * kBlock, 11);
  auto a = s->put(meta_for("a", kBlock));
  auto b = s->put(meta_for("b", kBlock));
  auto c = s->put(meta_for("c", 2 * kBlock));
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(write_block(*s, a->id, 0, bytes), BlockWrite::kWritten);
  EXPECT_EQ(write_block(*s, b->id, 0, bytes), BlockWrite::kWritten);
  s->touch(a->id);
  EXPECT_EQ(write_block(*s, c->id, 0, bytes), BlockWrite::kWritten);
  EXPECT_EQ(write_block(*s, c->id, 1, bytes), BlockWrite::kWritten);
  EXPECT_TRUE(s->find("a").has_value());
  EXPECT_FALSE(s->find("b").has_value());
  EXPECT_EQ(s->bytes_held(), 3 * kBlock);
}

TEST(DiskStoreTest, PinnedEntryIsNotEvictedAndTheWriteGetsNoRoom) {
  TempDir dir;
  auto s = open_store(dir.path, 3 * kBlock);
  ASSERT_NE(s, nullptr);
  auto a_bytes = random_bytes(2 * kBlock, 12), b_bytes = random_bytes(2 * kBlock, 13);
  auto a = s->put(meta_for("a", a_bytes.size()));
  auto b = s->put(meta_for("b", b_bytes.size()));
  ASSERT_TRUE(a && b);
  ASSERT_EQ(write_block(*s, a->id, 0, a_bytes), BlockWrite::kWritten);
  ASSERT_EQ(write_block(*s, a->id, 1, a_bytes), BlockWrite::kWritten);
  auto pin = s->pin(a->id);
  ASSERT_NE(pin, nullptr);
  EXPECT_EQ(write_block(*s, b->id, 0, b_bytes), BlockWrite::kWritten);
  EXPECT_EQ(write_block(*s, b->id, 1, b_bytes), BlockWrite::kNoRoom);
  EXPECT_FALSE(s->held(b->id, 1));
  EXPECT_EQ(s->bytes_held(), 3 * kBlock);
  EXPECT_EQ(s->held_blocks(a->id), (std::vector<uint64_t>{0, 1}));
  std::vector<uint8_t> got;
  ASSERT_EQ(read_block(*s, a->id, 1, kBlock, &got), BlockRead::kOk);
  EXPECT_EQ(got, block_of(a_bytes, 1));

  pin.reset();
  EXPECT_EQ(write_block(*s, b->id, 1, b_bytes), BlockWrite::kWritten);
  EXPECT_FALSE(s->find("a").has_value());
  EXPECT_EQ(s->bytes_held(), 2 * kBlock);
}

TEST(DiskStoreTest, PinInOneStoreBlocksEvictionByAnother) {
  TempDir dir;
  auto s1 = open_store(dir.path, 3 * kBlock);
  auto s2 = open_store(dir.path, 3 * kBlock);
  ASSERT_TRUE(s1 && s2);
  auto bytes = random_bytes(2 * kBlock, 14);
  auto a = s1->put(meta_for("a", bytes.size()));
  ASSERT_TRUE(a.has_value());
  ASSERT_EQ(write_block(*s1, a->id, 0, bytes), BlockWrite::kWritten);
  ASSERT_EQ(write_block(*s1, a->id, 1, bytes), BlockWrite::kWritten);
  auto pin = s1->pin(a->id);
  ASSERT_NE(pin, nullptr);

  auto b = s2->put(meta_for("b", bytes.size()));
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(write_block(*s2, b->id, 0, bytes), BlockWrite::kWritten);
  EXPECT_EQ(write_block(*s2, b->id, 1, bytes), BlockWrite::kNoRoom);
  EXPECT_TRUE(s2->find("a").has_value());
  EXPECT_EQ(s1->bytes_held(), 3 * kBlock);

  pin.reset();
  EXPECT_EQ(write_block(*s2, b->id, 1, bytes), BlockWrite::kWritten);
  EXPECT_FALSE(s1->find("a").has_value());
  EXPECT_EQ(s1->bytes_held(), 2 * kBlock);
}

TEST(DiskStoreTest, PinInAnotherProcessBlocksEvictionUntilItExits) {
  TempDir dir;
  int to_child[2], to_parent[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(to_parent), 0);
  // Forked before this process opens the store: SQLite connections must not
  // cross a fork.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(to_child[1]);
    close(to_parent[0]);
    char c = 0;
    if (read(to_child[0], &c, 1) != 1) _exit(1);
    std::string error;
    auto s = DiskStore::open(dir.path, 3 * kBlock, &error);
    auto e = s ? s->find("a") : std::nullopt;
    auto pin = e ? s->pin(e->id) : nullptr;
    c = pin ? 'y' : 'n';
    if (write(to_parent[1], &c, 1) != 1) _exit(1);
    while (read(to_child[0], &c, 1) > 0) {
    }
    _exit(0);  // with the pin still held: it goes with the process
  }
  close(to_child[0]);
  close(to_parent[1]);
  // Whatever fails below, the child sees its pipe close and goes.
  struct Reap {
    int fd, from_child;
    pid_t pid;
    ~Reap() {
      if (fd >= 0) close(fd);
      close(from_child);
      if (pid > 0) waitpid(pid, nullptr, 0);
    }
  } reap{to_child[1], to_parent[0], pid};
  auto s = open_store(dir.path, 3 * kBlock);
  ASSERT_NE(s, nullptr);
  auto bytes = random_bytes(2 * kBlock, 21);
  auto a = s->put(meta_for("a", bytes.size()));
  auto b = s->put(meta_for("b", bytes.size()));
  ASSERT_TRUE(a && b);
  ASSERT_EQ(write_block(*s, a->id, 0, bytes), BlockWrite::kWritten);
  ASSERT_EQ(write_block(*s, a->id, 1, bytes), BlockWrite::kWritten);
  char c = 'g';
  ASSERT_EQ(write(to_child[1], &c, 1), 1);
  ASSERT_EQ(read(to_parent[0], &c, 1), 1);
  EXPECT_EQ(c, 'y');
  EXPECT_EQ(write_block(*s, b->id, 0, bytes), BlockWrite::kWritten);
  EXPECT_EQ(write_block(*s, b->id, 1, bytes), BlockWrite::kNoRoom);
  EXPECT_TRUE(s->find("a").has_value());

  close(to_child[1]);
  reap.fd = -1;
  int status = -1;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  reap.pid = -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(write_block(*s, b->id, 1, bytes), BlockWrite::kWritten);
  EXPECT_FALSE(s->find("a").has_value());
  EXPECT_EQ(s->bytes_held(), 2 * kBlock);
}

TEST(DiskStoreTest, TwoStoresOnOneDirectorySeeEachOthersWrites) {
  TempDir dir;
  auto s1 = open_store(dir.path);
  auto s2 = open_store(dir.path);
  ASSERT_TRUE(s1 && s2);
  auto bytes = random_bytes(2 * kBlock, 15);
  auto e = s1->put(meta_for("k", bytes.size()));
  ASSERT_TRUE(e.has_value());
  auto seen = s2->find("k");
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->id, e->id);

  ASSERT_EQ(write_block(*s1, e->id, 0, bytes), BlockWrite::kWritten);
  EXPECT_TRUE(s2->held(e->id, 0));
  EXPECT_EQ(s2->bytes_held(), kBlock);
  std::vector<uint8_t> got;
  ASSERT_EQ(read_block(*s2, e->id, 0, kBlock, &got), BlockRead::kOk);
  EXPECT_EQ(got, block_of(bytes, 0));
  EXPECT_EQ(write_block(*s2, e->id, 0, bytes), BlockWrite::kHeld);
  ASSERT_EQ(write_block(*s2, e->id, 1, bytes), BlockWrite::kWritten);
  ASSERT_EQ(read_block(*s1, e->id, 1, kBlock, &got), BlockRead::kOk);
  EXPECT_EQ(got, block_of(bytes, 1));

  // Dropped by one, gone for the other, though it has the file open.
  s2->drop(e->id);
  EXPECT_FALSE(s1->find("k").has_value());
  EXPECT_EQ(read_block(*s1, e->id, 0, kBlock, &got), BlockRead::kMissing);
  EXPECT_EQ(write_block(*s1, e->id, 0, bytes), BlockWrite::kGone);
  EXPECT_EQ(s1->bytes_held(), 0u);
}

// Every block of a shared entry from both threads, plus one entry each,
// each block read back as soon as it is written.
void write_from_two_threads(DiskStore& s1, DiskStore& s2) {
  constexpr uint64_t kCount = 40;
  auto bytes = random_bytes(kCount * kBlock, 16);
  auto shared = s1.put(meta_for("shared", bytes.size()));
  auto own1 = s1.put(meta_for("own1", bytes.size()));
  auto own2 = s2.put(meta_for("own2", bytes.size()));
  ASSERT_TRUE(shared && own1 && own2);
  std::atomic<int> written{0}, held{0}, other{0};
  auto run = [&](DiskStore* s, int64_t own) {
    for (uint64_t i = 0; i < kCount; ++i) {
      BlockWrite w = write_block(*s, shared->id, i, bytes);
      (w == BlockWrite::kWritten ? written : w == BlockWrite::kHeld ? held : other)++;
      if (write_block(*s, own, i, bytes) != BlockWrite::kWritten) other++;
      // Reads run outside the store's lock, beside the other thread's writes.
      std::vector<uint8_t> back(kBlock);
      if (s->read(shared->id, i, back.data(), kBlock) != BlockRead::kOk ||
          back != block_of(bytes, i))
        other++;
    }
  };
  std::thread t1(run, &s1, own1->id), t2(run, &s2, own2->id);
  t1.join();
  t2.join();
  EXPECT_EQ(written.load(), static_cast<int>(kCount));
  EXPECT_EQ(held.load(), static_cast<int>(kCount));
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(s1.bytes_held(), 3 * kCount * kBlock);
  std::vector<uint8_t> got;
  for (int64_t id : {shared->id, own1->id, own2->id}) {
    EXPECT_EQ(s2.held_blocks(id).size(), kCount);
    for (uint64_t i = 0; i < kCount; ++i) {
      ASSERT_EQ(read_block(s2, id, i, kBlock, &got), BlockRead::kOk);
      EXPECT_EQ(got, block_of(bytes, i));
    }
  }
}

TEST(DiskStoreTest, WritesFromTwoThreadsAtOnce) {
  TempDir dir;
  auto s = open_store(dir.path, kGiB);
  ASSERT_NE(s, nullptr);
  write_from_two_threads(*s, *s);
}

TEST(DiskStoreTest, WritesFromTwoThreadsThroughTwoStoresAtOnce) {
  TempDir dir;
  auto s1 = open_store(dir.path, kGiB);
  auto s2 = open_store(dir.path, kGiB);
  ASSERT_TRUE(s1 && s2);
  write_from_two_threads(*s1, *s2);
}

TEST(DiskStoreTest, ReadOnlyDirectoryFailsToOpen) {
  if (geteuid() == 0) GTEST_SKIP() << "root writes whatever the modes say";
  TempDir dir;
  ASSERT_EQ(chmod(dir.path.c_str(), 0500), 0);
  std::string error;
  EXPECT_EQ(DiskStore::open(dir.path, 0, &error), nullptr);
  EXPECT_NE(error.find(strerror(EACCES)), std::string::npos) << error;
  error.clear();
  EXPECT_EQ(DiskStore::open(dir.path + "/sub", 0, &error), nullptr);
  EXPECT_NE(error.find(strerror(EACCES)), std::string::npos) << error;
  ASSERT_EQ(chmod(dir.path.c_str(), 0700), 0);

  // A store made before the directory became read-only.
  ASSERT_NE(open_store(dir.path), nullptr);
  ASSERT_EQ(chmod(dir.path.c_str(), 0500), 0);
  error.clear();
  EXPECT_EQ(DiskStore::open(dir.path, 0, &error), nullptr);
  EXPECT_NE(error.find(strerror(EACCES)), std::string::npos) << error;
  chmod(dir.path.c_str(), 0700);
}

TEST(DiskStoreTest, ReadOnlyFileSystemFailsToOpen) {
  SmallFs fs("1m");
  if (!fs.ok) GTEST_SKIP() << "mounting a tmpfs takes root";
  { ASSERT_NE(open_store(fs.dir.path), nullptr); }
  ASSERT_EQ(mount("tmpfs", fs.dir.path.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, nullptr), 0);
  std::string error;
  EXPECT_EQ(DiskStore::open(fs.dir.path, 0, &error), nullptr);
  EXPECT_NE(error.find(strerror(EROFS)), std::string::npos) << error;
}

TEST(DiskStoreTest, PathUnderARegularFileFailsToOpen) {
  TempDir dir;
  std::string file = dir.path + "/file";
  std::ofstream(file) << "x";
  std::string error;
  EXPECT_EQ(DiskStore::open(file + "/store", 0, &error), nullptr);
  EXPECT_NE(error.find(strerror(ENOTDIR)), std::string::npos) << error;
  error.clear();
  EXPECT_EQ(DiskStore::open(file, 0, &error), nullptr);
  EXPECT_FALSE(error.empty());
}

TEST(DiskStoreTest, GarbageIndexFailsToOpen) {
  TempDir dir;
  auto garbage = random_bytes(8192, 17);
  std::ofstream(dir.path + "/index.sqlite", std::ios::binary)
      .write(reinterpret_cast<const char*>(garbage.data()), garbage.size());
  std::string error;
  EXPECT_EQ(DiskStore::open(dir.path, 0, &error), nullptr);
  EXPECT_NE(error.find("index.sqlite"), std::string::npos) << error;
}

TEST(DiskStoreTest, DirectoryIsOwnerOnlyWhateverTheUmask) {
  TempDir dir;
  mode_t old = umask(0);
  std::string path = dir.path + "/a/store";
  auto s = open_store(path);
  umask(old);
  ASSERT_NE(s, nullptr);
  auto e = s->put(meta_for("k", kBlock));
  ASSERT_TRUE(e.has_value());
  auto bytes = random_bytes(kBlock, 18);
  ASSERT_EQ(write_block(*s, e->id, 0, bytes), BlockWrite::kWritten);
  EXPECT_EQ(mode_of(dir.path + "/a"), 0700u);
  EXPECT_EQ(mode_of(path), 0700u);
  EXPECT_EQ(mode_of(path + "/data"), 0700u);
  EXPECT_EQ(mode_of(path + "/index.sqlite"), 0600u);
  EXPECT_EQ(mode_of(data_path(path, e->id)), 0600u);
  if (exists(path + "/index.sqlite-wal")) {
    EXPECT_EQ(mode_of(path + "/index.sqlite-wal"), 0600u);
  }
}

TEST(DiskStoreTest, OrphanDataFilesAreSweptAtOpen) {
  TempDir dir;
  auto bytes = random_bytes(kBlock, 19);
  int64_t id = 0;
  {
    auto s = open_store(dir.path);
    ASSERT_NE(s, nullptr);
    auto e = s->put(meta_for("k", kBlock));
    ASSERT_TRUE(e.has_value());
    id = e->id;
    ASSERT_EQ(write_block(*s, id, 0, bytes), BlockWrite::kWritten);
  }
  std::ofstream(data_path(dir.path, id + 100)) << "left by a crash";
  auto s = open_store(dir.path);
  ASSERT_NE(s, nullptr);
  EXPECT_FALSE(exists(data_path(dir.path, id + 100)));
  EXPECT_TRUE(exists(data_path(dir.path, id)));
  std::vector<uint8_t> got;
  ASSERT_EQ(read_block(*s, id, 0, kBlock, &got), BlockRead::kOk);
  EXPECT_EQ(got, bytes);
}

TEST(DiskStoreTest, DefaultMaxBytesIsPositiveAndAtMostTwoGiB) {
  TempDir dir;
  auto s = open_store(dir.path, 0);
  ASSERT_NE(s, nullptr);
  EXPECT_GT(s->max_bytes(), 0u);
  EXPECT_LE(s->max_bytes(), 2 * kGiB);
  struct statvfs vfs;
  ASSERT_EQ(statvfs(dir.path.c_str(), &vfs), 0);
  if (vfs.f_bavail * vfs.f_frsize > 2 * kGiB + vfs.f_blocks * vfs.f_frsize / 10 + kGiB) {
    EXPECT_EQ(s->max_bytes(), 2 * kGiB);
  }
  EXPECT_EQ(open_store(dir.path, 12345)->max_bytes(), 12345u);
}

TEST(DiskStoreTest, DefaultMaxBytesLeavesATenthOfASmallFileSystem) {
  SmallFs fs("10m");
  if (!fs.ok) GTEST_SKIP() << "mounting a tmpfs takes root";
  auto s = open_store(fs.dir.path, 0);
  ASSERT_NE(s, nullptr);
  // 10 MiB less a tenth, less what the index takes.
  EXPECT_LE(s->max_bytes(), 9u << 20);
  EXPECT_GT(s->max_bytes(), 8u << 20);
}

TEST(DiskStoreTest, FullDiskFailsTheWriteWithAMessage) {
  SmallFs fs("1m");
  if (!fs.ok) GTEST_SKIP() << "mounting a tmpfs takes root";
  auto s = open_store(fs.dir.path, kGiB);
  ASSERT_NE(s, nullptr);
  constexpr uint64_t kBig = 64 * 1024;
  auto bytes = random_bytes(64 * kBig, 20);
  auto e = s->put(meta_for("k", bytes.size(), kBig));
  ASSERT_TRUE(e.has_value());
  std::string error;
  uint64_t i = 0, written = 0;
  BlockWrite w = BlockWrite::kWritten;
  for (; i < 64 && w == BlockWrite::kWritten; ++i) {
    std::vector<uint8_t> b = block_of(bytes, i, kBig);
    w = s->write(e->id, i, b.data(), b.size(), &error);
    if (w == BlockWrite::kWritten) ++written;
  }
  EXPECT_EQ(w, BlockWrite::kFailed);
  EXPECT_FALSE(error.empty());
  std::cout << "full disk: " << error << "\n";
  EXPECT_GT(written, 0u);
  EXPECT_LT(written, 16u);
  EXPECT_EQ(s->bytes_held(), written * kBig);
  std::vector<uint8_t> got;
  ASSERT_EQ(read_block(*s, e->id, 0, kBig, &got), BlockRead::kOk);
  EXPECT_EQ(got, block_of(bytes, 0, kBig));
}
