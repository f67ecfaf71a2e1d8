// The mapping of libsoup's and GIO's errors to prefetch::Error: kind, retry,
// debug detail. No server, no thread.
#include "soup_error.h"

#include <gio/gio.h>
#include <gtest/gtest.h>
#include <libsoup/soup.h>

#include <string>

namespace prefetch {
namespace {

Error map(GQuark domain, int code) {
  GError* err = g_error_new_literal(domain, code, "boom");
  Error e = gerror_to_error(err);
  g_error_free(err);
  return e;
}

void expect(GQuark domain, int code, ErrorKind kind, bool transient) {
  SCOPED_TRACE(std::string(g_quark_to_string(domain)) + " " + std::to_string(code));
  const Error e = map(domain, code);
  EXPECT_EQ(e.kind, kind);
  EXPECT_EQ(e.transient, transient);
  EXPECT_EQ(e.http_status, 0);
  EXPECT_EQ(e.retry_after.count(), -1);
  EXPECT_EQ(e.detail, std::string(g_quark_to_string(domain)) + " " + std::to_string(code));
}

TEST(SoupErrorTest, CancelledIsCancelledAndNotRetried) {
  expect(G_IO_ERROR, G_IO_ERROR_CANCELLED, ErrorKind::kCancelled, false);
}

TEST(SoupErrorTest, TlsProblemsAreOpenReadAndNotRetried) {
  expect(G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE, ErrorKind::kOpenRead, false);
  expect(G_TLS_ERROR, G_TLS_ERROR_HANDSHAKE, ErrorKind::kOpenRead, false);
}

TEST(SoupErrorTest, ResolverFailuresAreOpenReadAndRetried) {
  expect(G_RESOLVER_ERROR, G_RESOLVER_ERROR_NOT_FOUND, ErrorKind::kOpenRead, true);
  expect(G_RESOLVER_ERROR, G_RESOLVER_ERROR_TEMPORARY_FAILURE, ErrorKind::kOpenRead, true);
}

TEST(SoupErrorTest, RedirectProblemsAreOpenReadAndNotRetried) {
  expect(SOUP_SESSION_ERROR, SOUP_SESSION_ERROR_TOO_MANY_REDIRECTS, ErrorKind::kOpenRead, false);
  expect(SOUP_SESSION_ERROR, SOUP_SESSION_ERROR_REDIRECT_NO_LOCATION, ErrorKind::kOpenRead, false);
  expect(SOUP_SESSION_ERROR, SOUP_SESSION_ERROR_REDIRECT_BAD_URI, ErrorKind::kOpenRead, false);
}

TEST(SoupErrorTest, OtherSessionErrorsAreReadAndRetried) {
  expect(SOUP_SESSION_ERROR, SOUP_SESSION_ERROR_PARSING, ErrorKind::kRead, true);
  expect(SOUP_SESSION_ERROR, SOUP_SESSION_ERROR_ENCODING, ErrorKind::kRead, true);
  expect(SOUP_SESSION_ERROR, SOUP_SESSION_ERROR_MESSAGE_ALREADY_IN_QUEUE, ErrorKind::kRead, true);
}

TEST(SoupErrorTest, UnreachableOriginsAreOpenReadAndRetried) {
  expect(G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED, ErrorKind::kOpenRead, true);
  expect(G_IO_ERROR, G_IO_ERROR_HOST_UNREACHABLE, ErrorKind::kOpenRead, true);
  expect(G_IO_ERROR, G_IO_ERROR_NETWORK_UNREACHABLE, ErrorKind::kOpenRead, true);
  expect(G_IO_ERROR, G_IO_ERROR_HOST_NOT_FOUND, ErrorKind::kOpenRead, true);
}

TEST(SoupErrorTest, TimeoutIsReadAndRetried) {
  expect(G_IO_ERROR, G_IO_ERROR_TIMED_OUT, ErrorKind::kRead, true);
}

TEST(SoupErrorTest, ResetsAndTruncationsAreReadAndRetried) {
  expect(G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED, ErrorKind::kRead, true);
  expect(G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE, ErrorKind::kRead, true);
  expect(G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT, ErrorKind::kRead, true);
  expect(G_IO_ERROR, G_IO_ERROR_FAILED, ErrorKind::kRead, true);
}

TEST(SoupErrorTest, AnUnknownDomainIsReadAndRetried) {
  expect(g_quark_from_static_string("prefetch-test-error"), 7, ErrorKind::kRead, true);
}

TEST(SoupErrorTest, AMissingMessageStillGivesOne) {
  GError err{G_IO_ERROR, G_IO_ERROR_FAILED, nullptr};
  const Error e = gerror_to_error(&err);
  EXPECT_EQ(e.kind, ErrorKind::kRead);
  EXPECT_FALSE(e.message.empty());
}

TEST(SoupErrorTest, CancelledErrorIsCancelledAndNotRetried) {
  const Error e = cancelled_error();
  EXPECT_EQ(e.kind, ErrorKind::kCancelled);
  EXPECT_FALSE(e.transient);
  EXPECT_EQ(e.http_status, 0);
}

}  // namespace
}  // namespace prefetch
