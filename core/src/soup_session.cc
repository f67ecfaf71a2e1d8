#include "soup_session.h"

#include <algorithm>
#include <set>
#include <string>

namespace prefetch {

SoupSession* make_session(const HttpOptions& opts, GUri* uri, const Logger& log) {
  const unsigned conns = opts.max_connections ? opts.max_connections : 1;
  SoupSession* s = soup_session_new_with_options(
      "max-conns", std::max(conns, 10u), "max-conns-per-host", conns, "timeout",
      opts.timeout_seconds, "user-agent", opts.user_agent.c_str(), nullptr);

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
    gchar** ignore = no_proxy ? g_strsplit(no_proxy, ",", -1) : nullptr;
    for (gchar** p = ignore; p && *p; ++p) g_strstrip(*p);
    GProxyResolver* resolver = g_simple_proxy_resolver_new(proxy.c_str(), ignore);
    g_strfreev(ignore);
    soup_session_set_proxy_resolver(s, resolver);
    g_object_unref(resolver);
    log(LogLevel::kInfo, "using proxy %s", proxy.c_str());
  }

  if (opts.tls_database) {
    soup_session_set_tls_database(s, opts.tls_database);
  } else if (!opts.ssl_ca_file.empty()) {
    GError* err = nullptr;
    GTlsDatabase* db = g_tls_file_database_new(opts.ssl_ca_file.c_str(), &err);
    if (db) {
      soup_session_set_tls_database(s, db);
      g_object_unref(db);
    } else {
      log(LogLevel::kWarning, "cannot load ssl-ca-file %s: %s", opts.ssl_ca_file.c_str(),
          err->message);
      g_error_free(err);
    }
  }
  // Otherwise libsoup's default: the system's trust store (as souphttpsrc).
  if (opts.tls_interaction) soup_session_set_tls_interaction(s, opts.tls_interaction);

  // libsoup 3 adds a SoupContentDecoder to every session by default; it
  // decodes whatever Content-Encoding comes back (with "identity" asked, none
  // should). compress relies on it, so make sure it is there.
  if (opts.compress && !soup_session_has_feature(s, SOUP_TYPE_CONTENT_DECODER))
    soup_session_add_feature_by_type(s, SOUP_TYPE_CONTENT_DECODER);
  // A cookie jar, like souphttpsrc's: a Set-Cookie in any answer (a
  // redirect's included) goes out with later requests to its domain, so
  // cookie-gated redirect chains work across requests.
  SoupCookieJar* jar = soup_cookie_jar_new();
  soup_session_add_feature(s, SOUP_SESSION_FEATURE(jar));
  g_object_unref(jar);

  if (opts.http_log_level > 0) {
    SoupLogger* logger = soup_logger_new(static_cast<SoupLoggerLogLevel>(opts.http_log_level));
    soup_logger_set_printer(
        logger,
        [](SoupLogger*, SoupLoggerLogLevel, char direction, const char* data, gpointer user) {
          (*static_cast<const Logger*>(user))(LogLevel::kLog, "HTTP %c %s", direction, data);
        },
        const_cast<Logger*>(&log), nullptr);
    soup_session_add_feature(s, SOUP_SESSION_FEATURE(logger));
    g_object_unref(logger);
  }
  return s;
}

namespace {

gboolean on_authenticate(SoupMessage*, SoupAuth* auth, gboolean retrying, gpointer user) {
  auto* o = static_cast<const HttpOptions*>(user);
  const bool proxy = soup_auth_is_for_proxy(auth);
  const std::string& id = proxy ? o->proxy_id : o->user_id;
  const std::string& pw = proxy ? o->proxy_pw : o->user_pw;
  if (retrying || id.empty()) return FALSE;  // wrong credentials: the 401/407 stands
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

}  // namespace

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
