// SoupOrigin: range requests over libsoup-3.0.
//
// libsoup binds a SoupSession to the thread-default GMainContext it was made
// in. We own that context and the only thread that runs it (the I/O thread):
// every libsoup call below happens there, asynchronously. Other threads only
// post closures to it (never g_main_context_invoke, which would run the
// closure at once when called from the I/O thread itself and so call a
// listener synchronously, breaking the Origin contract).

#include "prefetch/soup_origin.h"

#include <glib-unix.h>
#include <libsoup/soup.h>
#include <sys/socket.h>

#include <algorithm>
#include <cinttypes>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "prefetch/http_parse.h"

namespace prefetch {

namespace {

// Maps a GError from libsoup / GIO to our error.
Error gerror_to_error(const GError* err) {
  Error e;
  e.message = err->message ? err->message : "unknown error";
  e.detail = std::string(g_quark_to_string(err->domain)) + " " + std::to_string(err->code);
  if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    e.kind = ErrorKind::kCancelled;
    return e;
  }
  if (err->domain == G_TLS_ERROR) {
    e.kind = ErrorKind::kOpenRead;
    e.message = "TLS certificate or handshake problem: " + e.message;
    return e;
  }
  if (err->domain == G_RESOLVER_ERROR) {
    e.kind = ErrorKind::kOpenRead;
    e.transient = true;
    e.message = "Could not resolve the host: " + e.message;
    return e;
  }
  if (err->domain == SOUP_SESSION_ERROR) {
    const bool redirect = err->code == SOUP_SESSION_ERROR_TOO_MANY_REDIRECTS ||
                          err->code == SOUP_SESSION_ERROR_REDIRECT_NO_LOCATION ||
                          err->code == SOUP_SESSION_ERROR_REDIRECT_BAD_URI;
    e.kind = redirect ? ErrorKind::kOpenRead : ErrorKind::kRead;
    e.transient = !redirect;
    return e;
  }
  if (err->domain == G_IO_ERROR) {
    switch (err->code) {
      case G_IO_ERROR_CONNECTION_REFUSED:
      case G_IO_ERROR_HOST_UNREACHABLE:
      case G_IO_ERROR_NETWORK_UNREACHABLE:
      case G_IO_ERROR_HOST_NOT_FOUND:
        e.kind = ErrorKind::kOpenRead;
        e.transient = true;
        e.message = "Could not connect to the origin: " + e.message;
        return e;
      case G_IO_ERROR_TIMED_OUT:
        e.kind = ErrorKind::kRead;
        e.transient = true;
        e.message = "No data from the origin within the timeout: " + e.message;
        return e;
      default:
        break;
    }
  }
  // Resets, broken pipes, truncated bodies: worth another try.
  e.kind = ErrorKind::kRead;
  e.transient = true;
  return e;
}

Error cancelled_error() {
  Error e;
  e.kind = ErrorKind::kCancelled;
  e.message = "cancelled";
  return e;
}

}  // namespace

class SoupFetch;

class SoupOrigin::Impl {
 public:
  Impl(HttpOptions options, Logger logger) : opts_(std::move(options)), log_(std::move(logger)) {
    context_ = g_main_context_new();
    loop_ = g_main_loop_new(context_, FALSE);
    uri_ = g_uri_parse(opts_.uri.c_str(), G_URI_FLAGS_ENCODED, nullptr);
    thread_ = std::thread([this] { run(); });
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return ready_; });
  }

  ~Impl() {
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

  // Runs `fn` on the I/O thread, later, never inside the caller.
  void post(std::function<void()> fn, unsigned delay_ms = 0) {
    GSource* src = delay_ms ? g_timeout_source_new(delay_ms) : g_idle_source_new();
    // As urgent as the sockets' sources: a cancel must not wait until no
    // body has bytes ready (an idle source's default priority would).
    g_source_set_priority(src, G_PRIORITY_DEFAULT);
    auto* heap = new std::function<void()>(std::move(fn));
    g_source_set_callback(
        src,
        [](gpointer data) -> gboolean {
          (*static_cast<std::function<void()>*>(data))();
          return G_SOURCE_REMOVE;
        },
        heap, [](gpointer data) { delete static_cast<std::function<void()>*>(data); });
    g_source_attach(src, context_);
    g_source_unref(src);
  }

  std::shared_ptr<Fetch> start(const RangeRequest& request, std::shared_ptr<FetchListener> l);

  // ---- I/O thread only ----
  void send(const std::shared_ptr<SoupFetch>& f);
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
  GUri* uri_ = nullptr;    // I/O thread after construction: the redirect target
  bool resolved_ = false;  // redirects were followed once
  bool shutting_down_ = false;
  std::set<std::shared_ptr<SoupFetch>> active_;
  // Plain-TCP sockets of the session's connections, by libsoup's connection
  // id (I/O thread only; a reference each). See SoupFetch::socket.
  std::map<guint64, GSocket*> sockets_;
  void note_socket(guint64 id, GSocket* socket);
  void find_socket(const std::shared_ptr<SoupFetch>& f);
  static void make_room(GSocket* socket, uint64_t bytes);
  // Times out body waits on a socket (the session's timeout covers only
  // libsoup's own waits); runs while some fetch waits on its socket.
  GSource* stall_timer_ = nullptr;
  void check_stalls();

 private:
  void run();
  SoupSession* make_session();

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
  bool paused = false;       // waiting for resume()
  bool reading = false;      // a read (or a wait for one) is in flight
  bool done = false;
};

