// DiskOrigin (disk_origin.h): which requests the disk answers, how a stale
// entry is revalidated, and the two threads that read and write the disk.
#include "prefetch/disk_origin.h"

#include <glib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "prefetch/cache_freshness.h"
#include "prefetch/http_parse.h"

namespace prefetch {

namespace {

using Clock = std::chrono::steady_clock;

int64_t unix_now() { return g_get_real_time() / G_USEC_PER_SEC; }

// How long a request waits for blocks another element fetches while none
// of them is written: past it, that element is taken to have stopped (its
// reader paused, say) and the request goes to the network.
constexpr std::chrono::seconds kClaimPatience{2};

// The writes thread's burst beyond its share of the time
// (DiskOriginOptions::write_share).
constexpr std::chrono::milliseconds kWriteBurst{100};

// The calling thread's CPU time so far.
std::chrono::duration<double> thread_cpu_time() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::duration<double>(static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9);
}

// Names this element's claims: the process, and a number of its own.
std::string next_owner() {
  static std::atomic<uint64_t> n{0};
  return std::to_string(getpid()) + "/" + std::to_string(++n);
}

std::string serialize(const HttpHeaders& headers) {
  std::string out;
  for (const auto& [name, value] : headers) out += name + ": " + value + "\n";
  return out;
}

HttpHeaders parse_headers(const std::string& text) {
  HttpHeaders out;
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = text.substr(at, nl - at);
    const size_t colon = line.find(": ");
    if (colon != std::string::npos) out.emplace_back(line.substr(0, colon), line.substr(colon + 2));
    at = nl + 1;
  }
  return out;
}

// Whether an answer's validators are the entry's, compared like with like:
// a strong ETag with the ETag, else Last-Modified; with neither in common
// the answer cannot show it is the same resource.
bool same_validators(const EntryMeta& e, const std::string& strong_etag,
                     const std::string& last_modified) {
  if (!e.etag.empty() && !strong_etag.empty()) return e.etag == strong_etag;
  if (!e.last_modified.empty() && !last_modified.empty())
    return e.etag.empty() && strong_etag.empty() && e.last_modified == last_modified;
  return false;
}

// No answer at all for a network reason: the origin may simply be out of
// reach, so the disk's copy may stand in.
bool network_failure(const Error* e) {
  return e && e->http_status == 0 && e->kind != ErrorKind::kCancelled &&
         (e->kind == ErrorKind::kOpenRead || e->transient);
}

}  // namespace

// A block's bytes on their way to the disk: reused, never zero-filled.
struct BlockBytes {
  std::unique_ptr<uint8_t[]> data;
  size_t capacity = 0;
  size_t size = 0;
  bool empty() const { return !data; }
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
  const std::shared_ptr<FetchListener> listener;
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
  std::vector<uint8_t> block;
  uint64_t loaded = UINT64_MAX;  // the block in `block`
  uint64_t loaded_begin = 0;
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
  bool start_disk(const std::shared_ptr<CacheFetch>& f);
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
    BlockBytes bytes;

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
  void queue_block(uint64_t gen, uint64_t index, BlockBytes&& bytes);
  BlockBytes spare_buffer(uint64_t index, size_t n);
  void keep_spare(BlockBytes&& b);  // mu held
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
  std::vector<BlockBytes> spares;
  std::vector<std::string> warned;
  DiskStats stats;
  bool stop = false;
  std::thread reads_thread, writes_thread;
  // The writes thread's own: when it started, and the CPU time it spent
  // writing since (CPU, not wall time: a disk busy with others makes a
  // write take longer, not cost the play more).
  Clock::time_point write_clock_start{};
  std::chrono::duration<double> writing_time{0};

 private:
  Warn warn_;
};

// ---- the fetch handle ----

void CacheFetch::cancel() {
  std::shared_ptr<DiskOrigin::Impl> impl = impl_.lock();
  if (!impl) return;
  std::lock_guard<std::mutex> lock(impl->mu);
  cancelled = true;
  if (net) net->cancel();
  impl->reads_cv.notify_all();
}

