// The disk-cache property against a real nginx: a replay reads no body byte
// from the origin, a changed file gives its new bytes, a disk that cannot
// serve costs one warning and no byte, an origin gone leaves a complete
// entry playable, and a play killed at any moment leaves nothing wrong.
#include <gst/gst.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "element_test_util.h"

namespace prefetch {
namespace element_test {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMiB = 1u << 20;

class DiskCacheTest : public RunningNginxTest {
 protected:
  void SetUp() override {
    RunningNginxTest::SetUp();
    if (done_or_skipped()) return;
    cache_ = cache_parent_.file("cache");
  }

  // Plays `path` from nginx through prefetchsrc with the disk cache in
  // `dir` (the test's by default) to the end or an error.
  std::unique_ptr<TransferResult> play(const std::string& path, const std::string& dir = "",
                                       guint64 max_size = 0) {
    GstElement* src = make_prefetchsrc();
    EXPECT_NE(src, nullptr);
    g_object_set(src, "location", http(path).c_str(), "block-size", static_cast<guint64>(kMiB),
                 "disk-cache", (dir.empty() ? cache_ : dir).c_str(), "disk-cache-max-size",
                 max_size, nullptr);
    return run_transfer(src, 100s);
  }

  // nginx's access-log lines for `path` from line `from` on.
  std::vector<std::string> requests_for(const std::string& path, size_t from = 0) const {
    std::vector<std::string> out;
    const std::vector<std::string> lines = read_lines(state_.path() + "/access.log");
    for (size_t i = from; i < lines.size(); ++i)
      if (lines[i].find("GET " + path + " ") != std::string::npos) out.push_back(lines[i]);
    return out;
  }
  size_t log_length() const { return read_lines(state_.path() + "/access.log").size(); }

  // Body bytes nginx sent in `lines` (the field after the status).
  static uint64_t body_bytes(const std::vector<std::string>& lines) {
    uint64_t n = 0;
    for (const std::string& l : lines) {
      const size_t q = l.find("\" ");
      if (q == std::string::npos) continue;
      unsigned status = 0;
      unsigned long long bytes = 0;
      if (sscanf(l.c_str() + q + 2, "%u %llu", &status, &bytes) == 2) n += bytes;
    }
    return n;
  }

  // Writes `name` in nginx's root with its modification time `age_s`
  // seconds in the past (0: now).
  void put_file(const std::string& name, const std::vector<uint8_t>& data, int age_s = 0) {
    ASSERT_TRUE(write_file(root_.file(name), data));
    struct timeval tv[2];
    gettimeofday(&tv[0], nullptr);
    tv[0].tv_sec -= age_s;
    tv[1] = tv[0];
    ASSERT_EQ(utimes(root_.file(name).c_str(), tv), 0);
  }

  static std::vector<uint8_t> other(const std::vector<uint8_t>& data) {
    std::vector<uint8_t> v = data;
    for (uint8_t& b : v) b = static_cast<uint8_t>(b ^ 0x5a);
    return v;
  }

