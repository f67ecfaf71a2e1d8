// SoupOrigin's insides, shared by the files that run on its I/O thread:
// soup_origin.cc (the thread, starting, sending and ending fetches),
// soup_body.cc (reading a body) and soup_socket.cc (the socket under it).
#pragma once

#include <libsoup/soup.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "prefetch/soup_origin.h"

namespace prefetch {

class SoupFetch;

class SoupOrigin::Impl {
 public:
  Impl(HttpOptions options, Logger logger);
  ~Impl();

  // Runs `fn` on the I/O thread, later, never inside the caller.
  void post(std::function<void()> fn, unsigned delay_ms = 0);

  std::shared_ptr<Fetch> start(const RangeRequest& request, std::shared_ptr<FetchListener> l);

  // ---- I/O thread only ----
  void send(const std::shared_ptr<SoupFetch>& f);
  void pin_redirect(const std::shared_ptr<SoupFetch>& f, int status);
  bool target_expired(const std::shared_ptr<SoupFetch>& f, int status) const;
  void refresh_target(const std::shared_ptr<SoupFetch>& f, int status);
  void end_refresh(const std::shared_ptr<SoupFetch>& f, GUri* target);
  void set_target(GUri* target);
  void cancel_fetch(const std::shared_ptr<SoupFetch>& f);
  void finish(const std::shared_ptr<SoupFetch>& f, const Error* error);
  void read_next(const std::shared_ptr<SoupFetch>& f);
  uint8_t* next_area(const std::shared_ptr<SoupFetch>& f, size_t* length);
  void read_async(const std::shared_ptr<SoupFetch>& f, uint8_t* area, size_t length);
  void read_pollable(const std::shared_ptr<SoupFetch>& f);
  void wait_readable(const std::shared_ptr<SoupFetch>& f);
  void stop_waiting(const std::shared_ptr<SoupFetch>& f);
  void maybe_quit() {
    if (shutting_down_ && active_.empty()) g_main_loop_quit(loop_);
  }

  HttpOptions opts_;
  Logger log_;
  GMainContext* context_ = nullptr;
  GMainLoop* loop_ = nullptr;
  SoupSession* session_ = nullptr;
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
  // Plain-TCP sockets of the session's connections, by libsoup's connection
  // id (I/O thread only; a reference each). See SoupFetch::socket.
  std::map<guint64, GSocket*> sockets_;
  static void on_network_event(SoupMessage* msg, GSocketClientEvent event, GIOStream* connection,
                               gpointer user);
  void note_socket(guint64 id, GSocket* socket);
  void find_socket(const std::shared_ptr<SoupFetch>& f);
  static void make_room(GSocket* socket, uint64_t bytes);
  // Times out body waits on a socket (the session's timeout covers only
  // libsoup's own waits); runs while some fetch waits on its socket.
  GSource* stall_timer_ = nullptr;
  void check_stalls();

 private:
  void run();

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;
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
  bool on_socket = false;    // `source` waits on `socket` (kept from wait to wait)
  gint64 last_progress = 0;  // monotonic us of the last body bytes (stall timeout)
  bool sent = false;         // soup_session_send_async was called
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