void SoupOrigin::Impl::run() {
  g_main_context_push_thread_default(context_);
  session_ = make_session();
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

SoupSession* SoupOrigin::Impl::make_session() {
  const unsigned conns = opts_.max_connections ? opts_.max_connections : 1;
  SoupSession* s = soup_session_new_with_options(
      "max-conns", std::max(conns, 10u), "max-conns-per-host", conns, "timeout",
      opts_.timeout_seconds, "user-agent", opts_.user_agent.c_str(), nullptr);

  // Proxy: the property, else the environment like souphttpsrc (http_proxy,
  // https_proxy, no_proxy); GLib's default resolver may ignore them.
  std::string proxy = opts_.proxy;
  if (proxy.empty()) {
    const bool https = uri_ && g_strcmp0(g_uri_get_scheme(uri_), "https") == 0;
    const char* env = g_getenv(https ? "https_proxy" : "http_proxy");
    if (!env) env = g_getenv(https ? "HTTPS_PROXY" : "HTTP_PROXY");
    if (env && *env) proxy = env;
  }
  if (!proxy.empty()) {
    if (!g_strstr_len(proxy.c_str(), -1, "://")) proxy = "http://" + proxy;
    const char* no_proxy = g_getenv("no_proxy");
    if (!no_proxy) no_proxy = g_getenv("NO_PROXY");
    gchar** ignore = no_proxy ? g_strsplit(no_proxy, ",", -1) : nullptr;
    for (gchar** p = ignore; p && *p; ++p) g_strstrip(*p);
    GProxyResolver* resolver = g_simple_proxy_resolver_new(proxy.c_str(), ignore);
    g_strfreev(ignore);
    soup_session_set_proxy_resolver(s, resolver);
    g_object_unref(resolver);
    log_(LogLevel::kInfo, "using proxy %s", proxy.c_str());
  }

  if (opts_.tls_database) {
    soup_session_set_tls_database(s, opts_.tls_database);
  } else if (!opts_.ssl_ca_file.empty()) {
    GError* err = nullptr;
    GTlsDatabase* db = g_tls_file_database_new(opts_.ssl_ca_file.c_str(), &err);
    if (db) {
      soup_session_set_tls_database(s, db);
      g_object_unref(db);
    } else {
      log_(LogLevel::kWarning, "cannot load ssl-ca-file %s: %s", opts_.ssl_ca_file.c_str(),
           err->message);
      g_error_free(err);
    }
  }
  // Otherwise libsoup's default: the system's trust store (as souphttpsrc).
  if (opts_.tls_interaction) soup_session_set_tls_interaction(s, opts_.tls_interaction);

  if (opts_.http_log_level > 0) {
    SoupLogger* logger = soup_logger_new(static_cast<SoupLoggerLogLevel>(opts_.http_log_level));
    soup_logger_set_printer(
        logger,
        [](SoupLogger*, SoupLoggerLogLevel, char direction, const char* data, gpointer user) {
          static_cast<Impl*>(user)->log_(LogLevel::kLog, "HTTP %c %s", direction, data);
        },
        this, nullptr);
    soup_session_add_feature(s, SOUP_SESSION_FEATURE(logger));
    g_object_unref(logger);
  }
  return s;
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

namespace {

void add_header(SoupMessageHeaders* h, const std::string& name, const std::string& value) {
  soup_message_headers_replace(h, name.c_str(), value.c_str());
}

gboolean on_authenticate(SoupMessage*, SoupAuth* auth, gboolean retrying, gpointer user) {
  auto* o = static_cast<const HttpOptions*>(user);
  const bool proxy = soup_auth_is_for_proxy(auth);
  const std::string& id = proxy ? o->proxy_id : o->user_id;
  const std::string& pw = proxy ? o->proxy_pw : o->user_pw;
  if (retrying || id.empty()) return FALSE;  // wrong credentials: the 401/407 stands
  soup_auth_authenticate(auth, id.c_str(), pw.c_str());
  return TRUE;
}

// A connection was made for the message: file its socket under the
// connection's id, known by now (libsoup assigns the connection before it
// connects and re-emits its events on the message). Plain TCP only: over TLS,
// bytes may wait decrypted inside the TLS layer while its socket is quiet.
void on_network_event(SoupMessage* msg, GSocketClientEvent event, GIOStream* connection,
                      gpointer user) {
  if (event != G_SOCKET_CLIENT_COMPLETE || !G_IS_SOCKET_CONNECTION(connection)) return;
  const guint64 id = soup_message_get_connection_id(msg);
  if (id == 0) return;
  static_cast<SoupOrigin::Impl*>(user)->note_socket(
      id, g_socket_connection_get_socket(G_SOCKET_CONNECTION(connection)));
}

gboolean on_accept_certificate(SoupMessage*, GTlsCertificate*, GTlsCertificateFlags, gpointer) {
  return TRUE;  // only connected when ssl-strict is off
}

}  // namespace

void SoupOrigin::Impl::send(const std::shared_ptr<SoupFetch>& f) {
  f->sent = true;
  if (!uri_) {
    Error e;
    e.kind = ErrorKind::kOpenRead;
    e.message = "Invalid URI '" + opts_.uri + "'";
    return finish(f, &e);
  }
  f->msg = soup_message_new_from_uri("GET", uri_);
  SoupMessageHeaders* h = soup_message_get_request_headers(f->msg);
  const RangeRequest& r = f->request;
  if (r.end)
    soup_message_headers_set_range(h, static_cast<goffset>(r.begin),
                                   static_cast<goffset>(*r.end - 1));
  else
    soup_message_headers_set_range(h, static_cast<goffset>(r.begin), -1);
  // If-Range makes a changed resource answer 200 (which the engine detects)
  // instead of splicing new bytes into old. Weak tags are not allowed there.
  if (!r.validator.empty() && !is_weak_etag(r.validator)) add_header(h, "If-Range", r.validator);
  for (const auto& [name, value] : opts_.extra_headers)
    soup_message_headers_append(h, name.c_str(), value.c_str());
  if (!opts_.cookies.empty()) {
    std::string cookie;
    for (const auto& c : opts_.cookies) cookie += (cookie.empty() ? "" : "; ") + c;
    add_header(h, "Cookie", cookie);
  }
  if (!opts_.keep_alive) add_header(h, "Connection", "close");
  // Always ask for the identity encoding: byte offsets must be the file's.
  add_header(h, "Accept-Encoding", "identity");
  if (!opts_.automatic_redirect) soup_message_add_flags(f->msg, SOUP_MESSAGE_NO_REDIRECT);
#if SOUP_CHECK_VERSION(3, 4, 0)
  if (opts_.force_http1) soup_message_set_force_http1(f->msg, TRUE);
#endif
  g_signal_connect(f->msg, "authenticate", G_CALLBACK(on_authenticate), &opts_);
  g_signal_connect(f->msg, "network-event", G_CALLBACK(on_network_event), this);
  if (!opts_.ssl_strict)
    g_signal_connect(f->msg, "accept-certificate", G_CALLBACK(on_accept_certificate), nullptr);

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

        ResponseHead head;
        head.status = static_cast<int>(soup_message_get_status(f->msg));
        SoupMessageHeaders* rh = soup_message_get_response_headers(f->msg);
        if (const char* cr = soup_message_headers_get_one(rh, "Content-Range")) {
          if (auto parsed = parse_content_range(cr)) {
            head.has_range = !parsed->unsatisfied;
            head.first = parsed->first;
            head.last = parsed->last;
            head.total = parsed->total;
          }
        }
        if (const char* cl = soup_message_headers_get_one(rh, "Content-Length"))
          head.content_length = parse_content_length(cl);
        if (const char* etag = soup_message_headers_get_one(rh, "ETag")) {
          if (auto tag = parse_etag(etag)) head.validator = std::string(*tag);
        }
        if (head.validator.empty()) {
          if (const char* lm = soup_message_headers_get_one(rh, "Last-Modified"))
            head.validator = lm;
        }
        if (const char* ra = soup_message_headers_get_one(rh, "Retry-After")) head.retry_after = ra;
        // Follow redirects once: later blocks go straight to the target.
        // (Only the first good answer pays for comparing URIs.)
        if (!o->resolved_ && head.status >= 200 && head.status < 300) {
          o->resolved_ = true;
          GUri* final_uri = soup_message_get_uri(f->msg);
          char* after = g_uri_to_string(final_uri);
          char* before = g_uri_to_string(o->uri_);
          if (g_strcmp0(after, before) != 0) {
            g_uri_unref(o->uri_);
            o->uri_ = g_uri_ref(final_uri);
            o->log_(LogLevel::kInfo, "redirected to %s", after);
          }
          g_free(after);
          g_free(before);
        }
        if (!f->listener->on_head(head)) {
          Error e = cancelled_error();
          g_cancellable_cancel(f->cancellable);
          return o->finish(f, &e);
        }
        o->read_next(f);
      },
      ref);
}