void CacheFetch::resume() {
  std::shared_ptr<DiskOrigin::Impl> impl = impl_.lock();
  if (!impl) return;
  std::lock_guard<std::mutex> lock(impl->mu);
  paused = false;
  if (net) net->resume();
  impl->reads_cv.notify_all();
}

// ---- a network answer, teed ----

// Passes a network fetch's callbacks on, copies the whole blocks its body
// brings to the writes queue, and turns a 304 (or no answer, offline) to
// the disk.
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
    if (keep_) stage(area_, n);  // before the engine may reuse the area
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
    f_->listener->on_done(error);
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
        // A body that starts inside a block cannot give it whole.
        buffer_ = pos == begin ? impl_->spare_buffer(index, length) : BlockBytes();
      }
      const size_t take = static_cast<size_t>(std::min<uint64_t>(n, begin + length - pos));
      if (!buffer_.empty()) {
        std::memcpy(buffer_.data.get() + staged_, data, take);
        staged_ += take;
        if (staged_ == length) impl_->queue_block(gen_, index, std::move(buffer_));
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
  BlockBytes buffer_;
};

// ---- the entry ----

void DiskOrigin::Impl::load_entry() {
  std::optional<Entry> e = store->find(opt.key);
  std::lock_guard<std::mutex> lock(mu);
  if (!e || e->meta.block_size != opt.block_size) return;  // replaced by the first answer
  entry = std::move(e);
  pin = store->pin(entry->id);
  validity = entry->meta.fresh_until > unix_now() ? Validity::kValid : Validity::kStale;
  log(LogLevel::kInfo, "disk cache: %" PRIu64 " of %" PRIu64 " blocks held, %s", entry->blocks_held,
      entry->block_count(), validity == Validity::kValid ? "fresh" : "stale: revalidated first");
}

bool DiskOrigin::Impl::usable(uint64_t begin) const {
  return !off && entry && begin < entry->meta.size &&
         (validity == Validity::kValid || validity == Validity::kOffline);
}

bool DiskOrigin::Impl::on_answer(const ResponseHead& head, const RangeRequest& req,
                                 bool conditional, uint64_t* out_gen) {
  const int64_t now = unix_now();
  const CacheVerdict v =
      cache_verdict(head.response_headers, head.status, opt.with_credentials, now);
  const std::string etag = is_weak_etag(head.etag) ? "" : head.etag;
  std::optional<uint64_t> size;
  if (head.status == 206 && head.has_range) size = head.total;
  if (head.status == 200) size = head.content_length;
  const bool identity = head.content_encoding.empty() && !req.whole;
  std::lock_guard<std::mutex> lock(mu);
  if (off) return false;
  const bool was_validating = validating;
  validation_over();
  if (head.status != 200 && head.status != 206) {
    if (entry && (head.status == 404 || head.status == 410)) {
      writes.push_back(Task::drop(entry->id));
      writes_cv.notify_all();
      entry.reset();
      pin.reset();
      validity = Validity::kNone;
    }
    return false;
  }
  if (pending && !entry) {
    // An answer that came while the entry its first one made is still
    // being recorded: the same resource keeps to it.
    if (size && *size == pending->size && same_validators(*pending, etag, head.last_modified)) {
      *out_gen = gen;
      return identity && !full && v.storable;
    }
    pending.reset();
  }
  if (entry) {
    const bool same =
        size && *size == entry->meta.size && same_validators(entry->meta, etag, head.last_modified);
    if (validity == Validity::kStale || conditional || was_validating) {
      if (!conditional) ++stats.revalidations;  // a conditional one counted when sent
      ++(same ? stats.not_modified : stats.changed);
      log(LogLevel::kInfo, "disk cache: revalidated, %s", same ? "unchanged" : "changed");
    }
    if (same && v.storable) {
      if (validity != Validity::kValid) {
        validity = Validity::kValid;
        writes.push_back(Task::refresh(entry->id, v.fresh_until));
        writes_cv.notify_all();
      }
      *out_gen = gen;
      return identity && !full;
    }
    if (!same) log(LogLevel::kInfo, "disk cache: the resource changed: its blocks are dropped");
    writes.push_back(Task::drop(entry->id));
    writes_cv.notify_all();
    entry.reset();
    pin.reset();
    validity = Validity::kNone;
  }
  if (!v.storable || !identity || !size || *size == 0 ||
      (v.strong_etag.empty() && v.last_modified.empty() && etag.empty() &&
       head.last_modified.empty() && v.fresh_until <= now))
    return false;
  EntryMeta meta;
  meta.key = opt.key;
  meta.final_url = head.uri;
  meta.size = *size;
  meta.block_size = opt.block_size;
  meta.etag = etag;
  meta.last_modified = head.last_modified;
  meta.fresh_until = v.fresh_until;
  meta.headers = serialize(head.response_headers);
  ++gen;
  pending = meta;
  Task put{Task::kPut, gen};
  put.meta = std::move(meta);
  writes.push_back(std::move(put));
  writes_cv.notify_all();
  *out_gen = gen;
  return true;
}

