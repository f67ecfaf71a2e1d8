// SoupOrigins sharing one I/O thread and SoupSession (the hub) against the
// in-process TestServer: which options share and which do not, threads and
// connections counted in /proc, one origin's end leaving another's transfer
// exact, per-origin cookies, HTTP log and request cap on a shared session.
//
// Timeouts are hang guards only; no assertion depends on a machine's speed.
#include <gtest/gtest.h>

#include "hub_test_util.h"

namespace prefetch {
namespace hubtest {
namespace {

TEST_F(HubTest, SameSettingsShareOneThreadAndOneSession) {
  const auto data = make_pattern(200 * kKiB, 3);
  server_.add_file("/a", data);
  server_.add_file("/b", data);
  const size_t threads_before = own_threads().size();

  auto a = std::make_shared<SoupOrigin>(options("/a"), Logger());
  EXPECT_EQ(io_threads(), 1u);
  auto b = std::make_shared<SoupOrigin>(options("/b"), Logger());
  EXPECT_EQ(a->hub(), b->hub());
  EXPECT_EQ(io_threads(), 1u);
  EXPECT_EQ(SoupOrigin::hubs(), 1u);
  EXPECT_EQ(own_threads().size(), threads_before + 1) << describe(own_threads());

  // One session: the connection a's request left idle carries b's.
  for (SoupOrigin* origin : {a.get(), b.get()}) {
    Collect c;
    start_whole(*origin, data.size(), c);
    ASSERT_TRUE(c.wait());
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c.bytes(), data);
    EXPECT_EQ(client_sockets(server_.port()), 1u);
  }
  EXPECT_EQ(server_.request_count(), 2u);