void SoupOrigin::Impl::read_next(const std::shared_ptr<SoupFetch>& f) {
  if (f->done) return;
  if (f->pollable) return read_pollable(f);
  size_t length = 0;
  uint8_t* area = next_area(f, &length);
  if (length > 0) read_async(f, area, length);
}

// The listener's next area. With none (length 0) the fetch has ended, if
// cancelled, or is paused until resume().
uint8_t* SoupOrigin::Impl::next_area(const std::shared_ptr<SoupFetch>& f, size_t* length) {
  uint8_t* area = f->listener->write_area(length);
  if (*length > 0) return area;
  if (g_cancellable_is_cancelled(f->cancellable)) {
    Error e = cancelled_error();
    finish(f, &e);
  } else {
    f->paused = true;
  }
  return nullptr;
}

void SoupOrigin::Impl::read_async(const std::shared_ptr<SoupFetch>& f, uint8_t* area,
                                  size_t length) {
  f->reading = true;
  auto* ref = new std::shared_ptr<SoupFetch>(f);
  g_input_stream_read_async(
      f->stream, area, length, G_PRIORITY_DEFAULT, f->cancellable,
      [](GObject* source, GAsyncResult* res, gpointer data) {
        std::shared_ptr<SoupFetch> f = std::move(*static_cast<std::shared_ptr<SoupFetch>*>(data));
        delete static_cast<std::shared_ptr<SoupFetch>*>(data);
        f->reading = false;
        GError* err = nullptr;
        const gssize n = g_input_stream_read_finish(G_INPUT_STREAM(source), res, &err);
        if (f->done) {
          if (err) g_error_free(err);
          return;
        }
        Impl* o = f->origin_;
        if (n < 0) {
          Error e = gerror_to_error(err);
          g_error_free(err);
          return o->finish(f, &e);
        }
        if (n == 0) return o->finish(f, nullptr);
        f->listener->on_data(static_cast<size_t>(n));
        o->read_next(f);
      },
      ref);
}

