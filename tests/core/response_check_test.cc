#include "prefetch/response_check.h"

#include <gtest/gtest.h>

namespace prefetch {
namespace {

ResponseHead partial(uint64_t first, uint64_t last, std::optional<uint64_t> total,
                     std::string validator = "") {
  ResponseHead h;
  h.status = 206;
  h.has_range = true;
  h.first = first;
  h.last = last;
  h.total = total;
  h.etag = std::move(validator);
  return h;
}

ResponseHead with_status(int status) {
  ResponseHead h;
  h.status = status;
  return h;
}

TEST(ResponseCheckTest, AMatchingPartialIsAcceptedAndTeachesSizeAndValidator) {
  const ResponseVerdict v = check_response(0, {}, partial(0, 99, 1000, "\"v1\""), 0);
  EXPECT_EQ(v.verdict, Verdict::kAccept);
  EXPECT_EQ(v.size, 1000u);
  EXPECT_EQ(v.etag, "\"v1\"");
  EXPECT_FALSE(v.error);
}

TEST(ResponseCheckTest, WhatIsKnownAlreadyIsNotLearntAgain) {
  KnownResource k;
  k.size = 1000;
  k.etag = "\"v1\"";
  const ResponseVerdict v = check_response(100, k, partial(100, 199, 1000, "\"v1\""), 0);
  EXPECT_EQ(v.verdict, Verdict::kAccept);
  EXPECT_FALSE(v.size);
  EXPECT_EQ(v.etag, "");
}

TEST(ResponseCheckTest, AnUnknownTotalTeachesNoSize) {
  const ResponseVerdict v = check_response(0, {}, partial(0, 99, std::nullopt), 0);
  EXPECT_EQ(v.verdict, Verdict::kAccept);
  EXPECT_FALSE(v.size);
}

TEST(ResponseCheckTest, ARangeFromAnotherOffsetIsATransientReadError) {
  const ResponseVerdict v = check_response(100, {}, partial(0, 99, 1000), 0);
  EXPECT_EQ(v.verdict, Verdict::kReject);
  ASSERT_TRUE(v.error);
  EXPECT_EQ(v.error->kind, ErrorKind::kRead);
  EXPECT_EQ(v.error->http_status, 206);
  EXPECT_TRUE(v.error->transient);
}

TEST(ResponseCheckTest, APartialWithoutContentRangeIsRejected) {
  const ResponseVerdict v = check_response(0, {}, with_status(206), 0);
  EXPECT_EQ(v.verdict, Verdict::kReject);
  EXPECT_TRUE(v.error->transient);
}

TEST(ResponseCheckTest, AnotherValidatorIsAChangedResource) {
  KnownResource k;
  k.etag = "\"v1\"";
  const ResponseVerdict v = check_response(0, k, partial(0, 99, 1000, "\"v2\""), 0);
  EXPECT_EQ(v.verdict, Verdict::kFatal);
  EXPECT_EQ(v.error->kind, ErrorKind::kResourceChanged);
}

TEST(ResponseCheckTest, AnotherTotalIsAChangedResource) {
  KnownResource k;
  k.size = 1000;
  const ResponseVerdict v = check_response(0, k, partial(0, 99, 2000), 0);
  EXPECT_EQ(v.verdict, Verdict::kFatal);
  EXPECT_EQ(v.error->kind, ErrorKind::kResourceChanged);
}

TEST(ResponseCheckTest, AWholeBodyFirstMeansOneStream) {
  ResponseHead h = with_status(200);
  h.content_length = 5000;
  h.etag = "\"v1\"";
  const ResponseVerdict v = check_response(0, {}, h, 0);
  EXPECT_EQ(v.verdict, Verdict::kStream);
  EXPECT_EQ(v.size, 5000u);
  EXPECT_EQ(v.etag, "\"v1\"");
}

TEST(ResponseCheckTest, AWholeBodyAfterRangesWorkedIsATransientError) {
  KnownResource k;
  k.ranges_ok = true;
  const ResponseVerdict v = check_response(0, k, with_status(200), 0);
  EXPECT_EQ(v.verdict, Verdict::kReject);
  EXPECT_EQ(v.error->kind, ErrorKind::kRead);
  EXPECT_TRUE(v.error->transient);
}

TEST(ResponseCheckTest, AWholeBodyWithAnotherValidatorIsAChangedResource) {
  // The origin's If-Range found our validator stale and sent the new version.
  KnownResource k;
  k.ranges_ok = true;
  k.etag = "\"v1\"";
  ResponseHead h = with_status(200);
  h.etag = "\"v2\"";
  EXPECT_EQ(check_response(0, k, h, 0).verdict, Verdict::kFatal);
}

TEST(ResponseCheckTest, ARestartedStreamLearnsNoSize) {
  KnownResource k;
  k.stream_mode = true;
  k.size = 5000;
  ResponseHead h = with_status(200);
  h.content_length = 5000;
  const ResponseVerdict v = check_response(0, k, h, 0);
  EXPECT_EQ(v.verdict, Verdict::kStream);
  EXPECT_FALSE(v.size);
}

TEST(ResponseCheckTest, A416PastTheEndGivesTheSize) {
  ResponseHead h = with_status(416);
  h.total = 1000;
  const ResponseVerdict v = check_response(1000, {}, h, 0);
  EXPECT_EQ(v.verdict, Verdict::kPastEnd);
  EXPECT_EQ(v.size, 1000u);
}

TEST(ResponseCheckTest, A416InsideTheSizeIsASeekError) {
  ResponseHead h = with_status(416);
  h.total = 1000;
  const ResponseVerdict v = check_response(10, {}, h, 0);
  EXPECT_EQ(v.verdict, Verdict::kReject);
  EXPECT_EQ(v.error->kind, ErrorKind::kSeek);
  EXPECT_FALSE(v.error->transient);
}

TEST(ResponseCheckTest, StatusesMapToErrorKinds) {
  EXPECT_EQ(status_error(404, true).kind, ErrorKind::kNotFound);
  EXPECT_EQ(status_error(410, true).kind, ErrorKind::kNotFound);
  EXPECT_EQ(status_error(401, true).kind, ErrorKind::kNotAuthorized);
  EXPECT_EQ(status_error(403, true).kind, ErrorKind::kNotAuthorized);
  EXPECT_EQ(status_error(407, true).kind, ErrorKind::kNotAuthorized);
  EXPECT_EQ(status_error(500, false).kind, ErrorKind::kOpenRead);
  EXPECT_EQ(status_error(500, true).kind, ErrorKind::kRead);
  EXPECT_TRUE(status_error(503, true).transient);
  EXPECT_TRUE(status_error(429, true).transient);
  EXPECT_TRUE(status_error(408, true).transient);
  EXPECT_FALSE(status_error(400, true).transient);
  EXPECT_FALSE(status_error(404, true).transient);
  EXPECT_EQ(status_error(418, true).http_status, 418);
}

TEST(ResponseCheckTest, ValidatorsAreComparedLikeWithLike) {
  // The first answer had both; a later one only Last-Modified (the same):
  // no change. An ETag on one answer is never held against a date.
  KnownResource k;
  k.etag = "\"v1\"";
  k.last_modified = "Sun, 06 Nov 1994 08:49:37 GMT";
  ResponseHead h = partial(100, 199, 1000);
  h.last_modified = "Sun, 06 Nov 1994 08:49:37 GMT";
  EXPECT_EQ(check_response(100, k, h, 0).verdict, Verdict::kAccept);
  h.last_modified = "Mon, 07 Nov 1994 08:49:37 GMT";
  const ResponseVerdict changed = check_response(100, k, h, 0);
  EXPECT_EQ(changed.verdict, Verdict::kFatal);
  EXPECT_EQ(changed.error->kind, ErrorKind::kResourceChanged);
}

TEST(ResponseCheckTest, AMissingValidatorIsNoChangeAndALaterOneIsLearnt) {
  KnownResource k;
  k.last_modified = "Sun, 06 Nov 1994 08:49:37 GMT";
  ResponseHead h = partial(100, 199, 1000, "\"v1\"");
  const ResponseVerdict v = check_response(100, k, h, 0);
  EXPECT_EQ(v.verdict, Verdict::kAccept);
  EXPECT_EQ(v.etag, "\"v1\"");  // first seen now: kept from here on
  EXPECT_EQ(v.last_modified, "");
}

TEST(ResponseCheckTest, RetryAfterComesWithTheError) {
  ResponseHead h = with_status(503);
  h.retry_after = "7";
  const ResponseVerdict v = check_response(0, {}, h, 0);
  EXPECT_EQ(v.verdict, Verdict::kReject);
  EXPECT_EQ(v.error->retry_after, std::chrono::milliseconds(7000));
  EXPECT_TRUE(v.error->transient);
}

}  // namespace
}  // namespace prefetch