  a.reset();
  EXPECT_EQ(io_threads(), 1u);  // b's still
  b.reset();
  EXPECT_EQ(io_threads(), 0u);  // the last one joined it
  EXPECT_EQ(client_sockets(server_.port()), 0u);
}

// Each request says, before its head comes, that it went out and what
// opening its connection took: the first request's connection was opened
// for it (its set-up timed), the next one reuses it and says the same
// set-up; a redirected request says it once.
TEST_F(HubTest, ARequestSaysWhatOpeningItsConnectionTook) {
  const auto data = make_pattern(64 * kKiB, 5);
  server_.add_file("/a", data);
  server_.add_redirect("/r", "/a");
  auto origin = std::make_shared<SoupOrigin>(options("/a"), Logger());
  Collect first, second;
  for (Collect* c : {&first, &second}) {
    start_whole(*origin, data.size(), *c);
    ASSERT_TRUE(c->wait());
    ASSERT_TRUE(c->ok());
    EXPECT_EQ(c->bytes(), data);
    EXPECT_EQ(c->sent_count(), 1u);
    EXPECT_TRUE(c->sent_before_head());
    ASSERT_TRUE(c->sent().setup.has_value());
  }
  EXPECT_FALSE(first.sent().reused);
  EXPECT_GT(first.sent().setup->count(), 0);
  EXPECT_EQ(client_sockets(server_.port()), 1u) << "the second request had its own connection";
  EXPECT_TRUE(second.sent().reused);
  EXPECT_EQ(*second.sent().setup, *first.sent().setup) << "not the set-up of the reused connection";

  auto redirected = std::make_shared<SoupOrigin>(options("/r"), Logger());
  Collect third;
  start_whole(*redirected, data.size(), third);
  ASSERT_TRUE(third.wait());
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third.bytes(), data);
  EXPECT_EQ(third.sent_count(), 1u) << "the redirect's second hop said it again";
  EXPECT_TRUE(third.sent_before_head());
}

// Options that go on each message do not split the hub.
TEST_F(HubTest, PerMessageOptionsStillShare) {
  HttpOptions base = options("/a");
  std::vector<std::function<void(HttpOptions&)>> edits = {
      [](HttpOptions& o) { o.uri = "http://127.0.0.2:1/other"; },
      [](HttpOptions& o) {
        o.extra_headers = {{"X-A", "1"}};
      },
      [](HttpOptions& o) { o.cookies = {"a=1"}; },
      [](HttpOptions& o) { o.max_connections = 1; },
      [](HttpOptions& o) { o.automatic_redirect = false; },
      [](HttpOptions& o) { o.keep_alive = false; },
      [](HttpOptions& o) { o.iradio_mode = true; },
      [](HttpOptions& o) { o.force_http1 = false; },
  };
  auto first = std::make_unique<SoupOrigin>(base, Logger());
  for (size_t i = 0; i < edits.size(); ++i) {
    HttpOptions o = base;
    edits[i](o);
    SoupOrigin other(o, Logger());
    EXPECT_EQ(other.hub(), first->hub()) << "edit " << i;
    EXPECT_EQ(io_threads(), 1u) << "edit " << i;
  }
}

// Each session setting splits: origins that differ in one get a thread and
// session each; two that agree on the changed value share theirs.
TEST_F(HubTest, DifferentSessionSettingsDoNotShare) {
  GError* err = nullptr;
  const char* ca = "/etc/ssl/certs/ca-certificates.crt";
  GTlsDatabase* db1 = g_tls_file_database_new(ca, &err);
  GTlsDatabase* db2 = db1 ? g_tls_file_database_new(ca, nullptr) : nullptr;
  if (err) g_error_free(err);
  GTlsInteraction* interaction = G_TLS_INTERACTION(g_object_new(G_TYPE_TLS_INTERACTION, nullptr));

  HttpOptions base = options("/a");
  std::vector<std::pair<const char*, std::function<void(HttpOptions&)>>> edits = {
      {"user_agent", [](HttpOptions& o) { o.user_agent = "other"; }},
      {"timeout", [](HttpOptions& o) { o.timeout_seconds = 3; }},
      {"proxy", [](HttpOptions& o) { o.proxy = "127.0.0.1:9"; }},
      {"ssl_ca_file", [](HttpOptions& o) { o.ssl_ca_file = "/nonexistent/ca.pem"; }},
      {"tls_interaction", [&](HttpOptions& o) { o.tls_interaction = interaction; }},
      {"compress", [](HttpOptions& o) { o.compress = true; }},
      {"http_log_level", [](HttpOptions& o) { o.http_log_level = 1; }},
      {"user_id", [](HttpOptions& o) { o.user_id = "u"; }},
      {"user_pw", [](HttpOptions& o) { o.user_pw = "p"; }},
      {"proxy_id", [](HttpOptions& o) { o.proxy_id = "u"; }},
      {"proxy_pw", [](HttpOptions& o) { o.proxy_pw = "p"; }},
      {"ssl_strict", [](HttpOptions& o) { o.ssl_strict = false; }},
  };
  if (db1) edits.push_back({"tls_database", [&](HttpOptions& o) { o.tls_database = db1; }});
  auto first = std::make_unique<SoupOrigin>(base, Logger());
  for (const auto& [name, edit] : edits) {
    HttpOptions o = base;
    edit(o);
    auto a = std::make_unique<SoupOrigin>(o, Logger());
    auto b = std::make_unique<SoupOrigin>(o, Logger());
    EXPECT_NE(a->hub(), first->hub()) << name;
    EXPECT_EQ(a->hub(), b->hub()) << name;
    EXPECT_EQ(io_threads(), 2u) << name;
  }
  if (db1) {
    // A TLS database is a key by identity: an equal one from the same file
    // is another key.
    HttpOptions o1 = base, o2 = base;
    o1.tls_database = db1;
    o2.tls_database = db2;
    SoupOrigin a(o1, Logger()), b(o2, Logger());
    EXPECT_NE(a.hub(), b.hub());
    EXPECT_EQ(io_threads(), 3u);
  }
  first.reset();
  EXPECT_EQ(io_threads(), 0u);
  if (db1) g_object_unref(db1);
  if (db2) g_object_unref(db2);
  g_object_unref(interaction);
}

// The proxy keys as resolved: the environment's counts like the option.
TEST_F(HubTest, TheEnvironmentsProxyIsPartOfTheKey) {
  auto direct = std::make_unique<SoupOrigin>(options("/a"), Logger());
  g_setenv("http_proxy", "127.0.0.1:9", TRUE);
  auto env = std::make_unique<SoupOrigin>(options("/a"), Logger());
  HttpOptions o = options("/a");
  o.proxy = "http://127.0.0.1:9";
  auto option = std::make_unique<SoupOrigin>(o, Logger());
  testing::unset_proxy_env();
  EXPECT_NE(env->hub(), direct->hub());
  EXPECT_EQ(env->hub(), option->hub());
}

// One origin ends (its fetches cancelled mid-body and mid-wait) while the
// other's transfer runs on the same thread and session: the other's bytes
// come exact, and the thread stays until the last origin goes.
TEST_F(HubTest, DestroyingOneLeavesTheOthersTransferExact) {
  const auto slow = make_pattern(1536 * kKiB + 17, 5);
  const auto other = make_pattern(2 * 1024 * kKiB, 6);
  server_.add_file("/slow", slow);
  server_.add_file("/other", other);
  Behavior paced;
  paced.rate_bytes_per_sec = 256 * kKiB;  // per response: ~1.5 s for 4 at once
  server_.set_behavior("/slow", paced);
  Behavior stalled;
  stalled.first_byte_delay = testing::fixed_delay(milliseconds(200));
  stalled.rate_bytes_per_sec = 256 * kKiB;
  server_.set_behavior("/other", stalled);
  const size_t threads_before = own_threads().size();

  auto keep = std::make_unique<Prefetcher>(std::make_shared<SoupOrigin>(options("/slow"), Logger()),
                                           config(128 * kKiB, 4));
  auto gone_origin = std::make_shared<SoupOrigin>(options("/other"), Logger());
  auto gone = std::make_unique<Prefetcher>(gone_origin, config(128 * kKiB, 4));
  ASSERT_EQ(io_threads(), 1u);

  std::string keep_sha;
  std::atomic<bool> keep_done{false};
  std::thread reader([&] {
    keep_sha = read_all(*keep);
    keep_done = true;
  });
  ASSERT_EQ(gone->open(0).status, ReadStatus::kOk);
  ReadResult r = gone->read(0, 64 * kKiB, ReadMode::kAvailable);
  ASSERT_EQ(r.status, ReadStatus::kOk);
  // Both have requests out now.
  ASSERT_TRUE(server_.wait_for([&] { return server_.in_flight() >= 3; }));
  gone->close();
  gone.reset();
  gone_origin.reset();
  EXPECT_EQ(io_threads(), 1u);
  EXPECT_FALSE(keep_done) << "the transfer ended before the other origin did: nothing tested";

  reader.join();
  EXPECT_EQ(keep_sha, sha256_hex(slow));
  keep.reset();
  EXPECT_EQ(io_threads(), 0u);
  EXPECT_EQ(own_threads().size(), threads_before) << describe(own_threads());
}

// Origins go in any order; the thread goes with the last.
TEST_F(HubTest, TheLastOriginJoinsTheThread) {
  const size_t threads_before = own_threads().size();
  std::vector<std::unique_ptr<SoupOrigin>> origins;
  for (int i = 0; i < 4; ++i)
    origins.push_back(std::make_unique<SoupOrigin>(options("/a"), Logger()));
  EXPECT_EQ(own_threads().size(), threads_before + 1) << describe(own_threads());
  for (size_t order : {2, 0, 1}) {
    origins[order].reset();
    EXPECT_EQ(io_threads(), 1u);
  }
  origins[3].reset();
  EXPECT_EQ(io_threads(), 0u);
  EXPECT_EQ(own_threads().size(), threads_before) << describe(own_threads());
  // A new origin of the same settings starts a new hub.
  SoupOrigin again(options("/a"), Logger());
  EXPECT_EQ(io_threads(), 1u);
}

// A cookie set in one origin's answer goes with that origin's later
// requests, never with another origin's on the same session.
TEST_F(HubTest, CookiesStayWithTheirOrigin) {
  const auto data = make_pattern(256 * kKiB, 7);
  server_.add_file("/c", data);
  server_.add_file("/d", data);
  Behavior sets;
  sets.extra_response_headers = {{"Set-Cookie", "session=abc; Path=/"}};
  server_.set_behavior("/c", sets);

  auto c_origin = std::make_shared<SoupOrigin>(options("/c"), Logger());
  auto d_origin = std::make_shared<SoupOrigin>(options("/d"), Logger());
  ASSERT_EQ(c_origin->hub(), d_origin->hub());
  Prefetcher c(c_origin, config(64 * kKiB, 1));
  EXPECT_EQ(read_all(c), sha256_hex(data));
  Prefetcher d(d_origin, config(64 * kKiB, 1));
  EXPECT_EQ(read_all(d), sha256_hex(data));

  auto c_requests = server_.requests("/c");
  ASSERT_GE(c_requests.size(), 2u);
  EXPECT_FALSE(c_requests[0].header("Cookie"));
  EXPECT_EQ(c_requests.back().header("Cookie").value_or(""), "session=abc");
  auto d_requests = server_.requests("/d");
  ASSERT_GE(d_requests.size(), 1u);
  for (const auto& r : d_requests) EXPECT_FALSE(r.header("Cookie")) << *r.header("Cookie");
}

// The session's HTTP log goes to the logger of the origin whose message it
// is about.
TEST_F(HubTest, HttpLogGoesToEachOriginsOwnLogger) {
  const auto data = make_pattern(64 * kKiB, 8);
  server_.add_file("/one", data);
  server_.add_file("/two", data);
  struct Lines {
    std::mutex mu;
    std::vector<std::string> lines;
    Logger logger() {
      return Logger([this](LogLevel, const std::string& line) {
        std::lock_guard<std::mutex> lock(mu);
        lines.push_back(line);
      });
    }
    size_t mentioning(const std::string& what) {
      std::lock_guard<std::mutex> lock(mu);
      return std::count_if(lines.begin(), lines.end(), [&](const std::string& l) {
        return l.rfind("HTTP ", 0) == 0 && l.find(what) != std::string::npos;
      });
    }
  } one_log, two_log;
  HttpOptions o1 = options("/one"), o2 = options("/two");
  o1.http_log_level = o2.http_log_level = 2;  // headers
  auto one = std::make_shared<SoupOrigin>(o1, one_log.logger());
  auto two = std::make_shared<SoupOrigin>(o2, two_log.logger());
  ASSERT_EQ(one->hub(), two->hub());
  Collect c1, c2;
  start_whole(*one, data.size(), c1);
  start_whole(*two, data.size(), c2);
  ASSERT_TRUE(c1.wait());
  ASSERT_TRUE(c2.wait());
  one.reset();
  two.reset();
  EXPECT_GE(one_log.mentioning("GET /one"), 1u);
  EXPECT_EQ(one_log.mentioning("/two"), 0u);
  EXPECT_GE(two_log.mentioning("GET /two"), 1u);
  EXPECT_EQ(two_log.mentioning("/one"), 0u);
  EXPECT_GE(one_log.mentioning("HTTP/1.1 206"), 1u);
  EXPECT_GE(two_log.mentioning("HTTP/1.1 206"), 1u);
}

// max_connections bounds each origin's requests at once, not the session's:
// two origins of 2 each have 4 out together.
TEST_F(HubTest, MaxConnectionsBoundsEachOriginNotTheSession) {
  const auto data = make_pattern(64 * kKiB, 9);
  server_.add_file("/w", data);
  Behavior slow;
  slow.first_byte_delay = testing::fixed_delay(milliseconds(300));
  server_.set_behavior("/w", slow);
  HttpOptions o = options("/w");
  o.max_connections = 2;
  auto a = std::make_shared<SoupOrigin>(o, Logger());
  auto b = std::make_shared<SoupOrigin>(o, Logger());
  ASSERT_EQ(a->hub(), b->hub());
  std::vector<std::unique_ptr<Collect>> fetches;
  for (int i = 0; i < 6; ++i) {
    for (auto* origin : {a.get(), b.get()}) {
      fetches.push_back(std::make_unique<Collect>());
      start_whole(*origin, data.size(), *fetches.back());
    }
  }
  for (auto& f : fetches) {
    ASSERT_TRUE(f->wait());
    EXPECT_TRUE(f->ok());
    EXPECT_EQ(f->bytes(), data);
  }
  EXPECT_EQ(server_.max_in_flight(), 4u);
}

// 32 streams from one host in one process, each its own origin and engine
// on its own reader thread: one I/O thread runs them all and every stream is
// exact. The connections the server saw at once and the spread of the
// streams' rates are recorded (the host budget, not yet used by the engine,
// is what will bound and even them out).
TEST_F(HubTest, OriginsComeAndGoOnManyThreads) {
  const auto data = make_pattern(96 * kKiB + 5, 10);
  server_.add_file("/m", data);
  std::atomic<int> exact{0};
  std::vector<std::thread> threads;
  constexpr int kThreads = 4, kRounds = 8;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        Prefetcher p(std::make_shared<SoupOrigin>(options("/m"), Logger()), config(32 * kKiB, 2));
        if (read_all(p) == sha256_hex(data)) ++exact;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(exact.load(), kThreads * kRounds);
  EXPECT_EQ(io_threads(), 0u);
}

}  // namespace
}  // namespace hubtest
}  // namespace prefetch
