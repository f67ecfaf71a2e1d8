// ETag and Last-Modified: a changed resource is an error, never a splice;
// later requests carry the validator, a weak ETag never goes into If-Range.
#include <gtest/gtest.h>

#include <string>

#include "http_fixture.h"

namespace prefetch {
namespace {

class HttpValidatorsTest : public HttpTest {};

TEST_F(HttpValidatorsTest, ChangedEtagIsResourceChanged) {
  Behavior b;
  b.etag_change_after = 1;  // the first response has the old ETag, all others the new
  serve("/f", 1 * kMiB, 6, b);
  Fetched f = fetch(options("/f"), block_config(64 * kKiB, 2));
  EXPECT_EQ(f.status, ReadStatus::kError);
  EXPECT_EQ(f.error.kind, ErrorKind::kResourceChanged);
  // Never a silent splice: what was delivered is the first response's bytes.
  EXPECT_LE(f.bytes.size(), 64 * kKiB);
}

TEST_F(HttpValidatorsTest, ChangedLastModifiedWithoutEtagIsResourceChanged) {
  Behavior b;
  b.etag_change_after = 1;
  b.no_etag = true;
  serve("/f", 1 * kMiB, 6, b);
  Fetched f = fetch(options("/f"), block_config(64 * kKiB, 2));
  EXPECT_EQ(f.status, ReadStatus::kError);
  EXPECT_EQ(f.error.kind, ErrorKind::kResourceChanged);
}

TEST_F(HttpValidatorsTest, LaterRequestsCarryTheValidator) {
  auto data = serve("/f", 512 * kKiB, 6);
  server_.set_etag("/f", "\"v1\"");
  expect_exact(fetch(options("/f"), block_config(64 * kKiB, 2)), data);
  auto log = server_.requests("/f");
  ASSERT_EQ(log.size(), 8u);
  int with_validator = 0;
  for (const auto& r : log) {
    auto v = r.header("If-Range");
    if (!v) v = r.header("If-Match");
    if (v) {
      EXPECT_EQ(*v, "\"v1\"");
      ++with_validator;
    }
  }
  // Every request sent after the first response knew the validator.
  EXPECT_GE(with_validator, 1);
}

// A weak ETag may not validate a range (RFC 9110): If-Range then carries the
// Last-Modified date, and without one nothing.
TEST_F(HttpValidatorsTest, AWeakETagNeverGoesIntoIfRange) {
  auto data = serve("/f", 512 * kKiB, 6);
  server_.add_file("/g", data);
  server_.set_etag("/f", "W/\"weak\"");
  server_.set_etag("/g", "W/\"weak\"");
  Behavior no_date;
  no_date.no_last_modified = true;
  server_.set_behavior("/g", no_date);
  expect_exact(fetch(options("/f"), block_config(64 * kKiB, 2)), data);
  expect_exact(fetch(options("/g"), block_config(64 * kKiB, 2)), data);
  int dated = 0;
  for (const auto& r : server_.requests("/f")) {
    const auto v = r.header("If-Range");
    if (!v) continue;
    EXPECT_EQ(v->rfind("W/", 0), std::string::npos) << "weak ETag sent: " << *v;
    EXPECT_NE(v->find("GMT"), std::string::npos) << "not a date: " << *v;
    ++dated;
  }
  EXPECT_GE(dated, 1) << "no request carried the Last-Modified date";
  for (const auto& r : server_.requests("/g")) EXPECT_FALSE(r.header("If-Range")) << r.range;
}

}  // namespace
}  // namespace prefetch
