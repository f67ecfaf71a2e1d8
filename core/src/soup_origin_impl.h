// SoupOrigin's insides, shared by the files that run on its hub's I/O
// thread: soup_origin.cc (starting, sending and ending fetches),
// soup_body.cc (reading a body) and soup_socket.cc (the socket under it).
// The thread, context and session are the hub's (soup_hub.h), shared with
// the other origins of the same session settings; everything here is this
// origin's own.
#pragma once

#include <libsoup/soup.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "prefetch/soup_origin.h"
#include "soup_hub.h"

namespace prefetch {

class SoupFetch;

class SoupOrigin::Impl {
 public:
  Impl(HttpOptions options, Logger logger);
  ~Impl();

  // Runs `fn` on the I/O thread, later, never inside the caller; not at all
  // once this origin has closed (its fetches all ended).
  void post(std::function<void()> fn, unsigned delay_ms = 0);

  std::shared_ptr<Fetch> start(const RangeRequest& request, std::shared_ptr<FetchListener> l);

  // ---- I/O thread only ----
  void admit(const std::shared_ptr<SoupFetch>& f);
  void send(const std::shared_ptr<SoupFetch>& f);
  void pin_redirect(const std::shared_ptr<SoupFetch>& f, int status);
  bool target_expired(const std::shared_ptr<SoupFetch>& f, int status) const;
  void refresh_target(const std::shared_ptr<SoupFetch>& f, int status);
  void end_refresh(const std::shared_ptr<SoupFetch>& f, GUri* target);
  void set_target(GUri* target);
  void cancel_fetch(const std::shared_ptr<SoupFetch>& f);
  void finish(const std::shared_ptr<SoupFetch>& f, const Error* error);
  void release_message(const std::shared_ptr<SoupFetch>& f);
  void read_next(const std::shared_ptr<SoupFetch>& f);
  uint8_t* next_area(const std::shared_ptr<SoupFetch>& f, size_t* length);
  void read_async(const std::shared_ptr<SoupFetch>& f, uint8_t* area, size_t length);
  void read_pollable(const std::shared_ptr<SoupFetch>& f);
  void wait_readable(const std::shared_ptr<SoupFetch>& f);
  void stop_waiting(const std::shared_ptr<SoupFetch>& f);
  void maybe_close();
  static void on_wrote_headers(SoupMessage* msg, gpointer fetch);

  HttpOptions opts_;
  Logger log_;
  std::shared_ptr<SoupHub> hub_;
  // This origin's cookies (I/O thread after construction): a Set-Cookie in
  // any of its answers (a redirect's included) goes out with its later
  // requests to that domain, as souphttpsrc's jar does; other origins on the
  // hub never see them.
  SoupCookieJar* jar_ = nullptr;
  // Where the session's HTTP log lines about this origin's messages go.
  std::shared_ptr<SoupHub::LogRoute> log_route_;
  // Where requests go. I/O thread after construction. `location_` is the
  // `location` itself; `uri_` is where new fetches go: `location_` (the same
  // object) until a redirect target is pinned, then that target.
  GUri* location_ = nullptr;
  GUri* uri_ = nullptr;
  bool resolved_ = false;  // redirects were followed since the last (re)start
  // Presigned targets expire (401/403/404/410): a fetch that meets that goes
  // back to `location` for a fresh target, once. The target generation counts
  // target changes; one refresh at a time, and fetches that need a target
  // meanwhile (expired ones and new ones) wait in parked_ for its outcome, so
  // concurrent fetches that meet one expiry follow one redirect between them.
  unsigned target_gen_ = 0;
  // The fetch sent to location for a fresh target, while one is; its answer
  // sets the next target.
  const SoupFetch* refresher_ = nullptr;
  bool pinned() const { return uri_ != location_; }  // uri_ is a redirect target
  bool refreshing(const std::shared_ptr<SoupFetch>& f) const { return refresher_ == f.get(); }
  std::vector<std::shared_ptr<SoupFetch>> parked_;
  bool shutting_down_ = false;
  std::set<std::shared_ptr<SoupFetch>> active_;
  // At most opts_.max_connections fetches are sent at once (0: no limit),
  // as the session's max-conns-per-host held one origin before sessions
  // were shared; the others wait here, in order, and go as fetches end.
  unsigned sending_ = 0;
  std::deque<std::shared_ptr<SoupFetch>> admitting_;
  void find_socket(const std::shared_ptr<SoupFetch>& f);
  static void make_room(GSocket* socket, uint64_t bytes);
  // Fails body waits that brought less than the low-speed floor for the
  // timeout (libsoup's own timeout covers its waits for the head, and only a
  // silence); runs while some fetch's clock runs.
  GSource* stall_timer_ = nullptr;
  void check_stalls();
  void start_clock(const std::shared_ptr<SoupFetch>& f);
  void count_bytes(const std::shared_ptr<SoupFetch>& f, size_t n);

