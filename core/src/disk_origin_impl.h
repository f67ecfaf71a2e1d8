// The disk tier's insides (disk_origin.h), shared by its source files:
//   disk_origin.cc  the public API, the entry and its validation
//   disk_reads.cc   the reads thread: which requests the disk answers, the
//                   waits for other elements' blocks, serving from disk
//   disk_writes.cc  the network answers teed, and the writes thread
// Locking: every field of Impl is guarded by `mu`, except where a field
// says whose it is. The engine calls start(), cancel() and resume() with its
// own lock held, so no listener callback is ever made with `mu` held.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "prefetch/disk_origin.h"

namespace prefetch {

using Clock = std::chrono::steady_clock;

// How long a request waits for blocks another element fetches while none
// of them is written: past it, that element is taken to have stopped (its
// reader paused, say) and the request goes to the network.
constexpr std::chrono::seconds kClaimPatience{2};

// A request to the network stops short of held blocks only where they
// make a run this long (or reach the resource's end): stopping costs a
// request's first byte later, which a few blocks read from disk do not
// make up for on a slow origin.
constexpr uint64_t kMinHeldRun = 8;

// The writes thread's burst of processor time beyond its share
// (DiskOriginOptions::write_share).
constexpr std::chrono::milliseconds kWriteBurst{100};

// A disk answer keeps the kernel reading at least this many blocks ahead
// of the one it serves, asking for twice as many at a time
// (DiskStore::read_ahead).
constexpr uint64_t kReadAheadBlocks = 8;

// How often the writes thread looks whether other elements play the same
// resource (then every block is written: they wait for ours).
constexpr std::chrono::milliseconds kOthersCheck{100};

// Names this element's claims: the process, and a number of its own.
inline std::string next_owner() {
  static std::atomic<uint64_t> n{0};
  return std::to_string(getpid()) + "/" + std::to_string(++n);
}

// A whole block from the network on its way to the disk: its bytes where
// the engine put them, kept (unchanged: FetchListener::area_keeper) until
// written. Not copied: the copy cost a fast play as much as the write.
struct BlockRef {
  std::shared_ptr<const void> keeper;
  const uint8_t* data = nullptr;
  size_t size = 0;
};

// One request, answered from disk or passed to the network.
class CacheFetch : public Fetch {
 public:
  CacheFetch(std::weak_ptr<DiskOrigin::Impl> impl, RangeRequest req,
             std::shared_ptr<FetchListener> listener)
      : impl_(std::move(impl)), req(std::move(req)), listener(std::move(listener)) {}
  void cancel() override;
  void resume() override;

  std::weak_ptr<DiskOrigin::Impl> impl_;
  const RangeRequest req;
  // Until its on_done: the engine's request holds this fetch, so holding
  // the request after the last callback would keep both alive for good.
  std::shared_ptr<FetchListener> listener;
  void done(const Error* e) {
    std::shared_ptr<FetchListener> last = std::move(listener);
    last->on_done(e);
  }
  // Guarded by Impl::mu:
  bool cancelled = false;
  bool paused = false;
  std::shared_ptr<Fetch> net;  // once passed to the network
  // Waiting for blocks another element claims (the reads thread's own):
  // since when without a new block written, and how many were held then.
  Clock::time_point waiting_since{};
  size_t held_then = 0;
  bool waited_enough = false;  // it waited in vain: it goes to the network
  int64_t claim = 0;           // its claim while at the network (the store's id)
  // Served from disk (the reads thread's own):
  int64_t entry = 0;
  uint64_t pos = 0, end = 0;
  uint64_t read_ahead_to = 0;  // asked of the kernel up to here
  std::vector<uint8_t> block;
  uint64_t loaded = UINT64_MAX;  // the block in `block`
};

class DiskOrigin::Impl : public std::enable_shared_from_this<Impl> {
 public:
  enum class Validity { kNone, kStale, kValid, kOffline };

  Impl(std::shared_ptr<Origin> network, std::shared_ptr<DiskStore> store, DiskOriginOptions opt,
       Logger log, Warn warn)
      : network(std::move(network)),
        store(std::move(store)),
        opt(std::move(opt)),
        log(std::move(log)),
        owner(next_owner()),
        warn_(std::move(warn)) {}

  void run_threads() {
    load_entry();
    write_clock_start = Clock::now();
    reads_thread = std::thread([this] { reads_loop(); });
    writes_thread = std::thread([this] { writes_loop(); });
  }
  void stop_threads();