namespace {

// Bytes one pass of read_pollable() takes from a stream before it lets the
// other sources of the context run (other fetches, cancellations).
constexpr size_t kPollableBudget = 1 << 20;

}  // namespace

// Reads whatever the stream holds without waiting, into the listener's area,
// and reports it with one on_data per area filled or per pass: one lock of
// the engine and one wake-up of the reader per batch of socket reads, not
// per read. Then waits for more with a source (no GTask per read). A pass
// ends as soon as the socket is empty, so no byte waits for a later one.
void SoupOrigin::Impl::read_pollable(const std::shared_ptr<SoupFetch>& f) {
  auto* in = G_POLLABLE_INPUT_STREAM(f->stream);
  size_t budget = kPollableBudget;
  bool past_budget = false;
  while (!f->done) {
    size_t length = 0;
    uint8_t* area = next_area(f, &length);
    if (length == 0) return stop_waiting(f);  // ended or paused
    size_t got = 0;
    bool eof = false;
    GError* err = nullptr;
    do {  // at least one read per area: a full block's next read finds the end of the body
      const gssize n = g_pollable_input_stream_read_nonblocking(in, area + got, length - got,
                                                                f->cancellable, &err);
      if (n < 0) break;
      if (n == 0) {
        eof = true;
        break;
      }
      got += static_cast<size_t>(n);
    } while (got < length && got < budget);
    budget -= std::min(budget, got);
    if (got > 0) f->last_progress = g_get_monotonic_time();
    if (got > 0) f->listener->on_data(got);
    if (err) {
      if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        g_error_free(err);
        return wait_readable(f);
      }
      Error e = gerror_to_error(err);
      g_error_free(err);
      return finish(f, &e);
    }
    if (eof) return finish(f, nullptr);
    // The budget is spent: let other sources run, then go on from a posted
    // call (not a wait for readiness: libsoup may hold bytes it read ahead
    // while the socket is quiet). Not when an area was just filled, though:
    // one more read may find the end of the body, and a fetch that ends here
    // keeps its connection for the next request (a cancel before that read,
    // when the reader is done with the block, would make libsoup close it).
    if (budget == 0 && (got < length || past_budget)) {
      return post([this, f] {
        if (!f->done && !f->paused) read_pollable(f);
      });
    }
    past_budget = budget == 0;
  }
}

