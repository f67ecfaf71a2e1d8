/* The engine's life across the element's state changes and pad-mode
 * switches: at most one engine exists, and the phase says who owns it.
 *   kStopped  no engine.
 *   kStandby  an engine that no start() owns: made early by the scheduling
 *             query (downstream asks before our start(): pads are activated
 *             sink to source), or kept by stop() across a pad-mode switch.
 *             start() adopts it when the settings have not changed since, so
 *             nothing is requested twice. Its life is bounded: every state
 *             change that does not adopt it drops it (a downward one first
 *             sets it flushing, which wakes a query waiting on it), and a
 *             reaper thread drops it after its idle time unused.
 *   kRunning  between start() and stop(); create() reads the engine.
 * Only these methods change the phase:
 *   stopped -> standby  scheduling query, from READY on    offer_standby
 *   running -> standby  stop() in a pad-mode switch        leave_running
 *   standby -> running  start(), settings unchanged        enter_running
 *   stopped -> running  start() (drops a stale standby)    enter_running
 *   running -> stopped  stop()                             leave_running
 *   standby -> stopped  a state change that does not       end_state_change
 *                       adopt it; idle time unused;        reap
 *                       finalize                           release
 * Each holds the lock for the change only: engines are closed after it is
 * released (closing waits for the engine's I/O thread).
 *
 * Nothing here knows GStreamer: `Run` (plugin/gstprefetchsrc_private.h's
 * EngineRun, or a test's fake) is default-constructible and movable (a
 * moved-from or default Run is empty) and has
 *   explicit operator bool() const    holds an engine
 *   void set_flushing(bool)           wakes (or lets wait again) its readers
 *   void close()                      cancels and joins; never under a lock
 *   uint64_t settings_version         the settings' version it was made from
 * Its tests are tests/plugin/engine_life_test.cc. */
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

namespace prefetchsrc {

template <typename Run>
class EngineLife {
 public:
  enum class Phase { kStopped, kStandby, kRunning };
  using Clock = std::chrono::steady_clock;
  using IdleTime = std::function<std::chrono::milliseconds()>;
  using Log = std::function<void(const std::string&)>;

  /* What a waiter (the scheduling query) holds: the count of state changes
   * begun when it looked, and the standby period it counts as a user of
   * (0: none). */
  struct Ticket {
    uint64_t state_changes = 0;
    uint64_t standby_period = 0;
  };

  /* `idle_time` is asked at the start of each standby period; `log` gets
   * one line per transition (the element's GST_DEBUG lines). */
  EngineLife(IdleTime idle_time, Log log)
      : idle_time_(std::move(idle_time)), log_(std::move(log)) {}
  ~EngineLife() { release(); }
  EngineLife(const EngineLife&) = delete;
  EngineLife& operator=(const EngineLife&) = delete;

  /* Calls f(run) under the lock if running; false if not running. */
  template <typename F>
  bool with_running(F&& f) {
    std::lock_guard<std::mutex> lock(lock_);
    if (phase_ != Phase::kRunning) return false;
    f(run_);
    return true;
  }

  /* The running engine, unlocked: only for the streaming thread while
   * running, when nothing but leave_running() changes it. */
  Run& running_unlocked() { return run_; }

  /* Running or standby: wakes create(), or a waiter on the engine. */
  void set_flushing(bool on) {
    std::lock_guard<std::mutex> lock(lock_);
    if (run_) run_.set_flushing(on);
  }

  /* The engine a waiter may wait on, shared through share(run): the running
   * one, or the standby, which then counts the waiter as a user (not idle)
   * until done_waiting(). Fills `ticket`. Empty if stopped. */
  template <typename Share>
  auto share(Share&& share, Ticket* ticket) {
    std::lock_guard<std::mutex> lock(lock_);
    ticket->state_changes = state_changes_;
    return share_locked(share, ticket);
  }

