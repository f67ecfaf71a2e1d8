// Prefetcher: the engine. Fetches fixed-size byte-range blocks concurrently
// from an Origin and hands them to one reader strictly in order.
//
//   streaming thread          Prefetcher (one mutex)          origin thread
//   read(offset) ------wait-----> block store <----on_data----- Fetch
//                 <---bytes------    spans    -----start------>
//
// read() returns the head block's bytes while they are still arriving
// (window schedule), so the first buffer leaves as early as a single
// connection would give it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "prefetch/block_plan.h"
#include "prefetch/block_store.h"
#include "prefetch/error.h"
#include "prefetch/hedge_policy.h"
#include "prefetch/log.h"
#include "prefetch/origin.h"
#include "prefetch/retry_policy.h"
#include "prefetch/scheduler.h"

namespace prefetch {

struct Config {
  // The defaults, named here once: a front end (the plugin's properties)
  // takes its defaults from these instead of writing the numbers again.
  static constexpr uint64_t kDefaultBlockSize = 1 << 20;
  static constexpr unsigned kDefaultConcurrency = 0;  // automatic
  static constexpr unsigned kDefaultMaxConcurrency = 16;
  static constexpr unsigned kDefaultLookaheadBlocks = 0;  // 2 x concurrency
  static constexpr unsigned kDefaultKeepBehind = 1;
  static constexpr uint64_t kDefaultCacheBytes = 8 << 20;
  static constexpr uint64_t kDefaultMaxRequestBytes = 0;     // automatic
  static constexpr unsigned kDefaultMaxHostConnections = 0;  // no limit

  uint64_t block_size = kDefaultBlockSize;
  // Transfers at once. 0 (the default) = automatic (concurrency_policy.h): from
  // kAutoStart, raised while that raises the rate, lowered on 429/503 and
  // when the consumer is the slower side. Automatic in the window schedule
  // only: batch and barrier run kAutoStart.
  unsigned concurrency = kDefaultConcurrency;
  unsigned max_concurrency = kDefaultMaxConcurrency;  // with automatic concurrency, never more
  static constexpr unsigned kAutoStart = 4;
  unsigned lookahead_blocks = kDefaultLookaheadBlocks;  // 0 = 2 x concurrency
  Schedule schedule = Schedule::kWindow;
  RetryPolicy retry;                          // per block: attempts, backoff (retry_policy.h)
  unsigned keep_behind = kDefaultKeepBehind;  // delivered blocks kept for backward reads
  // Complete blocks that leave the window stay in an LRU cache of this many
  // bytes, so a demuxer's jump (to an index at the end) and back is cheap.
  uint64_t cache_bytes = kDefaultCacheBytes;
  // Hedging of blocks near the reader whose first byte is late
  // (hedge_policy.h). A hedge may use a free slot or the one spare slot
  // beyond `concurrency` (see max_connections()), so a late block at the
  // head of the line never waits for a request far ahead to finish.
  HedgePolicy hedge;
  // Read the resource as one stream from its start, asking for it whole (no
  // Range): a body in a content coding (compress) has no byte ranges. Not
  // seekable, and the size is known only at the end (or from an identity
  // answer's Content-Length).
  bool whole = false;
  // A request span's length at most, in bytes (rounded up to whole blocks);
  // 0 = automatic (span_policy.h). The window schedule only: batch and
  // barrier ask for one block per request.
  uint64_t max_request_bytes = kDefaultMaxRequestBytes;
  // A span the look-ahead holds back (flow control: it stops reading, TCP
  // holds the server) for longer than this is cancelled when it may go on,
  // and its rest asked for again: a server's send timeout is never an error.
  std::chrono::milliseconds pause_limit{5000};
  // While every request is stalled and the reader waits, probe the origin
  // on a fresh connection once a second; when it answers, ask for the
  // stalled requests again at once (engine_probe.cc).
  bool probe = true;
  // The host (host_key() of the location) whose connections the process
  // shares (host_budget.h): every request holds one of its slots from its
  // start to its end. "" = no budget.
  std::string host;
  // This element's limit on the host's connections in the process (the
  // host's limit is the smallest non-zero one of its elements); 0 = none.
  unsigned max_host_connections = kDefaultMaxHostConnections;

