// What goes on the wire: headers and cookies, redirects, presigned redirects
// whose targets expire, and no proxy from the environment when it is unset.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "http_fixture.h"

namespace prefetch {
namespace {

class HttpWireTest : public HttpTest {
 protected:
  // `size` bytes of pattern `seed` at /object, and /presign redirecting to
  // it with a token that expires after `uses` requests.
  std::vector<uint8_t> serve_presigned(uint64_t size, uint32_t seed, unsigned uses,
                                       bool require_cookie = false) {
    auto data = serve("/object", size, seed);
    server_.add_expiring_redirect("/presign", "/object", uses, require_cookie);
    return data;
  }
  // `c` with a look-ahead of `blocks` that cannot grow.
  static Config fixed_lookahead(Config c, unsigned blocks) {
    c.lookahead_blocks = blocks;
    return c;
  }
};

TEST_F(HttpWireTest, UserAgentExtraHeadersAndCookies) {
  serve("/f", 100 * kKiB, 1);
  HttpOptions o = options("/f");
  o.user_agent = "prefetch-test/1.0";
  o.extra_headers = {{"X-Test", "42"}};
  o.cookies = {"a=1", "b=2"};
  Fetched f = fetch(o, config(64 * kKiB, 2));
  EXPECT_EQ(f.status, ReadStatus::kEos);
  auto log = server_.requests("/f");
  ASSERT_FALSE(log.empty());
  for (const auto& r : log) {
    EXPECT_EQ(r.header("User-Agent").value_or(""), "prefetch-test/1.0");
    EXPECT_EQ(r.header("X-Test").value_or(""), "42");
    std::string cookie = r.header("Cookie").value_or("");
    EXPECT_NE(cookie.find("a=1"), std::string::npos) << cookie;
    EXPECT_NE(cookie.find("b=2"), std::string::npos) << cookie;
  }
}

TEST_F(HttpWireTest, RedirectIsFollowed) {
  auto data = serve("/f", 300 * kKiB, 3);
  server_.add_redirect("/r", "/f", 302);
  expect_exact(fetch(options("/r"), config(64 * kKiB, 4)), data);
}

// Presigned redirects: `location` answers 302 to a target whose token
// expires; the target then answers 403.

// Answers in the log of `path` with `status`.
size_t count_status(const std::vector<RequestRecord>& log, int status) {
  size_t n = 0;
  for (const auto& r : log) n += r.status == status;
  return n;
}

// Distinct tokens ("token=N") among the answers of `log` with `status`.
size_t count_tokens(const std::vector<RequestRecord>& log, int status) {
  std::set<std::string> tokens;
  for (const auto& r : log)
    if (r.status == status) tokens.insert(r.query);
  return tokens.size();
}

TEST_F(HttpWireTest, ExpiringRedirectTargetIsRefreshedFromLocation) {
  const unsigned concurrency = 4;
  auto data = serve_presigned(32 * kMiB, 41, 5);
  Fetched f = fetch(options("/presign"), block_config(1 * kMiB, concurrency), 64 * kKiB,
                    ReadMode::kAvailable, seconds(60));
  expect_exact(f, data);

  const auto redirects = server_.requests("/presign");
  const auto targets = server_.requests("/object");
  const size_t n302 = count_status(redirects, 302);
  const size_t n403 = count_status(targets, 403);
  const size_t expired = count_tokens(targets, 403);
  std::printf(
      "[ info ] 302 answered: %zu, 403 answered: %zu (%zu tokens expired), target "
      "requests: %zu\n",
      n302, n403, expired, targets.size());
  EXPECT_GE(n403, 32u / 5 - 1) << "the tokens expired: the test exercised the refresh";
  // Each refresh follows one redirect and is caused by a 403. The requests
  // sent before the first target is pinned may each follow the redirect
  // too: at most `concurrency` more.
  EXPECT_LE(n302, n403 + concurrency);
  // Concurrent fetches that meet one expiry share one refresh: a redirect
  // per expired token, not per fetch that saw it expire.
  EXPECT_LE(n302, expired + concurrency);
}

TEST_F(HttpWireTest, ExpiringRedirectTargetIsRefreshedAfterASeek) {
  const uint64_t size = 8 * kMiB;
  auto data = serve_presigned(size, 42, 1000);
  // A look-ahead of 8 blocks (2 MiB) that cannot grow: the automatic one
  // grows with the first-byte times, which a sanitized build makes longer,
  // and a grown one can hold the seek's target before the seek (no request
  // after it, so no expiry met).
  Guarded p = guarded(options("/presign"), fixed_lookahead(config(256 * kKiB, 4), 8), seconds(30));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  // The first `concurrency` blocks: the requests sent before the target was
  // pinned (each followed the redirect itself) are all done.
  Fetched head = read_until_end(*p, 0, 64 * kKiB, ReadMode::kAvailable, 1 * kMiB);
  ASSERT_EQ(head.status, ReadStatus::kOk);
  EXPECT_EQ(head.bytes, slice(data, 0, head.bytes.size()));
  // (Not idle: the first span is paused where the look-ahead ends, with its
  // connection open; the seek cancels it.)
  const size_t redirects_before = server_.requests("/presign").size();

  // Every token expires; then a seek far ahead needs new requests.
  server_.expire_redirect_tokens("/presign");
  const uint64_t far = 5 * kMiB + 12345;
  p->seek(far);
  Fetched tail = read_until_end(*p, far, 64 * kKiB, ReadMode::kAvailable);
  EXPECT_TRUE(p.close_in_time());
  expect_exact(tail, slice(data, far, size));
  EXPECT_TRUE(tail.order_ok);
  EXPECT_GE(count_status(server_.requests("/object"), 403), 1u) << "the seek met the expiry";
  EXPECT_EQ(server_.requests("/presign").size(), redirects_before + 1)
      << "one redirect for the one expiry";
}

TEST_F(HttpWireTest, ExpiringRedirectWhoseFreshTargetFailsTooIsNotAuthorized) {
  const uint64_t size = 4 * kMiB;
  serve_presigned(size, 43, 1000);
  // A look-ahead of 4 blocks (1 MiB) that cannot grow: grown with a
  // sanitizer's longer first bytes it can hold the whole file before the
  // refusal begins (EOS, no request refused).
  Guarded p =
      guarded(options("/presign"), fixed_lookahead(block_config(256 * kKiB, 2), 4), seconds(30));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  // The first `concurrency` blocks: the requests sent before the target was
  // pinned (a fetch sent to location is not refreshed) are all done.
  Fetched head = read_until_end(*p, 0, 64 * kKiB, ReadMode::kAvailable, 512 * kKiB);
  ASSERT_EQ(head.status, ReadStatus::kOk);
  ASSERT_TRUE(server_.wait_idle());
  const size_t redirects_before = server_.requests("/presign").size();
  // From now on the target refuses every request, fresh tokens included.
  server_.set_behavior("/object", answering(403));
  Fetched rest = read_until_end(*p, head.bytes.size(), 64 * kKiB, ReadMode::kAvailable);
  EXPECT_TRUE(p.close_in_time());
  expect_error(rest, ErrorKind::kNotAuthorized, 403);
  const size_t n302 = server_.requests("/presign").size() - redirects_before;
  EXPECT_GE(n302, 1u) << "went back to location for a fresh target before failing";
  // Each fetch goes back to location at most once, and one at a time: at
  // most one redirect per request slot (2, plus the hedge's spare).
  EXPECT_LE(n302, 3u);
}

TEST_F(HttpWireTest, CookieGatedExpiringRedirectWorks) {
  auto data = serve_presigned(8 * kMiB, 44, 5, /*require_cookie=*/true);
  HttpOptions o = options("/presign");
  o.cookies = {"user=me"};  // the property's cookies go along with the jar's
  Fetched f = fetch(o, config(512 * kKiB, 4));
  expect_exact(f, data);
  const auto targets = server_.requests("/object");
  ASSERT_FALSE(targets.empty());
  for (const auto& r : targets) {
    const std::string cookie = r.header("Cookie").value_or("");
    EXPECT_NE(cookie.find("gate="), std::string::npos) << cookie;
    EXPECT_NE(cookie.find("user=me"), std::string::npos) << cookie;
  }
  for (const auto& r : server_.requests("/presign"))
    EXPECT_NE(r.header("Cookie").value_or("").find("user=me"), std::string::npos);
}

TEST_F(HttpWireTest, ProxyEnvironmentIsNotUsedWhenUnset) {
  // Sanity check of the suite itself: with the proxies unset, requests reach
  // the TestServer directly (a proxy would have turned them into CONNECTs
  // or absolute-URI requests to another port).
  serve("/f", 10, 1);
  Fetched f = fetch(options("/f"), config(64 * kKiB, 1));
  EXPECT_EQ(f.status, ReadStatus::kEos);
  EXPECT_EQ(server_.request_count(), 1u);
}

}  // namespace
}  // namespace prefetch
