// Reading a response head (status + SoupMessageHeaders) into ResponseHead.
// No server: the headers are made by hand.
#include "soup_response.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <utility>

namespace prefetch {
namespace {

ResponseHead parse(int status, std::initializer_list<std::pair<const char*, const char*>> headers) {
  SoupMessageHeaders* h = soup_message_headers_new(SOUP_MESSAGE_HEADERS_RESPONSE);
  for (const auto& [name, value] : headers) soup_message_headers_append(h, name, value);
  ResponseHead head = parse_response_head(static_cast<SoupStatus>(status), h);
  soup_message_headers_unref(h);
  return head;
}

// The head's range (first, last) or none (0, 0), and its total.
::testing::AssertionResult range_is(const ResponseHead& head,
                                    std::optional<std::pair<uint64_t, uint64_t>> range,
                                    std::optional<uint64_t> total) {
  const auto want = range.value_or(std::make_pair<uint64_t, uint64_t>(0, 0));
  if (head.has_range != range.has_value() || head.first != want.first || head.last != want.second ||
      head.total != total)
    return ::testing::AssertionFailure()
           << "has_range " << head.has_range << ", " << head.first << "-" << head.last << ", total "
           << (head.total ? std::to_string(*head.total) : "unknown");
  return ::testing::AssertionSuccess();
}

TEST(SoupResponseTest, PartialContentGivesRangeTotalLengthAndValidator) {
  const ResponseHead head = parse(206, {{"Content-Range", "bytes 500-999/1234"},
                                        {"Content-Length", "500"},
                                        {"ETag", "\"v1\""},
                                        {"Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"}});
  EXPECT_EQ(head.status, 206);
  EXPECT_TRUE(range_is(head, std::make_pair(500, 999), 1234));
  EXPECT_EQ(head.content_length, 500u);
  EXPECT_EQ(head.etag, "\"v1\"");
  EXPECT_EQ(head.last_modified, "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(head.retry_after, "");
}

TEST(SoupResponseTest, AnUnknownTotalStaysUnknown) {
  const ResponseHead head = parse(206, {{"Content-Range", "bytes 0-99/*"}});
  EXPECT_TRUE(range_is(head, std::make_pair(0, 99), std::nullopt));
  EXPECT_FALSE(head.content_length.has_value());
  EXPECT_EQ(head.etag, "");
  EXPECT_EQ(head.last_modified, "");
}

TEST(SoupResponseTest, UnsatisfiedRangeGivesTheTotalButNoRange) {
  const ResponseHead head = parse(416, {{"Content-Range", "bytes */1234"}});
  EXPECT_EQ(head.status, 416);
  EXPECT_TRUE(range_is(head, std::nullopt, 1234));
}

TEST(SoupResponseTest, AWholeBodyGivesItsLengthAndNoRange) {
  const ResponseHead head = parse(200, {{"Content-Length", "4096"}});
  EXPECT_EQ(head.status, 200);
  EXPECT_FALSE(head.has_range);
  EXPECT_EQ(head.content_length, 4096u);
}

// A Content-Range or Content-Length that does not parse says nothing.
TEST(SoupResponseTest, MalformedLengthsAreUnknown) {
  const ResponseHead range = parse(206, {{"Content-Range", "bytes 9-1/1234"}});
  EXPECT_TRUE(range_is(range, std::nullopt, std::nullopt));
  const ResponseHead length = parse(200, {{"Content-Length", "12a"}});
  EXPECT_FALSE(length.content_length.has_value());
}

TEST(SoupResponseTest, AWeakETagIsKeptAsSent) {
  const ResponseHead head = parse(206, {{"ETag", "W/\"v2\""}});
  EXPECT_EQ(head.etag, "W/\"v2\"");
}

TEST(SoupResponseTest, EachValidatorIsKeptApartAndAMalformedETagIsDropped) {
  const ResponseHead lm = parse(206, {{"Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"}});
  EXPECT_EQ(lm.etag, "");
  EXPECT_EQ(lm.last_modified, "Sun, 06 Nov 1994 08:49:37 GMT");
  const ResponseHead bad =
      parse(206, {{"ETag", "v3"}, {"Last-Modified", "Mon, 07 Nov 1994 08:49:37 GMT"}});
  EXPECT_EQ(bad.etag, "");
  EXPECT_EQ(bad.last_modified, "Mon, 07 Nov 1994 08:49:37 GMT");
}

TEST(SoupResponseTest, RetryAfterIsKeptRaw) {
  const ResponseHead head = parse(503, {{"Retry-After", "120"}});
  EXPECT_EQ(head.status, 503);
  EXPECT_EQ(head.retry_after, "120");
  EXPECT_FALSE(head.has_range);
}

TEST(SoupResponseTest, AContentCodingHidesTheEncodedLength) {
  const ResponseHead head = parse(200, {{"Content-Length", "4096"}, {"Content-Encoding", "gzip"}});
  EXPECT_EQ(head.content_encoding, "gzip");
  EXPECT_FALSE(head.content_length.has_value());
  const ResponseHead identity =
      parse(200, {{"Content-Length", "4096"}, {"Content-Encoding", "identity"}});
  EXPECT_EQ(identity.content_encoding, "");
  EXPECT_EQ(identity.content_length, 4096u);
}

TEST(SoupResponseTest, IcyHeadersAreKept) {
  const ResponseHead head = parse(200, {{"icy-metaint", "8192"},
                                        {"icy-name", "Test Radio"},
                                        {"icy-genre", "Jazz"},
                                        {"icy-url", "http://radio.example/"},
                                        {"Content-Type", "audio/mpeg"}});
  EXPECT_EQ(head.icy.metaint, 8192);
  EXPECT_EQ(head.icy.name, "Test Radio");
  EXPECT_EQ(head.icy.genre, "Jazz");
  EXPECT_EQ(head.icy.url, "http://radio.example/");
  EXPECT_EQ(head.icy.content_type, "audio/mpeg");
  EXPECT_FALSE(parse(200, {{"icy-metaint", "0"}}).icy.metaint.has_value());
  EXPECT_FALSE(parse(200, {{"icy-metaint", "x"}}).icy.metaint.has_value());
  EXPECT_TRUE(parse(200, {}).icy.empty());
}

}  // namespace
}  // namespace prefetch