  bool auto_concurrency() const { return concurrency == 0 && schedule == Schedule::kWindow; }
  // The transfers at the start (all along unless automatic).
  unsigned start_concurrency() const {
    if (concurrency) return concurrency;
    return kAutoStart < max_concurrency ? kAutoStart : (max_concurrency ? max_concurrency : 1);
  }
  unsigned effective_lookahead() const {
    const unsigned c = start_concurrency();
    unsigned n = lookahead_blocks ? lookahead_blocks : 2 * c;
    return n < c ? c : n;
  }
  // Connections the origin should allow to the host: one per transfer slot,
  // one for each slot's next span sent ahead (waiting for its first byte),
  // plus the hedge's spare.
  unsigned max_connections() const {
    const unsigned c = auto_concurrency() ? max_concurrency : start_concurrency();
    return 2 * c + (hedge.enabled ? 1 : 0);
  }
};

// Bytes handed to the reader. `owner` keeps them alive (no copy).
struct Chunk {
  std::shared_ptr<const void> owner;
  const uint8_t* data = nullptr;
  size_t size = 0;
  uint64_t offset = 0;
};

enum class ReadStatus { kOk, kEos, kFlushing, kError };

struct ReadResult {
  ReadStatus status = ReadStatus::kOk;
  Chunk chunk;
  Error error;
};

enum class ReadMode {
  kAvailable,  // return as soon as any byte at offset is there (push mode)
  kExact,      // return exactly `length` bytes, fewer only at the end (pull mode)
};

struct Stats {
  uint64_t bytes_delivered = 0;
  uint64_t blocks_fetched = 0;
  uint64_t requests_started = 0;
  uint64_t retries = 0;
  uint64_t stalls = 0;       // requests failed for bringing (almost) nothing for the timeout
  uint64_t probes_sent = 0;  // probes of an origin every request waited on in vain
  uint64_t hedges_sent = 0;
  uint64_t hedges_won = 0;
  uint64_t races_sent = 0;           // twins racing the reader's first byte (start, seek)
  uint64_t races_won = 0;            // ... that answered first
  uint64_t cache_hits = 0;           // blocks served from the cache instead of a request
  uint64_t bytes_received = 0;       // body bytes the requests brought (block requests and streams)
  double bytes_per_request = 0;      // bytes_received / requests_started
  double ttfb_mean_ms = 0;           // first-byte time per request (the mean over all requests)
  unsigned in_flight = 0;            // requests started and not ended (queued for a slot included)
  unsigned host_connections = 0;     // slots of the host budget this element holds
  unsigned concurrency = 0;          // transfers allowed now (automatic: the current count)
  const char* concurrency_why = "";  // why it last changed (concurrency_policy.h), "" if fixed
  double ttfb_median_ms = 0;
  double ttfb_p95_ms = 0;
  double throughput_bytes_per_s = 0;  // over the last few seconds
};

// What the origin's answers said about the resource, for applications
// (souphttpsrc's `http-headers`): the head of the first answer accepted,
// and again of the first from another URI (a new redirect target). `serial`
// counts those (0: no answer yet), so a reader can tell one it has seen.
struct ResourceInfo {
  uint64_t serial = 0;
  ResponseHead head;
};

class Prefetcher {
 public:
  Prefetcher(std::shared_ptr<Origin> origin, Config config, Logger logger = {});
  ~Prefetcher();  // close()
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Starts fetching at `offset`; never blocks. Errors come with the reads.
  void begin(uint64_t offset = 0);
  // begin(), then waits for the first response's headers (which give the
  // size) or an error. kOk, kError or kFlushing.
  ReadResult open(uint64_t offset = 0);
  // After begin(): waits at most `timeout` for the first response's headers.
  // kOk once they came (even if a later block failed since: the error comes
  // with the next read), kError, or kFlushing (flushing, closed, timed out).
  ReadResult wait_open(std::chrono::milliseconds timeout);
  std::optional<uint64_t> size() const;
  // False once the origin is known to ignore Range requests.
  bool seekable() const;

  // Waits for the bytes at `offset`. A read far from the last one re-targets
  // the window (seek): requests outside the new window are cancelled.
  ReadResult read(uint64_t offset, size_t length, ReadMode mode);
  // Push mode's batching, before a read(kAvailable) at `offset`: when the
  // block there is still arriving, waits until it has `want` bytes from
  // `offset` (or is complete), but only if the rate it has filled at so far
  // says they are due within `max_wait`, and never longer. A fast origin
  // then gives fewer, larger buffers; a slow one is not held back. Returns
  // at once at a block's first byte: those always leave as they come.
  void gather(uint64_t offset, size_t want, std::chrono::microseconds max_wait);
  // Re-targets the window now (a seek), before the next read arrives.
  void seek(uint64_t offset);

  // While flushing, every wait returns kFlushing at once (GstBaseSrc unlock).
  void set_flushing(bool flushing);
  // Cancels every request and waits until all have ended. Idempotent.
  void close();

  Stats stats() const;
  // Thread-safe. A copy of the ResourceInfo; only its serial while that
  // is still `known_serial` (nothing new to copy).
  ResourceInfo resource_info(uint64_t known_serial = 0) const;
  const Config& config() const { return config_; }

 private:
  friend class Request;
  friend class Probe;
  struct Impl;
  std::shared_ptr<Origin> origin_;
  Config config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prefetch