  // ---- the entry ----
  void load_entry();
  bool usable(uint64_t begin) const;  // mu held
  // What a network answer says for the entry (the I/O thread): whether
  // its blocks are to be kept, and under which generation.
  bool on_answer(const ResponseHead& head, const RangeRequest& req, bool conditional,
                 uint64_t* gen);
  void on_not_modified(const ResponseHead& head);
  bool go_offline(const std::shared_ptr<CacheFetch>& f);
  void validation_over();  // mu held

  // ---- the reads thread ----
  void reads_loop();
  void decide(const std::shared_ptr<CacheFetch>& f);
  void forward(const std::shared_ptr<CacheFetch>& f, bool conditional, uint64_t bound = 0);
  bool start_disk(const std::shared_ptr<CacheFetch>& f, int64_t id,
                  const std::vector<uint64_t>& held);
  void step(const std::shared_ptr<CacheFetch>& f);
  void end(const std::shared_ptr<CacheFetch>& f, const Error* e);
  bool load_block(CacheFetch& f, uint64_t index, uint64_t size);
  void queue_decide(std::shared_ptr<CacheFetch> f);
  int64_t adopt_entry();
  void release_claim(int64_t claim);
  bool off_now();
  bool still_waiting(const std::shared_ptr<CacheFetch>& f, size_t held);

  // ---- the writes thread ----
  struct Task {
    enum Kind { kPut, kRefresh, kDrop, kBlock, kRelease } kind;
    explicit Task(Kind kind, uint64_t gen = 0) : kind(kind), gen(gen) {}
    uint64_t gen = 0;
    EntryMeta meta;  // kPut
    int64_t id = 0;  // kRefresh, kDrop; kRelease: the claim
    int64_t fresh_until = 0;
    uint64_t index = 0;  // kBlock
    BlockRef block;

    static Task drop(int64_t id) {
      Task t{kDrop};
      t.id = id;
      return t;
    }
    static Task refresh(int64_t id, int64_t fresh_until) {
      Task t{kRefresh};
      t.id = id;
      t.fresh_until = fresh_until;
      return t;
    }
  };
  void writes_loop();
  void write_block(Task& t, int64_t id);
  void queue_block(uint64_t gen, uint64_t index, BlockRef&& block);
  bool may_queue(uint64_t index);
  bool over_share() const;  // mu held
  void warn_once(const std::string& kind, const std::string& message);

  const std::shared_ptr<Origin> network;
  const std::shared_ptr<DiskStore> store;
  const DiskOriginOptions opt;
  Logger log;

  mutable std::mutex mu;
  std::condition_variable reads_cv, writes_cv, idle_cv;
  std::optional<Entry> entry;  // the entry in use (its blocks: the store's)
  Validity validity = Validity::kNone;
  bool validating = false;           // a revalidation is out; new requests wait for it
  bool off = false;                  // the disk failed: the network serves everything
  bool full = false;                 // no room left: blocks are no longer written
  uint64_t gen = 0;                  // bumps when a new entry is made (its blocks' tag)
  uint64_t entry_gen = 0;            // the generation of `entry` (0: found at the start)
  std::optional<EntryMeta> pending;  // an entry being made (generation `gen`)
  std::unique_ptr<DiskStore::Pin> pin;
  std::deque<std::shared_ptr<CacheFetch>> to_decide;
  std::vector<std::shared_ptr<CacheFetch>> waiting;        // for a revalidation
  std::vector<std::shared_ptr<CacheFetch>> claim_waiting;  // for another element's blocks
  std::string owner;  // this element's name in claims: "<pid>/<n>"
  std::vector<std::shared_ptr<CacheFetch>> serving;
  std::deque<Task> writes;
  bool writing = false;
  unsigned queued_blocks = 0;
  std::vector<std::string> warned;
  DiskStats stats;
  bool stop = false;
  std::thread reads_thread, writes_thread;
  // When the tier started, and the processor time the writes thread spent
  // writing since (its own clock: not the time it waited for the disk or
  // for a processor). Under mu.
  Clock::time_point write_clock_start{};
  std::chrono::duration<double> writing_time{0};
  // Whether another element plays the same resource (kOthersCheck): it
  // waits for the blocks this one claims, so all are written. Under mu;
  // when it was last looked at: the writes thread's own.
  bool others_playing = false;
  Clock::time_point others_checked{};

 private:
  Warn warn_;
};

// The listener of a request passed to the network (disk_writes.cc).
std::shared_ptr<FetchListener> make_tee(std::shared_ptr<DiskOrigin::Impl> impl,
                                        std::shared_ptr<CacheFetch> f, bool conditional);

}  // namespace prefetch
