// FakeOrigin: a scripted prefetch::Origin over an in-memory byte vector, for
// the core tests (no network). It runs its own worker thread and keeps the
// threading contract of origin.h: start(), cancel() and resume() only post
// work; every listener callback comes from the worker, serially.
//
// Each request is answered by a Reply chosen by the script (a function of the
// request and of how many requests for the same begin came before). Gates let
// a test hold a request before its head or after some body bytes and release
// it by hand, so tests set the completion order without sleeping.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "prefetch/error.h"
#include "prefetch/origin.h"

namespace prefetch::testing {

using FakeClock = std::chrono::steady_clock;

// A deterministic byte pattern: no two blocks of any size look alike.
uint8_t pattern_byte(uint64_t offset);
std::vector<uint8_t> pattern_bytes(uint64_t size);

// What the fake does with one request. The defaults are a well-behaved
// origin: 206 with a matching Content-Range, or 416 past the end.
struct Reply {
  // 0: automatic. >= 400: sent as is in the head (the listener maps it); if the
  // listener goes on anyway, on_done carries the typed error.
  int status = 0;
  bool ignore_range = false;          // 200 with the whole body
  bool connect_error = false;         // no head at all: on_done(kOpenRead, transient)
  std::optional<uint64_t> cut_after;  // the connection drops after this many body bytes
  std::optional<std::pair<uint64_t, uint64_t>> content_range;  // (first, last) sent instead
  std::optional<std::string> validator;                        // sent instead of the resource's
  uint64_t extra_bytes = 0;  // the body runs this many bytes past its range
  std::chrono::milliseconds first_byte_delay{0};
  size_t chunk = 16 * 1024;                     // body bytes per write_area/on_data
  std::chrono::microseconds chunk_interval{0};  // pause between chunks (byte rate)
  std::string retry_after;                      // raw Retry-After value, with a 429/503
  // A 206 carries at most this many bytes of the range asked (RFC 9110 lets
  // a server send a subset); its Content-Range says which.
  std::optional<uint64_t> max_bytes;
  bool unknown_total = false;  // Content-Range ".../*"; a 416 carries no size
  std::string uri;             // the answer's URI (ResponseHead::uri): where it came from
  // Say when the request went out (on_sent, after its delay, before the
  // first-byte wait) on a connection that took this long to open; nullopt:
  // no on_sent, as from an origin that cannot tell.
  std::optional<std::chrono::microseconds> setup;
  // Header fields sent with the answer (ResponseHead::response_headers),
  // e.g. Cache-Control.
  HttpHeaders headers;
};

// attempt: how many requests with the same begin came before this one.
using Script = std::function<Reply(const RangeRequest& request, unsigned attempt)>;

struct RequestRecord {
  size_t id = 0;
  uint64_t begin = 0;
  std::optional<uint64_t> end;
  std::string validator;      // what the client sent (If-Range / If-Match)
  std::string if_none_match;  // a conditional request's ETag (answered 304 if current)
  std::chrono::milliseconds delay{0};
  unsigned attempt = 0;
  FakeClock::time_point started{}, ended{};
  bool cancel_called = false;      // Fetch::cancel() came before on_done
  bool abandoned = false;          // on_head returned false
  bool done = false;               // on_done was delivered
  std::optional<ErrorKind> error;  // on_done's error kind, nullopt for a clean end
  uint64_t body_bytes = 0;         // body bytes handed to the listener
};

class FakeOrigin : public Origin {
 public:
  explicit FakeOrigin(std::vector<uint8_t> data, std::string validator = "\"v1\"");
  ~FakeOrigin() override;  // ends every fetch still running with kCancelled

  std::shared_ptr<Fetch> start(const RangeRequest& request,
                               std::shared_ptr<FetchListener> listener) override;
  // Runs `fn` on the worker, between callbacks, in the order posted.
  void post(std::function<void()> fn) override;
  // Says its answers may come multiplexed (as over TLS, before ALPN is
  // known); set before the engine begins.
  bool may_multiplex() const override { return multiplex_; }
  void set_multiplex(bool on) { multiplex_ = on; }