// A new plain-TCP connection `id` has `socket`. Connections that closed
// since are forgotten.
void SoupOrigin::Impl::note_socket(guint64 id, GSocket* socket) {
  for (auto it = sockets_.begin(); it != sockets_.end();) {
    if (g_socket_is_closed(it->second)) {
      g_object_unref(it->second);
      it = sockets_.erase(it);
    } else {
      ++it;
    }
  }
  GSocket*& slot = sockets_[id];
  if (slot) g_object_unref(slot);
  slot = G_SOCKET(g_object_ref(socket));
}

// The socket under the fetch's body, if its connection is plain TCP.
void SoupOrigin::Impl::find_socket(const std::shared_ptr<SoupFetch>& f) {
  auto it = sockets_.find(soup_message_get_connection_id(f->msg));
  if (it == sockets_.end() || g_socket_is_closed(it->second)) return;
  f->socket = G_SOCKET(g_object_ref(it->second));
  if (f->request.end) make_room(f->socket, *f->request.end - f->request.begin);
}

namespace {

// The most a socket's receive buffer may be set to (net.core.rmem_max), or
// 0 if unknown.
int max_receive_buffer() {
  static const int max = [] {
    gchar* text = nullptr;
    int value = 0;
    if (g_file_get_contents("/proc/sys/net/core/rmem_max", &text, nullptr, nullptr)) {
      value = static_cast<int>(g_ascii_strtoll(text, nullptr, 10));
      g_free(text);
    }
    return value;
  }();
  return max;
}

}  // namespace

// Lets the socket hold a whole body of `bytes` (up to 4 MiB), so that the
// origin can send it without waiting for our reads. Linux sizes a receive
// buffer by how much the reader takes per round trip; on a short round trip
// (loopback, LAN) with a reader as quick as ours it stays small: the sender
// then waits for each window update, our reads come ~64 KiB at a time, and
// our thread even runs the sender's transmissions when its ACKs open the
// window (perf: a third of the I/O thread in softirq TCP). Only ever raised,
// and only where the kernel grants it in full (at most rmem_max): a set size
// ends the kernel's own tuning, which must not be traded for less.
void SoupOrigin::Impl::make_room(GSocket* socket, uint64_t bytes) {
  const int want = static_cast<int>(std::min<uint64_t>(bytes, 4u << 20));
  if (want > max_receive_buffer()) return;
  const int fd = g_socket_get_fd(socket);
  int have = 0;
  socklen_t len = sizeof have;
  // The kernel reports (and allocates) twice the size asked for.
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &have, &len) != 0 || have / 2 >= want) return;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
}

