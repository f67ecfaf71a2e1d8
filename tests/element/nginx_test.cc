// Against a real nginx (tests/support/nginx/nginx.sh): real range, ETag,
// keep-alive, TLS, basic auth and redirect behaviour of a production server.
#include <gst/gst.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "element_test_util.h"
#include "test_server.h"

namespace prefetch {
namespace element_test {
namespace {

constexpr size_t kFiveMillion = NginxFixture::kNginxFileSize;
constexpr size_t kSixtyFourMiB = 64u << 20;

class NginxTest : public RunningNginxTest {
 protected:
  void expect_exact(GstElement* src, const std::vector<uint8_t>& data) {
    expect_exact_transfer(*run_transfer(src, 100s), data);
  }

  // Lines of nginx's access log (one per request).
  std::vector<std::string> access_log() const { return read_lines(state_.path() + "/access.log"); }
};

TEST_F(NginxTest, FiveMillionAndThreeBytesExact) {
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  // Requests of four blocks (max-request-size): with automatic spans nginx
  // gives the whole file to the first request; here it answers several
  // range requests on its keep-alive connections, each spanning blocks.
  g_object_set(src, "location", http("/five.bin").c_str(), "block-size",
               static_cast<guint64>(256 * 1024), "concurrency", 4u, "max-request-size",
               static_cast<guint64>(4 * 256 * 1024), nullptr);
  expect_exact(src, pattern(kFiveMillion));
  // The transfer was made of range requests (nginx answered 206).
  int ranged = 0;
  for (const auto& line : access_log()) {
    if (line.find("/five.bin") != std::string::npos && line.find("\" 206 ") != std::string::npos)
      ++ranged;
  }
  EXPECT_GE(ranged, 2) << "expected several 206 answers in nginx's access log";
}

TEST_F(NginxTest, SixtyFourMiBExact) {
  set_deadline(150s);
  ASSERT_TRUE(write_file(root_.file("big.bin"), pattern(kSixtyFourMiB)));
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  g_object_set(src, "location", http("/big.bin").c_str(), "block-size",
               static_cast<guint64>(1u << 20), "concurrency", 4u, nullptr);
  expect_exact(src, pattern(kSixtyFourMiB));
}

TEST_F(NginxTest, HttpsWithCaFileAuthAndRedirect) {
  // TLS with the test CA, basic auth, then the redirect path over plain http.
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  g_object_set(src, "location", https("/private/five.bin").c_str(), "block-size",
               static_cast<guint64>(512 * 1024), "ssl-ca-file", ca_.c_str(), "ssl-strict", TRUE,
               "user-id", "user", "user-pw", "secret", nullptr);
  expect_exact(src, pattern(kFiveMillion));

  GstElement* redirected = make_prefetchsrc();
  ASSERT_NE(redirected, nullptr);
  g_object_set(redirected, "location", http("/redirect/five.bin").c_str(), "block-size",
               static_cast<guint64>(512 * 1024), nullptr);
  expect_exact(redirected, pattern(kFiveMillion));
}

TEST_F(NginxTest, HttpsWithoutTrustedCaFails) {
  // ssl-strict with an unknown CA: an error, not a silent insecure read.
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  g_object_set(src, "location", https("/five.bin").c_str(), "ssl-strict", TRUE, "retries", 0,
               nullptr);
  expect_transfer_error_in(*run_transfer(src, 30s), GST_RESOURCE_ERROR);
}

}  // namespace
}  // namespace element_test
}  // namespace prefetch
