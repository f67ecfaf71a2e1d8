// The SoupSession an origin's requests go through and the settings it is made
// from. Origins whose SessionSettings are equal share one session (and the
// I/O thread it lives on, soup_hub.h); everything else of HttpOptions goes on
// each message: credentials, ssl-strict, cookies, headers, redirects.
#pragma once

#include <libsoup/soup.h>

#include <string>
#include <tuple>

#include "prefetch/soup_origin.h"

namespace prefetch {

// Everything of a session that one origin's requests could tell from
// another's: what make_session() makes the session from, and the options
// whose effects libsoup keeps per session although we set them per message.
// Equal settings share a session.
struct SessionSettings {
  // ---- what make_session() reads ----
  std::string user_agent;
  unsigned timeout_seconds = 0;
  // The proxy as it will be used: the `proxy` option, else the environment's
  // (http_proxy or https_proxy by the URI's scheme, then the upper-case
  // names), with "http://" added when it has no scheme; "" for none. With a
  // proxy, the environment's no_proxy (or NO_PROXY) as it was read.
  std::string proxy;
  std::string no_proxy;
  // By identity (the objects are compared, not their contents). With a
  // database, ssl_ca_file is left empty: the database overrides it.
  GTlsDatabase* tls_database = nullptr;
  std::string ssl_ca_file;
  GTlsInteraction* tls_interaction = nullptr;
  bool compress = false;
  int http_log_level = 0;       // a SoupLogger on the session when > 0
  unsigned conns_per_host = 0;  // 0: kSessionConnsPerHost
  // ---- per message, but remembered by the session ----
  // libsoup's auth manager caches the credentials a host accepted and sends
  // them unasked to that host's later requests, whoever sends them.
  std::string user_id, user_pw, proxy_id, proxy_pw;
  // A connection whose certificate a lax origin accepted is kept and reused
  // for the host's later requests, a strict origin's too.
  bool ssl_strict = true;

  auto tie() const {
    return std::tie(user_agent, timeout_seconds, proxy, no_proxy, tls_database, ssl_ca_file,
                    tls_interaction, compress, http_log_level, conns_per_host, user_id, user_pw,
                    proxy_id, proxy_pw, ssl_strict);
  }
  bool operator==(const SessionSettings& o) const { return tie() == o.tie(); }
  bool operator<(const SessionSettings& o) const { return tie() < o.tie(); }
};

// The session settings of `options`; `uri` (may be null) picks the
// environment's proxy variable by its scheme. Reads the environment.
SessionSettings session_settings(const HttpOptions& options, GUri* uri);

// Requests a session lets run at once, to one host and in all, without a
// max-host-connections: more than any host budget (host_budget.h) hands
// out, so that the budget governs. With one, the session's per-host cap is
// that limit: the budget bounds requests, the cap bounds sockets (kept-alive
// idle ones and closing ones included); a request the budget allowed waits
// in libsoup only while a connection of the host is still closing.
constexpr unsigned kSessionConnsPerHost = 512;
constexpr unsigned kSessionConns = 2048;

// A new session, bound to the calling thread's thread-default context, with
// no HTTP log printer of its own (the hub routes it) and no cookie jar
// (each origin keeps its own: connect_cookie_jar). A CA file that cannot be
// loaded is described in `*problem` (the session then trusts the system's
// store); otherwise `*problem` is left empty.
SoupSession* make_session(const SessionSettings& settings, std::string* problem);

// Answers `msg`'s authentication with the options' credentials and, with
// ssl-strict off, accepts any certificate; keeps the `cookies` option's
// cookies in the Cookie header next to the cookie jar's.
// `options` must outlive `msg`'s handlers (disconnect them by data).
void connect_credentials(SoupMessage* msg, const HttpOptions* options);

// Sends `jar`'s cookies with `msg` (each hop of a redirect) and keeps the
// cookies its answers set, as a jar added to the session would, but for
// this origin alone. Connect before connect_credentials (whose cookies go
// after the jar's). `jar` must outlive `msg`'s handlers (disconnect by data).
void connect_cookie_jar(SoupMessage* msg, SoupCookieJar* jar);

}  // namespace prefetch
