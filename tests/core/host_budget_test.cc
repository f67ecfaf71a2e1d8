// HostBudget alone: keys, limits, grants by need, round robin, unregistering,
// yield asks, callbacks made with no lock held, and a threaded run that must
// never exceed the limit (run it under ThreadSanitizer too).
#include "prefetch/host_budget.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace prefetch {
namespace {

using Clock = HostBudget::Clock;
using std::chrono::milliseconds;

const std::string kHost = "http://example.com:80";

// A client whose callbacks count.
struct Recorder {
  std::atomic<int> wakes{0};
  std::atomic<int> yields{0};
};

HostBudget::Callbacks count(Recorder& r) {
  return {[&r] { ++r.wakes; }, [&r] { ++r.yields; }};
}

// `n` clients of kHost, one slot each asked, all counting into `r`.
template <size_t N>
std::array<HostBudget::ClientId, N> add_clients(HostBudget& b, Recorder& r) {
  std::array<HostBudget::ClientId, N> ids;
  for (auto& id : ids) id = b.add_client(kHost, 1, count(r));
  return ids;
}

// kHost's limit and the slots in use there, as one line.
std::string host_state(const HostBudget& b) {
  return "limit " + std::to_string(b.limit(kHost)) + ", in use " + std::to_string(b.in_use(kHost));
}

TEST(HostKeyTest, SchemeHostAndPortInLowerCaseWithTheDefaultPort) {
  EXPECT_EQ(host_key("http://Example.COM/a/b?c"), "http://example.com:80");
  EXPECT_EQ(host_key("HTTPS://example.com/x"), "https://example.com:443");
  EXPECT_EQ(host_key("http://example.com:8080/x"), "http://example.com:8080");
  EXPECT_EQ(host_key("http://user:pw@example.com/x"), "http://example.com:80");
  EXPECT_EQ(host_key("http://[::1]:81/x"), "http://[::1]:81");
  EXPECT_NE(host_key("http://example.com/"), host_key("https://example.com/"));
  EXPECT_NE(host_key("http://example.com/"), host_key("http://example.com:81/"));
  EXPECT_EQ(host_key("not a uri"), "");
  EXPECT_EQ(host_key("file:///tmp/x"), "");
}

TEST(HostBudgetTest, LimitZeroGrantsEverythingAtOnce) {
  HostBudget b;
  Recorder r;
  auto a = b.add_client(kHost, 0, count(r));
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(b.acquire(a, std::nullopt));
  EXPECT_EQ(host_state(b), "limit 0, in use 1000");
  EXPECT_EQ(b.held(a), 1000u);
  EXPECT_EQ(b.queued(a), 0u);
  b.remove_client(a);
  EXPECT_EQ(b.in_use(kHost), 0u);
  EXPECT_EQ(r.wakes, 0);
}

TEST(HostBudgetTest, GrantsUpToTheLimitThenQueuesAndWakesOnRelease) {
  HostBudget b;
  Recorder r;
  auto a = b.add_client(kHost, 2, count(r));
  EXPECT_TRUE(b.acquire(a, std::nullopt));
  EXPECT_TRUE(b.acquire(a, std::nullopt));
  EXPECT_FALSE(b.acquire(a, std::nullopt));
  EXPECT_EQ(b.in_use(kHost), 2u);
  EXPECT_EQ(b.queued(a), 1u);
  EXPECT_EQ(r.wakes, 0);
  b.release(a);
  EXPECT_EQ(r.wakes, 1);
  EXPECT_EQ(b.take_granted(a), 1u);
  EXPECT_EQ(b.take_granted(a), 0u);
  EXPECT_EQ(b.held(a), 2u);
  EXPECT_EQ(b.in_use(kHost), 2u);
  b.release(a, 2);
  EXPECT_EQ(b.in_use(kHost), 0u);
  b.remove_client(a);
}

TEST(HostBudgetTest, HostsAreSeparate) {
  HostBudget b;
  Recorder r;
  auto a = b.add_client("http://a:80", 1, count(r));
  auto c = b.add_client("http://c:80", 1, count(r));
  EXPECT_TRUE(b.acquire(a, std::nullopt));
  EXPECT_TRUE(b.acquire(c, std::nullopt));
  EXPECT_FALSE(b.acquire(a, std::nullopt));
  b.remove_client(a);
  b.remove_client(c);
}

// Who gets a freed slot: the earliest waiting reader, then the later one,
// then the client whose reader does not wait, whatever order they asked in.
TEST(HostBudgetTest, FreedSlotsGoByNeed) {
  HostBudget b;
  std::mutex mu;
  std::vector<char> order;
  auto client = [&](char name) {
    return HostBudget::Callbacks{[&, name] {
                                   std::lock_guard<std::mutex> lock(mu);
                                   order.push_back(name);
                                 },
                                 nullptr};
  };
  auto holder = b.add_client(kHost, 1, client('h'));
  auto ahead = b.add_client(kHost, 1, client('a'));
  auto late = b.add_client(kHost, 1, client('l'));
  auto early = b.add_client(kHost, 1, client('e'));
  const auto t0 = Clock::now();
  ASSERT_TRUE(b.acquire(holder, std::nullopt));
  EXPECT_FALSE(b.acquire(ahead, std::nullopt));          // asked first, not waiting
  EXPECT_FALSE(b.acquire(late, t0 + milliseconds(20)));  // waiting since later
  EXPECT_FALSE(b.acquire(early, t0));                    // waiting since earliest
  b.release(holder);
  EXPECT_EQ(b.take_granted(early), 1u);
  b.release(early);
  EXPECT_EQ(b.take_granted(late), 1u);
  b.release(late);
  EXPECT_EQ(b.take_granted(ahead), 1u);
  EXPECT_EQ(order, (std::vector<char>{'e', 'l', 'a'}));
  EXPECT_EQ(b.in_use(kHost), 1u);
  for (auto id : {holder, ahead, late, early}) b.remove_client(id);
}

// A free slot is not taken past a needier queued ask.
TEST(HostBudgetTest, NoSlotAtOncePastANeedierQueuedAsk) {
  HostBudget b;
  Recorder r;
  const auto [holder, waiting, other] = add_clients<3>(b, r);
  ASSERT_TRUE(b.acquire(holder, std::nullopt));
  EXPECT_FALSE(b.acquire(waiting, Clock::now()));
  EXPECT_FALSE(b.acquire(other, std::nullopt));
  b.release(holder);  // to `waiting`, not to whoever asks next
  EXPECT_EQ(b.held(waiting), 1u);
  EXPECT_FALSE(b.acquire(holder, Clock::now()));
  EXPECT_EQ(b.queued(holder), 1u);
  for (auto id : {holder, waiting, other}) b.remove_client(id);
}

// A client whose reader starts waiting moves ahead of the clients that do
// not wait.
TEST(HostBudgetTest, SetNeedReordersQueuedAsks) {
  HostBudget b;
  Recorder r;
  const auto [holder, first, second] = add_clients<3>(b, r);
  ASSERT_TRUE(b.acquire(holder, std::nullopt));
  EXPECT_FALSE(b.acquire(first, std::nullopt));
  EXPECT_FALSE(b.acquire(second, std::nullopt));
  b.set_need(second, Clock::now());
  b.release(holder);
  EXPECT_EQ(b.held(second), 1u);
  EXPECT_EQ(b.held(first), 0u);
  for (auto id : {holder, first, second}) b.remove_client(id);
}

// Among equals (none waiting), slots alternate between clients that each
// queued several asks: one that got a slot goes behind the others.
TEST(HostBudgetTest, EqualNeedsTakeTurns) {
  HostBudget b;
  Recorder ra, rb;
  auto holder = b.add_client(kHost, 1, HostBudget::Callbacks{});
  auto a = b.add_client(kHost, 1, count(ra));
  auto c = b.add_client(kHost, 1, count(rb));
  ASSERT_TRUE(b.acquire(holder, std::nullopt));
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(b.acquire(a, std::nullopt));
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(b.acquire(c, std::nullopt));
  b.release(holder);
  std::string turns;
  for (int i = 0; i < 6; ++i) {
    if (b.take_granted(a)) {
      turns += 'a';
      b.release(a);
    } else if (b.take_granted(c)) {
      turns += 'c';
      b.release(c);
    }
  }
  EXPECT_EQ(turns, "acacac");
  EXPECT_EQ(b.in_use(kHost), 0u);
  for (auto id : {holder, a, c}) b.remove_client(id);
}

TEST(HostBudgetTest, UnregisterWhileQueuedDropsItsAsksAndNeverWakesIt) {
  HostBudget b;
  Recorder rh, rq, rn;
  auto holder = b.add_client(kHost, 1, count(rh));
  auto gone = b.add_client(kHost, 1, count(rq));
  auto next = b.add_client(kHost, 1, count(rn));
  ASSERT_TRUE(b.acquire(holder, std::nullopt));
  EXPECT_FALSE(b.acquire(gone, Clock::now()));
  EXPECT_FALSE(b.acquire(next, std::nullopt));
  b.remove_client(gone);
  b.release(holder);
  EXPECT_EQ(rq.wakes, 0);
  EXPECT_EQ(rn.wakes, 1);
  EXPECT_EQ(b.held(next), 1u);
  EXPECT_EQ(b.in_use(kHost), 1u);
  // Unknown ids are ignored.
  EXPECT_FALSE(b.acquire(gone, std::nullopt));
  b.release(gone);
  b.remove_client(gone);
  for (auto id : {holder, next}) b.remove_client(id);
}

TEST(HostBudgetTest, UnregisteringAHolderGivesItsSlotsToTheQueue) {
  HostBudget b;
  Recorder rh, rq;
  auto holder = b.add_client(kHost, 2, count(rh));
  auto queued = b.add_client(kHost, 2, count(rq));
  ASSERT_TRUE(b.acquire(holder, std::nullopt));
  ASSERT_TRUE(b.acquire(holder, std::nullopt));
  EXPECT_FALSE(b.acquire(queued, std::nullopt));
  EXPECT_FALSE(b.acquire(queued, std::nullopt));
  EXPECT_FALSE(b.acquire(queued, std::nullopt));
  b.remove_client(holder);
  EXPECT_EQ(rq.wakes, 1);  // one wake for two grants
  EXPECT_EQ(b.take_granted(queued), 2u);
  EXPECT_EQ(b.queued(queued), 1u);
  EXPECT_EQ(b.in_use(kHost), 2u);
  EXPECT_EQ(b.withdraw(queued), 1u);
  EXPECT_EQ(b.queued(queued), 0u);
  b.release(queued, 2);
  EXPECT_EQ(rq.wakes, 1);
  b.remove_client(queued);
}

// The smallest non-zero limit of a host's clients is the host's; when that
// client goes, the limit grows and queued asks are granted.
TEST(HostBudgetTest, SmallestNonZeroLimitWins) {
  HostBudget b;
  Recorder r;
  auto unlimited = b.add_client(kHost, 0, count(r));
  auto wide = b.add_client(kHost, 4, count(r));
  EXPECT_EQ(b.limit(kHost), 4u);
  auto narrow = b.add_client(kHost, 2, count(r));
  EXPECT_EQ(b.limit(kHost), 2u);
  EXPECT_TRUE(b.acquire(unlimited, std::nullopt));
  EXPECT_TRUE(b.acquire(wide, std::nullopt));
  EXPECT_FALSE(b.acquire(wide, std::nullopt));
  EXPECT_FALSE(b.acquire(unlimited, std::nullopt));
  b.remove_client(narrow);
  EXPECT_EQ(host_state(b), "limit 4, in use 4");
  EXPECT_EQ(b.take_granted(wide), 1u);
  EXPECT_EQ(b.take_granted(unlimited), 1u);
  b.remove_client(wide);
  EXPECT_EQ(b.limit(kHost), 0u);
  EXPECT_TRUE(b.acquire(unlimited, std::nullopt));
  b.remove_client(unlimited);
}

// A lower limit takes nothing back, but nothing more is handed out until
// the host is under it.
TEST(HostBudgetTest, ALowerLimitWaitsForReleases) {
  HostBudget b;
  Recorder r;
  auto a = b.add_client(kHost, 3, count(r));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(b.acquire(a, std::nullopt));
  auto c = b.add_client(kHost, 1, count(r));
  EXPECT_FALSE(b.acquire(c, std::nullopt));
  b.release(a);
  b.release(a);
  EXPECT_EQ(b.held(c), 0u);  // 1 held, limit 1
  b.release(a);
  EXPECT_EQ(b.take_granted(c), 1u);
  for (auto id : {a, c}) b.remove_client(id);
}

// A waiting reader queued on a full host asks the least needy holder to
// yield a slot; a holder as needy as the asker is not asked.
TEST(HostBudgetTest, AWaitingReaderAsksALessNeedyHolderToYield) {
  HostBudget b;
  Recorder rbig, rsmall, rwaiting, rasker;
  auto big = b.add_client(kHost, 4, count(rbig));
  auto small = b.add_client(kHost, 4, count(rsmall));
  auto waiting = b.add_client(kHost, 4, count(rwaiting));
  auto asker = b.add_client(kHost, 4, count(rasker));
  const auto t0 = Clock::now();
  ASSERT_TRUE(b.acquire(big, std::nullopt));
  ASSERT_TRUE(b.acquire(big, std::nullopt));
  ASSERT_TRUE(b.acquire(small, std::nullopt));
  ASSERT_TRUE(b.acquire(waiting, t0));
  EXPECT_FALSE(b.acquire(asker, std::nullopt));  // not waiting: asks nobody
  EXPECT_EQ(rbig.yields + rsmall.yields + rwaiting.yields, 0);
  EXPECT_FALSE(b.acquire(asker, t0 + milliseconds(1)));
  EXPECT_EQ(rbig.yields, 1);  // not waiting, and the most slots
  EXPECT_EQ(rsmall.yields, 0);
  EXPECT_EQ(rwaiting.yields, 0);  // waits since earlier than the asker
  b.release(big);
  EXPECT_EQ(b.take_granted(asker), 1u);
  for (auto id : {big, small, waiting, asker}) b.remove_client(id);
}

// Callbacks run with no lock of the budget held: they may call it.
TEST(HostBudgetTest, CallbacksMayCallTheBudget) {
  HostBudget b;
  HostBudget::ClientId a = 0, c = 0;
  int woken = 0;
  a = b.add_client(kHost, 1, {});
  c = b.add_client(kHost, 1,
                   {[&] {
                      ++woken;
                      EXPECT_EQ(b.in_use(kHost), 1u);
                      EXPECT_EQ(b.take_granted(c), 1u);
                      b.release(c);        // nested: grants nothing more
                      b.remove_client(c);  // from its own callback
                    },
                    nullptr});
  ASSERT_TRUE(b.acquire(a, std::nullopt));
  EXPECT_FALSE(b.acquire(c, std::nullopt));
  b.release(a);
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(b.in_use(kHost), 0u);
  b.remove_client(a);
}

// remove_client() waits for the client's callback running on another
// thread; after it returns, no callback of the client runs.
TEST(HostBudgetTest, RemoveWaitsForARunningCallback) {
  HostBudget b;
  std::mutex mu;
  std::condition_variable cv;
  bool in_wake = false, let_go = false;
  std::atomic<bool> removed{false};
  std::atomic<bool> ran_after_removal{false};
  auto holder = b.add_client(kHost, 1, {});
  auto c = b.add_client(kHost, 1,
                        {[&] {
                           {
                             std::unique_lock<std::mutex> lock(mu);
                             in_wake = true;
                             cv.notify_all();
                             cv.wait(lock, [&] { return let_go; });
                           }
                           if (removed) ran_after_removal = true;
                         },
                         nullptr});
  ASSERT_TRUE(b.acquire(holder, std::nullopt));
  EXPECT_FALSE(b.acquire(c, std::nullopt));
  std::thread releaser([&] { b.release(holder); });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return in_wake; });
  }
  std::thread remover([&] {
    b.remove_client(c);
    removed = true;
  });
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_FALSE(removed);  // still waiting for the wake
  {
    std::lock_guard<std::mutex> lock(mu);
    let_go = true;
  }
  cv.notify_all();
  remover.join();
  releaser.join();
  EXPECT_TRUE(removed);
  EXPECT_FALSE(ran_after_removal);
  b.remove_client(holder);
}

