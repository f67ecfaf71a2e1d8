// SoupHub: the shared I/O thread and session (see soup_hub.h), the registry
// of live hubs by settings, and the per-session state: sockets by connection
// and the HTTP log's routing.
//
// libsoup binds a SoupSession to the thread-default GMainContext it was made
// in. The hub owns that context and the only thread that runs it: every
// libsoup call of the origins on the hub happens there, asynchronously.
// Other threads only post closures to it (never g_main_context_invoke, which
// would run the closure at once when called from the I/O thread itself and
// so call a listener synchronously, breaking the Origin contract).

#include "soup_hub.h"

#include <pthread.h>

#include <utility>

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

// The live hubs by settings. An entry whose hub is going (its last owner let
// go, its destructor not yet done) is expired: a new hub replaces it, and
// the old one's destructor leaves the new entry alone.
struct Registry {
  struct Entry {
    std::weak_ptr<SoupHub> hub;
    const SoupHub* raw = nullptr;
  };
  std::mutex mu;
  std::map<SessionSettings, Entry> hubs;
  size_t live = 0;
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: hubs may go at exit
  return *r;
}

GQuark log_route_quark() {
  static const GQuark q = g_quark_from_static_string("prefetch-log-route");
  return q;
}

}  // namespace

std::shared_ptr<SoupHub> SoupHub::get(const SessionSettings& settings) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  Registry::Entry& entry = r.hubs[settings];
  if (auto hub = entry.hub.lock()) return hub;
  // Made under the registry's lock: a second origin with these settings
  // waits for this hub rather than making its own. Quick: the thread starts
  // and makes the session, no network.
  std::shared_ptr<SoupHub> hub(new SoupHub(settings));
  entry.hub = hub;
  entry.raw = hub.get();
  ++r.live;
  return hub;
}

size_t SoupHub::count() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.live;
}

SoupHub::SoupHub(const SessionSettings& settings) : settings_(settings) {
  // The settings name these by identity: hold them while the hub lives, so
  // that no other object takes their address while it is a key.
  if (settings_.tls_database) g_object_ref(settings_.tls_database);
  if (settings_.tls_interaction) g_object_ref(settings_.tls_interaction);
  context_ = g_main_context_new();
  loop_ = g_main_loop_new(context_, FALSE);
  thread_ = std::thread([this] { run(); });
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return ready_; });
}

SoupHub::~SoupHub() {
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.hubs.find(settings_);
    if (it != r.hubs.end() && it->second.raw == this) r.hubs.erase(it);
    --r.live;
  }
  post([this] { g_main_loop_quit(loop_); });
  thread_.join();
  for (auto& [id, socket] : sockets_) g_object_unref(socket);
  g_main_loop_unref(loop_);
  g_main_context_unref(context_);
  if (settings_.tls_database) g_object_unref(settings_.tls_database);
  if (settings_.tls_interaction) g_object_unref(settings_.tls_interaction);
}

void SoupHub::post(std::function<void()> fn, unsigned delay_ms) {
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

void SoupHub::run() {
  pthread_setname_np(pthread_self(), "prefetch-io");
  g_main_context_push_thread_default(context_);
  session_ = make_session(settings_, &ca_problem_);
  if (settings_.http_log_level > 0) {
    auto* logger = SOUP_LOGGER(soup_session_get_feature(session_, SOUP_TYPE_LOGGER));
    soup_logger_set_request_filter(logger, log_filter, this, nullptr);
    soup_logger_set_response_filter(logger, log_filter, this, nullptr);
    soup_logger_set_printer(
        logger,
        [](SoupLogger*, SoupLoggerLogLevel, char direction, const char* data, gpointer user) {
          const auto& route = static_cast<SoupHub*>(user)->printing_;
          if (route) route->log(LogLevel::kLog, "HTTP %c %s", direction, data);
        },
        this, nullptr);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready_ = true;
  }
  cv_.notify_all();
  g_main_loop_run(loop_);
  soup_session_abort(session_);
  g_object_unref(session_);
  session_ = nullptr;
  printing_.reset();
  // Let cancelled operations release their sources before the context goes.
  while (g_main_context_iteration(context_, FALSE)) {
  }
  g_main_context_pop_thread_default(context_);
}

// The logger asks before it prints a message's request or response (and
// before it wraps a body): the lines that follow are that message's.
SoupLoggerLogLevel SoupHub::log_filter(SoupLogger*, SoupMessage* msg, gpointer user) {
  auto* hub = static_cast<SoupHub*>(user);
  auto* route =
      static_cast<std::shared_ptr<LogRoute>*>(g_object_get_qdata(G_OBJECT(msg), log_route_quark()));
  if (!route || !*route || !(*route)->alive) {
    hub->printing_.reset();
    return SOUP_LOGGER_LOG_NONE;
  }
  hub->printing_ = *route;
  return static_cast<SoupLoggerLogLevel>(hub->settings_.http_log_level);
}

void SoupHub::route_log(SoupMessage* msg, const std::shared_ptr<LogRoute>& route) {
  g_object_set_qdata_full(G_OBJECT(msg), log_route_quark(), new std::shared_ptr<LogRoute>(route),
                          [](gpointer p) { delete static_cast<std::shared_ptr<LogRoute>*>(p); });
}

// A connection was made for the message: file its socket under the
// connection's id, known by now (libsoup assigns the connection before it
// connects and re-emits its events on the message). Plain TCP only: over TLS,
// bytes may wait decrypted inside the TLS layer while its socket is quiet.
void SoupHub::on_network_event(SoupMessage* msg, GSocketClientEvent event, GIOStream* connection,
                               gpointer user) {
  if (event != G_SOCKET_CLIENT_COMPLETE || !G_IS_SOCKET_CONNECTION(connection)) return;
  const guint64 id = soup_message_get_connection_id(msg);
  if (id == 0) return;
  static_cast<SoupHub*>(user)->note_socket(
      id, g_socket_connection_get_socket(G_SOCKET_CONNECTION(connection)));
}

// A new plain-TCP connection `id` has `socket`. Connections that closed
// since are forgotten.
void SoupHub::note_socket(guint64 id, GSocket* socket) {
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

SentInfo SoupHub::sent_info(SoupMessage* msg) {
  // Connections whose set-up time is kept: more than a process keeps open.
  constexpr size_t kMaxSetups = 256;
  SentInfo info;
  const guint64 id = soup_message_get_connection_id(msg);
  SoupMessageMetrics* metrics = soup_message_get_metrics(msg);
  const guint64 start = metrics ? soup_message_metrics_get_connect_start(metrics) : 0;
  const guint64 end = metrics ? soup_message_metrics_get_connect_end(metrics) : 0;
  if (start != 0 && end >= start) {
    info.setup = std::chrono::microseconds(end - start);
    if (id != 0) {
      setups_[id] = *info.setup;
      if (setups_.size() > kMaxSetups) setups_.erase(setups_.begin());  // the oldest id
    }
    return info;
  }
  info.reused = true;  // no connect of its own: a pooled connection
  auto it = setups_.find(id);
  if (it != setups_.end()) info.setup = it->second;
  return info;
}

GSocket* SoupHub::socket(guint64 id) const {
  auto it = sockets_.find(id);
  if (it == sockets_.end() || g_socket_is_closed(it->second)) return nullptr;
  return it->second;
}

}  // namespace prefetch