void DiskOrigin::Impl::on_not_modified(const ResponseHead& head) {
  const CacheVerdict v =
      cache_verdict(head.response_headers, 200, opt.with_credentials, unix_now());
  std::lock_guard<std::mutex> lock(mu);
  validation_over();
  ++stats.not_modified;
  if (!entry) return;
  log(LogLevel::kInfo, "disk cache: revalidated (304): the disk's copy is used");
  validity = Validity::kValid;
  writes.push_back(Task::refresh(entry->id, v.fresh_until));
  writes_cv.notify_all();
}

bool DiskOrigin::Impl::go_offline(const std::shared_ptr<CacheFetch>& f) {
  {
    std::lock_guard<std::mutex> lock(mu);
    validation_over();
    if (off || !entry || f->cancelled) return false;
    validity = Validity::kOffline;
    ++stats.offline;
  }
  warn_once("offline", "The origin could not be reached to revalidate the disk cache's copy of " +
                           opt.key + ": playing what the disk holds");
  return true;
}

void DiskOrigin::Impl::validation_over() {
  validating = false;
  for (auto& w : waiting) to_decide.push_back(std::move(w));
  waiting.clear();
  reads_cv.notify_all();
}

void DiskOrigin::Impl::warn_once(const std::string& kind, const std::string& message) {
  {
    std::lock_guard<std::mutex> lock(mu);
    if (std::find(warned.begin(), warned.end(), kind) != warned.end()) return;
    warned.push_back(kind);
  }
  log(LogLevel::kWarning, "disk cache: %s", message.c_str());
  if (warn_) warn_(message);
}

// ---- the reads thread ----

void DiskOrigin::Impl::queue_decide(std::shared_ptr<CacheFetch> f) {
  to_decide.push_back(std::move(f));
  reads_cv.notify_all();
}

