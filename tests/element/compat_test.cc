// Drop-in compatibility with souphttpsrc: every property
// and signal of the installed souphttpsrc, with the same value types and
// access, unless listed with a reason; the same URI protocols and klass;
// real-world behaviour against nginx (redirect target used for every block,
// TLS and auth errors), through a real squid proxy (the `proxy` property and
// http_proxy), and as playbin's source for http:// URIs.
//
// What other suites already cover is not repeated here: basic auth with
// user-id/user-pw and HTTPS with ssl-ca-file (nginx_test, transfer_test),
// redirect bytes (transfer_test, nginx_test), user-agent / extra-headers /
// cookies on every request (transfer_test), 401 from the in-process server
// (error_test).
#include <arpa/inet.h>
#include <gio/gio.h>
#include <gst/gst.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "element_test_util.h"
#include "test_server.h"

namespace prefetch {
namespace element_test {
namespace {

constexpr size_t kFiveMillion = NginxFixture::kNginxFileSize;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(g_ascii_tolower(c)); });
  return s;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Expects EOS with exactly `data` (bytes, hash, offsets).
void expect_exact(GstElement* src, const std::vector<uint8_t>& data,
                  std::chrono::milliseconds timeout = 60s) {
  expect_exact_transfer(*run_transfer(src, timeout), data);
}

// ================================================================================
// gst-inspect parity with souphttpsrc
// ================================================================================

class CompatInspectTest : public ElementTest {};

// Two-way parity: the properties and signals are read from the
// installed souphttpsrc at test time, so a GStreamer upgrade that gives it a
// new property, or a change that drops one of ours, fails here. Every
// souphttpsrc property or signal prefetchsrc lacks must be listed below with
// the reason; nothing else may be missing.
struct NotYet {
  const char* name;
  const char* reason;
};

const NotYet kPropertiesNotYet[] = {
    // souphttpsrc's properties all exist in prefetchsrc now.
    {nullptr, nullptr},
};

const NotYet kSignalsNotYet[] = {
    // souphttpsrc adds no signal of its own (GStreamer 1.22); none missing.
    {nullptr, nullptr},
};

template <size_t N>
const char* not_yet_reason(const NotYet (&list)[N], const std::string& name) {
  for (const auto& entry : list) {
    if (entry.name && name == entry.name) return entry.reason;
  }
  return nullptr;
}

// A souphttpsrc `kind` ("property", "signal") that prefetchsrc lacks:
// allowed (and said so) where the not-yet list gives a `reason`, else one
// more of `missing`.
void lacks(const char* kind, const std::string& name, const char* reason,
           std::vector<std::string>* missing) {
  if (reason) {
    std::cout << "[ allowed  ] prefetchsrc lacks " << kind << " " << name << ": " << reason << "\n";
  } else {
    missing->push_back(name);
  }
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// souphttpsrc and a prefetchsrc, or a skip if souphttpsrc is not installed.
class CompatParityTest : public ElementTest {
 protected:
  void SetUp() override {
    ElementTest::SetUp();
    GstPtr<GstElementFactory> factory(gst_element_factory_find("souphttpsrc"));
    if (!factory) GTEST_SKIP() << "souphttpsrc is not installed (gstreamer1.0-plugins-good)";
    soup_.reset(gst_element_factory_make("souphttpsrc", nullptr));
    ASSERT_NE(soup_, nullptr) << "souphttpsrc could not be created";
    gst_object_ref_sink(soup_.get());
    ours_.reset(make_prefetchsrc());
    ASSERT_NE(ours_, nullptr);
    gst_object_ref_sink(ours_.get());
  }

  GstPtr<GstElement> soup_;
  GstPtr<GstElement> ours_;
};

TEST_F(CompatParityTest, EverySouphttpsrcPropertyExistsWithTheSameTypeAndAccess) {
  GObjectClass* soup_class = G_OBJECT_GET_CLASS(soup_.get());
  GObjectClass* our_class = G_OBJECT_GET_CLASS(ours_.get());
  guint n = 0;
  GParamSpec** specs = g_object_class_list_properties(soup_class, &n);
  // "location", "user-agent" and the GstBaseSrc ones at least: an empty or
  // tiny list means the enumeration, not prefetchsrc, is broken.
  ASSERT_GE(n, 20u) << "souphttpsrc lists only " << n << " properties";

  const GParamFlags rw = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_WRITABLE);
  std::vector<std::string> missing, stale;
  for (guint i = 0; i < n; ++i) {
    GParamSpec* theirs = specs[i];
    const std::string name = theirs->name;
    SCOPED_TRACE("property " + name);
    GParamSpec* mine = g_object_class_find_property(our_class, name.c_str());
    const char* reason = not_yet_reason(kPropertiesNotYet, name);
    if (!mine) {
      lacks("property", name, reason, &missing);
      continue;
    }
    if (reason) stale.push_back(name);
    EXPECT_EQ(G_PARAM_SPEC_VALUE_TYPE(mine), G_PARAM_SPEC_VALUE_TYPE(theirs))
        << "value type: prefetchsrc " << g_type_name(G_PARAM_SPEC_VALUE_TYPE(mine))
        << ", souphttpsrc " << g_type_name(G_PARAM_SPEC_VALUE_TYPE(theirs));
    EXPECT_EQ(mine->flags & rw, theirs->flags & rw)
        << "readable/writable: prefetchsrc " << (mine->flags & rw) << ", souphttpsrc "
        << (theirs->flags & rw);
  }
  g_free(specs);
  std::cout << "[ compared ] " << n << " souphttpsrc properties\n";
  EXPECT_TRUE(missing.empty()) << "prefetchsrc lacks souphttpsrc's properties: " << joined(missing)
                               << " (add them, or list each in kPropertiesNotYet with the reason)";
  EXPECT_TRUE(stale.empty()) << "prefetchsrc has these now; remove them from kPropertiesNotYet: "
                             << joined(stale);
}

TEST_F(CompatParityTest, EverySouphttpsrcSignalExistsWithTheSameSignature) {
  // g_signal_list_ids() gives the signals a type itself adds: walk the chain
  // (souphttpsrc, GstPushSrc, GstBaseSrc, GstElement, GstObject, ...) and the
  // interfaces souphttpsrc implements.
  std::vector<GType> types;
  for (GType t = G_OBJECT_TYPE(soup_.get()); t != 0; t = g_type_parent(t)) types.push_back(t);
  guint n_ifaces = 0;
  GType* ifaces = g_type_interfaces(G_OBJECT_TYPE(soup_.get()), &n_ifaces);
  types.insert(types.end(), ifaces, ifaces + n_ifaces);
  g_free(ifaces);

  const GType our_type = G_OBJECT_TYPE(ours_.get());
  std::vector<std::string> missing, stale;
  guint seen = 0;
  for (GType t : types) {
    guint n = 0;
    guint* ids = g_signal_list_ids(t, &n);
    for (guint i = 0; i < n; ++i, ++seen) {
      GSignalQuery theirs;
      g_signal_query(ids[i], &theirs);
      const std::string name = theirs.signal_name;
      SCOPED_TRACE("signal " + name + " of " + g_type_name(t));
      const guint our_id = g_signal_lookup(name.c_str(), our_type);
      const char* reason = not_yet_reason(kSignalsNotYet, name);
      if (our_id == 0) {
        lacks("signal", name, reason, &missing);
        continue;
      }
      if (reason) stale.push_back(name);
      GSignalQuery mine;
      g_signal_query(our_id, &mine);
      EXPECT_EQ(mine.return_type, theirs.return_type) << "return type";
      EXPECT_EQ(mine.n_params, theirs.n_params) << "parameter count";
      if (mine.n_params != theirs.n_params) continue;
      for (guint p = 0; p < mine.n_params; ++p) {
        EXPECT_EQ(mine.param_types[p] & ~G_SIGNAL_TYPE_STATIC_SCOPE,
                  theirs.param_types[p] & ~G_SIGNAL_TYPE_STATIC_SCOPE)
            << "parameter " << p;
      }
    }
    g_free(ids);
  }
  std::cout << "[ compared ] " << seen << " souphttpsrc signals\n";
  // GObject's notify and GstObject's deep-notify at least.
  EXPECT_GE(seen, 2u) << "souphttpsrc lists almost no signals: the enumeration is broken";
  EXPECT_TRUE(missing.empty()) << "prefetchsrc lacks souphttpsrc's signals: " << joined(missing)
                               << " (add them, or list each in kSignalsNotYet with the reason)";
  EXPECT_TRUE(stale.empty()) << "prefetchsrc has these now; remove them from kSignalsNotYet: "
                             << joined(stale);
}

TEST_F(CompatInspectTest, UriProtocolsAreExactlyHttpAndHttps) {
  GstPtr<GstElementFactory> factory(gst_element_factory_find("prefetchsrc"));
  ASSERT_NE(factory, nullptr) << "no prefetchsrc factory";
  EXPECT_EQ(gst_element_factory_get_uri_type(factory.get()), GST_URI_SRC);
  const gchar* const* protocols = gst_element_factory_get_uri_protocols(factory.get());
  ASSERT_NE(protocols, nullptr);
  std::multiset<std::string> got;
  for (auto p = protocols; *p; ++p) got.insert(*p);
  EXPECT_EQ(got, (std::multiset<std::string>{"http", "https"}));
}

TEST_F(CompatInspectTest, KlassIsSourceNetwork) {
  GstPtr<GstElementFactory> factory(gst_element_factory_find("prefetchsrc"));
  ASSERT_NE(factory, nullptr) << "no prefetchsrc factory";
  const gchar* klass = gst_element_factory_get_metadata(factory.get(), GST_ELEMENT_METADATA_KLASS);
  ASSERT_NE(klass, nullptr);
  EXPECT_STREQ(klass, "Source/Network");
}

TEST_F(CompatInspectTest, EveryPropertyHasABlurb) {
  GstPtr<GstElement> src = make_owned_prefetchsrc();
  ASSERT_NE(src, nullptr);
  guint n = 0;
  GParamSpec** specs = g_object_class_list_properties(G_OBJECT_GET_CLASS(src.get()), &n);
  ASSERT_GT(n, 0u);
  for (guint i = 0; i < n; ++i) {
    const gchar* blurb = g_param_spec_get_blurb(specs[i]);
    EXPECT_TRUE(blurb != nullptr && *blurb != '\0')
        << "property " << specs[i]->name << " has no blurb";
  }
  g_free(specs);
}

TEST_F(CompatInspectTest, DefaultUserAgentMentionsPrefetchsrc) {
  GstPtr<GstElement> src = make_owned_prefetchsrc();
  ASSERT_NE(src, nullptr);
  GParamSpec* spec = g_object_class_find_property(G_OBJECT_GET_CLASS(src.get()), "user-agent");
  ASSERT_NE(spec, nullptr);
  const GValue* def = g_param_spec_get_default_value(spec);
  const gchar* def_text = G_VALUE_HOLDS_STRING(def) ? g_value_get_string(def) : nullptr;
  EXPECT_NE(def_text, nullptr);
  if (def_text) {
    EXPECT_TRUE(contains(def_text, "prefetchsrc")) << "default: " << def_text;
  }
  gchar* ua = nullptr;
  g_object_get(src.get(), "user-agent", &ua, nullptr);
  ASSERT_NE(ua, nullptr);
  EXPECT_TRUE(contains(ua, "prefetchsrc")) << "user-agent of a new element: " << ua;
  g_free(ua);
}

// The default User-Agent is what every block request actually carries. One
// block per request (max-request-size = block-size): with automatic spans the
// fast loopback origin gives the whole file to one request, and "every
// request" would be that one.
TEST_F(CompatInspectTest, DefaultUserAgentIsSentWithEveryBlockRequest) {
  TestServer server;
  const auto& data = pattern(5 * 64 * 1024 + 5);
  server.add_file("/ua.bin", data);
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  g_object_set(src, "location", server.url("/ua.bin").c_str(), "block-size",
               static_cast<guint64>(64 * 1024), "max-request-size", static_cast<guint64>(64 * 1024),
               nullptr);
  expect_exact(src, data);
  auto requests = server.requests("/ua.bin");
  int ranged = 0;
  for (const auto& r : requests) {
    SCOPED_TRACE("request " + std::to_string(r.id) + " range=" + r.range);
    if (!r.range.empty()) ++ranged;
    EXPECT_TRUE(contains(r.header("User-Agent").value_or(""), "prefetchsrc"))
        << "User-Agent: " << r.header("User-Agent").value_or("<none>");
  }
  EXPECT_GE(ranged, 5) << "expected one ranged request per block";
}

// ================================================================================
// A private nginx (tests/support/nginx/nginx.sh)
// ================================================================================

class CompatNginxTest : public RunningNginxTest {
 protected:
  std::vector<std::string> access_log() const { return read_lines(state_.file("access.log")); }

