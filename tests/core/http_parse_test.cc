#include "prefetch/http_parse.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace prefetch {
namespace {

using std::chrono::milliseconds;

// --- Content-Range ---------------------------------------------------------

// What a well-formed value parses to; ranges are unset when unsatisfied.
struct ContentRangeCase {
  const char* name;
  const char* value;
  bool unsatisfied;
  uint64_t first, last;
  std::optional<uint64_t> total;
};

class ContentRangeTest : public ::testing::TestWithParam<ContentRangeCase> {};

TEST_P(ContentRangeTest, Parses) {
  const ContentRangeCase& c = GetParam();
  auto cr = parse_content_range(c.value);
  ASSERT_TRUE(cr.has_value()) << c.value;
  EXPECT_EQ(cr->unsatisfied, c.unsatisfied);
  if (!c.unsatisfied) {
    EXPECT_EQ(cr->first, c.first);
    EXPECT_EQ(cr->last, c.last);
  }
  EXPECT_EQ(cr->total, c.total);
}

INSTANTIATE_TEST_SUITE_P(
    WellFormed, ContentRangeTest,
    ::testing::Values(
        ContentRangeCase{"SatisfiedRangeWithTotal", "bytes 0-499/1234", false, 0, 499, 1234},
        ContentRangeCase{"TheLastByteOfTheResource", "bytes 1233-1233/1234", false, 1233, 1233,
                         1234},
        ContentRangeCase{"UnknownTotal", "bytes 500-999/*", false, 500, 999, std::nullopt},
        ContentRangeCase{"UnsatisfiedWithTotal", "bytes */1234", true, 0, 0, 1234},
        ContentRangeCase{"UnsatisfiedOfAnEmptyResource", "bytes */0", true, 0, 0, 0},
        ContentRangeCase{"ValuesBeyond32Bits", "bytes 8589934592-8589935591/17179869184", false,
                         8589934592u, 8589935591u, 17179869184u}),
    [](const ::testing::TestParamInfo<ContentRangeCase>& info) { return info.param.name; });

class ContentRangeJunkTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ContentRangeJunkTest, IsRejected) {
  EXPECT_FALSE(parse_content_range(GetParam()).has_value()) << "'" << GetParam() << "'";
}

INSTANTIATE_TEST_SUITE_P(
    Junk, ContentRangeJunkTest,
    ::testing::Values("", "bytes", "bytes ", "0-499/1234", "bits 0-499/1234", "bytes 0-499",
                      "bytes 0-/1234", "bytes -499/1234", "bytes a-b/c", "bytes 0-499/12x",
                      "bytes 0-499/", "bytes */*", "bytes 0-4 99/1234", "bytes -1-499/1234",
                      "bytes 0-499/1234 junk", "bytes 0x10-0x20/100",
                      // last < first
                      "bytes 500-499/1234",
                      // last beyond the total
                      "bytes 0-1234/1234", "bytes 2000-2999/1234",
                      // overflow of uint64
                      "bytes 0-18446744073709551616/*", "bytes 99999999999999999999-1/2",
                      "bytes 0-1/99999999999999999999", "bytes */18446744073709551616"));

// --- Content-Length --------------------------------------------------------

TEST(ContentLengthTest, ParsesDecimals) {
  EXPECT_EQ(parse_content_length("0"), 0u);
  EXPECT_EQ(parse_content_length("1"), 1u);
  EXPECT_EQ(parse_content_length("1234"), 1234u);
  EXPECT_EQ(parse_content_length("17179869184"), 17179869184u);
  EXPECT_EQ(parse_content_length("18446744073709551615"), 18446744073709551615u);
}

TEST(ContentLengthTest, RejectsSignsJunkAndOverflow) {
  for (const char* v : {"", "-1", "+1", "12a", "a12", "1.5", "0x10", "1 2", "18446744073709551616",
                        "99999999999999999999999"}) {
    EXPECT_FALSE(parse_content_length(v).has_value()) << "'" << v << "'";
  }
}

// --- Retry-After -----------------------------------------------------------

constexpr int64_t kDateUnix = 1445412480;  // Wed, 21 Oct 2015 07:28:00 GMT

TEST(RetryAfterTest, ParsesDeltaSeconds) {
  EXPECT_EQ(parse_retry_after("120", kDateUnix), milliseconds(120000));
  EXPECT_EQ(parse_retry_after("1", kDateUnix), milliseconds(1000));
  EXPECT_EQ(parse_retry_after("0", kDateUnix), milliseconds(0));
}

TEST(RetryAfterTest, ParsesAnHttpDateRelativeToNow) {
  auto d = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", kDateUnix - 30);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, milliseconds(30000));
}

TEST(RetryAfterTest, AnHttpDateInThePastIsNotNegative) {
  auto d = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", kDateUnix + 3600);
  if (d.has_value()) {
    EXPECT_EQ(*d, milliseconds(0));
  }
}

TEST(RetryAfterTest, RejectsJunk) {
  for (const char* v : {"", "soon", "-5", "+5", "1.5", "12s", "Wed, 99 Foo 2015 07:28:00 GMT"}) {
    EXPECT_FALSE(parse_retry_after(v, kDateUnix).has_value()) << "'" << v << "'";
  }
}

// --- ETag ------------------------------------------------------------------

TEST(EtagTest, ParsesAStrongTagAsSent) {
  auto tag = parse_etag("\"xyzzy\"");
  ASSERT_TRUE(tag.has_value());
  EXPECT_EQ(*tag, "\"xyzzy\"");
  EXPECT_FALSE(is_weak_etag(*tag));
}

TEST(EtagTest, ParsesAWeakTagAsSent) {
  auto tag = parse_etag("W/\"xyzzy\"");
  ASSERT_TRUE(tag.has_value());
  EXPECT_EQ(*tag, "W/\"xyzzy\"");
  EXPECT_TRUE(is_weak_etag(*tag));
}

TEST(EtagTest, StrongAndWeakOfTheSameOpaqueTagDiffer) {
  auto strong = parse_etag("\"abc\"");
  auto weak = parse_etag("W/\"abc\"");
  ASSERT_TRUE(strong && weak);
  EXPECT_NE(*strong, *weak);
}

TEST(EtagTest, RejectsJunk) {
  for (const char* v :
       {"", "xyzzy", "\"xyzzy", "xyzzy\"", "W/xyzzy", "w/\"x\" junk", "W/", "\"a\"b\""}) {
    EXPECT_FALSE(parse_etag(v).has_value()) << "'" << v << "'";
  }
}

TEST(RetryAfter, RejectsADateWithoutDayNameOrSeparators) {
  // Right length and month, but not an IMF-fixdate: no guessing.
  EXPECT_EQ(parse_retry_after("XYZ,X21YOctZ2015 07:28:00XGMT", kDateUnix - 30), std::nullopt);
  EXPECT_EQ(parse_retry_after("Wed, 21-Oct 2015 07:28:00 GMT", kDateUnix - 30), std::nullopt);
}

}  // namespace
}  // namespace prefetch
