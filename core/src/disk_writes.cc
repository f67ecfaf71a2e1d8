// The disk tier's writes (disk_origin_impl.h): a network answer teed on its
// way to the engine, and the writes thread that stores its whole blocks.
#include <glib.h>

#include <algorithm>
#include <cinttypes>
#include <cstring>
#include <ctime>
#include <utility>

#include "disk_origin_impl.h"
#include "prefetch/cache_freshness.h"
#include "prefetch/http_parse.h"

namespace prefetch {

namespace {

// No answer at all for a network reason: the origin may simply be out of
// reach, so the disk's copy may stand in.
bool network_failure(const Error* e) {
  return e && e->http_status == 0 && e->kind != ErrorKind::kCancelled &&
         (e->kind == ErrorKind::kOpenRead || e->transient);
}

// The calling thread's processor time (user and system).
std::chrono::duration<double> thread_cpu_time() {
  struct timespec ts {};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::duration<double>(static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9);
}

}  // namespace

// ---- a network answer, teed ----

// Passes a network fetch's callbacks on, hands the whole blocks its body
// brings to the writes queue (held where the engine put them, not copied),
// and turns a 304 (or no answer, offline) to the disk.
class Tee : public FetchListener {
 public:
  Tee(std::shared_ptr<DiskOrigin::Impl> impl, std::shared_ptr<CacheFetch> f, bool conditional)
      : impl_(std::move(impl)), f_(std::move(f)), conditional_(conditional) {}

  void on_sent(const SentInfo& info) override { f_->listener->on_sent(info); }
  bool on_head(const ResponseHead& head) override {
    head_seen_ = true;
    if (conditional_ && head.status == 304) {
      impl_->on_not_modified(head);
      to_disk_ = true;
      return false;
    }
    keep_ = impl_->on_answer(head, f_->req, conditional_, &gen_);
    body_pos_ = head.status == 206 && head.has_range ? head.first : 0;
    if (keep_)
      size_ = head.status == 206 ? head.total.value_or(0) : head.content_length.value_or(0);
    return f_->listener->on_head(head);
  }
  uint8_t* write_area(size_t* length) override {
    area_ = f_->listener->write_area(length);
    return area_;
  }
  void on_data(size_t n) override {
    if (keep_) stage(area_, n);
    body_pos_ += n;
    f_->listener->on_data(n);
  }
  void on_done(const Error* error) override {
    if (f_->claim) impl_->release_claim(std::exchange(f_->claim, 0));
    {
      // Done with the network (a cancel from now on has nothing to reach).
      std::lock_guard<std::mutex> lock(impl_->mu);
      f_->net.reset();
    }
    if (to_disk_ ||
        (!head_seen_ && conditional_ && network_failure(error) && impl_->go_offline(f_))) {
      std::lock_guard<std::mutex> lock(impl_->mu);
      impl_->queue_decide(f_);
      return;
    }
    if (!head_seen_ && conditional_) {
      std::lock_guard<std::mutex> lock(impl_->mu);
      impl_->validation_over();
    }
    f_->done(error);
  }

 private:
  void stage(const uint8_t* data, size_t n) {
    const uint64_t bs = impl_->opt.block_size;
    uint64_t pos = body_pos_;
    while (n > 0 && pos < size_) {
      const uint64_t index = pos / bs;
      const uint64_t begin = index * bs;
      const size_t length = static_cast<size_t>(std::min(bs, size_ - begin));
      if (staged_index_ != index) {
        staged_index_ = index;
        staged_ = 0;
        block_ = BlockRef();
        // A body that starts inside a block cannot give it whole. (An area
        // never crosses a block's end, so this one is the block's start.)
        if (pos == begin && impl_->may_queue(index)) {
          if (auto keeper = f_->listener->area_keeper()) block_ = {keeper, data, length};
        }
      }
      const size_t take = static_cast<size_t>(std::min<uint64_t>(n, begin + length - pos));
      // The block's bytes must be one run from its start: inside the buffer
      // held (no other can be where it is), and written by this answer. An
      // area elsewhere (the engine dropped the block and made it again, or
      // another request filled part of it) is not written.
      if (block_.keeper && data != block_.data + staged_) block_ = BlockRef();
      if (block_.keeper) {
        staged_ += take;
        if (staged_ == length) impl_->queue_block(gen_, index, std::move(block_));
      }
      data += take;
      n -= take;
      pos += take;
    }
  }