  // nginx writes a request's log line after its last byte is sent, so it may
  // come just after the pipeline's EOS: wait (a little) for `lines` lines.
  std::vector<std::string> access_log_of(size_t lines) const {
    std::vector<std::string> log = access_log();
    for (int i = 0; i < 250 && log.size() < lines; ++i) {
      g_usleep(20 * 1000);
      log = access_log();
    }
    return log;
  }
};

// Bytes exact through nginx's 302, and once the redirect is known the block
// requests go to the target: only the first `concurrency` requests (started
// before any answer) may ask the redirecting URL; every block after them is
// asked of /five.bin directly. One block per request (max-request-size =
// block-size): with automatic spans nginx gives the whole file to the first
// request and there would be no later request to look at.
TEST_F(CompatNginxTest, RedirectTargetIsUsedForLaterBlocks) {
  constexpr guint64 kBlock = 512 * 1024;
  constexpr guint kConcurrency = 2;
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  g_object_set(src, "location", http("/redirect/five.bin").c_str(), "block-size", kBlock,
               "concurrency", kConcurrency, "max-request-size", kBlock, nullptr);
  expect_exact(src, pattern(kFiveMillion));

  const guint64 blocks = (kFiveMillion + kBlock - 1) / kBlock;
  int to_redirect = 0;
  std::set<guint64> target_blocks;  // blocks answered 206 by the target
  std::string log_text;
  for (const auto& line : access_log_of(blocks + 1)) {
    log_text += line + "\n";
    guint64 first = 0;
    const auto r = line.find("range=\"bytes=");
    if (r != std::string::npos) first = g_ascii_strtoull(line.c_str() + r + 13, nullptr, 10);
    if (contains(line, "\"GET /redirect/five.bin ")) {
      ++to_redirect;
      EXPECT_TRUE(contains(line, "\" 302 ")) << line;
      EXPECT_LT(first / kBlock, kConcurrency)
          << "a later block still asked the redirecting URL: " << line;
    }
    if (contains(line, "\"GET /five.bin ") && contains(line, "\" 206 ")) {
      target_blocks.insert(first / kBlock);
    }
  }
  EXPECT_GE(to_redirect, 1) << "nginx never redirected:\n" << log_text;
  EXPECT_LE(to_redirect, static_cast<int>(kConcurrency)) << log_text;
  EXPECT_EQ(target_blocks.size(), blocks) << "blocks fetched from the target:\n" << log_text;
}

// ssl-strict and a certificate from an unknown CA: RESOURCE error whose
// message says it is about the certificate / TLS (so a user knows to set
// ssl-ca-file), not a generic read failure.
TEST_F(CompatNginxTest, UntrustedCertificateErrorSaysSo) {
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  g_object_set(src, "location", https("/five.bin").c_str(), "ssl-strict", TRUE, "retries", 0,
               nullptr);
  auto result = run_transfer(src, 30s);
  ASSERT_NO_FATAL_FAILURE(expect_transfer_error_in(*result, GST_RESOURCE_ERROR))
      << "an untrusted certificate was accepted";
  const std::string message = lower(result->error->message ? result->error->message : "");
  EXPECT_TRUE(contains(message, "certificate") || contains(message, "tls"))
      << "the error message does not mention the certificate or TLS: "
      << describe(result->error.get());
}

// nginx's own 401 (auth_basic, no credentials) -> NOT_AUTHORIZED.
TEST_F(CompatNginxTest, UnauthorizedIsNotAuthorized) {
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  g_object_set(src, "location", http("/private/five.bin").c_str(), "retries", 0, nullptr);
  expect_transfer_error(*run_transfer(src, 30s), GST_RESOURCE_ERROR,
                        GST_RESOURCE_ERROR_NOT_AUTHORIZED, 30s);
  bool saw_401 = false;
  // nginx logs the 401 after it is sent: wait for the line.
  for (const auto& line : access_log_of(1)) saw_401 = saw_401 || contains(line, "\" 401 ");
  EXPECT_TRUE(saw_401) << "nginx never answered 401";
}

// ================================================================================
// Through a real squid
// ================================================================================

bool port_accepts(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

// A squid on 127.0.0.1 with a private config: no cache (every range reaches
// the origin), logs and pid in a temp dir, stopped by pid in the destructor.
class Squid {
 public:
  static const char* binary() {
    for (const char* path : {"/usr/sbin/squid", "/usr/bin/squid"}) {
      if (access(path, X_OK) == 0) return path;
    }
    return nullptr;
  }

  // Starts squid; false (with *why) if it did not come up.
  bool start(std::string* why) {
    // Started as root, squid drops to its cache_effective_user (proxy), which
    // must be able to write its logs in our (mode 0700) temp dir.
    if (geteuid() == 0) chmod(dir_.path().c_str(), 0777);
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = unused_port();
      write_config();
      std::vector<std::string> argv = {binary(), "-N", "-f", dir_.file("squid.conf")};
      std::vector<gchar*> args;
      for (auto& a : argv) args.push_back(const_cast<gchar*>(a.c_str()));
      args.push_back(nullptr);
      GError* error = nullptr;
      const auto flags =
          static_cast<GSpawnFlags>(G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL);
      if (!g_spawn_async(dir_.path().c_str(), args.data(), nullptr, flags, nullptr, nullptr, &pid_,
                         &error)) {
        *why = describe(error);
        g_clear_error(&error);
        return false;
      }
      for (int i = 0; i < 200; ++i) {  // up to 20 s
        if (port_accepts(port_)) return true;
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = 0;
          break;
        }
        g_usleep(100 * 1000);
      }
      stop();
    }
    *why = "squid did not listen; cache.log:\n" + cache_log();
    return false;
  }

  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {  // shutdown_lifetime 0: quick
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = 0;
        return;
      }
      g_usleep(100 * 1000);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }

  ~Squid() { stop(); }

  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> access_log() const { return read_lines(dir_.file("access.log")); }
  std::string cache_log() const {
    std::string text;
    for (const auto& l : read_lines(dir_.file("cache.log"))) text += l + "\n";
    return text;
  }

 private:
  void write_config() {
    std::ofstream conf(dir_.file("squid.conf"));
    const std::string d = dir_.path();
    conf << "http_port 127.0.0.1:" << port_ << "\n"
         << "http_access allow localhost\n"
         << "http_access deny all\n"
         << "cache deny all\n"
         << "cache_mem 8 MB\n"
         << "visible_hostname prefetch-test-proxy\n"
         << "pid_filename " << d << "/squid.pid\n"
         << "access_log stdio:" << d << "/access.log\n"
         << "buffered_logs off\n"
         << "cache_log " << d << "/cache.log\n"
         << "cache_store_log none\n"
         << "coredump_dir " << d << "\n"
         << "netdb_filename none\n"
         << "pinger_enable off\n"
         << "shutdown_lifetime 0 seconds\n";
  }

  TempDir dir_;
  GPid pid_ = 0;
  uint16_t port_ = 0;
};

