// SoupOrigin: an Origin over libsoup-3.0. Every libsoup call happens on an
// I/O thread that runs a private GMainContext, asynchronously. The origins
// of a process whose session settings are equal share one such thread and
// one SoupSession (its connections included): user agent, timeout, proxy
// (as resolved from the option or the environment), TLS database, CA file
// and interaction (objects by identity), compress, HTTP log level,
// credentials and ssl-strict. Everything else (fetches, redirect target,
// cookies, log) stays each origin's own.
#pragma once

#include <gio/gio.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "prefetch/log.h"
#include "prefetch/origin.h"

namespace prefetch {

// The low-speed floor of a request's body, in bytes a second: far below any
// media stream (4 kbit/s; a 16 kbit/s live stream sends 2000 B/s), far above
// a trickle that would keep a dead-but-open origin from ever failing.
constexpr uint64_t kLowSpeedFloor = 512;

struct HttpOptions {
  // The defaults a front end shares (the plugin's properties take theirs
  // from these); the user agent, HTTP log level and iradio mode are each
  // front end's own.
  static constexpr unsigned kDefaultTimeoutSeconds = 15;
  static constexpr bool kDefaultSslStrict = true;
  static constexpr bool kDefaultAutomaticRedirect = true;
  static constexpr bool kDefaultKeepAlive = true;
  static constexpr bool kDefaultCompress = false;

  std::string uri;
  std::string user_agent = "prefetchsrc";
  std::vector<std::pair<std::string, std::string>> extra_headers;
  std::vector<std::string> cookies;  // "name=value" each
  // A request whose body brings less than kLowSpeedFloor bytes a second
  // (nothing, or a trickle) for this long is stalled: it fails (transient,
  // Error::stalled) and is retried. 0 = never.
  unsigned timeout_seconds = kDefaultTimeoutSeconds;
  std::string proxy;  // empty: the environment's (http_proxy, ...)
  std::string proxy_id, proxy_pw;
  std::string user_id, user_pw;
  bool ssl_strict = kDefaultSslStrict;
  std::string ssl_ca_file;
  GTlsDatabase* tls_database = nullptr;        // borrowed; overrides the CA settings
  GTlsInteraction* tls_interaction = nullptr;  // borrowed
  bool automatic_redirect = kDefaultAutomaticRedirect;
  bool keep_alive = kDefaultKeepAlive;
  int http_log_level = 0;  // SoupLoggerLogLevel; 0 = no HTTP log
  // Requests of this origin sent at once, at most (0 = no limit); later ones
  // wait in order. Not a session setting: the session is shared and lets a
  // host have many more connections (the host budget, host_budget.h, is
  // the process-wide bound).
  unsigned max_connections = 4;
  // The process's connections to one host, idle kept-alive ones included
  // (max-host-connections; 0 = no limit). The host budget bounds requests;
  // this bounds the session's sockets to each host, so that a connection
  // still closing or kept alive for reuse never takes the count past it.
  unsigned max_host_connections = 0;
  // Map each block request to its own HTTP/1.1 connection: origins that cap
  // each connection's rate would gain nothing from HTTP/2 multiplexing.
  bool force_http1 = true;
  // Sends "icy-metadata: 1": an Icecast/SHOUTcast server then interleaves
  // its metadata with the stream and says where (icy-metaint).
  bool iradio_mode = false;
  // Accept gzip and deflate (libsoup's SoupContentDecoder decodes them)
  // instead of asking for the identity encoding.
  bool compress = kDefaultCompress;
};

class SoupOrigin : public Origin {
 public:
  // Joins the I/O thread of its session settings, starting it (and making
  // the session) if no other origin of the process runs it. Never blocks
  // on the network.
  SoupOrigin(HttpOptions options, Logger logger);
  // Cancels every fetch of this origin, waits for their on_done, and leaves
  // the shared thread to the other origins; the last origin on the thread
  // stops and joins it. Not on the I/O thread (not from a listener).
  ~SoupOrigin() override;

  std::shared_ptr<Fetch> start(const RangeRequest& request,
                               std::shared_ptr<FetchListener> listener) override;
  void post(std::function<void()> fn) override;
  bool may_multiplex() const override;  // https

  // Checks a URI: http/https with a host. Returns an error message or "".
  static std::string validate_uri(const std::string& uri);

  // The GType of libsoup's logger levels (SoupLoggerLogLevel), so the element
  // can offer souphttpsrc's `http-log-level` without calling libsoup itself.
  static GType http_log_level_type();

  // Identifies the I/O thread and session this origin runs on: equal for
  // origins that share them (tests, diagnostics).
  const void* hub() const;
  // I/O threads (hubs) running in the process now.
  static size_t hubs();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace prefetch
