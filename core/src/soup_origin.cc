// SoupOrigin: range requests over libsoup-3.0. This file holds a fetch's
// life on the I/O thread: start, admit, send (the request from
// soup_request.cc, the head read by soup_response.cc, the redirect target
// pinned), cancel, finish; and the origin's own end. The body is read in
// soup_body.cc, over the socket of soup_socket.cc; the session is made in
// soup_session.cc and shared through soup_hub.cc.
//
// The I/O thread, its context and the session are the hub's, shared with
// every origin of the same session settings: every libsoup call of these
// files happens there, asynchronously. Other threads only post closures to
// it (SoupHub::post).

#include "prefetch/soup_origin.h"

#include <libsoup/soup.h>

#include <algorithm>

#include "soup_error.h"
#include "soup_origin_impl.h"
#include "soup_request.h"
#include "soup_response.h"
#include "soup_session.h"

namespace prefetch {

SoupOrigin::Impl::Impl(HttpOptions options, Logger logger)
    : opts_(std::move(options)), log_(std::move(logger)) {
  location_ = g_uri_parse(opts_.uri.c_str(), G_URI_FLAGS_ENCODED, nullptr);
  if (location_) uri_ = g_uri_ref(location_);
  jar_ = soup_cookie_jar_new();
  log_route_ = std::make_shared<SoupHub::LogRoute>(log_);
  hub_ = SoupHub::get(session_settings(opts_, location_));
  const SessionSettings& s = hub_->settings();
  if (!s.proxy.empty()) log_(LogLevel::kInfo, "using proxy %s", s.proxy.c_str());
  if (!hub_->ca_problem().empty()) log_(LogLevel::kWarning, "%s", hub_->ca_problem().c_str());
}

// Ends this origin's fetches and waits for them; the hub (thread, session,
// connections) stays for its other origins, and the last owner of the hub
// stops it.
SoupOrigin::Impl::~Impl() {
  post([this] {
    shutting_down_ = true;
    std::set<std::shared_ptr<SoupFetch>> active = active_;
    for (auto& f : active) cancel_fetch(f);
    maybe_close();
  });
  {
    std::unique_lock<std::mutex> lock(closing_->mu);
    closing_->cv.wait(lock, [this] { return closing_->closed; });
  }
  // Nothing of this origin runs on the I/O thread any more: its fetches
  // ended, their sources are gone, the handlers on their messages are
  // disconnected, and closures posted earlier check alive_.
  g_object_unref(jar_);
  if (uri_) g_uri_unref(uri_);
  if (location_) g_uri_unref(location_);
  hub_.reset();  // the last origin of the hub joins its thread here
}

// The destructor began and every fetch has ended: stop the stall timer,
// drop the log route and let the destructor go on, from a closure of its
// own: the code that ended the last fetch may still use this origin until
// it returns to the loop.
void SoupOrigin::Impl::maybe_close() {
  if (!shutting_down_ || !active_.empty() || !*alive_) return;
  if (stall_timer_) {
    g_source_destroy(stall_timer_);
    g_clear_pointer(&stall_timer_, g_source_unref);
  }
  log_route_->alive = false;
  *alive_ = false;
  hub_->post([closing = closing_] {
    std::lock_guard<std::mutex> lock(closing->mu);
    closing->closed = true;
    closing->cv.notify_all();
  });
}

void SoupOrigin::Impl::post(std::function<void()> fn, unsigned delay_ms) {
  hub_->post(
      [alive = alive_, fn = std::move(fn)] {
        if (*alive) fn();
      },
      delay_ms);
}

std::shared_ptr<Fetch> SoupOrigin::Impl::start(const RangeRequest& request,
                                               std::shared_ptr<FetchListener> l) {
  auto f = std::make_shared<SoupFetch>(this, request, std::move(l));
  post([this, f] {
    if (f->done) return;  // cancelled before it began
    active_.insert(f);
    if (shutting_down_) {
      Error e = cancelled_error();
      return finish(f, &e);
    }
    // A retry's backoff: the fetch is active (cancellable) while it waits.
    post(
        [this, f] {
          if (!f->done) admit(f);
        },
        static_cast<unsigned>(f->request.delay.count()));
  });
  return f;
}

// Sends the fetch if fewer than max_connections of this origin's fetches
// are out, else queues it until one ends.
void SoupOrigin::Impl::admit(const std::shared_ptr<SoupFetch>& f) {
  if (opts_.max_connections > 0 && sending_ >= opts_.max_connections) {
    admitting_.push_back(f);
    return;
  }
  f->admitted = true;
  ++sending_;
  send(f);
}

void SoupOrigin::Impl::cancel_fetch(const std::shared_ptr<SoupFetch>& f) {
  if (f->done) return;
  g_cancellable_cancel(f->cancellable);
  // Not yet sent (still in its delay) or paused between reads: nothing of
  // libsoup's will call us back, so end it here.
  // A wait on the socket alone does not see the cancellable either, nor
  // does a wait for a fresh redirect target.
  if (!f->sent || (f->stream && !f->reading) || f->on_socket || f->parked) {
    Error e = cancelled_error();
    finish(f, &e);
  }
}

void SoupOrigin::Impl::finish(const std::shared_ptr<SoupFetch>& f, const Error* error) {
  if (f->done) return;
  f->done = true;
  active_.erase(f);
  if (f->parked) {
    f->parked = false;
    parked_.erase(std::find(parked_.begin(), parked_.end(), f));
  }
  if (!f->admitted) {
    auto it = std::find(admitting_.begin(), admitting_.end(), f);
    if (it != admitting_.end()) admitting_.erase(it);
  }
  // A refresher that ends before its head leaves the parked fetches to the
  // next one.
  if (refreshing(f)) end_refresh(f, nullptr);
  // libsoup objects are released here, on the I/O thread, never by whoever
  // drops the last reference to the fetch.
  stop_waiting(f);
  g_clear_object(&f->socket);
  g_clear_object(&f->stream);
  release_message(f);
  f->listener->on_done(error);
  f->listener.reset();
  if (f->admitted) {
    f->admitted = false;
    --sending_;
    // The next waiting fetch goes (it may end at once and admit another).
    while (!admitting_.empty() &&
           (opts_.max_connections == 0 || sending_ < opts_.max_connections)) {
      std::shared_ptr<SoupFetch> next = std::move(admitting_.front());
      admitting_.pop_front();
      if (!next->done) admit(next);
    }
  }
  maybe_close();
}

// Lets go of the fetch's message, and of our handlers on it: libsoup may
// keep the message a while longer (finishing its cancel), and this origin,
// whose options and jar the handlers point to, may be gone by then.
void SoupOrigin::Impl::release_message(const std::shared_ptr<SoupFetch>& f) {
  if (!f->msg) return;
  g_signal_handlers_disconnect_by_data(f->msg, &opts_);
  g_signal_handlers_disconnect_by_data(f->msg, jar_);
  g_signal_handlers_disconnect_by_data(f->msg, hub_.get());
  g_signal_handlers_disconnect_by_data(f->msg, f.get());
  g_clear_object(&f->msg);
}

// The message's head went out: the listener hears it once (a redirect's
// next hop writes another head), with what opening the connection took.
void SoupOrigin::Impl::on_wrote_headers(SoupMessage* msg, gpointer fetch) {
  auto* f = static_cast<SoupFetch*>(fetch);
  if (f->told_sent || f->done || !f->listener) return;
  f->told_sent = true;
  f->listener->on_sent(f->origin_->hub_->sent_info(msg));
}

void SoupOrigin::Impl::send(const std::shared_ptr<SoupFetch>& f) {
  f->sent = true;
  if (!uri_) {
    Error e;
    e.kind = ErrorKind::kOpenRead;
    e.message = "Invalid URI '" + opts_.uri + "'";
    return finish(f, &e);
  }
  if (shutting_down_ || g_cancellable_is_cancelled(f->cancellable)) {
    Error e = cancelled_error();
    return finish(f, &e);
  }
  if (refresher_ && !refreshing(f)) {  // wait for the fresh target
    f->parked = true;
    parked_.push_back(f);
    return;
  }
  f->to_target = pinned() && !refreshing(f);
  f->generation = target_gen_;
  f->msg = new_range_message(refreshing(f) ? location_ : uri_, f->request, opts_);
  connect_cookie_jar(f->msg, jar_);
  connect_credentials(f->msg, &opts_);
  g_signal_connect(f->msg, "network-event", G_CALLBACK(SoupHub::on_network_event), hub_.get());
  soup_message_add_flags(f->msg, SOUP_MESSAGE_COLLECT_METRICS);
  g_signal_connect(f->msg, "wrote-headers", G_CALLBACK(on_wrote_headers), f.get());
  if (opts_.http_log_level > 0) SoupHub::route_log(f->msg, log_route_);
  watch_redirects(f->msg);

  auto* ref = new std::shared_ptr<SoupFetch>(f);
  soup_session_send_async(
      hub_->session(), f->msg, G_PRIORITY_DEFAULT, f->cancellable,
      [](GObject* source, GAsyncResult* res, gpointer data) {
        std::shared_ptr<SoupFetch> f = std::move(*static_cast<std::shared_ptr<SoupFetch>*>(data));
        delete static_cast<std::shared_ptr<SoupFetch>*>(data);
        Impl* o = f->origin_;
        GError* err = nullptr;
        GInputStream* stream = soup_session_send_finish(SOUP_SESSION(source), res, &err);
        if (f->done) {
          if (stream) g_object_unref(stream);
          if (err) g_error_free(err);
          return;
        }
        if (!stream) {
          Error e = gerror_to_error(err);
          g_error_free(err);
          return o->finish(f, &e);
        }
        f->stream = stream;
        ResponseHead head = parse_response_head(soup_message_get_status(f->msg),
                                                soup_message_get_response_headers(f->msg));
        // An expired redirect target: the engine never sees this answer.
        if (o->target_expired(f, head.status)) return o->refresh_target(f, head.status);
        f->pollable = G_IS_POLLABLE_INPUT_STREAM(stream) &&
                      g_pollable_input_stream_can_poll(G_POLLABLE_INPUT_STREAM(stream));
        o->find_socket(f);
        describe_answer(f->msg, &head);
        head.http2 = soup_message_get_http_version(f->msg) == SOUP_HTTP_2_0;
        o->pin_redirect(f, head.status);
        if (!f->listener->on_head(head)) {
          Error e = cancelled_error();
          g_cancellable_cancel(f->cancellable);
          return o->finish(f, &e);
        }
        o->read_next(f);
      },
      ref);
}

// Follow redirects once: later blocks go straight to the target. The first
// good answer of a fetch sent to location pins its final URI (only it pays
// for comparing URIs); a refresher's answer, good or not, ends its refresh.
void SoupOrigin::Impl::pin_redirect(const std::shared_ptr<SoupFetch>& f, int status) {
  const bool good = status >= 200 && status < 300;
  if (refreshing(f)) return end_refresh(f, good ? soup_message_get_uri(f->msg) : nullptr);
  if (resolved_ || !good || f->to_target) return;
  set_target(soup_message_get_uri(f->msg));
}

// `target` (the final URI of an answer from location) is where fetches go
// from now on: a new target generation.
void SoupOrigin::Impl::set_target(GUri* target) {
  resolved_ = true;
  ++target_gen_;
  char* after = g_uri_to_string(target);
  char* before = g_uri_to_string(location_);
  GUri* next = g_strcmp0(after, before) != 0 ? target : location_;
  if (next != uri_) {
    g_uri_unref(uri_);
    uri_ = g_uri_ref(next);
  }
  if (pinned()) log_(LogLevel::kInfo, "redirected to %s", after);
  g_free(after);
  g_free(before);
}

// The pinned target refused a fetch with a status that a presigned URL gives
// once it expired (or its cookie went stale), and the fetch has not yet been
// back to location for a fresh one.
bool SoupOrigin::Impl::target_expired(const std::shared_ptr<SoupFetch>& f, int status) const {
  return f->to_target && !f->refreshed &&
         (status == 401 || status == 403 || status == 404 || status == 410);
}

// Drops the expired answer and sends the fetch again: to location when its
// target is still the current one and no refresh is in flight (it becomes
// the refresher), to the target that replaced it, or into parked_ while
// another fetch's refresh is in flight.
void SoupOrigin::Impl::refresh_target(const std::shared_ptr<SoupFetch>& f, int status) {
  // Closing (not just dropping) the unread answer lets libsoup keep the
  // connection when the body is short.
  g_input_stream_close_async(
      f->stream, G_PRIORITY_DEFAULT, nullptr,
      [](GObject* source, GAsyncResult* res, gpointer) {
        g_input_stream_close_finish(G_INPUT_STREAM(source), res, nullptr);
      },
      nullptr);
  g_clear_object(&f->stream);
  release_message(f);
  if (f->generation == target_gen_ && !refresher_) {
    log_(LogLevel::kInfo, "redirect target answered %d: asking %s for a fresh one", status,
         opts_.uri.c_str());
    f->refreshed = true;
    refresher_ = f.get();
  }
  send(f);
}

// `f`'s refresh ended: with a fresh `target`, or without one (an answer that
// is not good, an error, a cancel). With a target the parked fetches go to
// it; without, fetches go to location again, and the first parked fetch that
// is still live becomes the refresher while the others stay parked.
void SoupOrigin::Impl::end_refresh(const std::shared_ptr<SoupFetch>& f, GUri* target) {
  refresher_ = nullptr;
  if (target) {
    set_target(target);
  } else {
    resolved_ = false;
    ++target_gen_;
    if (uri_ != location_) {
      g_uri_unref(uri_);
      uri_ = g_uri_ref(location_);
    }
  }
  std::vector<std::shared_ptr<SoupFetch>> parked;
  parked.swap(parked_);
  for (auto& p : parked) p->parked = false;
  for (auto& p : parked) {
    if (p->done) continue;
    if (!target && !refresher_ && !shutting_down_ && !g_cancellable_is_cancelled(p->cancellable)) {
      p->refreshed = true;
      refresher_ = p.get();
    }
    send(p);  // the others park again behind a new refresher
  }
}

// ---- SoupOrigin ----

SoupOrigin::SoupOrigin(HttpOptions options, Logger logger)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(logger))) {}

