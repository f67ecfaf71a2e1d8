// session_settings(): what origins must agree on to share a session, read
// from HttpOptions and the environment. No server.
#include "soup_session.h"

#include <gtest/gtest.h>

namespace prefetch {
namespace {

class SessionSettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy",
                             "NO_PROXY", "all_proxy", "ALL_PROXY"})
      g_unsetenv(name);
  }
  void TearDown() override { SetUp(); }

  static SessionSettings of(const HttpOptions& o) {
    GUri* uri = g_uri_parse(o.uri.c_str(), G_URI_FLAGS_ENCODED, nullptr);
    SessionSettings s = session_settings(o, uri);
    if (uri) g_uri_unref(uri);
    return s;
  }
  static HttpOptions http() {
    HttpOptions o;
    o.uri = "http://example.com/f";
    return o;
  }
};

TEST_F(SessionSettingsTest, PerMessageOptionsAndTheUriDoNotCount) {
  HttpOptions a = http(), b = http();
  b.uri = "http://other.example/g";
  b.extra_headers = {{"X", "1"}};
  b.cookies = {"a=1"};
  b.max_connections = 99;
  b.automatic_redirect = false;
  b.keep_alive = false;
  b.iradio_mode = true;
  b.force_http1 = false;
  EXPECT_EQ(of(a), of(b));
}

TEST_F(SessionSettingsTest, EverySessionSettingCounts) {
  const SessionSettings base = of(http());
  auto differs = [&](void (*edit)(HttpOptions&)) {
    HttpOptions o = http();
    edit(o);
    return !(of(o) == base) && (of(o) < base || base < of(o));
  };
  EXPECT_TRUE(differs([](HttpOptions& o) { o.user_agent = "x"; }));
  EXPECT_TRUE(differs([](HttpOptions& o) { o.timeout_seconds = 1; }));
  EXPECT_TRUE(differs([](HttpOptions& o) { o.proxy = "p:1"; }));
  EXPECT_TRUE(differs([](HttpOptions& o) { o.ssl_ca_file = "/ca.pem"; }));
  EXPECT_TRUE(differs([](HttpOptions& o) { o.compress = true; }));
  EXPECT_TRUE(differs([](HttpOptions& o) { o.http_log_level = 3; }));
  EXPECT_TRUE(differs([](HttpOptions& o) { o.user_id = "u"; }));
  EXPECT_TRUE(differs([](HttpOptions& o) { o.user_pw = "p"; }));
  EXPECT_TRUE(differs([](HttpOptions& o) { o.proxy_id = "u"; }));
  EXPECT_TRUE(differs([](HttpOptions& o) { o.proxy_pw = "p"; }));
  EXPECT_TRUE(differs([](HttpOptions& o) { o.ssl_strict = false; }));
  EXPECT_TRUE(differs([](HttpOptions& o) { o.max_host_connections = 4; }));
}

// max-host-connections caps the session's sockets to a host (idle ones
// included); without it the cap is far above any host budget.
TEST_F(SessionSettingsTest, TheHostLimitCapsTheSessionsConnectionsPerHost) {
  const auto per_host = [](const HttpOptions& o) {
    std::string problem;
    SoupSession* s = make_session(session_settings(o, nullptr), &problem);
    guint n = 0;
    g_object_get(s, "max-conns-per-host", &n, nullptr);
    g_object_unref(s);
    return n;
  };
  HttpOptions o = http();
  EXPECT_EQ(per_host(o), kSessionConnsPerHost);
  o.max_host_connections = 6;
  EXPECT_EQ(per_host(o), 6u);
}

TEST_F(SessionSettingsTest, TlsObjectsCountByIdentity) {
  GTlsInteraction* one = G_TLS_INTERACTION(g_object_new(G_TYPE_TLS_INTERACTION, nullptr));
  GTlsInteraction* two = G_TLS_INTERACTION(g_object_new(G_TYPE_TLS_INTERACTION, nullptr));
  HttpOptions a = http(), b = http(), c = http();
  a.tls_interaction = one;
  b.tls_interaction = one;
  c.tls_interaction = two;
  EXPECT_EQ(of(a), of(b));
  EXPECT_FALSE(of(a) == of(c));
  g_object_unref(one);
  g_object_unref(two);
}

// A TLS database overrides the CA file, which then does not count.
TEST_F(SessionSettingsTest, ADatabaseHidesTheCaFile) {
  GTlsDatabase* db = g_tls_backend_get_default_database(g_tls_backend_get_default());
  if (!db) GTEST_SKIP() << "no TLS backend";
  HttpOptions a = http(), b = http();
  a.tls_database = b.tls_database = db;
  b.ssl_ca_file = "/ca.pem";
  EXPECT_EQ(of(a), of(b));
  EXPECT_EQ(of(b).ssl_ca_file, "");
  g_object_unref(db);
}

// The proxy counts as it will be used: the option, else the environment's
// variable for the URI's scheme, with a scheme added; no_proxy with it.
TEST_F(SessionSettingsTest, TheProxyIsResolvedFromTheEnvironmentByScheme) {
  EXPECT_EQ(of(http()).proxy, "");
  g_setenv("http_proxy", "plain:3128", TRUE);
  g_setenv("HTTPS_PROXY", "http://secure:3129", TRUE);
  g_setenv("no_proxy", "localhost,.internal", TRUE);
  EXPECT_EQ(of(http()).proxy, "http://plain:3128");
  EXPECT_EQ(of(http()).no_proxy, "localhost,.internal");
  HttpOptions https = http();
  https.uri = "https://example.com/f";
  EXPECT_EQ(of(https).proxy, "http://secure:3129");
  HttpOptions option = http();
  option.proxy = "http://plain:3128";
  EXPECT_EQ(of(option), of(http()));  // the same proxy either way
  option.proxy = "other:1";
  EXPECT_EQ(of(option).proxy, "http://other:1");
}

}  // namespace
}  // namespace prefetch