  /* stopped -> standby: installs `fresh`, made by a waiter that found no
   * engine, unless another thread installed or started one meanwhile, or a
   * state change began since the waiter's share() (it would drop the
   * standby, or already has). Returns the engine to wait on, as share()
   * does; closes `fresh` if it was not installed. */
  template <typename Share>
  auto offer_standby(Run fresh, Share&& share, Ticket* ticket) {
    std::thread old_reaper;
    decltype(share(run_)) shared;
    {
      std::lock_guard<std::mutex> lock(lock_);
      if (phase_ == Phase::kStopped && fresh && state_changes_ == ticket->state_changes) {
        log_("scheduling query: engine started early (standby)");
        run_ = std::move(fresh);
        fresh = Run();
        phase_ = Phase::kStandby;
        old_reaper = begin_standby_locked();
      }
      shared = share_locked(share, ticket);
    }
    join(old_reaper);
    fresh.close();
    join_reaper();  // a previous standby's, if it ended
    return shared;
  }

  /* A waiter is done with the standby of `ticket`: its idle time starts
   * again from now. */
  void done_waiting(const Ticket& ticket) {
    if (!ticket.standby_period) return;
    std::lock_guard<std::mutex> lock(lock_);
    if (phase_ != Phase::kStandby || standby_period_ != ticket.standby_period) return;
    if (standby_users_ > 0) --standby_users_;
    standby_deadline_ = Clock::now() + standby_idle_;
    cv_.notify_all();
  }

  /* The start of an element state change (before chaining up): a waiter
   * that has not installed its engine yet will not, and on the way down the
   * standby is set flushing, which wakes a waiter on it at once. */
  void begin_state_change(bool downward) {
    std::lock_guard<std::mutex> lock(lock_);
    ++state_changes_;
    if (downward && phase_ == Phase::kStandby) run_.set_flushing(true);
  }

  /* The end of an element state change (after chaining up): a standby still
   * there was not adopted, and is dropped. */
  void end_state_change() {
    drop_standby().close();
    join_reaper();
  }

  /* standby -> running (adopted: made from `settings_version`) or stopped ->
   * running (make() gives a new engine; a standby made from other settings
   * is dropped first). False, staying stopped, if make() gives none. */
  template <typename Make>
  bool enter_running(uint64_t settings_version, Make&& make) {
    bool adopted = false;
    {
      std::lock_guard<std::mutex> lock(lock_);
      if (phase_ == Phase::kStandby && run_.settings_version == settings_version) {
        log_("adopting the engine started before");
        run_.set_flushing(false);
        phase_ = Phase::kRunning;
        cv_.notify_all();  // its reaper ends
        adopted = true;
      }
    }
    if (!adopted) drop_standby().close();
    join_reaper();
    if (adopted) return true;
    Run fresh = make();
    if (!fresh) return false;
    Run raced;
    std::thread reaper;
    {
      std::lock_guard<std::mutex> lock(lock_);
      /* A waiter on another thread may have installed a standby since: ours
       * wins, theirs is closed (the waiter holds its own share). */
      raced = std::move(run_);
      run_ = std::move(fresh);
      phase_ = Phase::kRunning;
      reaper = std::move(reaper_);
      cv_.notify_all();
    }
    join(reaper);
    raced.close();
    return true;
  }

  /* running -> standby (`keep`: a pad-mode switch; the start() that follows
   * adopts the engine and what it holds, the reaper drops it if none does)
   * or running -> stopped. */
  void leave_running(bool keep) {
    Run old;
    std::thread old_reaper;
    {
      std::lock_guard<std::mutex> lock(lock_);
      if (phase_ != Phase::kRunning) return;
      if (keep) {
        log_("pad mode switch: keeping the engine (standby)");
        phase_ = Phase::kStandby;
        old_reaper = begin_standby_locked();
      } else {
        old = take_locked();
      }
    }
    join(old_reaper);
    old.close();
  }

  /* Any phase -> stopped (finalize): closes the engine, joins the reaper. */
  void release() {
    Run old;
    std::thread reaper;
    {
      std::lock_guard<std::mutex> lock(lock_);
      old = take_locked();
      reaper = std::move(reaper_);
      cv_.notify_all();
    }
    if (old) old.set_flushing(true);
    join(reaper);
    old.close();
  }

