// ByteBudget (byte_budget.h): shares, the allowance, what may grow, and the
// budget the clients ask for; then engines of one process under it.
#include "prefetch/byte_budget.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "engine_fixture.h"
#include "prefetch/prefetcher.h"

namespace prefetch {
namespace {

constexpr uint64_t kMiB = 1 << 20;

TEST(ByteBudgetTest, ALoneClientMayHoldTheWholeBudget) {
  ByteBudget b;
  const auto a = b.add_client();
  EXPECT_EQ(b.budget(), ByteBudget::kDefaultBytes);
  EXPECT_EQ(b.share(), ByteBudget::kDefaultBytes);
  EXPECT_EQ(b.allowance(a), ByteBudget::kDefaultBytes);
  b.add(a, static_cast<int64_t>(ByteBudget::kDefaultBytes - kMiB));
  EXPECT_TRUE(b.may_grow(a, kMiB));
  b.add(a, static_cast<int64_t>(kMiB));
  EXPECT_FALSE(b.may_grow(a, 1));
  EXPECT_FALSE(b.over_share(a));
}

TEST(ByteBudgetTest, SharesSplitTheBudgetAndIdleRoomMayBeUsed) {
  ByteBudget b;
  const auto a = b.add_client(32 * kMiB);
  const auto c = b.add_client(32 * kMiB);
  EXPECT_EQ(b.budget(), ByteBudget::kDefaultBytes);  // never below the default
  const uint64_t share = ByteBudget::kDefaultBytes / 2;
  EXPECT_EQ(b.share(), share);
  // c holds nothing: a may go past its share into what c leaves.
  b.add(a, static_cast<int64_t>(share));
  EXPECT_TRUE(b.over_share(a) == false);
  EXPECT_TRUE(b.may_grow(a, kMiB));
  EXPECT_EQ(b.allowance(a), ByteBudget::kDefaultBytes);
  // Once c holds its share, a gets no more than its own.
  b.add(c, static_cast<int64_t>(share));
  EXPECT_FALSE(b.may_grow(a, kMiB));
  EXPECT_EQ(b.allowance(a), share);
  // Within its share c may still grow back what it gave: a gave some back.
  b.add(a, -static_cast<int64_t>(4 * kMiB));
  EXPECT_TRUE(b.may_grow(c, 4 * kMiB));
  EXPECT_EQ(b.in_use(), 2 * share - 4 * kMiB);
}

TEST(ByteBudgetTest, TheReserveKeepsABlockForEveryClient) {
  ByteBudget b;
  std::vector<ByteBudget::ClientId> ids;
  for (int i = 0; i < 8; ++i) ids.push_back(b.add_client());
  const uint64_t share = b.share();  // the default budget over 8
  b.add(ids[0], static_cast<int64_t>(share));
  // Past its share: only if the process stays under the budget less a
  // reserve of one (1 MiB) block per client.
  EXPECT_TRUE(b.may_grow(ids[0], kMiB, kMiB));
  b.add(ids[0], static_cast<int64_t>(ByteBudget::kDefaultBytes - 8 * kMiB - share));
  EXPECT_EQ(b.in_use(), ByteBudget::kDefaultBytes - 8 * kMiB);
  EXPECT_FALSE(b.may_grow(ids[0], kMiB, kMiB));
  EXPECT_TRUE(b.may_grow(ids[0], kMiB));  // without the reserve, room is left
  // A client within its share may always take it.
  EXPECT_TRUE(b.may_grow(ids[1], share));
}

// A client that took more than its share while the others held less keeps
// it until its reader moves on; meanwhile a client within its share gets
// what is left of the budget, not its whole share on top (the sum would
// pass the budget by what was borrowed).
TEST(ByteBudgetTest, NotPastTheBudgetEvenWithinAShare) {
  ByteBudget b;
  const auto a = b.add_client();
  const auto c = b.add_client();
  const uint64_t share = b.share();
  b.add(a, static_cast<int64_t>(ByteBudget::kDefaultBytes - 2 * kMiB));  // borrowed past its share
  EXPECT_TRUE(b.over_share(a));
  EXPECT_TRUE(b.may_grow(c, 2 * kMiB));
  b.add(c, static_cast<int64_t>(2 * kMiB));
  EXPECT_EQ(b.in_use(), ByteBudget::kDefaultBytes);
  EXPECT_LT(b.held(c) + kMiB, share);
  EXPECT_FALSE(b.may_grow(c, kMiB)) << "within its share, but past the budget";
  // a's reader moved on: what it gave back is c's again.
  b.add(a, -static_cast<int64_t>(4 * kMiB));
  EXPECT_TRUE(b.may_grow(c, 4 * kMiB));
  EXPECT_FALSE(b.may_grow(c, 5 * kMiB));
}

TEST(ByteBudgetTest, AClientAsksForMoreThanTheDefault) {
  ByteBudget b;
  const auto a = b.add_client(128 * kMiB);
  const auto c = b.add_client();
  EXPECT_EQ(b.budget(), 128 * kMiB);
  EXPECT_EQ(b.share(), 64 * kMiB);
  b.remove_client(a);
  EXPECT_EQ(b.budget(), ByteBudget::kDefaultBytes);
  EXPECT_EQ(b.clients(), 1u);
  EXPECT_EQ(b.share(), ByteBudget::kDefaultBytes);
  (void)c;
}

TEST(ByteBudgetTest, RemovingAClientDropsItsBytesAndIgnoresItsLaterChanges) {
  ByteBudget b;
  const auto a = b.add_client();
  const auto c = b.add_client();
  b.add(a, static_cast<int64_t>(10 * kMiB));
  b.add(c, static_cast<int64_t>(3 * kMiB));
  b.remove_client(a);
  EXPECT_EQ(b.in_use(), 3 * kMiB);
  b.add(a, -static_cast<int64_t>(10 * kMiB));  // a buffer of a's coming back late
  EXPECT_EQ(b.in_use(), 3 * kMiB);
  EXPECT_EQ(b.held(a), 0u);
  b.add(c, -static_cast<int64_t>(5 * kMiB));  // never below zero
  EXPECT_EQ(b.held(c), 0u);
  EXPECT_EQ(b.in_use(), 0u);
}

// Eight engines of one process read at once, with automatic concurrency
// (the element's default: many spans making blocks at once): the process's
// block memory (the budget's count, sampled while they run) stays within
// the budget and two blocks each, and every stream is exact.
TEST(ByteBudgetEngineTest, EightEnginesStayWithinTheProcessBudget) {
  constexpr int kEngines = 8;
  constexpr uint64_t kBlock = 1 * kMiB;
  constexpr uint64_t kSize = 24 * kMiB + 5;
  auto origin = std::make_shared<testing::FakeOrigin>(testing::pattern_bytes(kSize));
  origin->set_script([](const RangeRequest&, unsigned) {
    testing::Reply r;
    r.chunk = 64 * 1024;
    r.chunk_interval = std::chrono::microseconds(200);
    return r;
  });
  ByteBudget& budget = ByteBudget::process();
  ASSERT_EQ(budget.clients(), 0u) << "another test left an engine registered";
  std::vector<std::unique_ptr<Prefetcher>> engines;
  for (int i = 0; i < kEngines; ++i) {
    Config c;
    c.block_size = kBlock;
    c.lookahead_blocks = 16;  // 16 MiB each if it were alone: 128 MiB in all
    c.cache_bytes = 8 * kMiB;
    c.concurrency = 0;  // automatic, as by default
    engines.push_back(std::make_unique<Prefetcher>(origin, c));
  }
  // 16 x 1 MiB + 8 MiB each, asked: the budget is what one asks.
  EXPECT_EQ(budget.budget(), std::max<uint64_t>(ByteBudget::kDefaultBytes, 24 * kMiB));
  std::atomic<bool> done{false};
  std::atomic<uint64_t> most{0};
  std::thread sampler([&] {
    while (!done) {
      most = std::max<uint64_t>(most, budget.in_use());
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  std::vector<std::thread> readers;
  std::vector<char> exact(kEngines, 0);  // one element per thread (not vector<bool>'s bits)
  for (int i = 0; i < kEngines; ++i) {
    readers.emplace_back([&, i] {
      // A consumer: 300 us after each read.
      const testing::Drained d = testing::read_to_end(
          *engines[i], 0, 256 * 1024, ReadMode::kAvailable, std::chrono::microseconds(300));
      exact[i] = d.last.status == ReadStatus::kEos && d.bytes == origin->data();
    });
  }
  for (auto& t : readers) t.join();
  done = true;
  sampler.join();
  for (int i = 0; i < kEngines; ++i) EXPECT_TRUE(exact[i]) << "engine " << i;
  // Past the budget, each engine holds at most two blocks: its reader's
  // (made whatever the others hold) and the one its reader just left, which
  // the read's chunk still holds while the reader copies it.
  const uint64_t bound = budget.budget() + 2 * kEngines * kBlock;
  std::printf("[ info ] most block memory at once: %.1f MiB (budget %.0f MiB)\n",
              static_cast<double>(most) / kMiB, static_cast<double>(budget.budget()) / kMiB);
  EXPECT_LE(most.load(), bound);
  EXPECT_GT(most.load(), 2 * kBlock) << "the engines held (almost) nothing: not sampled?";
  for (auto& e : engines) e->close();
  EXPECT_EQ(budget.clients(), 0u);
}

// The block behind the reader is kept for a backward read while the
// engine's share of the budget holds it beside the reader's block; with 32
// engines in the default budget (a block's share each) it goes once the
// reader leaves it, and a read back there asks the origin again.
class KeepBehindTest : public ::testing::TestWithParam<bool> {};

TEST_P(KeepBehindTest, TheBlockBehindIsKeptOnlyWhereTheShareHoldsIt) {
  const bool crowded = GetParam();
  constexpr uint64_t kBlock = 1 * kMiB;
  auto origin = std::make_shared<testing::FakeOrigin>(testing::pattern_bytes(4 * kBlock));
  ByteBudget& budget = ByteBudget::process();
  ASSERT_EQ(budget.clients(), 0u) << "another test left an engine registered";
  std::vector<ByteBudget::ClientId> others;
  if (crowded)
    for (int i = 0; i < 31; ++i) others.push_back(budget.add_client());
  Config c;
  c.block_size = kBlock;
  c.concurrency = 1;
  auto engine = std::make_unique<Prefetcher>(origin, c);
  auto read_at = [&](uint64_t offset) {
    ReadResult r = engine->read(offset, 4096, ReadMode::kAvailable);
    EXPECT_EQ(r.status, ReadStatus::kOk) << r.error.message;
    EXPECT_EQ(r.chunk.offset, offset);
    EXPECT_EQ(std::vector<uint8_t>(r.chunk.data, r.chunk.data + r.chunk.size),
              std::vector<uint8_t>(
                  origin->data().begin() + static_cast<ptrdiff_t>(offset),
                  origin->data().begin() + static_cast<ptrdiff_t>(offset + r.chunk.size)));
  };
  // Through block 0 to the end, then into block 1: block 0 is behind.
  for (uint64_t offset = 0; offset < kBlock; offset += 4096) read_at(offset);
  read_at(kBlock + 4096);
  read_at(kBlock / 2);  // back into block 0
  unsigned asked_for_block0 = 0;
  for (const testing::RequestRecord& r : origin->requests())
    asked_for_block0 += r.begin < kBlock ? 1 : 0;
  EXPECT_EQ(asked_for_block0, crowded ? 2u : 1u);
  engine->close();
  for (ByteBudget::ClientId id : others) budget.remove_client(id);
  EXPECT_EQ(budget.clients(), 0u);
}

INSTANTIATE_TEST_SUITE_P(ByteBudgetEngineTest, KeepBehindTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? std::string("ThirtyTwoEngines")
                                          : std::string("OneEngine");
                         });

}  // namespace
}  // namespace prefetch
