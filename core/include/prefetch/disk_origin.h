// DiskOrigin: the disk tier, as an Origin in front of the network one.
//
//   engine --start(range)--> DiskOrigin --held, and valid?--> disk (reads thread)
//                                  \----otherwise---------> network Origin
//                                          body bytes teed --> writes thread --> DiskStore
//
// A request whose first block the store holds, for an entry that is fresh
// or was revalidated this session, is answered from disk: a 206 for the run
// of held blocks from there (ResponseHead::from_disk), so the engine asks
// again for what follows as it does for any short answer. Everything else
// goes to the network origin, and the blocks its answers bring whole are
// handed to the writes thread (held in the engine's buffers), which stores
// them; one not stored in time (the queue is full, or writing has had its
// share of a processor) is fetched again next time. Nothing here runs on
// the engine's or the I/O thread's time beyond a queue push.
//
// Validation (RFC 9111, cache_freshness.h): a stale entry is revalidated by
// the first request that must go out: on a held block a conditional one
// (If-None-Match, else If-Modified-Since; 304: use the disk), elsewhere the
// plain request, whose answer's validators are compared with the entry's.
// Validators that differ drop the entry. A revalidation that fails for a
// network reason (no answer: refused, timed out) uses what the disk holds,
// with a warning; the rest comes from the network, or fails there.
//
// A disk that fails (cannot write, full, a broken index) turns the tier off
// with one warning: the network serves everything, as without a cache.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "prefetch/disk_store.h"
#include "prefetch/log.h"
#include "prefetch/origin.h"

namespace prefetch {

struct DiskStats {
  uint64_t blocks_read = 0;  // blocks served from disk
  uint64_t bytes_read = 0;   // ... their bytes
  uint64_t blocks_written = 0;
  uint64_t bytes_written = 0;
  uint64_t blocks_damaged = 0;  // failed their checksum: dropped, fetched again
  uint64_t blocks_dropped = 0;  // not written: the queue was full, or no room
  uint64_t revalidations = 0;   // a stale entry checked with the origin
  uint64_t not_modified = 0;    // ... and still valid (304, or the same validators)
  uint64_t changed = 0;         // ... and changed: its blocks dropped
  uint64_t offline = 0;         // ... with no answer: the disk's copy used
};

struct DiskOriginOptions {
  std::string key;  // the resource (its location without credentials)
  uint64_t block_size = 0;
  bool with_credentials = false;  // requests carry credentials (cache_freshness.h)
  // Queued blocks waiting to be written, at most; more are not written.
  // They are the engine's buffers, held (counted in its memory budget).
  unsigned max_queued_blocks = 16;
  // The share of one processor's time the writes thread may spend writing
  // (its own processor time, plus a 100 ms burst); blocks past it are not
  // written. 1: no limit (tests).
  double write_share = 0.1;
};

class DiskOrigin : public Origin {
 public:
  // `warn` gets a message for people when the tier meets trouble (each kind
  // once); called from the tier's threads, with no lock held.
  using Warn = std::function<void(const std::string&)>;
  DiskOrigin(std::shared_ptr<Origin> network, std::shared_ptr<DiskStore> store,
             DiskOriginOptions options, Logger logger, Warn warn);
  // Ends every disk fetch (on_done), writes what is queued, joins its
  // threads. The network fetches are the network origin's to end.
  ~DiskOrigin() override;

  std::shared_ptr<Fetch> start(const RangeRequest& request,
                               std::shared_ptr<FetchListener> listener) override;
  void post(std::function<void()> fn) override;
  bool may_multiplex() const override;

  DiskStats stats() const;
  // Until every queued block is written (tests).
  void flush();

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace prefetch
