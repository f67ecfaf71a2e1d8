// The disk tier's reads thread (disk_origin_impl.h): which requests the
// disk answers and which go to the network, the waits for blocks another
// element fetches, and serving a held run of blocks.
#include <glib.h>

#include <algorithm>
#include <cinttypes>
#include <cstring>
#include <utility>

#include "disk_origin_impl.h"
#include "prefetch/cache_freshness.h"
#include "prefetch/http_parse.h"

namespace prefetch {

namespace {

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

// The first block after `index` where a run of held blocks worth stopping
// a network request for begins (kMinHeldRun, or one that reaches the last
// of `blocks`; with `blocks` 0, not known, any run); 0 if none. `held` is
// sorted.
uint64_t next_long_run(const std::vector<uint64_t>& held, uint64_t index, uint64_t blocks) {
  auto it = std::upper_bound(held.begin(), held.end(), index);
  while (it != held.end()) {
    auto run_end = it + 1;
    while (run_end != held.end() && *run_end == *(run_end - 1) + 1) ++run_end;
    const uint64_t length = static_cast<uint64_t>(run_end - it);
    if (length >= kMinHeldRun || *(run_end - 1) + 1 >= blocks) return *it;
    it = run_end;
  }
  return 0;
}

}  // namespace

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
  for (auto& f : left) f->done(&e);
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
    f->done(&e);
    return;
  }
  if (!id && !f->req.whole) id = adopt_entry();
  // The blocks held: from the first one a request goes to the disk; short
  // of it, only up to the next long run of them goes to the network.
  std::vector<uint64_t> held;
  uint64_t blocks = 0;
  if (id) {
    held = store->held_blocks(id);
    std::lock_guard<std::mutex> lock(mu);
    if (entry && entry->id == id) blocks = entry->block_count();
  }
  const bool begin_held = std::binary_search(held.begin(), held.end(), index);
  uint64_t bound = next_long_run(held, index, blocks) * opt.block_size;
  if (begin_held && !conditional && start_disk(f, id, held)) return;
  int64_t claim = 0;
  if (!begin_held && !f->req.whole && !off_now()) {
    // Blocks another element fetches are waited for, not fetched again,
    // while that one makes progress; this request stops short of them.
    const uint64_t bs = opt.block_size;
    uint64_t end = bound ? bound / bs : UINT64_MAX;
    if (f->req.end) end = std::min(end, (*f->req.end + bs - 1) / bs);
    claim = store->claim(opt.key, owner, index, end, &end);
    if (claim > 0) {
      if (end != UINT64_MAX) bound = end * bs;
    } else if (claim == 0 && !f->waited_enough && still_waiting(f, held.size())) {
      std::lock_guard<std::mutex> lock(mu);
      claim_waiting.push_back(f);
      return;
    }
  }
  // A claim the index could not take (a full disk, say) is not another's:
  // the request goes out unclaimed.
  f->claim = std::max<int64_t>(claim, 0);
  forward(f, begin_held && conditional, bound);
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
  f->net = network->start(r, make_tee(shared_from_this(), f, conditional));
}

// `held`: the blocks entry `id` holds, as decide() just read them.
bool DiskOrigin::Impl::start_disk(const std::shared_ptr<CacheFetch>& f, int64_t id,
                                  const std::vector<uint64_t>& held) {
  std::optional<Entry> e;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!usable(f->req.begin) || entry->id != id) return false;
    e = entry;
  }
  const uint64_t bs = opt.block_size;
  const uint64_t size = e->meta.size;
  const uint64_t want_end = std::min(f->req.end.value_or(size), size);
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
    f->done(&c);
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
  // The next blocks of the run being served, read ahead while this one is.
  const uint64_t ahead = (index + 1) * bs;
  if (ahead + kReadAheadBlocks * bs > f.read_ahead_to && ahead < f.end) {
    const uint64_t from = std::max(ahead, f.read_ahead_to);
    f.read_ahead_to = std::min(f.end, ahead + 2 * kReadAheadBlocks * bs);
    if (f.read_ahead_to > from) store->read_ahead(f.entry, from, f.read_ahead_to - from);
  }
  return true;
}

void DiskOrigin::Impl::end(const std::shared_ptr<CacheFetch>& f, const Error* e) {
  {
    std::lock_guard<std::mutex> lock(mu);
    serving.erase(std::remove(serving.begin(), serving.end(), f), serving.end());
  }
  f->block = std::vector<uint8_t>();
  f->done(e);
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
  const uint64_t loaded_begin = f->loaded * bs;
  const uint64_t block_end = loaded_begin + f->block.size();
  const size_t n =
      static_cast<size_t>(std::min<uint64_t>({length, block_end - f->pos, f->end - f->pos}));
  std::memcpy(area, f->block.data() + (f->pos - loaded_begin), n);
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

}  // namespace prefetch
