/* plugin/engine_life.h alone, without GStreamer: the engine's life across
 * state changes and pad-mode switches, with a fake engine that records what
 * was done to it. tests/element/lifecycle_test.cc (StandbyTest) checks the
 * same through pipelines. Waits are for events (an engine closed), never
 * for a time, except where a test checks that something does not happen. */
#include "engine_life.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

/* Far longer than any test runs: a standby that must not be reaped. */
constexpr auto kNever = std::chrono::milliseconds(3600 * 1000);
/* The longest a test waits for an event before it fails. */
constexpr auto kEventWait = std::chrono::seconds(120);

/* What the test sees of the engines it made. */
struct Probe {
  std::mutex lock;
  std::condition_variable cv;
  int made = 0;
  std::vector<int> closed;           /* ids, in order */
  std::vector<bool> flushing{false}; /* by id (0 unused) */

  bool wait_closed(size_t n) {
    std::unique_lock<std::mutex> l(lock);
    return cv.wait_for(l, kEventWait, [&] { return closed.size() >= n; });
  }
  size_t closed_count() {
    std::lock_guard<std::mutex> l(lock);
    return closed.size();
  }
  bool is_flushing(int id) {
    std::lock_guard<std::mutex> l(lock);
    return flushing[id];
  }
};

/* An engine as EngineLife sees it (see plugin/engine_life.h). */
struct FakeRun {
  std::shared_ptr<Probe> probe; /* null: empty */
  int id = 0;
  uint64_t settings_version = 0;

  explicit operator bool() const { return probe != nullptr; }
  void set_flushing(bool on) {
    std::lock_guard<std::mutex> l(probe->lock);
    probe->flushing[id] = on;
  }
  void close() {
    if (!probe) return;
    {
      std::lock_guard<std::mutex> l(probe->lock);
      probe->closed.push_back(id);
    }
    probe->cv.notify_all();
    probe.reset();
  }
};

using Life = prefetchsrc::EngineLife<FakeRun>;
using Phase = Life::Phase;

class EngineLifeTest : public ::testing::Test {
 protected:
  EngineLifeTest()
      : life_(std::make_unique<Life>([this] { return idle_; },
                                     [this](const std::string& line) {
                                       std::lock_guard<std::mutex> l(log_lock_);
                                       log_.push_back(line);
                                     })) {}

  void TearDown() override {
    life_.reset();  // releases whatever is left and joins the reaper
    std::lock_guard<std::mutex> l(probe_->lock);
    EXPECT_EQ(probe_->closed.size(), static_cast<size_t>(probe_->made)) << "an engine leaked";
  }

  FakeRun make(uint64_t version) {
    std::lock_guard<std::mutex> l(probe_->lock);
    FakeRun run;
    run.probe = probe_;
    run.id = ++probe_->made;
    run.settings_version = version;
    probe_->flushing.push_back(false);
    return run;
  }
  /* What a waiter shares: the engine's id (0: none). */
  static int share(FakeRun& run) { return run.id; }

  /* The scheduling query's way to a standby: share(), then offer one made
   * from `version`. Returns the id to wait on. */
  int query_makes_standby(uint64_t version, Life::Ticket* ticket) {
    EXPECT_EQ(life_->share(share, ticket), 0);
    return life_->offer_standby(make(version), share, ticket);
  }

  bool logged(const std::string& line) {
    std::lock_guard<std::mutex> l(log_lock_);
    for (const auto& s : log_)
      if (s == line) return true;
    return false;
  }

  std::chrono::milliseconds idle_ = kNever;
  std::shared_ptr<Probe> probe_ = std::make_shared<Probe>();
  std::mutex log_lock_;
  std::vector<std::string> log_;
  std::unique_ptr<Life> life_;
};