// One-shot source: fires when the stream is readable, its socket times out
// (the session's `timeout`: the next read then fails with TIMED_OUT) or the
// fetch is cancelled (the next read fails with CANCELLED). While it waits
// the fetch counts as reading, so cancel_fetch leaves the ending to it.
// One source per wait, as GIO's own read_async does: a source kept attached
// across waits stops firing on TLS streams (glib-networking sets its
// readiness when the source is made).
void SoupOrigin::Impl::wait_readable(const std::shared_ptr<SoupFetch>& f) {
  f->reading = true;
  if (f->source) return;  // already waiting
  if (f->socket && !g_socket_is_closed(f->socket)) {
    // Every layer above the socket has handed out what it buffered (the
    // read that would block went through them), so the socket's readiness
    // is the stream's. One plain fd source, kept from one wait to the next
    // and never blocked while it dispatches (blocking takes the fd out of
    // the context and puts it back, each time waking the context; the
    // callback never iterates the context, so it cannot recurse anyway).
    // The stall timeout and the cancellation are ours to watch here.
    f->last_progress = g_get_monotonic_time();
    f->on_socket = true;
    f->source = g_unix_fd_source_new(g_socket_get_fd(f->socket),
                                     static_cast<GIOCondition>(G_IO_IN | G_IO_HUP | G_IO_ERR));
    g_source_set_can_recurse(f->source, TRUE);
    GUnixFDSourceFunc ready = [](gint, GIOCondition, gpointer data) -> gboolean {
      std::shared_ptr<SoupFetch> f = *static_cast<std::shared_ptr<SoupFetch>*>(data);
      GSource* self = f->source;
      if (!f->done) f->origin_->read_pollable(f);
      // Still waiting with this source: keep it. Otherwise it was destroyed.
      return f->source == self && self ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
    };
    g_source_set_callback(
        f->source, G_SOURCE_FUNC(ready), new std::shared_ptr<SoupFetch>(f),
        [](gpointer data) { delete static_cast<std::shared_ptr<SoupFetch>*>(data); });
    g_source_attach(f->source, context_);
    if (opts_.timeout_seconds > 0 && !stall_timer_) {
      stall_timer_ = g_timeout_source_new(250);
      g_source_set_callback(
          stall_timer_,
          [](gpointer data) -> gboolean {
            static_cast<Impl*>(data)->check_stalls();
            return G_SOURCE_CONTINUE;
          },
          this, nullptr);
      g_source_attach(stall_timer_, context_);
    }
    return;
  }
  f->source =
      g_pollable_input_stream_create_source(G_POLLABLE_INPUT_STREAM(f->stream), f->cancellable);
  g_source_set_priority(f->source, G_PRIORITY_DEFAULT);
  GPollableSourceFunc ready = [](GObject*, gpointer data) -> gboolean {
    std::shared_ptr<SoupFetch> f = *static_cast<std::shared_ptr<SoupFetch>*>(data);
    f->reading = false;
    g_clear_pointer(&f->source, g_source_unref);  // GLib holds it while dispatching
    if (!f->done) f->origin_->read_pollable(f);
    return G_SOURCE_REMOVE;
  };
  g_source_set_callback(
      f->source, G_SOURCE_FUNC(ready), new std::shared_ptr<SoupFetch>(f),
      [](gpointer data) { delete static_cast<std::shared_ptr<SoupFetch>*>(data); });
  g_source_attach(f->source, context_);
}

// The fetch pauses (or ends): no more waiting for the stream.
void SoupOrigin::Impl::stop_waiting(const std::shared_ptr<SoupFetch>& f) {
  f->reading = false;
  f->on_socket = false;
  if (!f->source) return;
  g_source_destroy(f->source);
  g_clear_pointer(&f->source, g_source_unref);
}

// Fails the socket waits that saw no byte for the timeout, as libsoup's
// socket timeout fails its own; stops when no fetch waits on a socket.
void SoupOrigin::Impl::check_stalls() {
  const gint64 now = g_get_monotonic_time();
  const gint64 limit = static_cast<gint64>(opts_.timeout_seconds) * G_USEC_PER_SEC;
  std::vector<std::shared_ptr<SoupFetch>> stalled;
  bool waiting = false;
  for (const auto& f : active_) {
    if (!f->on_socket) continue;
    waiting = true;
    if (now - f->last_progress >= limit) stalled.push_back(f);
  }
  for (const auto& f : stalled) {
    GError* err = g_error_new_literal(G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "Socket I/O timed out");
    Error e = gerror_to_error(err);
    g_error_free(err);
    // Cancelled first, so that libsoup drops the rest of the body at once.
    g_cancellable_cancel(f->cancellable);
    finish(f, &e);
  }
  if (!waiting && stall_timer_) {
    g_source_destroy(stall_timer_);
    g_clear_pointer(&stall_timer_, g_source_unref);
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