class CompatProxyTest : public ElementTest {
 protected:
  void SetUp() override {
    ElementTest::SetUp();
    if (!Squid::binary()) GTEST_SKIP() << "squid is not installed (tests/run installs it)";
    std::string why;
    ASSERT_TRUE(squid_.start(&why)) << why;
    server_.add_file("/via.bin", data());
  }

  void TearDown() override {
    g_unsetenv("http_proxy");
    squid_.stop();
    ElementTest::TearDown();
  }

  static const std::vector<uint8_t>& data() { return pattern(6 * kBlock + 321); }

  // Every request the origin saw came through squid (it adds a Via header),
  // and squid logged one line per block. The tests ask one block per request
  // (max-request-size = block-size) so that there is a request per block to
  // count: with automatic spans the whole file comes in one request.
  void expect_went_through_squid() {
    const int blocks = static_cast<int>((data().size() + kBlock - 1) / kBlock);
    auto requests = server_.requests("/via.bin");
    int ranged = 0;
    for (const auto& r : requests) {
      SCOPED_TRACE("origin request " + std::to_string(r.id) + " range=" + r.range);
      if (!r.range.empty()) ++ranged;
      EXPECT_TRUE(contains(lower(r.header("Via").value_or("")), "prefetch-test-proxy"))
          << "did not come through squid; Via: " << r.header("Via").value_or("<none>");
    }
    EXPECT_GE(ranged, blocks) << "ranged requests at the origin";

    // squid writes a line when a transaction ends; allow it a moment.
    const std::string target = server_.url("/via.bin");
    int logged = 0;
    std::string text;
    for (int i = 0; i < 50; ++i) {
      logged = 0;
      text.clear();
      for (const auto& line : squid_.access_log()) {
        text += line + "\n";
        if (contains(line, " GET " + target)) ++logged;
      }
      if (logged >= blocks) break;
      g_usleep(100 * 1000);
    }
    EXPECT_GE(logged, blocks) << "squid's access log:\n" << text;
  }