  // --- script ---
  void set_script(Script script);
  // A request that finds `limit` or more fetches running is answered 503
  // with this Retry-After, whatever the script says (0: no limit).
  void set_busy_limit(unsigned limit, std::string retry_after);
  // A host capped in total: body chunks of all responses together go out
  // at most one per `interval` (0: no cap), on top of each reply's own pace.
  void set_total_chunk_interval(std::chrono::microseconds interval);
  // Replaces the resource (its bytes and validator) for requests started later.
  void change_resource(std::vector<uint8_t> data, std::string validator);
  const std::vector<uint8_t>& data() const { return *data_; }  // the initial bytes

  // Called on the worker between write_area() and the write into its area
  // (no lock held): a test may block here to act while an area is handed out.
  void set_write_hook(std::function<void(uint64_t begin)> hook);

  // --- gates (keyed by the request's begin; a gate holds every request with
  // that begin until released) ---
  void hold_head(uint64_t begin);                        // before on_head
  void hold_body(uint64_t begin, uint64_t after_bytes);  // after that many body bytes
  void hold_all_heads();  // every request not covered by its own gate
  void release(uint64_t begin);
  void release_all();

  // --- records ---
  std::vector<RequestRecord> requests() const;
  size_t request_count() const;
  unsigned max_in_flight() const;
  unsigned in_flight() const;
  unsigned busy_answers() const;  // 503s set_busy_limit gave

  // --- waits (false on timeout) ---
  // Until at least `n` requests have been started.
  bool wait_requests(size_t n, std::chrono::milliseconds timeout);
  // Until a request with this begin is held at its gate (its head, or the
  // bytes before a body gate, already delivered).
  bool wait_held(uint64_t begin, std::chrono::milliseconds timeout);
  // Until no fetch is running and the worker is between callbacks.
  bool wait_idle(std::chrono::milliseconds timeout);
  // Until every started fetch has had its on_done.
  bool wait_all_done(std::chrono::milliseconds timeout);

 private:
  struct State;
  class FakeFetch;
  void run();
  std::shared_ptr<State> pick(FakeClock::time_point now, FakeClock::time_point* next_due);
  bool parked(const State& s) const;
  bool held_at_gate(const State& s) const;
  void step(const std::shared_ptr<State>& s, std::unique_lock<std::mutex>& lock);
  void finish(const std::shared_ptr<State>& s, const Error* error,
              std::unique_lock<std::mutex>& lock);
  void cancel(size_t id);
  void resume(size_t id);
  template <typename Pred>
  bool wait_for(std::chrono::milliseconds timeout, Pred pred);

  struct Gate {
    std::optional<uint64_t> after;  // nullopt: before the head
  };

  const std::shared_ptr<const std::vector<uint8_t>> data_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // wakes the worker
  std::condition_variable state_cv_;  // wakes waiting tests
  std::shared_ptr<const std::vector<uint8_t>> current_;
  std::string validator_;
  Script script_;
  std::function<void(uint64_t)> write_hook_;
  std::map<uint64_t, Gate> gates_;
  bool hold_all_heads_ = false;
  bool multiplex_ = false;
  std::map<uint64_t, unsigned> attempts_;
  std::vector<std::shared_ptr<State>> live_;
  std::deque<std::function<void()>> posted_;  // post(): run by the worker
  std::vector<RequestRecord> records_;
  unsigned in_flight_ = 0;
  unsigned max_in_flight_ = 0;
  unsigned busy_limit_ = 0;
  std::chrono::microseconds total_interval_{0};
  FakeClock::time_point total_due_{};  // when the host may send its next chunk
  std::string busy_retry_after_;
  unsigned busy_answers_ = 0;
  bool in_callback_ = false;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace prefetch::testing
