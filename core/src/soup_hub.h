// SoupHub: one I/O thread, its GMainContext and one SoupSession, shared by
// every SoupOrigin of the process whose SessionSettings are equal.
//
// A hub is made by the first origin that asks for its settings and lives as
// long as some origin holds it (shared_ptr); the last one to let go stops
// and joins the thread (never from the thread itself). Each origin keeps its
// own fetches, redirect target, cookie jar and logger; the hub holds what
// libsoup keeps per session: the session, the plain-TCP socket under each of
// its connections (a connection made for one origin's request may carry
// another's next), and the routing of the session's HTTP log to the origin
// whose message it prints.
#pragma once

#include <libsoup/soup.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "prefetch/log.h"
#include "prefetch/origin.h"
#include "soup_session.h"

namespace prefetch {

class SoupHub {
 public:
  // The hub for `settings`: the live one, or a new one (its thread started
  // and its session made before this returns). Thread-safe.
  static std::shared_ptr<SoupHub> get(const SessionSettings& settings);
  // Live hubs in the process (tests).
  static size_t count();

  // Stops the loop, joins the thread. Not on the hub's own thread.
  ~SoupHub();
  SoupHub(const SoupHub&) = delete;
  SoupHub& operator=(const SoupHub&) = delete;

  // Runs `fn` on the I/O thread, later, never inside the caller. Any thread.
  void post(std::function<void()> fn, unsigned delay_ms = 0);

  const SessionSettings& settings() const { return settings_; }
  // Why the settings' CA file could not be loaded; "" if it was (or none).
  const std::string& ca_problem() const { return ca_problem_; }

  // ---- I/O thread only ----
  GMainContext* context() const { return context_; }
  SoupSession* session() const { return session_; }

  // Files the socket of each plain-TCP connection the message makes
  // (connect to its "network-event").
  static void on_network_event(SoupMessage* msg, GSocketClientEvent event, GIOStream* connection,
                               gpointer hub);
  // The open socket under libsoup's connection `id`, or null (borrowed).
  GSocket* socket(guint64 id) const;
  // What `msg`, whose head was just written, went out on: how long opening
  // its connection took (the message's metrics, for a connection made for
  // it; what was measured when it was made, for one reused). The message
  // must collect metrics (SOUP_MESSAGE_COLLECT_METRICS).
  SentInfo sent_info(SoupMessage* msg);

  // Where the session's HTTP log lines about one origin's messages go. The
  // origin sets `alive` false (I/O thread) when it goes; lines about its
  // messages are dropped from then on.
  struct LogRoute {
    explicit LogRoute(Logger l) : log(std::move(l)) {}
    Logger log;
    bool alive = true;
  };
  // The session's HTTP log lines about `msg` go to `route`.
  static void route_log(SoupMessage* msg, const std::shared_ptr<LogRoute>& route);

 private:
  explicit SoupHub(const SessionSettings& settings);
  void run();
  void note_socket(guint64 id, GSocket* socket);
  static SoupLoggerLogLevel log_filter(SoupLogger*, SoupMessage* msg, gpointer hub);

  const SessionSettings settings_;
  std::string ca_problem_;
  GMainContext* context_ = nullptr;
  GMainLoop* loop_ = nullptr;
  SoupSession* session_ = nullptr;
  // Plain-TCP sockets of the session's connections, by libsoup's connection
  // id (I/O thread only; a reference each).
  std::map<guint64, GSocket*> sockets_;
  // How long opening each recent connection took, by libsoup's connection
  // id (I/O thread only; the newest kMaxSetups).
  std::map<guint64, std::chrono::microseconds> setups_;
  // The route of the message the SoupLogger prints now (I/O thread only):
  // the logger asks its filter about a message before each batch of lines.
  std::shared_ptr<LogRoute> printing_;

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;
};

}  // namespace prefetch
