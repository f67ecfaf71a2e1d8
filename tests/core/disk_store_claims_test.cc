// DiskStore's claims: which blocks of a resource an element fetches now, so
// that another one waits for them instead of fetching them too; and who
// plays a resource at all.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "prefetch/disk_store.h"

using prefetch::DiskStore;

namespace {

constexpr uint64_t kOpen = UINT64_MAX;  // to the end of the resource

class DiskStoreClaimsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char name[] = "/tmp/disk_store_claims_test.XXXXXX";
    ASSERT_NE(mkdtemp(name), nullptr);
    dir_ = name;
    std::string error;
    store_ = DiskStore::open(dir_, 0, &error);
    ASSERT_NE(store_, nullptr) << error;
  }
  void TearDown() override {
    store_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  // "<pid>/<n>": an owner of this (live) process.
  static std::string me(int n) { return std::to_string(getpid()) + "/" + std::to_string(n); }

  std::string dir_;
  std::unique_ptr<DiskStore> store_;
};

TEST_F(DiskStoreClaimsTest, AClaimStopsShortOfAnothersAndRefusesItsFirstBlock) {
  uint64_t end = 0;
  const int64_t a = store_->claim("k", me(1), 10, kOpen, &end);
  ASSERT_NE(a, 0);
  EXPECT_EQ(end, kOpen);
  // Another owner: from block 2, stopped at block 10; at block 12, refused.
  const int64_t b = store_->claim("k", me(2), 2, kOpen, &end);
  ASSERT_NE(b, 0);
  EXPECT_EQ(end, 10u);
  EXPECT_EQ(store_->claim("k", me(2), 12, 20, &end), 0);
  // The same owner's claims never stop its own, and other keys are apart.
  EXPECT_NE(store_->claim("k", me(1), 12, 20, &end), 0);
  EXPECT_NE(store_->claim("other", me(2), 12, 20, &end), 0);
  // Released, block 12 is free for the other owner.
  store_->release_all(me(1));
  EXPECT_NE(store_->claim("k", me(2), 12, 20, &end), 0);
  EXPECT_EQ(end, 20u);
}

TEST_F(DiskStoreClaimsTest, AnAnnouncedPlayerIsListedButClaimsNoBlock) {
  store_->announce("k", me(1));
  uint64_t end = 0;
  // No block is its: another owner claims from block 0 on, to the end.
  ASSERT_NE(store_->claim("k", me(2), 0, kOpen, &end), 0);
  EXPECT_EQ(end, kOpen);
  // But the other owner finds it playing; it does not find itself.
  const auto others = store_->claims("k", me(2));
  ASSERT_EQ(others.size(), 1u);
  EXPECT_EQ(others[0].owner, me(1));
  EXPECT_EQ(store_->claims("other", me(2)).size(), 0u);
  EXPECT_EQ(store_->claims("k", me(1)).size(), 1u);  // me(2)'s claim
  store_->release_all(me(1));
  EXPECT_EQ(store_->claims("k", me(2)).size(), 0u);
}

TEST_F(DiskStoreClaimsTest, ADeadProcessClaimsNothing) {
  // A child claims blocks 0- and announces itself, then exits.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string error;
    auto s = DiskStore::open(dir_, 0, &error);
    uint64_t end = 0;
    const std::string owner = std::to_string(getpid()) + "/1";
    const bool ok = s && s->claim("k", owner, 0, kOpen, &end) != 0;
    if (s) s->announce("k", owner);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  uint64_t end = 0;
  EXPECT_NE(store_->claim("k", me(1), 0, kOpen, &end), 0);
  EXPECT_EQ(end, kOpen);
  EXPECT_EQ(store_->claims("k", me(1)).size(), 0u);
}

}  // namespace