TEST_F(EngineLifeTest, StandbyFromAQueryIsAdoptedByTheStartThatFollows) {
  Life::Ticket ticket;
  EXPECT_EQ(query_makes_standby(7, &ticket), 1);
  EXPECT_EQ(life_->phase(), Phase::kStandby);
  EXPECT_TRUE(life_->has_reaper());
  life_->done_waiting(ticket);
  life_->begin_state_change(false);  // READY -> PAUSED: start() inside
  bool made_again = false;
  EXPECT_TRUE(life_->enter_running(7, [&] {
    made_again = true;
    return make(7);
  }));
  life_->end_state_change();
  EXPECT_FALSE(made_again);
  EXPECT_EQ(life_->phase(), Phase::kRunning);
  EXPECT_EQ(life_->running_unlocked().id, 1);
  EXPECT_FALSE(probe_->is_flushing(1));
  EXPECT_FALSE(life_->has_reaper()) << "the reaper of an adopted standby is joined";
  EXPECT_EQ(probe_->closed_count(), 0u);
  EXPECT_TRUE(logged("adopting the engine started before"));
  life_->leave_running(false);
  EXPECT_EQ(life_->phase(), Phase::kStopped);
  EXPECT_EQ(probe_->closed, std::vector<int>{1});
}

TEST_F(EngineLifeTest, PadModeSwitchStandbyIsAdoptedByTheStartThatFollows) {
  ASSERT_TRUE(life_->enter_running(1, [&] { return make(1); }));
  life_->leave_running(true);
  EXPECT_EQ(life_->phase(), Phase::kStandby);
  EXPECT_TRUE(life_->has_reaper());
  EXPECT_TRUE(logged("pad mode switch: keeping the engine (standby)"));
  ASSERT_TRUE(life_->enter_running(1, [&] { return make(1); }));
  EXPECT_EQ(life_->running_unlocked().id, 1);
  EXPECT_EQ(probe_->made, 1);
  EXPECT_FALSE(life_->has_reaper());
}

TEST_F(EngineLifeTest, StandbyFromOtherSettingsIsDroppedForANewEngine) {
  Life::Ticket ticket;
  query_makes_standby(1, &ticket);
  life_->done_waiting(ticket);
  ASSERT_TRUE(life_->enter_running(2, [&] { return make(2); }));
  EXPECT_EQ(probe_->closed, std::vector<int>{1});
  EXPECT_EQ(life_->running_unlocked().id, 2);
  EXPECT_FALSE(life_->has_reaper());
}

TEST_F(EngineLifeTest, BadSettingsLeaveItStopped) {
  Life::Ticket ticket;
  query_makes_standby(1, &ticket);
  life_->done_waiting(ticket);
  EXPECT_FALSE(life_->enter_running(2, [] { return FakeRun(); }));
  EXPECT_EQ(life_->phase(), Phase::kStopped);
  EXPECT_EQ(probe_->closed, std::vector<int>{1});
  EXPECT_FALSE(life_->has_reaper());
}

TEST_F(EngineLifeTest, StandbyIsDroppedAfterItsIdleTime) {
  idle_ = 1ms;
  ASSERT_TRUE(life_->enter_running(1, [&] { return make(1); }));
  life_->leave_running(true);
  ASSERT_TRUE(probe_->wait_closed(1)) << "the reaper never dropped the standby";
  EXPECT_EQ(life_->phase(), Phase::kStopped);
  EXPECT_TRUE(logged("standby engine unused for 1 ms: dropping it"));
  life_->join_reaper();
  EXPECT_FALSE(life_->has_reaper());
  /* The start() that comes too late makes a new engine. */
  ASSERT_TRUE(life_->enter_running(1, [&] { return make(1); }));
  EXPECT_EQ(life_->running_unlocked().id, 2);
}

TEST_F(EngineLifeTest, AWaiterKeepsTheStandbyPastItsIdleTime) {
  idle_ = 1ms;
  Life::Ticket ticket;
  query_makes_standby(1, &ticket);
  /* In use: the reaper waits for the waiter, however long it takes. */
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(life_->phase(), Phase::kStandby);
  EXPECT_EQ(probe_->closed_count(), 0u);
  life_->done_waiting(ticket);  // idle from now on
  ASSERT_TRUE(probe_->wait_closed(1));
  EXPECT_EQ(life_->phase(), Phase::kStopped);
}

TEST_F(EngineLifeTest, StandbyIsDroppedByTheNextStateChange) {
  ASSERT_TRUE(life_->enter_running(1, [&] { return make(1); }));
  life_->leave_running(true);
  life_->begin_state_change(true);  // PAUSED -> READY
  EXPECT_TRUE(probe_->is_flushing(1)) << "a waiter on it must wake at once";
  life_->end_state_change();
  EXPECT_EQ(life_->phase(), Phase::kStopped);
  EXPECT_EQ(probe_->closed, std::vector<int>{1});
  EXPECT_FALSE(life_->has_reaper());
  EXPECT_TRUE(logged("dropping the standby engine"));
}