 private:
  // False (on the I/O thread) once the origin has closed: closures posted
  // earlier then do nothing, whenever the shared thread runs them.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // The destructor waits here until every fetch has ended (shared with the
  // closure that says so, which must not touch the origin).
  struct Closing {
    std::mutex mu;
    std::condition_variable cv;
    bool closed = false;
  };
  std::shared_ptr<Closing> closing_ = std::make_shared<Closing>();
};

// One request's I/O-thread state. Lives in Impl::active_ until finished.
class SoupFetch : public Fetch, public std::enable_shared_from_this<SoupFetch> {
 public:
  SoupFetch(SoupOrigin::Impl* origin, RangeRequest request, std::shared_ptr<FetchListener> l)
      : origin_(origin),
        request(std::move(request)),
        listener(std::move(l)),
        cancellable(g_cancellable_new()) {}
  ~SoupFetch() override {
    // No `source` here: an attached one holds a reference to the fetch, and
    // finish() destroys it.
    if (socket) g_object_unref(socket);
    if (stream) g_object_unref(stream);
    if (msg) g_object_unref(msg);
    g_object_unref(cancellable);
  }

  void cancel() override {
    auto self = shared_from_this();
    origin_->post([self] { self->origin_->cancel_fetch(self); });
  }
  void resume() override {
    auto self = shared_from_this();
    origin_->post([self] {
      if (self->paused && !self->done) {
        self->paused = false;
        self->origin_->read_next(self);
      }
    });
  }

  SoupOrigin::Impl* origin_;
  RangeRequest request;
  std::shared_ptr<FetchListener> listener;
  GCancellable* cancellable;
  SoupMessage* msg = nullptr;
  GInputStream* stream = nullptr;
  // The body stream can be read without waiting (libsoup's HTTP/1.1 and
  // HTTP/2 body streams can): reads loop until it would block, then one
  // source waits for more. Otherwise each read is a g_input_stream_read_async.
  bool pollable = false;
  GSource* source = nullptr;  // waits for the pollable stream to be readable
  // The plain-TCP socket under the body, when known (not TLS): a wait for
  // more body is then a wait on it alone. libsoup's pollable source is a
  // tree of four nested sources, each dispatched on its own, and each such
  // dispatch takes the socket's fd out of the context and puts it back
  // (every change an eventfd write, then a spurious poll): ~8 wake-ups per
  // chunk of body.
  GSocket* socket = nullptr;
  bool on_socket = false;  // `source` waits on `socket` (kept from wait to wait)
  // The low-speed check (check_stalls). While the fetch waits for body
  // bytes a clock runs; each byte that comes pays for 1/kLowSpeedFloor s of
  // it, and `paid_until` is how far the bytes have paid (never past now). A
  // fetch whose bytes lag the clock by the timeout is stalled: it sent
  // nothing, or trickled. The clock stops while paused (flow control).
  bool clock_running = false;
  gint64 paid_until = 0;    // monotonic us
  gint64 slow_since = 0;    // when it was last paid up
  uint64_t slow_bytes = 0;  // bytes since then
  bool admitted = false;    // counts in Impl::sending_ (until finished)
  bool sent = false;        // soup_session_send_async was called
  bool told_sent = false;   // the listener had its on_sent
  // Redirect refresh (see Impl::target_gen_).
  bool to_target = false;   // sent to the pinned redirect target, not location
  bool refreshed = false;   // went back to location for a fresh target once
  bool parked = false;      // in Impl::parked_, waiting for a refresh
  unsigned generation = 0;  // Impl::target_gen_ when sent
  bool paused = false;      // waiting for resume()
  bool reading = false;     // a read (or a wait for one) is in flight
  bool done = false;
};

}  // namespace prefetch