  TempDir cache_parent_;
  std::string cache_;
};

TEST_F(DiskCacheTest, AReplayReadsNoBodyByteFromTheOrigin) {
  const std::vector<uint8_t>& data = pattern(8 * kMiB + 12345);
  put_file("clip.bin", data);
  auto cold = play("/clip.bin");
  expect_exact_transfer(*cold, data);
  // Written behind the reader: some may still be queued at EOS (the rest
  // go when the element stops).
  EXPECT_LE(stats_uint64_field(cold->stats, "disk-blocks-written"), 9u);

  const size_t mark = log_length();
  auto warm = play("/clip.bin");
  expect_exact_transfer(*warm, data);
  EXPECT_TRUE(warm->warnings.empty());
  // Stale (no lifetime, a heuristic one of a tenth of a second): one
  // conditional request, answered 304, no body byte.
  const std::vector<std::string> asked = requests_for("/clip.bin", mark);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_NE(asked[0].find("\" 304 "), std::string::npos) << asked[0];
  EXPECT_EQ(body_bytes(asked), 0u);
  EXPECT_EQ(stats_uint64_field(warm->stats, "disk-bytes-read"), data.size());
  EXPECT_EQ(stats_uint64_field(warm->stats, "disk-not-modified"), 1u);
}

TEST_F(DiskCacheTest, AFreshEntryPlaysWithNoRequest) {
  const std::vector<uint8_t>& data = pattern(3 * kMiB + 7);
  put_file("clip.bin", data);
  expect_exact_transfer(*play("/fresh/clip.bin"), data);
  const size_t mark = log_length();
  auto warm = play("/fresh/clip.bin");
  expect_exact_transfer(*warm, data);
  EXPECT_EQ(requests_for("/fresh/clip.bin", mark).size(), 0u);
}

TEST_F(DiskCacheTest, AChangedFileGivesItsNewBytes) {
  const std::vector<uint8_t>& data = pattern(3 * kMiB + 7);
  put_file("clip.bin", data, 10);
  expect_exact_transfer(*play("/no-cache/clip.bin"), data);
  const std::vector<uint8_t> changed = other(data);  // same size, new ETag and date
  put_file("clip.bin", changed);
  auto warm = play("/no-cache/clip.bin");
  expect_exact_transfer(*warm, changed);
  EXPECT_EQ(stats_uint64_field(warm->stats, "disk-changed"), 1u);
  EXPECT_EQ(stats_uint64_field(warm->stats, "disk-blocks-read"), 0u);
}

TEST_F(DiskCacheTest, ADirectoryThatCannotBeMadeCostsOneWarning) {
  const std::vector<uint8_t>& data = pattern(2 * kMiB + 7);
  put_file("clip.bin", data);
  // Under a regular file: no directory can be made there, root or not.
  auto r = play("/clip.bin", root_.file("clip.bin") + "/cache");
  expect_exact_transfer(*r, data);
  EXPECT_EQ(r->warnings.size(), 1u);
  EXPECT_EQ(stats_uint64_field(r->stats, "disk-blocks-written"), 0u);
}

// A file system of its own (tmpfs): only root may mount one.
class MountedDiskCacheTest : public DiskCacheTest {
 protected:
  void SetUp() override {
    DiskCacheTest::SetUp();
    if (done_or_skipped()) return;
    if (geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root (CI runs as root)";
  }
  void TearDown() override {
    if (mounted_) umount2(cache_.c_str(), MNT_DETACH);
    DiskCacheTest::TearDown();
  }
  void mount_tmpfs(const std::string& options) {
    ASSERT_EQ(mkdir(cache_.c_str(), 0700), 0);
    ASSERT_EQ(mount("tmpfs", cache_.c_str(), "tmpfs", 0, options.c_str()), 0) << strerror(errno);
    mounted_ = true;
  }
  bool mounted_ = false;
};

TEST_F(MountedDiskCacheTest, AFullDiskCostsOneWarningAndNoByte) {
  mount_tmpfs("size=8m,mode=0700");
  const std::vector<uint8_t>& data = pattern(32 * kMiB + 5);
  put_file("clip.bin", data);
  // A capped origin, as the cache is for: a play from loopback at full
  // speed writes only a share of its blocks and may never fill the disk.
  auto r = play("/capped/clip.bin");
  expect_exact_transfer(*r, data);
  EXPECT_EQ(r->warnings.size(), 1u);
}

TEST_F(MountedDiskCacheTest, AReadOnlyDiskCostsOneWarningAndNoByte) {
  mount_tmpfs("size=8m,mode=0700,ro");
  const std::vector<uint8_t>& data = pattern(4 * kMiB + 5);
  put_file("clip.bin", data);
  auto r = play("/clip.bin");
  expect_exact_transfer(*r, data);
  EXPECT_EQ(r->warnings.size(), 1u);
}

TEST_F(DiskCacheTest, WithTheOriginGoneACompleteEntryPlaysWithAWarning) {
  const std::vector<uint8_t>& data = pattern(4 * kMiB + 5);
  put_file("clip.bin", data);
  expect_exact_transfer(*play("/clip.bin"), data);
  ASSERT_EQ(run_command({PREFETCH_NGINX_SH, "stop", state_.path()}), 0);
  started_ = false;
  auto warm = play("/clip.bin");
  expect_exact_transfer(*warm, data);
  EXPECT_EQ(warm->warnings.size(), 1u);
  EXPECT_EQ(stats_uint64_field(warm->stats, "disk-offline"), 1u);
}

TEST_F(DiskCacheTest, WithTheOriginGoneAPartialEntryFailsAfterItsBlocks) {
  const std::vector<uint8_t>& data = pattern(6 * kMiB + 5);
  put_file("clip.bin", data);
  expect_exact_transfer(*play("/clip.bin"), data);
  // Blocks 3 to 6 lost: the data file cut after block 2.
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(cache_ + "/data")) files.push_back(e.path());
  ASSERT_EQ(files.size(), 1u);
  ASSERT_EQ(truncate(files[0].c_str(), 3 * kMiB), 0);
  ASSERT_EQ(run_command({PREFETCH_NGINX_SH, "stop", state_.path()}), 0);
  started_ = false;
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  g_object_set(src, "location", http("/clip.bin").c_str(), "block-size", static_cast<guint64>(kMiB),
               "disk-cache", cache_.c_str(), "retries", 1, nullptr);
  auto r = run_transfer(src, 100s);
  ASSERT_TRUE(r->error) << "expected an error after the blocks held";
  EXPECT_EQ(r->error->domain, GST_RESOURCE_ERROR);
  EXPECT_EQ(r->bytes, 3 * kMiB);
  EXPECT_EQ(r->sha256, sha256_hex(std::vector<uint8_t>(data.begin(), data.begin() + 3 * kMiB)));
}

// Two processes play one file at once into one cache, each waiting for
// what the other fetches: both get every byte right. (How much the origin
// sends in all depends on how the two engines' spans meet, and on the
// machine: docs/benchmark.md has the figures.)
TEST_F(DiskCacheTest, TwoProcessesAtOnceBothPlayExactly) {
  set_deadline(300s);
  const std::vector<uint8_t>& data = pattern(64 * kMiB);
  put_file("clip.bin", data);
  const std::string out = cache_parent_.file("other.bin");
  const pid_t pid = fork_player(http("/capped/clip.bin"), cache_, out);
  ASSERT_GT(pid, 0);
  auto here = play("/capped/clip.bin");
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  expect_exact_transfer(*here, data);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the other player failed";
  std::ifstream f(out, std::ios::binary);
  const std::vector<uint8_t> there((std::istreambuf_iterator<char>(f)),
                                   std::istreambuf_iterator<char>());
  EXPECT_EQ(there.size(), data.size());
  EXPECT_EQ(sha256_hex(there), sha256_hex(data)) << "the other player's bytes differ";
  // And what they left is the whole file: a replay reads no body byte.
  const size_t replay = log_length();
  expect_exact_transfer(*play("/capped/clip.bin"), data);
  EXPECT_EQ(body_bytes(requests_for("/capped/clip.bin", replay)), 0u);
}

// The directory never holds more than disk-cache-max-size (and a block a
// writer may have written past it), least recently used out first; the
// file played last replays from disk.
TEST_F(DiskCacheTest, TheDirectoryStaysWithinItsMaximum) {
  set_deadline(300s);
  const guint64 max = 64 * kMiB;
  const auto du = [this] {
    uint64_t bytes = 0;
    for (const auto& e : fs::recursive_directory_iterator(cache_)) {
      struct stat st {};
      if (!e.is_directory() && stat(e.path().c_str(), &st) == 0)
        bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    }
    return bytes;
  };
  // What the plays wrote and left out, for a failure's message.
  std::string written;
  std::vector<std::string> names = {"one.bin", "two.bin", "three.bin"};
  for (size_t i = 0; i < names.size(); ++i) {
    std::vector<uint8_t> data = pattern(32 * kMiB + i);
    put_file(names[i], data);
    // A capped origin, as the cache is for: every block is written, however
    // slow the disk or busy the machine (on a loopback at full speed some
    // may not be).
    auto cold = play("/capped/" + names[i], "", max);
    expect_exact_transfer(*cold, data);
    written += names[i] + ": " +
               std::to_string(stats_uint64_field(cold->stats, "disk-blocks-written")) +
               " written at EOS, " +
               std::to_string(stats_uint64_field(cold->stats, "disk-blocks-not-written")) +
               " not written; ";
    EXPECT_LE(du(), max + kMiB) << "after " << names[i];
  }
  const size_t mark = log_length();
  auto again = play("/capped/three.bin", "", max);
  expect_exact_transfer(*again, pattern(32 * kMiB + 2));
  EXPECT_EQ(body_bytes(requests_for("/capped/three.bin", mark)), 0u) << written;
  EXPECT_LE(du(), max + kMiB);
}

// Pull mode: decodebin's demuxer reads a non-interleaved MP4 (all video,
// then all audio) at two places at once; played again, all of it comes
// from disk.
TEST_F(DiskCacheTest, APullModeReplayIsServedFromDisk) {
  set_deadline(300s);
  std::string out, err;
  ASSERT_EQ(run_command({PREFETCH_MAKE_CLIP, root_.file("ni.mp4"), "20", "noninterleaved",
                         "640x360", "3000"},
                        &out, &err),
            0)
      << err;
  const auto decode = [this] {
    GError* error = nullptr;
    const std::string launch = "prefetchsrc location=" + http("/ni.mp4") + " disk-cache=" + cache_ +
                               " ! decodebin ! fakesink";
    GstPtr<GstElement> pipeline(gst_parse_launch(launch.c_str(), &error));
    EXPECT_EQ(error, nullptr) << describe(error);
    g_clear_error(&error);
    if (!pipeline) return false;
    gst_element_set_state(pipeline.get(), GST_STATE_PLAYING);
    MessagePtr m = wait_error_or_eos(pipeline.get(), 120s);
    const bool eos = m && GST_MESSAGE_TYPE(m.get()) == GST_MESSAGE_EOS;
    EXPECT_TRUE(eos) << (m ? describe(error_of(m.get()).get()) : "no EOS in time");
    gst_element_set_state(pipeline.get(), GST_STATE_NULL);
    return eos;
  };
  ASSERT_TRUE(decode());
  const size_t mark = log_length();
  ASSERT_TRUE(decode());
  const std::vector<std::string> asked = requests_for("/ni.mp4", mark);
  EXPECT_LE(asked.size(), 1u);
  EXPECT_EQ(body_bytes(asked), 0u);
}

// A play killed (SIGKILL) at ten moments while it writes the cache: a play
// after each gives exactly the file, the torn writes found by their
// checksums.
TEST_F(DiskCacheTest, APlayKilledAtAnyMomentLeavesNothingWrong) {
  set_deadline(600s);
  const std::vector<uint8_t>& data = pattern(24 * kMiB + 3);
  put_file("clip.bin", data);
  std::mt19937 rng(20261206);
  int killed = 0;
  for (int i = 0; i < 10; ++i) {
    // The player reads at most 8 MiB/s (two connections of 4): three
    // seconds for the file, killed within the first two and a half.
    fs::remove_all(cache_);
    const pid_t pid = fork_player(http("/capped/clip.bin"), cache_);
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 2450));
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) ++killed;
    auto after = play("/capped/clip.bin");
    expect_exact_transfer(*after, data);
    if (HasFailure()) return;
  }
  // The kills fell inside plays (a play that had ended would test nothing).
  EXPECT_GT(killed, 0);
}

}  // namespace
}  // namespace element_test
}  // namespace prefetch