void DiskOrigin::Impl::reads_loop() {
  std::unique_lock<std::mutex> lock(mu);
  size_t next = 0;  // round robin over the fetches served
  for (;;) {
    if (!to_decide.empty()) {
      std::shared_ptr<CacheFetch> f = std::move(to_decide.front());
      to_decide.pop_front();
      lock.unlock();
      decide(f);
      lock.lock();
      continue;
    }
    std::shared_ptr<CacheFetch> ready;
    for (size_t k = 0; k < serving.size() && !ready; ++k) {
      const auto& f = serving[(next + k) % serving.size()];
      if (f->cancelled || !f->paused) ready = f, next = (next + k + 1) % serving.size();
    }
    if (ready) {
      lock.unlock();
      step(ready);
      lock.lock();
      continue;
    }
    if (stop) break;
    if (claim_waiting.empty()) {
      reads_cv.wait(lock);
      continue;
    }
    // Another element's blocks are looked for every 20 ms (it may be in
    // another process: nothing here hears of its writes); a cancel wakes
    // the wait at once.
    reads_cv.wait_for(lock, std::chrono::milliseconds(20));
    for (auto& f : claim_waiting) to_decide.push_back(std::move(f));
    claim_waiting.clear();
  }
  // Nothing should be left: the engine ends its fetches before it lets go.
  std::vector<std::shared_ptr<CacheFetch>> left = std::move(serving);
  left.insert(left.end(), waiting.begin(), waiting.end());
  left.insert(left.end(), claim_waiting.begin(), claim_waiting.end());
  waiting.clear();
  claim_waiting.clear();
  lock.unlock();
  const Error e = make_error(ErrorKind::kCancelled, 0, "cancelled");
  for (auto& f : left) f->listener->on_done(&e);
}

void DiskOrigin::Impl::decide(const std::shared_ptr<CacheFetch>& f) {
  const uint64_t index = f->req.begin / opt.block_size;
  int64_t id = 0;
  bool conditional = false;
  bool cancelled = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    cancelled = f->cancelled;
    if (!cancelled && validating) {
      waiting.push_back(f);
      return;
    }
    if (!f->req.whole && !off && entry) id = entry->id;
    conditional = id && validity == Validity::kStale;
  }
  if (cancelled) {
    // Never passed on (or back from the network): no other callback came.
    const Error e = make_error(ErrorKind::kCancelled, 0, "cancelled");
    f->listener->on_done(&e);
    return;
  }
  if (!id && !f->req.whole) id = adopt_entry();
  // The blocks held: from the first one a request goes to the disk; short
  // of it, only up to the next held one goes to the network.
  std::vector<uint64_t> held;
  if (id) held = store->held_blocks(id);
  const bool begin_held = std::binary_search(held.begin(), held.end(), index);
  const auto next = std::upper_bound(held.begin(), held.end(), index);
  uint64_t bound = next == held.end() ? 0 : *next * opt.block_size;
  if (begin_held && !conditional && start_disk(f)) return;
  int64_t claim = 0;
  if (!begin_held && !f->req.whole && !off_now()) {
    // Blocks another element fetches are waited for, not fetched again,
    // while that one makes progress; this request stops short of them.
    const uint64_t bs = opt.block_size;
    uint64_t end = bound ? bound / bs : UINT64_MAX;
    if (f->req.end) end = std::min(end, (*f->req.end + bs - 1) / bs);
    claim = store->claim(opt.key, owner, index, end, &end);
    if (claim) {
      if (end != UINT64_MAX) bound = end * bs;
    } else if (!f->waited_enough && still_waiting(f, held.size())) {
      std::lock_guard<std::mutex> lock(mu);
      claim_waiting.push_back(f);
      return;
    }
  }
  f->claim = claim;
  forward(f, begin_held && conditional, bound);
}

// An entry another element made since this one started (it had none, or
// had to replace its own): its blocks were fetched moments ago, valid.
int64_t DiskOrigin::Impl::adopt_entry() {
  {
    std::lock_guard<std::mutex> lock(mu);
    if (off || entry || pending || validity != Validity::kNone) return 0;
  }
  std::optional<Entry> e = store->find(opt.key);
  if (!e || e->meta.block_size != opt.block_size) return 0;
  std::unique_ptr<DiskStore::Pin> p = store->pin(e->id);
  std::lock_guard<std::mutex> lock(mu);
  if (off || entry || pending || validity != Validity::kNone) return 0;
  log(LogLevel::kInfo, "disk cache: another element's entry is used (%" PRIu64 " blocks held)",
      e->blocks_held);
  entry = std::move(e);
  entry_gen = gen;
  pin = std::move(p);
  validity = Validity::kValid;
  return entry->id;
}

