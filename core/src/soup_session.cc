#include "soup_session.h"

#include <set>
#include <string>

namespace prefetch {

SessionSettings session_settings(const HttpOptions& opts, GUri* uri) {
  SessionSettings s;
  s.user_agent = opts.user_agent;
  s.timeout_seconds = opts.timeout_seconds;
  // Proxy: the property, else the environment like souphttpsrc (http_proxy,
  // https_proxy, no_proxy); GLib's default resolver may ignore them.
  std::string proxy = opts.proxy;
  if (proxy.empty()) {
    const bool https = uri && g_strcmp0(g_uri_get_scheme(uri), "https") == 0;
    const char* env = g_getenv(https ? "https_proxy" : "http_proxy");
    if (!env) env = g_getenv(https ? "HTTPS_PROXY" : "HTTP_PROXY");
    if (env && *env) proxy = env;
  }
  if (!proxy.empty()) {
    if (!g_strstr_len(proxy.c_str(), -1, "://")) proxy = "http://" + proxy;
    const char* no_proxy = g_getenv("no_proxy");
    if (!no_proxy) no_proxy = g_getenv("NO_PROXY");
    s.proxy = proxy;
    s.no_proxy = no_proxy ? no_proxy : "";
  }
  s.tls_database = opts.tls_database;
  if (!opts.tls_database) s.ssl_ca_file = opts.ssl_ca_file;
  s.tls_interaction = opts.tls_interaction;
  s.compress = opts.compress;
  s.http_log_level = opts.http_log_level > 0 ? opts.http_log_level : 0;
  s.conns_per_host = opts.max_host_connections;
  s.user_id = opts.user_id;
  s.user_pw = opts.user_pw;
  s.proxy_id = opts.proxy_id;
  s.proxy_pw = opts.proxy_pw;
  s.ssl_strict = opts.ssl_strict;
  return s;
}

SoupSession* make_session(const SessionSettings& settings, std::string* problem) {
  problem->clear();
  SoupSession* s = soup_session_new_with_options(
      "max-conns", kSessionConns, "max-conns-per-host",
      settings.conns_per_host ? settings.conns_per_host : kSessionConnsPerHost, "timeout",
      settings.timeout_seconds, "user-agent", settings.user_agent.c_str(), nullptr);

  if (!settings.proxy.empty()) {
    gchar** ignore =
        settings.no_proxy.empty() ? nullptr : g_strsplit(settings.no_proxy.c_str(), ",", -1);
    for (gchar** p = ignore; p && *p; ++p) g_strstrip(*p);
    GProxyResolver* resolver = g_simple_proxy_resolver_new(settings.proxy.c_str(), ignore);
    g_strfreev(ignore);
    soup_session_set_proxy_resolver(s, resolver);
    g_object_unref(resolver);
  }

  if (settings.tls_database) {
    soup_session_set_tls_database(s, settings.tls_database);
  } else if (!settings.ssl_ca_file.empty()) {
    GError* err = nullptr;
    GTlsDatabase* db = g_tls_file_database_new(settings.ssl_ca_file.c_str(), &err);
    if (db) {
      soup_session_set_tls_database(s, db);
      g_object_unref(db);
    } else {
      *problem = "cannot load ssl-ca-file " + settings.ssl_ca_file + ": " + err->message;
      g_error_free(err);
    }
  }
  // Otherwise libsoup's default: the system's trust store (as souphttpsrc).
  if (settings.tls_interaction) soup_session_set_tls_interaction(s, settings.tls_interaction);

  // libsoup 3 adds a SoupContentDecoder to every session by default; it
  // decodes whatever Content-Encoding comes back (with "identity" asked, none
  // should). compress relies on it, so make sure it is there.
  if (settings.compress && !soup_session_has_feature(s, SOUP_TYPE_CONTENT_DECODER))
    soup_session_add_feature_by_type(s, SOUP_TYPE_CONTENT_DECODER);

  if (settings.http_log_level > 0) {
    SoupLogger* logger = soup_logger_new(static_cast<SoupLoggerLogLevel>(settings.http_log_level));
    soup_session_add_feature(s, SOUP_SESSION_FEATURE(logger));
    g_object_unref(logger);
  }
  return s;
}

namespace {

// The port of `uri`, its scheme's default where it names none.
int effective_port(GUri* uri) {
  const int port = g_uri_get_port(uri);
  if (port > 0) return port;
  return g_ascii_strcasecmp(g_uri_get_scheme(uri), "https") == 0 ? 443 : 80;
}

// Whether `msg` now goes to the origin (scheme, host and port) of `location`,
// the URI the user gave: a redirect may have taken it elsewhere.
bool at_location(SoupMessage* msg, const std::string& location) {
  GUri* given = g_uri_parse(location.c_str(), G_URI_FLAGS_ENCODED, nullptr);
  GUri* now = soup_message_get_uri(msg);
  const bool same = given && now && g_uri_get_host(given) && g_uri_get_host(now) &&
                    g_ascii_strcasecmp(g_uri_get_scheme(given), g_uri_get_scheme(now)) == 0 &&
                    g_ascii_strcasecmp(g_uri_get_host(given), g_uri_get_host(now)) == 0 &&
                    effective_port(given) == effective_port(now);
  if (given) g_uri_unref(given);
  return same;
}

gboolean on_authenticate(SoupMessage* msg, SoupAuth* auth, gboolean retrying, gpointer user) {
  auto* o = static_cast<const HttpOptions*>(user);
  const bool proxy = soup_auth_is_for_proxy(auth);
  const std::string& id = proxy ? o->proxy_id : o->user_id;
  const std::string& pw = proxy ? o->proxy_pw : o->user_pw;
  if (retrying || id.empty()) return FALSE;  // wrong credentials: the 401/407 stands
  // user-id/user-pw are for the location's origin only: another host (or
  // port, or scheme) a redirect leads to never gets them, as curl does
  // without --location-trusted; its 401 stands. The proxy's are for the
  // proxy, wherever the request goes.
  if (!proxy && !at_location(msg, o->uri)) return FALSE;
  soup_auth_authenticate(auth, id.c_str(), pw.c_str());
  return TRUE;
}

gboolean on_accept_certificate(SoupMessage*, GTlsCertificate*, GTlsCertificateFlags, gpointer) {
  return TRUE;  // only connected when ssl-strict is off
}

// The name of a "name=value" cookie, without surrounding blanks.
std::string cookie_name(const std::string& cookie) {
  const size_t begin = cookie.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  size_t end = cookie.find('=', begin);
  if (end == std::string::npos) end = cookie.size();
  while (end > begin && (cookie[end - 1] == ' ' || cookie[end - 1] == '\t')) --end;
  return cookie.substr(begin, end - begin);
}

// Runs after the cookie jar's own "starting" handler, which replaces the
// message's Cookie header with the jar's cookies for the URI, or removes it
// when it has none. The `cookies` property's cookies go out with every
// request, to whatever host, as souphttpsrc's Cookie headers do: they are
// added back after the jar's, except where the jar (an origin's Set-Cookie)
// holds a newer value under the same name.
void on_starting_add_cookies(SoupMessage* msg, gpointer user) {
  auto* o = static_cast<const HttpOptions*>(user);
  SoupMessageHeaders* h = soup_message_get_request_headers(msg);
  const char* from_jar = soup_message_headers_get_one(h, "Cookie");
  std::string header = from_jar ? from_jar : "";
  std::set<std::string> names;
  gchar** parts = g_strsplit(header.c_str(), ";", -1);
  for (gchar** p = parts; p && *p; ++p) names.insert(cookie_name(*p));
  g_strfreev(parts);
  for (const auto& c : o->cookies) {
    if (names.count(cookie_name(c))) continue;
    header += (header.empty() ? "" : "; ") + c;
  }
  if (!header.empty()) soup_message_headers_replace(h, "Cookie", header.c_str());
}

// RFC 9110's safe methods (libsoup's SOUP_METHOD_IS_SAFE is private).
bool safe_method(const char* method) {
  return method == SOUP_METHOD_GET || method == SOUP_METHOD_HEAD || method == SOUP_METHOD_OPTIONS ||
         method == SOUP_METHOD_TRACE;
}

void on_starting_send_jar(SoupMessage* msg, gpointer user) {
  auto* jar = static_cast<SoupCookieJar*>(user);
  GSList* cookies = soup_cookie_jar_get_cookie_list_with_same_site_info(
      jar, soup_message_get_uri(msg), soup_message_get_first_party(msg),
      soup_message_get_site_for_cookies(msg), TRUE, safe_method(soup_message_get_method(msg)),
      soup_message_get_is_top_level_navigation(msg));
  SoupMessageHeaders* h = soup_message_get_request_headers(msg);
  if (cookies) {
    char* header = soup_cookies_to_cookie_header(cookies);
    soup_message_headers_replace(h, "Cookie", header);
    g_free(header);
    g_slist_free_full(cookies, reinterpret_cast<GDestroyNotify>(soup_cookie_free));
  } else {
    soup_message_headers_remove(h, "Cookie");
  }
}

void on_set_cookie_keep(SoupMessage* msg, gpointer user) {
  auto* jar = static_cast<SoupCookieJar*>(user);
  GSList* cookies = soup_cookies_from_response(msg);
  for (GSList* c = cookies; c; c = c->next) {
    // Takes the cookie.
    soup_cookie_jar_add_cookie_full(jar, static_cast<SoupCookie*>(c->data),
                                    soup_message_get_uri(msg), soup_message_get_first_party(msg));
  }
  g_slist_free(cookies);
}

}  // namespace

// What libsoup's SoupCookieJar does as a session feature for each message
// (its "starting" handler and its got-headers handler for Set-Cookie).
void connect_cookie_jar(SoupMessage* msg, SoupCookieJar* jar) {
  g_signal_connect(msg, "starting", G_CALLBACK(on_starting_send_jar), jar);
  soup_message_add_header_handler(msg, "got-headers", "Set-Cookie", G_CALLBACK(on_set_cookie_keep),
                                  jar);
}

void connect_credentials(SoupMessage* msg, const HttpOptions* opts) {
  g_signal_connect(msg, "authenticate", G_CALLBACK(on_authenticate),
                   const_cast<HttpOptions*>(opts));
  if (!opts->cookies.empty())
    g_signal_connect_after(msg, "starting", G_CALLBACK(on_starting_add_cookies),
                           const_cast<HttpOptions*>(opts));
  if (!opts->ssl_strict)
    g_signal_connect(msg, "accept-certificate", G_CALLBACK(on_accept_certificate), nullptr);
}

}  // namespace prefetch