TEST_F(EngineLifeTest, AnUpwardStateChangeDoesNotFlushTheStandby) {
  Life::Ticket ticket;
  query_makes_standby(1, &ticket);
  life_->begin_state_change(false);
  EXPECT_FALSE(probe_->is_flushing(1));
  life_->done_waiting(ticket);
  life_->end_state_change();  // nobody adopted it
  EXPECT_EQ(probe_->closed, std::vector<int>{1});
}

TEST_F(EngineLifeTest, AnEngineMadeAcrossAStateChangeIsNotInstalled) {
  Life::Ticket ticket;
  EXPECT_EQ(life_->share(share, &ticket), 0);
  life_->begin_state_change(true);
  EXPECT_EQ(life_->offer_standby(make(1), share, &ticket), 0);
  EXPECT_EQ(life_->phase(), Phase::kStopped);
  EXPECT_EQ(probe_->closed, std::vector<int>{1});
  EXPECT_FALSE(life_->has_reaper());
}

TEST_F(EngineLifeTest, AWaiterSharesTheRunningEngineAndItsOfferIsClosed) {
  ASSERT_TRUE(life_->enter_running(1, [&] { return make(1); }));
  Life::Ticket ticket;
  EXPECT_EQ(life_->offer_standby(make(1), share, &ticket), 1);
  EXPECT_EQ(ticket.standby_period, 0u);
  EXPECT_EQ(probe_->closed, std::vector<int>{2});
  EXPECT_EQ(life_->phase(), Phase::kRunning);
}

TEST_F(EngineLifeTest, UnlockFlushesWhateverEngineThereIs) {
  Life::Ticket ticket;
  query_makes_standby(1, &ticket);
  life_->set_flushing(true);
  EXPECT_TRUE(probe_->is_flushing(1));
  life_->set_flushing(false);
  EXPECT_FALSE(probe_->is_flushing(1));
  life_->done_waiting(ticket);
}

TEST_F(EngineLifeTest, WithRunningSeesOnlyARunningEngine) {
  int seen = 0;
  EXPECT_FALSE(life_->with_running([&](FakeRun& run) { seen = run.id; }));
  ASSERT_TRUE(life_->enter_running(1, [&] { return make(1); }));
  EXPECT_TRUE(life_->with_running([&](FakeRun& run) { seen = run.id; }));
  EXPECT_EQ(seen, 1);
  life_->leave_running(true);
  EXPECT_FALSE(life_->with_running([&](FakeRun& run) { seen = 0; }));
  EXPECT_EQ(seen, 1);
}

TEST_F(EngineLifeTest, ReleaseFlushesClosesAndJoinsTheStandby) {
  ASSERT_TRUE(life_->enter_running(1, [&] { return make(1); }));
  life_->leave_running(true);
  life_->release();  // finalize in READY
  EXPECT_TRUE(probe_->is_flushing(1));
  EXPECT_EQ(probe_->closed, std::vector<int>{1});
  EXPECT_FALSE(life_->has_reaper());
  EXPECT_EQ(life_->phase(), Phase::kStopped);
}

TEST_F(EngineLifeTest, DestroyingItWithAStandbyLeaksNothing) {
  Life::Ticket ticket;
  query_makes_standby(1, &ticket);
  life_->done_waiting(ticket);
  life_.reset();
  EXPECT_EQ(probe_->closed, std::vector<int>{1});
}

TEST_F(EngineLifeTest, ANewStandbyPeriodEndsTheOldReaper) {
  idle_ = kNever;
  ASSERT_TRUE(life_->enter_running(1, [&] { return make(1); }));
  for (int i = 0; i < 20; ++i) {  // switch after switch, each with its reaper
    life_->leave_running(true);
    ASSERT_TRUE(life_->enter_running(1, [&] { return make(1); }));
    EXPECT_FALSE(life_->has_reaper());
  }
  EXPECT_EQ(probe_->made, 1);
}

}  // namespace