// A network fetch ended (any thread): its claim goes, off this thread.
void DiskOrigin::Impl::release_claim(int64_t claim) {
  std::lock_guard<std::mutex> lock(mu);
  Task t{Task::kRelease};
  t.id = claim;
  writes.push_back(std::move(t));
  writes_cv.notify_all();
}

bool DiskOrigin::Impl::off_now() {
  std::lock_guard<std::mutex> lock(mu);
  return off;
}

// Whether `f` should go on waiting for a claimed block: yes while blocks
// keep being written (`held` of them now), for kClaimPatience after the
// last one.
bool DiskOrigin::Impl::still_waiting(const std::shared_ptr<CacheFetch>& f, size_t held) {
  const Clock::time_point now = Clock::now();
  if (f->waiting_since == Clock::time_point{} || held > f->held_then) {
    f->waiting_since = now;
    f->held_then = held;
    log(LogLevel::kDebug, "disk cache: bytes %" PRIu64 "- wait for another element's fetch",
        f->req.begin);
    return true;
  }
  if (now - f->waiting_since < kClaimPatience) return true;
  log(LogLevel::kInfo,
      "disk cache: another element's fetch of bytes %" PRIu64 "- made no progress: fetched here",
      f->req.begin);
  f->waited_enough = true;
  return false;
}

void DiskOrigin::Impl::forward(const std::shared_ptr<CacheFetch>& f, bool conditional,
                               uint64_t bound) {
  RangeRequest r = f->req;
  if (bound > r.begin && !r.whole && (!r.end || *r.end > bound)) r.end = bound;
  std::lock_guard<std::mutex> lock(mu);
  if (conditional && entry) {
    if (!entry->meta.etag.empty())
      r.if_none_match = entry->meta.etag;
    else
      r.if_modified_since = entry->meta.last_modified;
    conditional = !r.if_none_match.empty() || !r.if_modified_since.empty();
  }
  if (conditional) {
    validating = true;
    ++stats.revalidations;
  }
  if (f->cancelled) {
    // Ended like any cancelled fetch, but from this thread, not under mu.
    to_decide.push_back(f);
    reads_cv.notify_all();
    if (conditional) validation_over();
    return;
  }
  log(LogLevel::kDebug, "disk cache: bytes %" PRIu64 "- from the origin%s", r.begin,
      conditional ? " (conditional: revalidates the entry)" : "");
  f->net = network->start(r, std::make_shared<Tee>(shared_from_this(), f, conditional));
}

bool DiskOrigin::Impl::start_disk(const std::shared_ptr<CacheFetch>& f) {
  std::optional<Entry> e;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!usable(f->req.begin)) return false;
    e = entry;
  }
  const uint64_t bs = opt.block_size;
  const uint64_t size = e->meta.size;
  const uint64_t want_end = std::min(f->req.end.value_or(size), size);
  const std::vector<uint64_t> held = store->held_blocks(e->id);
  uint64_t index = f->req.begin / bs;
  auto it = std::lower_bound(held.begin(), held.end(), index);
  uint64_t run_end = f->req.begin;
  while (it != held.end() && *it == index && run_end < want_end) {
    run_end = std::min((index + 1) * bs, want_end);
    ++index, ++it;
  }
  if (run_end <= f->req.begin) return false;
  f->entry = e->id;
  f->pos = f->req.begin;
  f->end = run_end;
  // The first block is read and checked before the answer is given: a
  // damaged one goes to the network instead.
  if (!load_block(*f, f->pos / bs, size)) return false;
  store->touch(f->entry);
  ResponseHead head;
  head.status = 206;
  head.has_range = true;
  head.first = f->pos;
  head.last = f->end - 1;
  head.total = size;
  head.content_length = f->end - f->pos;
  head.etag = e->meta.etag;
  head.last_modified = e->meta.last_modified;
  head.uri = e->meta.final_url;
  head.from_disk = true;
  head.response_headers = parse_headers(e->meta.headers);
  log(LogLevel::kDebug, "disk cache: bytes %" PRIu64 "-%" PRIu64 " from disk", f->pos, f->end - 1);
  if (!f->listener->on_head(head)) {
    const Error c = make_error(ErrorKind::kCancelled, 0, "cancelled");
    f->listener->on_done(&c);
    return true;
  }
  std::lock_guard<std::mutex> lock(mu);
  serving.push_back(f);
  return true;
}