  std::shared_ptr<DiskOrigin::Impl> impl_;
  std::shared_ptr<CacheFetch> f_;
  const bool conditional_;
  bool head_seen_ = false;
  bool to_disk_ = false;
  bool keep_ = false;
  uint64_t gen_ = 0;
  uint64_t size_ = 0;
  uint64_t body_pos_ = 0;
  uint8_t* area_ = nullptr;
  uint64_t staged_index_ = UINT64_MAX;
  size_t staged_ = 0;
  BlockRef block_;
};

std::shared_ptr<FetchListener> make_tee(std::shared_ptr<DiskOrigin::Impl> impl,
                                        std::shared_ptr<CacheFetch> f, bool conditional) {
  return std::make_shared<Tee>(std::move(impl), std::move(f), conditional);
}

// A network fetch ended (any thread): its claim goes, off this thread.
void DiskOrigin::Impl::release_claim(int64_t claim) {
  std::lock_guard<std::mutex> lock(mu);
  Task t{Task::kRelease};
  t.id = claim;
  writes.push_back(std::move(t));
  writes_cv.notify_all();
}

// ---- the writes thread ----

// Whether writing has had its share of a processor (write_block), while no
// other element waits for our blocks.
bool DiskOrigin::Impl::over_share() const {
  return !others_playing &&
         writing_time > opt.write_share * (Clock::now() - write_clock_start) + kWriteBurst;
}

// Whether a block starting to arrive from the network is to be kept for
// the disk: not when the queue is full or writing has had its share.
bool DiskOrigin::Impl::may_queue(uint64_t index) {
  std::lock_guard<std::mutex> lock(mu);
  if (off || full) return false;
  const bool queue_full = queued_blocks >= opt.max_queued_blocks;
  if (!queue_full && !over_share()) return true;
  ++stats.blocks_dropped;
  log(LogLevel::kDebug, "block %" PRIu64 " from the origin, not written: %s", index,
      queue_full ? "the queue is full" : "writing has had its share of a processor");
  return false;
}

void DiskOrigin::Impl::queue_block(uint64_t g, uint64_t index, BlockRef&& block) {
  BlockRef unused;  // let go of outside the lock: it goes back to the engine's pool
  std::lock_guard<std::mutex> lock(mu);
  if (off || full || g != gen || queued_blocks >= opt.max_queued_blocks) {
    if (!off && !full) ++stats.blocks_dropped;
    unused = std::move(block);
    return;
  }
  ++queued_blocks;
  Task t{Task::kBlock, g};
  t.index = index;
  t.block = std::move(block);
  writes.push_back(std::move(t));
  writes_cv.notify_all();
}

void DiskOrigin::Impl::writes_loop() {
  // Writing must not slow the play down: the thread spends at most a share
  // of one processor's time writing (its own processor time: a write that
  // waits for the disk, or for a processor on a busy machine, costs the play
  // nothing). Blocks past that share are dropped, fetched again next time.
  // Only a fast origin reaches it (over loopback a block's checksum, system
  // calls and row take about as long as its arrival): from a slow one, the
  // one a cache is for, every block is written, however slow the disk or
  // busy the machine, as long as the queue holds them. The thread runs at
  // normal priority: a lower one starves it on a machine busy with other
  // work (two busy loops on two cores kept 218 of 256 blocks at nice 5).
  // Others playing this resource may wait for what this element fetches:
  // they find it announced, and it finds them (write_block).
  if (!off_now()) store->announce(opt.key, owner);
  std::unique_lock<std::mutex> lock(mu);
  for (;;) {
    writes_cv.wait(lock, [&] { return stop || !writes.empty(); });
    if (writes.empty()) break;  // stopped, and all is written
    Task t = std::move(writes.front());
    writes.pop_front();
    writing = true;
    const bool disabled = off;
    // A block is written into the entry of its generation, if that is
    // still the one in use.
    const int64_t id = entry && entry_gen == t.gen ? entry->id : 0;
    lock.unlock();
    std::string error;
    if (!disabled) {
      switch (t.kind) {
        case Task::kPut: {
          std::optional<Entry> e = store->put(t.meta, &error);
          std::unique_ptr<DiskStore::Pin> p = e ? store->pin(e->id) : nullptr;
          lock.lock();
          if (!e) {
            off = true;
          } else if (t.gen == gen) {
            pending.reset();
            entry_gen = t.gen;
            entry = std::move(e);
            pin = std::move(p);
            validity = Validity::kValid;
          }
          lock.unlock();
          if (!error.empty() || (!e))
            warn_once("disk", "The disk cache could not record an entry (" + error +
                                  "): playing from the network only");
          break;
        }
        case Task::kRefresh:
          store->refresh(t.id, t.fresh_until);
          break;
        case Task::kDrop:
          store->drop(t.id);
          break;
        case Task::kBlock:
          if (id) write_block(t, id);
          break;
        case Task::kRelease:
          store->release(t.id);
          break;
      }
    }
    t.block = BlockRef();  // back to the engine's pool, outside the lock
    if (!disabled) store->checkpoint();
    lock.lock();
    if (t.kind == Task::kBlock) --queued_blocks;
    writing = false;
    idle_cv.notify_all();
  }
}

void DiskOrigin::Impl::write_block(Task& t, int64_t id) {
  const Clock::time_point begin = Clock::now();
  if (begin - others_checked >= kOthersCheck) {
    others_checked = begin;
    const bool others = !store->claims(opt.key, owner).empty();
    std::lock_guard<std::mutex> lock(mu);
    others_playing = others;
  }
  if (std::lock_guard<std::mutex> lock(mu); over_share()) {
    ++stats.blocks_dropped;
    log(LogLevel::kDebug, "block %" PRIu64 " not written: writing has had its share of a processor",
        t.index);
    return;
  }
  std::string error;
  const std::chrono::duration<double> cpu_begin = thread_cpu_time();
  const BlockWrite w = store->write(id, t.index, t.block.data, t.block.size, &error);
  const std::chrono::duration<double> took = thread_cpu_time() - cpu_begin;
  std::unique_lock<std::mutex> lock(mu);
  writing_time += took;
  switch (w) {
    case BlockWrite::kWritten:
      ++stats.blocks_written;
      stats.bytes_written += t.block.size;
      log(LogLevel::kDebug, "block %" PRIu64 " written to disk", t.index);
      return;
    case BlockWrite::kHeld:
    case BlockWrite::kGone:
      log(LogLevel::kDebug, "block %" PRIu64 " not written: %s", t.index,
          w == BlockWrite::kHeld ? "held already" : "its entry is gone");
      return;
    case BlockWrite::kNoRoom:
      full = true;
      lock.unlock();
      warn_once("full", "The disk cache is full (at most " + std::to_string(store->max_bytes()) +
                            " bytes, the rest in use): the rest of " + opt.key + " is not kept");
      return;
    case BlockWrite::kFailed:
      off = true;
      lock.unlock();
      warn_once("disk",
                "The disk cache could not write (" + error + "): playing from the network only");
      return;
  }
}

}  // namespace prefetch
