// Errors reach the bus with the right domain and code (never only as text),
// and none of them hangs the pipeline.
#include <gst/gst.h>

#include <chrono>
#include <string>

#include "element_test_util.h"
#include "test_server.h"

namespace prefetch {
namespace element_test {
namespace {

class ErrorTest : public ElementTest {
 protected:
  // Runs `src ! appsink` and expects an ERROR (no EOS) with domain/code
  // within `timeout`; returns the time it took.
  std::chrono::milliseconds expect_error(GstElement* src, GQuark domain, gint code,
                                         std::chrono::milliseconds timeout = 30s) {
    const auto start = Clock::now();
    auto result = run_transfer(src, timeout);
    const auto took = since(start);
    expect_transfer_error(*result, domain, code, timeout);
    return took;
  }

  // expect_error of a src_for(uri).
  void expect_error_for(const std::string& uri, GQuark domain, gint code) {
    GstElement* src = src_for(uri);
    ASSERT_NE(src, nullptr);
    expect_error(src, domain, code);
  }

  GstElement* src_for(const std::string& uri) {
    GstElement* src = make_prefetchsrc();
    if (src) {
      g_object_set(src, "location", uri.c_str(), "block-size", kBlock, "retries", 1, nullptr);
    }
    return src;
  }

  TestServer server_;
};

TEST_F(ErrorTest, NotFound) {
  expect_error_for(server_.url("/missing.bin"), GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND);
}

TEST_F(ErrorTest, UnauthorizedWithoutCredentials) {
  server_.add_file("/secret.bin", pattern(kBlock));
  server_.require_basic_auth("/secret.bin", "alice", "wonder");
  expect_error_for(server_.url("/secret.bin"), GST_RESOURCE_ERROR,
                   GST_RESOURCE_ERROR_NOT_AUTHORIZED);
}

TEST_F(ErrorTest, UnauthorizedWithWrongPassword) {
  server_.add_file("/secret.bin", pattern(kBlock));
  server_.require_basic_auth("/secret.bin", "alice", "wonder");
  GstElement* src = src_for(server_.url("/secret.bin"));
  ASSERT_NE(src, nullptr);
  g_object_set(src, "user-id", "alice", "user-pw", "nope", nullptr);
  expect_error(src, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_AUTHORIZED);
}

TEST_F(ErrorTest, Forbidden) {
  server_.add_file("/forbidden.bin", pattern(kBlock));
  server_.set_behavior("/forbidden.bin", status_behavior(403));
  expect_error_for(server_.url("/forbidden.bin"), GST_RESOURCE_ERROR,
                   GST_RESOURCE_ERROR_NOT_AUTHORIZED);
}

TEST_F(ErrorTest, ProxyAuthenticationRequired) {
  server_.add_file("/p.bin", pattern(kBlock));
  server_.set_behavior("/p.bin", status_behavior(407));
  expect_error_for(server_.url("/p.bin"), GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_AUTHORIZED);
}

TEST_F(ErrorTest, ConnectionRefused) {
  const std::string uri = "http://127.0.0.1:" + std::to_string(unused_port()) + "/x.bin";
  GstElement* src = src_for(uri);
  ASSERT_NE(src, nullptr);
  auto took = expect_error(src, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ);
  EXPECT_LT(took.count(), 20000) << "ms until the error";
}

TEST_F(ErrorTest, ConnectionRefusedWithDefaultRetries) {
  // Default retries (3): still an error, after backoff, not a hang.
  const std::string uri = "http://127.0.0.1:" + std::to_string(unused_port()) + "/x.bin";
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  g_object_set(src, "location", uri.c_str(), nullptr);
  expect_error(src, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ, 45s);
}

TEST_F(ErrorTest, UnresolvableHost) {
  expect_error_for("http://prefetchsrc-no-such-host.invalid/x.bin", GST_RESOURCE_ERROR,
                   GST_RESOURCE_ERROR_OPEN_READ);
}

TEST_F(ErrorTest, NonHttpLocationFailsToStart) {
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  g_object_set(src, "location", "file:///x", nullptr);
  expect_error(src, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ, 10s);
}

TEST_F(ErrorTest, NoLocationFailsToStart) {
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  expect_error(src, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ, 10s);
}

TEST_F(ErrorTest, SetUriRefusesNonHttp) {
  GstPtr<GstElement> src = make_owned_prefetchsrc();
  ASSERT_NE(src, nullptr);
  for (const char* uri : {"file:///x", "ftp://127.0.0.1/x", "rtsp://127.0.0.1/x"}) {
    SCOPED_TRACE(uri);
    GError* error = nullptr;
    EXPECT_FALSE(gst_uri_handler_set_uri(GST_URI_HANDLER(src.get()), uri, &error));
    ASSERT_NE(error, nullptr);
    EXPECT_EQ(error->domain, GST_URI_ERROR) << describe(error);
    g_clear_error(&error);
  }
}

TEST_F(ErrorTest, ResourceChangedDuringTransfer) {
  // From the second request on the origin answers with a new validator: the
  // bytes may no longer belong to the same file, so the element must fail
  // instead of splicing two versions together. Requests of two blocks
  // (max-request-size): with automatic spans the fast loopback origin gives
  // the whole file to the first request, and no second one would see the
  // new validator.
  server_.add_file("/changing.bin", pattern(8 * kBlock));
  Behavior b;
  b.etag_change_after = 1;
  b.first_byte_delay = prefetch::testing::block_delay_schedule(kBlock, {100ms}, 0ms);
  server_.set_behavior("/changing.bin", b);
  GstElement* src = src_for(server_.url("/changing.bin"));
  ASSERT_NE(src, nullptr);
  g_object_set(src, "concurrency", 2u, "max-request-size", static_cast<guint64>(2 * kBlock),
               nullptr);
  expect_error(src, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ);
}

TEST_F(ErrorTest, MethodOtherThanGetIsRefused) {
  // `method` only allows GET: setting anything else must not make the element
  // send another method.
  server_.add_file("/m.bin", pattern(kBlock + 10));
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  g_object_set(src, "location", server_.url("/m.bin").c_str(), "block-size", kBlock, nullptr);
  gst_util_set_object_arg(G_OBJECT(src), "method", "POST");
  auto result = run_transfer(src, 20s);
  ASSERT_FALSE(result->timed_out);
  for (const auto& r : server_.requests("/m.bin")) {
    EXPECT_TRUE(r.method == "GET" || r.method == "HEAD")
        << "request " << r.id << " used " << r.method;
  }
}

}  // namespace
}  // namespace element_test
}  // namespace prefetch