  TestServer server_;
  Squid squid_;
};

TEST_F(CompatProxyTest, ProxyProperty) {
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  g_object_set(src, "location", server_.url("/via.bin").c_str(), "block-size", kBlock,
               "max-request-size", kBlock, "proxy", squid_.url().c_str(), "retries", 1, nullptr);
  expect_exact(src, data());
  expect_went_through_squid();
}

TEST_F(CompatProxyTest, HttpProxyEnvironmentVariable) {
  ASSERT_TRUE(g_setenv("http_proxy", squid_.url().c_str(), TRUE));
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  g_object_set(src, "location", server_.url("/via.bin").c_str(), "block-size", kBlock,
               "max-request-size", kBlock, "retries", 1, nullptr);
  expect_exact(src, data());
  g_unsetenv("http_proxy");
  expect_went_through_squid();
}

// The proxy property really is used: a proxy that is not there is an error,
// not a silent direct connection.
class CompatDeadProxyTest : public ElementTest {
 protected:
  TestServer server_;
};

TEST_F(CompatDeadProxyTest, DeadProxyIsAnError) {
  server_.add_file("/via.bin", pattern(2 * kBlock));
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  const std::string dead = "http://127.0.0.1:" + std::to_string(unused_port());
  g_object_set(src, "location", server_.url("/via.bin").c_str(), "block-size", kBlock, "proxy",
               dead.c_str(), "retries", 0, nullptr);
  ASSERT_NO_FATAL_FAILURE(expect_transfer_error_in(*run_transfer(src, 30s), GST_RESOURCE_ERROR))
      << "the proxy property was not used";
  EXPECT_EQ(server_.requests("/via.bin").size(), 0u) << "the origin was reached directly";
}

