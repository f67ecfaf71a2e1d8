// HTTP Digest authentication with user-id / user-pw, and the proxy
// environment (http_proxy with no_proxy) through the element.
#include <gst/gst.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "element_test_util.h"
#include "test_server.h"

namespace prefetch {
namespace element_test {
namespace {

// Sets environment variables for the lifetime of the object and restores
// the previous values (or absence) afterwards.
class EnvGuard {
 public:
  EnvGuard() = default;
  ~EnvGuard() {
    for (const auto& [name, old] : saved_) {
      if (old)
        g_setenv(name.c_str(), old->c_str(), TRUE);
      else
        g_unsetenv(name.c_str());
    }
  }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;

  void set(const std::string& name, const std::string& value) {
    save(name);
    g_setenv(name.c_str(), value.c_str(), TRUE);
  }
  void unset(const std::string& name) {
    save(name);
    g_unsetenv(name.c_str());
  }

 private:
  void save(const std::string& name) {
    if (saved_.count(name)) return;
    const char* v = g_getenv(name.c_str());
    saved_[name] = v ? std::optional<std::string>(v) : std::nullopt;
  }
  std::map<std::string, std::optional<std::string>> saved_;
};

class AuthProxyEnvTest : public ElementTest {
 protected:
  GstElement* src_for(const std::string& path) {
    GstElement* src = make_prefetchsrc();
    if (src) {
      g_object_set(src, "location", server_.url(path).c_str(), "block-size", kBlock, "concurrency",
                   3u, "retries", 1, nullptr);
    }
    return src;
  }

  void expect_exact(GstElement* src, const std::vector<uint8_t>& data) {
    expect_exact_transfer(*run_transfer(src, 30s), data);
  }

  void expect_error(GstElement* src, GQuark domain, gint code) {
    expect_transfer_error(*run_transfer(src, 30s), domain, code, 30s);
  }

  TestServer server_;
};

// --- Digest auth -----------------------------------------------------------------

TEST_F(AuthProxyEnvTest, DigestAuthWithUserIdAndPassword) {
  const std::vector<uint8_t>& data = pattern(7 * kBlock + 123);
  server_.add_file("/digest.bin", data);
  server_.require_digest_auth("/digest.bin", "alice", "wonder");
  GstElement* src = src_for("/digest.bin");
  ASSERT_NE(src, nullptr);
  g_object_set(src, "user-id", "alice", "user-pw", "wonder", nullptr);
  expect_exact(src, data);
  // Only authenticated requests reach the handler (and the log); they all
  // carried Digest credentials.
  auto requests = server_.requests("/digest.bin");
  ASSERT_FALSE(requests.empty());
  for (const auto& r : requests) {
    EXPECT_EQ(r.header("Authorization").value_or("").rfind("Digest ", 0), 0u)
        << "request " << r.id << " Authorization: " << r.header("Authorization").value_or("<none>");
  }
}

TEST_F(AuthProxyEnvTest, DigestAuthWrongPasswordIsNotAuthorized) {
  server_.add_file("/digest.bin", pattern(2 * kBlock));
  server_.require_digest_auth("/digest.bin", "alice", "wonder");
  GstElement* src = src_for("/digest.bin");
  ASSERT_NE(src, nullptr);
  g_object_set(src, "user-id", "alice", "user-pw", "blunder", nullptr);
  expect_error(src, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_AUTHORIZED);
  EXPECT_TRUE(server_.requests("/digest.bin").empty()) << "a wrong password was let through";
}

TEST_F(AuthProxyEnvTest, DigestAuthWithoutCredentialsIsNotAuthorized) {
  server_.add_file("/digest.bin", pattern(2 * kBlock));
  server_.require_digest_auth("/digest.bin", "alice", "wonder");
  GstElement* src = src_for("/digest.bin");
  ASSERT_NE(src, nullptr);
  expect_error(src, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_AUTHORIZED);
}

// --- proxy environment ------------------------------------------------------------

// Control: http_proxy alone (a dead proxy) is used, so the element fails and
// the origin sees nothing; without this the no_proxy tests could not fail.
TEST_F(AuthProxyEnvTest, DeadHttpProxyFromEnvironmentIsUsed) {
  server_.add_file("/p.bin", pattern(2 * kBlock));
  EnvGuard env;
  env.set("http_proxy", "http://127.0.0.1:" + std::to_string(unused_port()));
  env.unset("no_proxy");
  env.unset("NO_PROXY");
  GstElement* src = src_for("/p.bin");
  ASSERT_NE(src, nullptr);
  g_object_set(src, "retries", 0, nullptr);
  ASSERT_NO_FATAL_FAILURE(expect_transfer_error_in(*run_transfer(src, 30s), GST_RESOURCE_ERROR))
      << "the proxy from the environment was not used";
  EXPECT_TRUE(server_.requests("/p.bin").empty()) << "the origin was reached directly";
}

TEST_F(AuthProxyEnvTest, NoProxyBypassesDeadHttpProxyFor127001) {
  const std::vector<uint8_t>& data = pattern(5 * kBlock + 77);
  server_.add_file("/p.bin", data);
  EnvGuard env;
  env.set("http_proxy", "http://127.0.0.1:" + std::to_string(unused_port()));
  env.set("no_proxy", "127.0.0.1");
  env.unset("NO_PROXY");
  GstElement* src = src_for("/p.bin");
  ASSERT_NE(src, nullptr);
  expect_exact(src, data);
  EXPECT_FALSE(server_.requests("/p.bin").empty());
}

TEST_F(AuthProxyEnvTest, UpperCaseNoProxyListBypassesDeadHttpProxy) {
  const std::vector<uint8_t>& data = pattern(3 * kBlock + 5);
  server_.add_file("/p.bin", data);
  EnvGuard env;
  env.set("http_proxy", "127.0.0.1:" + std::to_string(unused_port()));  // no scheme, as curl allows
  env.unset("no_proxy");
  env.set("NO_PROXY", "example.invalid, localhost,127.0.0.1");
  GstElement* src = src_for("/p.bin");
  ASSERT_NE(src, nullptr);
  expect_exact(src, data);
}

}  // namespace
}  // namespace element_test
}  // namespace prefetch