SoupOrigin::~SoupOrigin() = default;

std::shared_ptr<Fetch> SoupOrigin::start(const RangeRequest& request,
                                         std::shared_ptr<FetchListener> listener) {
  return impl_->start(request, std::move(listener));
}

void SoupOrigin::post(std::function<void()> fn) { impl_->post(std::move(fn)); }

const void* SoupOrigin::hub() const { return impl_->hub_.get(); }

bool SoupOrigin::may_multiplex() const {
  GUri* u = impl_->location_;  // set once, before any fetch
  return u && g_ascii_strcasecmp(g_uri_get_scheme(u), "https") == 0;
}

size_t SoupOrigin::hubs() { return SoupHub::count(); }

GType SoupOrigin::http_log_level_type() { return soup_logger_log_level_get_type(); }

std::string SoupOrigin::validate_uri(const std::string& uri) {
  GError* err = nullptr;
  GUri* parsed = g_uri_parse(uri.c_str(), G_URI_FLAGS_ENCODED, &err);
  if (!parsed) {
    std::string msg = "Invalid URI '" + uri + "': " + err->message;
    g_error_free(err);
    return msg;
  }
  std::string problem;
  const char* scheme = g_uri_get_scheme(parsed);
  if (g_ascii_strcasecmp(scheme, "http") != 0 && g_ascii_strcasecmp(scheme, "https") != 0)
    problem = "Only http and https URIs are supported, not '" + std::string(scheme) + "'";
  else if (!g_uri_get_host(parsed) || !*g_uri_get_host(parsed))
    problem = "The URI '" + uri + "' has no host";
  g_uri_unref(parsed);
  return problem;
}

}  // namespace prefetch
