// DiskOrigin (disk_origin.h): its public face, the fetch handle, and the
// entry: loaded, made from an answer, revalidated, dropped, or adopted from
// another element; the threads' start and stop.
#include "prefetch/disk_origin.h"

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

int64_t unix_now() { return g_get_real_time() / G_USEC_PER_SEC; }

std::string serialize(const HttpHeaders& headers) {
  std::string out;
  for (const auto& [name, value] : headers) out += name + ": " + value + "\n";
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

}  // namespace

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

bool DiskOrigin::Impl::off_now() {
  std::lock_guard<std::mutex> lock(mu);
  return off;
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
