// SoupOrigin: range requests over libsoup-3.0. This file holds the I/O thread
// and a fetch's life on it: start, send (the request from soup_request.cc,
// the head read by soup_response.cc, the redirect target pinned), cancel,
// finish. The body is read in soup_body.cc, over the socket of
// soup_socket.cc; the session is made in soup_session.cc.
//
// libsoup binds a SoupSession to the thread-default GMainContext it was made
// in. We own that context and the only thread that runs it (the I/O thread):
// every libsoup call of these files happens there, asynchronously. Other threads only
// post closures to it (never g_main_context_invoke, which would run the
// closure at once when called from the I/O thread itself and so call a
// listener synchronously, breaking the Origin contract).

#include "prefetch/soup_origin.h"

#include <libsoup/soup.h>

#include "soup_error.h"
#include "soup_origin_impl.h"
#include "soup_request.h"
#include "soup_response.h"
#include "soup_session.h"

namespace prefetch {

namespace {

#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
void tsan_acquire(void* addr) { __tsan_acquire(addr); }
void tsan_release(void* addr) { __tsan_release(addr); }
#else
void tsan_acquire(void*) {}
void tsan_release(void*) {}
#endif

}  // namespace

SoupOrigin::Impl::Impl(HttpOptions options, Logger logger)
    : opts_(std::move(options)), log_(std::move(logger)) {
  context_ = g_main_context_new();
  loop_ = g_main_loop_new(context_, FALSE);
  uri_ = g_uri_parse(opts_.uri.c_str(), G_URI_FLAGS_ENCODED, nullptr);
  thread_ = std::thread([this] { run(); });
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return ready_; });
}

SoupOrigin::Impl::~Impl() {
  post([this] {
    shutting_down_ = true;
    std::set<std::shared_ptr<SoupFetch>> active = active_;
    for (auto& f : active) cancel_fetch(f);
    maybe_quit();
  });
  thread_.join();
  for (auto& [id, socket] : sockets_) g_object_unref(socket);
  g_main_loop_unref(loop_);
  g_main_context_unref(context_);
  if (uri_) g_uri_unref(uri_);
}

void SoupOrigin::Impl::post(std::function<void()> fn, unsigned delay_ms) {
  GSource* src = delay_ms ? g_timeout_source_new(delay_ms) : g_idle_source_new();
  // As urgent as the sockets' sources: a cancel must not wait until no
  // body has bytes ready (an idle source's default priority would).
  g_source_set_priority(src, G_PRIORITY_DEFAULT);
  auto* heap = new std::function<void()>(std::move(fn));
  g_source_set_callback(
      src,
      [](gpointer data) -> gboolean {
        tsan_acquire(data);
        (*static_cast<std::function<void()>*>(data))();
        return G_SOURCE_REMOVE;
      },
      heap,
      [](gpointer data) {
        tsan_acquire(data);
        delete static_cast<std::function<void()>*>(data);
      });
  // The closure is handed over under the context's GMutex, which
  // ThreadSanitizer cannot see (futex based): say so, so that a race inside
  // a posted closure is still reported and nothing else is.
  tsan_release(heap);
  g_source_attach(src, context_);
  g_source_unref(src);
}

void SoupOrigin::Impl::run() {
  g_main_context_push_thread_default(context_);
  session_ = make_session(opts_, uri_, log_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready_ = true;
  }
  cv_.notify_all();
  g_main_loop_run(loop_);
  if (stall_timer_) {
    g_source_destroy(stall_timer_);
    g_clear_pointer(&stall_timer_, g_source_unref);
  }
  soup_session_abort(session_);
  g_object_unref(session_);
  session_ = nullptr;
  // Let cancelled operations release their sources before the context goes.
  while (g_main_context_iteration(context_, FALSE)) {
  }
  g_main_context_pop_thread_default(context_);
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
          if (!f->done) send(f);
        },
        static_cast<unsigned>(f->request.delay.count()));
  });
  return f;
}

void SoupOrigin::Impl::cancel_fetch(const std::shared_ptr<SoupFetch>& f) {
  if (f->done) return;
  g_cancellable_cancel(f->cancellable);
  // Not yet sent (still in its delay) or paused between reads: nothing of
  // libsoup's will call us back, so end it here.
  // A wait on the socket alone does not see the cancellable either.
  if (!f->sent || (f->stream && !f->reading) || f->on_socket) {
    Error e = cancelled_error();
    finish(f, &e);
  }
}

void SoupOrigin::Impl::finish(const std::shared_ptr<SoupFetch>& f, const Error* error) {
  if (f->done) return;
  f->done = true;
  active_.erase(f);
  // libsoup objects are released here, on the I/O thread, never by whoever
  // drops the last reference to the fetch.
  stop_waiting(f);
  g_clear_object(&f->socket);
  g_clear_object(&f->stream);
  g_clear_object(&f->msg);
  f->listener->on_done(error);
  f->listener.reset();
  maybe_quit();
}

void SoupOrigin::Impl::send(const std::shared_ptr<SoupFetch>& f) {
  f->sent = true;
  if (!uri_) {
    Error e;
    e.kind = ErrorKind::kOpenRead;
    e.message = "Invalid URI '" + opts_.uri + "'";
    return finish(f, &e);
  }
  f->msg = new_range_message(uri_, f->request, opts_);
  connect_credentials(f->msg, &opts_);
  g_signal_connect(f->msg, "network-event", G_CALLBACK(on_network_event), this);
  watch_redirects(f->msg);

  auto* ref = new std::shared_ptr<SoupFetch>(f);
  soup_session_send_async(
      session_, f->msg, G_PRIORITY_DEFAULT, f->cancellable,
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
        f->pollable = G_IS_POLLABLE_INPUT_STREAM(stream) &&
                      g_pollable_input_stream_can_poll(G_POLLABLE_INPUT_STREAM(stream));
        o->find_socket(f);

        ResponseHead head = parse_response_head(soup_message_get_status(f->msg),
                                                soup_message_get_response_headers(f->msg));
        describe_answer(f->msg, &head);
        o->pin_redirect(f->msg, head.status);
        if (!f->listener->on_head(head)) {
          Error e = cancelled_error();
          g_cancellable_cancel(f->cancellable);
          return o->finish(f, &e);
        }
        o->read_next(f);
      },
      ref);
}

// Follow redirects once: later blocks go straight to the target.
// (Only the first good answer pays for comparing URIs.)
void SoupOrigin::Impl::pin_redirect(SoupMessage* msg, int status) {
  if (resolved_ || status < 200 || status >= 300) return;
  resolved_ = true;
  GUri* final_uri = soup_message_get_uri(msg);
  char* after = g_uri_to_string(final_uri);
  char* before = g_uri_to_string(uri_);
  if (g_strcmp0(after, before) != 0) {
    g_uri_unref(uri_);
    uri_ = g_uri_ref(final_uri);
    log_(LogLevel::kInfo, "redirected to %s", after);
  }
  g_free(after);
  g_free(before);
}

// ---- SoupOrigin ----

SoupOrigin::SoupOrigin(HttpOptions options, Logger logger)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(logger))) {}

SoupOrigin::~SoupOrigin() = default;

std::shared_ptr<Fetch> SoupOrigin::start(const RangeRequest& request,
                                         std::shared_ptr<FetchListener> listener) {
  return impl_->start(request, std::move(listener));
}

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