// Reads block `index` of a resource of `size` bytes into `f`'s buffer and
// checks it; a block that fails (damaged, or gone) is counted and logged,
// and goes to the network.
bool DiskOrigin::Impl::load_block(CacheFetch& f, uint64_t index, uint64_t size) {
  const uint64_t bs = opt.block_size;
  const size_t length = static_cast<size_t>(std::min(bs, size - index * bs));
  f.block.resize(length);
  const BlockRead got = store->read(f.entry, index, f.block.data(), length);
  if (got != BlockRead::kOk) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (got == BlockRead::kDamaged) ++stats.blocks_damaged;
    }
    log(LogLevel::kWarning, "disk cache: block %" PRIu64 " %s: fetched from the origin", index,
        got == BlockRead::kDamaged ? "failed its checksum" : "is gone");
    return false;
  }
  f.loaded = index;
  f.loaded_begin = index * bs;
  return true;
}

void DiskOrigin::Impl::end(const std::shared_ptr<CacheFetch>& f, const Error* e) {
  {
    std::lock_guard<std::mutex> lock(mu);
    serving.erase(std::remove(serving.begin(), serving.end(), f), serving.end());
  }
  f->block = std::vector<uint8_t>();
  f->listener->on_done(e);
}

void DiskOrigin::Impl::step(const std::shared_ptr<CacheFetch>& f) {
  bool cancelled = false;
  uint64_t total = f->end;
  {
    std::lock_guard<std::mutex> lock(mu);
    cancelled = f->cancelled;
    if (entry && entry->id == f->entry) total = entry->meta.size;
  }
  if (cancelled) {
    const Error c = make_error(ErrorKind::kCancelled, 0, "cancelled");
    return end(f, &c);
  }
  if (f->pos >= f->end) return end(f, nullptr);
  const uint64_t bs = opt.block_size;
  const uint64_t index = f->pos / bs;
  if (f->loaded != index && !load_block(*f, index, total)) {
    // Short of what the answer promised: the engine asks again from here.
    const Error e = make_error(ErrorKind::kRead, 0, "The disk cache lost a block", true);
    return end(f, &e);
  }
  size_t length = 0;
  uint8_t* area = f->listener->write_area(&length);
  if (length == 0) {
    std::lock_guard<std::mutex> lock(mu);
    f->paused = true;  // until resume()
    return;
  }
  const uint64_t block_end = f->loaded_begin + f->block.size();
  const size_t n =
      static_cast<size_t>(std::min<uint64_t>({length, block_end - f->pos, f->end - f->pos}));
  std::memcpy(area, f->block.data() + (f->pos - f->loaded_begin), n);
  f->pos += n;
  if (f->pos == block_end || f->pos == f->end) {
    std::lock_guard<std::mutex> lock(mu);
    ++stats.blocks_read;
    log(LogLevel::kDebug, "block %" PRIu64 " from disk", index);
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stats.bytes_read += n;
  }
  f->listener->on_data(n);
}

// ---- the writes thread ----

// Where a block from the network is copied for the disk: none when the
// queue is full (the block is not written; it costs no copy either).
BlockBytes DiskOrigin::Impl::spare_buffer(uint64_t index, size_t n) {
  BlockBytes b;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (off || full) return b;
    if (queued_blocks >= opt.max_queued_blocks) {
      ++stats.blocks_dropped;
      log(LogLevel::kDebug, "block %" PRIu64 " from the origin, not written: the queue is full",
          index);
      return b;
    }
    if (!spares.empty()) {
      b = std::move(spares.back());
      spares.pop_back();
    }
  }
  if (b.capacity < n) {
    b.data.reset(new uint8_t[n]);
    b.capacity = n;
  }
  b.size = n;
  return b;
}