// ================================================================================
// playbin picks prefetchsrc for http:// when it outranks souphttpsrc
// ================================================================================

class CompatPlaybinTest : public RankedFirstTest {};

struct PlaybinState {
  std::mutex mutex;
  std::string source_factory;
  std::atomic<guint64> video_frames{0};
};

void on_source_setup(GstElement*, GstElement* source, gpointer user_data) {
  auto* state = static_cast<PlaybinState*>(user_data);
  GstElementFactory* f = gst_element_get_factory(source);
  std::lock_guard<std::mutex> lock(state->mutex);
  state->source_factory = f ? GST_OBJECT_NAME(f) : "(none)";
}

void on_video_handoff(GstElement*, GstBuffer*, GstPad*, gpointer user_data) {
  static_cast<PlaybinState*>(user_data)->video_frames++;
}

TEST_F(CompatPlaybinTest, PlaysAnMp4ToEosThroughPrefetchsrc) {
  constexpr int kSeconds = 3;
  constexpr guint64 kFrames = kSeconds * 30;  // make_clip.sh's frame rate
  TempDir dir;
  const std::string clip = dir.file("clip.mp4");
  std::string out, err;
  ASSERT_EQ(
      run_command({PREFETCH_MAKE_CLIP, clip, std::to_string(kSeconds), "faststart", "320x240"},
                  &out, &err),
      0)
      << err;
  TestServer server;
  ASSERT_TRUE(server.add_file_from_disk("/clip.mp4", clip, "video/mp4"));

  GstPtr<GstElement> playbin(gst_element_factory_make("playbin", nullptr));
  ASSERT_NE(playbin, nullptr);
  gst_object_ref_sink(playbin.get());
  GstElement* vsink = gst_element_factory_make("fakesink", nullptr);
  GstElement* asink = gst_element_factory_make("fakesink", nullptr);
  ASSERT_TRUE(vsink && asink);
  g_object_set(vsink, "sync", FALSE, "signal-handoffs", TRUE, nullptr);
  g_object_set(asink, "sync", FALSE, nullptr);
  PlaybinState state;
  g_signal_connect(vsink, "handoff", G_CALLBACK(on_video_handoff), &state);
  g_signal_connect(playbin.get(), "source-setup", G_CALLBACK(on_source_setup), &state);
  g_object_set(playbin.get(), "uri", server.url("/clip.mp4").c_str(), "video-sink", vsink,
               "audio-sink", asink, nullptr);

  gst_element_set_state(playbin.get(), GST_STATE_PLAYING);
  MessagePtr msg = wait_error_or_eos(playbin.get(), 40s);
  EXPECT_EQ(gst_element_set_state(playbin.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  ASSERT_NE(msg, nullptr) << "playbin neither finished nor failed within 40 s";
  ErrorPtr error = error_of(msg.get());
  EXPECT_EQ(GST_MESSAGE_TYPE(msg.get()), GST_MESSAGE_EOS) << describe(error.get());
  {
    std::lock_guard<std::mutex> lock(state.mutex);
    EXPECT_EQ(state.source_factory, "prefetchsrc") << "playbin's source element";
  }
  EXPECT_EQ(state.video_frames.load(), kFrames) << "decoded video frames";
  EXPECT_FALSE(server.requests("/clip.mp4").empty()) << "the clip was never requested";
}

}  // namespace
}  // namespace element_test
}  // namespace prefetch