  /* For tests and assertions. */
  Phase phase() {
    std::lock_guard<std::mutex> lock(lock_);
    return phase_;
  }
  bool has_reaper() {
    std::lock_guard<std::mutex> lock(lock_);
    return reaper_.joinable();
  }

  /* Joins the reaper of a standby period that is over (none while a standby
   * is there: its reaper is still needed). Never called with a lock held. */
  void join_reaper() {
    std::thread reaper;
    {
      std::lock_guard<std::mutex> lock(lock_);
      if (phase_ == Phase::kStandby) return;
      reaper = std::move(reaper_);
      cv_.notify_all();
    }
    join(reaper);
  }

 private:
  static void join(std::thread& thread) {
    if (thread.joinable()) thread.join();
  }

  template <typename Share>
  auto share_locked(Share& share, Ticket* ticket) {
    if (phase_ == Phase::kStandby) {
      ++standby_users_;
      ticket->standby_period = standby_period_;
    }
    return phase_ == Phase::kStopped ? decltype(share(run_))() : share(run_);
  }

  /* -> stopped (lock held): the engine, for the caller to close. */
  Run take_locked() {
    Run run = std::move(run_);
    run_ = Run();
    phase_ = Phase::kStopped;
    return run;
  }

  /* Starts a standby period (phase just set to kStandby, lock held): a fresh
   * deadline and a reaper for it. Returns the reaper of an earlier period,
   * for the caller to join once the lock is released. */
  std::thread begin_standby_locked() {
    ++standby_period_;
    standby_users_ = 0;
    standby_idle_ = idle_time_();
    standby_deadline_ = Clock::now() + standby_idle_;
    std::thread old = std::move(reaper_);
    reaper_ = std::thread(&EngineLife::reap, this, standby_period_);
    cv_.notify_all();  // an earlier reaper still waiting: its period is over
    return old;
  }

  /* standby -> stopped: takes the standby engine (if any) out, for the
   * caller to close. Its reaper, woken, ends; join_reaper() joins it. */
  Run drop_standby() {
    std::lock_guard<std::mutex> lock(lock_);
    if (phase_ != Phase::kStandby) return Run();
    log_("dropping the standby engine");
    cv_.notify_all();
    return take_locked();
  }

  /* The reaper of standby period `period`: drops it once it has been unused
   * for its idle time. A thread of its own, not a GLib timeout: nothing
   * guarantees that the application iterates a main context, and a check at
   * the next state change alone would leave a standby kept for a pad-mode
   * switch that never completes fetching until the pipeline stops. */
  void reap(uint64_t period) {
    Run expired;
    {
      std::unique_lock<std::mutex> lock(lock_);
      for (;;) {
        if (phase_ != Phase::kStandby || standby_period_ != period) return;
        if (standby_users_ == 0 && Clock::now() >= standby_deadline_) break;
        if (standby_users_ > 0)
          cv_.wait(lock);
        else
          cv_.wait_until(lock, standby_deadline_);
      }
      /* standby -> stopped: idle too long. */
      log_("standby engine unused for " + std::to_string(standby_idle_.count()) +
           " ms: dropping it");
      expired = take_locked();
    }
    expired.close();
  }

  const IdleTime idle_time_;
  const Log log_;
  /* Guards everything below against the other threads (waiters, unlock(),
   * stats, the reaper). */
  std::mutex lock_;
  Phase phase_ = Phase::kStopped;
  Run run_; /* empty in kStopped */
  /* Element state changes begun: a waiter whose engine was made across one
   * does not install it. */
  uint64_t state_changes_ = 0;
  /* Standby periods begun; the reaper of one waits on cv_ until the standby
   * has been unused (no waiter on it) up to standby_deadline_, then drops
   * it. It lives only as long as its standby (joined by whoever ends it, or
   * at the next transition), so an element without a standby has no
   * thread. */
  uint64_t standby_period_ = 0;
  unsigned standby_users_ = 0;
  std::chrono::milliseconds standby_idle_{0}; /* this period's */
  Clock::time_point standby_deadline_;
  std::condition_variable cv_;
  std::thread reaper_;
};

}  // namespace prefetchsrc