void DiskOrigin::Impl::keep_spare(BlockBytes&& b) {
  if (spares.size() < opt.max_queued_blocks) spares.push_back(std::move(b));
}

void DiskOrigin::Impl::queue_block(uint64_t g, uint64_t index, BlockBytes&& bytes) {
  std::lock_guard<std::mutex> lock(mu);
  if (off || full || g != gen || queued_blocks >= opt.max_queued_blocks) {
    if (!off && !full) ++stats.blocks_dropped;
    keep_spare(std::move(bytes));
    return;
  }
  ++queued_blocks;
  Task t{Task::kBlock, g};
  t.index = index;
  t.bytes = std::move(bytes);
  writes.push_back(std::move(t));
  writes_cv.notify_all();
}

void DiskOrigin::Impl::writes_loop() {
  // Writing must not slow the play down: the thread runs at a low CPU
  // priority (nice 10, not the idle class: an idle-class writer starves on
  // a busy machine, and another element waiting for its blocks with it),
  // and spends at most a share of the time writing (the page cache's copy
  // and the kernel's writeback cost a fast play its pace even from an idle
  // thread). Blocks past that share are dropped, fetched again next time:
  // on a fast origin that matters little, and on a slow one writing takes
  // a sliver of the play.
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
  write_clock_start = Clock::now();
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
    lock.lock();
    if (t.kind == Task::kBlock) {
      --queued_blocks;
      keep_spare(std::move(t.bytes));
    }
    writing = false;
    idle_cv.notify_all();
  }
}

void DiskOrigin::Impl::write_block(Task& t, int64_t id) {
  const std::chrono::duration<double> begin = thread_cpu_time();
  if (writing_time > opt.write_share * (Clock::now() - write_clock_start) + kWriteBurst) {
    std::lock_guard<std::mutex> lock(mu);
    ++stats.blocks_dropped;
    log(LogLevel::kDebug, "block %" PRIu64 " not written: writing has had its share of the time",
        t.index);
    return;
  }
  std::string error;
  const BlockWrite w = store->write(id, t.index, t.bytes.data.get(), t.bytes.size, &error);
  writing_time += thread_cpu_time() - begin;
  std::unique_lock<std::mutex> lock(mu);
  switch (w) {
    case BlockWrite::kWritten:
      ++stats.blocks_written;
      stats.bytes_written += t.bytes.size;
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

void DiskOrigin::Impl::stop_threads() {
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }
  reads_cv.notify_all();
  writes_cv.notify_all();
  if (reads_thread.joinable()) reads_thread.join();
  if (writes_thread.joinable()) writes_thread.join();
  store->release_all(owner);
}

// ---- DiskOrigin ----

DiskOrigin::DiskOrigin(std::shared_ptr<Origin> network, std::shared_ptr<DiskStore> store,
                       DiskOriginOptions options, Logger logger, Warn warn)
    : impl_(std::make_shared<Impl>(std::move(network), std::move(store), std::move(options),
                                   std::move(logger), std::move(warn))) {
  impl_->run_threads();
}

DiskOrigin::~DiskOrigin() { impl_->stop_threads(); }

std::shared_ptr<Fetch> DiskOrigin::start(const RangeRequest& request,
                                         std::shared_ptr<FetchListener> listener) {
  auto f = std::make_shared<CacheFetch>(impl_, request, std::move(listener));
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->queue_decide(f);
  return f;
}

void DiskOrigin::post(std::function<void()> fn) { impl_->network->post(std::move(fn)); }

bool DiskOrigin::may_multiplex() const { return impl_->network->may_multiplex(); }

DiskStats DiskOrigin::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

void DiskOrigin::flush() {
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->idle_cv.wait(lock, [&] { return impl_->writes.empty() && !impl_->writing; });
}

}  // namespace prefetch
