// Error statuses and refusals map to the right error kind, with or without
// retries: 404/410, 401/403, basic auth, a refused connection, 503 and 429.
#include <gio/gio.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>

#include "http_fixture.h"

namespace prefetch {
namespace {

class HttpErrorsTest : public HttpTest {};

TEST_F(HttpErrorsTest, NotFound) {
  const Fetched f = fetch(options("/missing"), config(64 * kKiB, 4));
  expect_error(f, ErrorKind::kNotFound, 404);
  // The start's twins (a late first byte is raced) are no retries.
  EXPECT_EQ(count_requests("/missing", [](const RequestRecord& r) { return range_first(r) == 0; }),
            1u + f.stats.races_sent)
      << "a 404 is not retried";
}

TEST_F(HttpErrorsTest, NotFoundFromStatus410) {
  serve("/f", 1000, 1, answering(410));
  expect_error(fetch(options("/f"), config(64 * kKiB, 4)), ErrorKind::kNotFound, 410);
}

class NotAuthorizedTest : public HttpTest, public ::testing::WithParamInterface<int> {};

TEST_P(NotAuthorizedTest, MapsToNotAuthorized) {
  serve("/f", 1000, 1, answering(GetParam()));
  expect_error(fetch(options("/f"), config(64 * kKiB, 4)), ErrorKind::kNotAuthorized, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Statuses, NotAuthorizedTest, ::testing::Values(401, 403));

TEST_F(HttpErrorsTest, BasicAuthWithCredentials) {
  auto data = serve("/f", 300 * kKiB, 2);
  server_.require_basic_auth("/f", "user", "secret");
  HttpOptions o = options("/f");
  o.user_id = "user";
  o.user_pw = "secret";
  expect_exact(fetch(o, config(64 * kKiB, 4)), data);

  o.user_pw = "wrong";
  expect_error(fetch(o, config(64 * kKiB, 4)), ErrorKind::kNotAuthorized, 401);
}

uint16_t unused_port() {
  GSocket* s =
      g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, nullptr);
  GInetAddress* lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
  GSocketAddress* addr = g_inet_socket_address_new(lo, 0);
  g_socket_bind(s, addr, FALSE, nullptr);
  GSocketAddress* bound = g_socket_get_local_address(s, nullptr);
  uint16_t port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
  g_object_unref(bound);
  g_object_unref(addr);
  g_object_unref(lo);
  g_socket_close(s, nullptr);
  g_object_unref(s);
  return port;  // bound but never listened on, now closed: connections are refused
}

TEST_F(HttpErrorsTest, ConnectionRefusedIsOpenReadWithinRetries) {
  HttpOptions o = options("/f");
  o.uri = "http://127.0.0.1:" + std::to_string(unused_port()) + "/f";
  Fetched f =
      fetch(o, config(64 * kKiB, 4, /*retries=*/2), 64 * kKiB, ReadMode::kAvailable, seconds(10));
  expect_error(f, ErrorKind::kOpenRead, 0);
}

TEST_F(HttpErrorsTest, ServiceUnavailableFirstNIsRetried) {
  auto data = serve("/f", 700 * kKiB + 3, 9, answering(503, 3));
  expect_exact(fetch(options("/f"), config(64 * kKiB, 4, /*retries=*/5)), data);
  EXPECT_EQ(count_requests("/f", [](const RequestRecord& r) { return r.status == 503; }), 3u);
}

TEST_F(HttpErrorsTest, ServiceUnavailableForeverFailsAfterRetries) {
  serve("/f", 100 * kKiB, 9, answering(503));
  Fetched f = fetch(options("/f"), config(64 * kKiB, 2, /*retries=*/2), 64 * kKiB,
                    ReadMode::kAvailable, seconds(10));
  EXPECT_EQ(f.status, ReadStatus::kError);
  EXPECT_EQ(f.error.http_status, 503);
  EXPECT_NE(f.error.kind, ErrorKind::kNotFound);
  EXPECT_NE(f.error.kind, ErrorKind::kNotAuthorized);
  // No block is tried more than 1 + retries times, and the block that made
  // the error fatal was tried exactly that often.
  std::map<int64_t, int> attempts;
  for (const auto& r : server_.requests("/f")) attempts[range_first(r)]++;
  int most = 0;
  for (const auto& [first, n] : attempts) {
    EXPECT_LE(n, 3) << "block at " << first;
    most = std::max(most, n);
  }
  EXPECT_EQ(most, 3);
}

TEST_F(HttpErrorsTest, TooManyRequestsHonoursRetryAfter) {
  Behavior b = answering(429, 1);
  b.retry_after_seconds = 1;
  auto data = serve("/f", 200 * kKiB, 4, b);
  expect_exact(fetch(options("/f"), config(64 * kKiB, 4)), data);
  auto log = server_.requests("/f");
  ASSERT_GE(log.size(), 2u);
  EXPECT_EQ(log[0].status, 429);
  ASSERT_TRUE(log[0].end);
  // The retry of that block waited at least the Retry-After (a lower bound:
  // not flaky).
  const RequestRecord* retry = nullptr;
  for (size_t i = 1; i < log.size() && !retry; ++i) {
    if (range_first(log[i]) == range_first(log[0])) retry = &log[i];
  }
  ASSERT_NE(retry, nullptr);
  EXPECT_GE(retry->start - *log[0].end, milliseconds(900));
}

}  // namespace
}  // namespace prefetch