// Many clients on several threads ask, wait for grants, hold a while and
// release, with random needs, while others come and go: no more slots are
// ever out than the limit (counted by the clients themselves), and every
// ask is granted in the end.
TEST(HostBudgetTest, ConcurrentClientsNeverExceedTheLimit) {
  constexpr unsigned kLimit = 5;
  constexpr int kThreads = 8;
  constexpr int kRounds = 300;
  HostBudget b;
  // Holds the limit while the threads' clients (limits 5 and 0) come and go.
  const auto keeper = b.add_client(kHost, kLimit, {});
  std::atomic<int> out{0};
  std::atomic<int> most{0};
  std::atomic<int> grants{0};
  // Until two threads held a slot at once, each holder waits (10 s at most)
  // for a second one: a loaded machine (or TSan) may otherwise run the
  // threads one after the other and the limit would never be tried.
  const auto overlap_by = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto use = [&] {
    const int now = ++out;
    int m = most.load();
    while (now > m && !most.compare_exchange_weak(m, now)) {
    }
    while (most.load() < 2 && std::chrono::steady_clock::now() < overlap_by)
      std::this_thread::sleep_for(milliseconds(1));
    std::this_thread::yield();
    --out;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::mutex mu;
      std::condition_variable cv;
      bool woken = false;
      // Each thread re-registers now and then, with limit 5 or 0.
      auto make = [&] {
        return b.add_client(kHost, rng() % 2 ? kLimit : 0,
                            {[&] {
                               std::lock_guard<std::mutex> lock(mu);
                               woken = true;
                               cv.notify_all();
                             },
                             [] {}});
      };
      HostBudget::ClientId id = make();
      for (int i = 0; i < kRounds; ++i) {
        HostBudget::Need need;
        if (rng() % 2) need = Clock::now() - milliseconds(rng() % 10);
        if (!b.acquire(id, need)) {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return woken; });
          woken = false;
          lock.unlock();
          ASSERT_EQ(b.take_granted(id), 1u);
        }
        ++grants;
        use();
        b.release(id);
        if (rng() % 50 == 0) {
          b.remove_client(id);
          id = make();
        }
      }
      b.remove_client(id);
    });
  }
  for (auto& th : threads) th.join();
  b.remove_client(keeper);
  EXPECT_LE(most.load(), static_cast<int>(kLimit));
  EXPECT_GE(most.load(), 2);  // the threads did overlap
  EXPECT_EQ(grants.load(), kThreads * kRounds);
  EXPECT_EQ(b.in_use(kHost), 0u);
}

}  // namespace
}  // namespace prefetch
