// What one block request carries: the exact request headers and message
// flags new_range_message() gives for a range and the options. No server.
#include "soup_request.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace prefetch {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

class SoupRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uri_ = g_uri_parse("http://example.com/f.bin", G_URI_FLAGS_ENCODED, nullptr);
  }
  void TearDown() override {
    if (msg_) g_object_unref(msg_);
    g_uri_unref(uri_);
  }

  // The request's headers, sorted (libsoup, not we, orders them on the wire).
  Headers make(const RangeRequest& r, const HttpOptions& o) {
    msg_ = new_range_message(uri_, r, o);
    Headers out;
    SoupMessageHeadersIter it;
    soup_message_headers_iter_init(&it, soup_message_get_request_headers(msg_));
    const char *name, *value;
    while (soup_message_headers_iter_next(&it, &name, &value)) out.emplace_back(name, value);
    std::sort(out.begin(), out.end());
    return out;
  }

  static RangeRequest range(uint64_t begin, std::optional<uint64_t> end,
                            std::string validator = "") {
    RangeRequest r;
    r.begin = begin;
    r.end = end;
    r.validator = std::move(validator);
    return r;
  }

  GUri* uri_ = nullptr;
  SoupMessage* msg_ = nullptr;
};

TEST_F(SoupRequestTest, ABoundedRangeWithDefaults) {
  EXPECT_EQ(make(range(10, 20), HttpOptions{}),
            (Headers{{"Accept-Encoding", "identity"}, {"Range", "bytes=10-19"}}));
  EXPECT_STREQ(soup_message_get_method(msg_), "GET");
  char* uri = g_uri_to_string(soup_message_get_uri(msg_));
  EXPECT_STREQ(uri, "http://example.com/f.bin");
  g_free(uri);
  EXPECT_EQ(soup_message_get_flags(msg_), 0);
}

TEST_F(SoupRequestTest, AnOpenRangeAsksForTheRest) {
  EXPECT_EQ(make(range(4096, std::nullopt), HttpOptions{}),
            (Headers{{"Accept-Encoding", "identity"}, {"Range", "bytes=4096-"}}));
}

TEST_F(SoupRequestTest, AStrongValidatorIsSentAsIfRange) {
  EXPECT_EQ(
      make(range(0, 1, "\"v1\""), HttpOptions{}),
      (Headers{{"Accept-Encoding", "identity"}, {"If-Range", "\"v1\""}, {"Range", "bytes=0-0"}}));
}

TEST_F(SoupRequestTest, ALastModifiedValidatorIsSentAsIfRange) {
  const char* date = "Sun, 06 Nov 1994 08:49:37 GMT";
  EXPECT_EQ(make(range(0, 1, date), HttpOptions{}),
            (Headers{{"Accept-Encoding", "identity"}, {"If-Range", date}, {"Range", "bytes=0-0"}}));
}

TEST_F(SoupRequestTest, AWeakValidatorIsNotSent) {
  EXPECT_EQ(make(range(0, 1, "W/\"v1\""), HttpOptions{}),
            (Headers{{"Accept-Encoding", "identity"}, {"Range", "bytes=0-0"}}));
}

TEST_F(SoupRequestTest, OptionsAddHeadersCookiesAndConnectionClose) {
  HttpOptions o;
  o.extra_headers = {{"X-Token", "a"}, {"X-Token", "b"}, {"Accept-Encoding", "gzip"}};
  o.cookies = {"a=1", "b=2"};
  o.keep_alive = false;
  EXPECT_EQ(make(range(0, 100), o), (Headers{{"Accept-Encoding", "identity"},
                                             {"Connection", "close"},
                                             {"Cookie", "a=1; b=2"},
                                             {"Range", "bytes=0-99"},
                                             {"X-Token", "a"},
                                             {"X-Token", "b"}}));
}

TEST_F(SoupRequestTest, NoAutomaticRedirectSetsNoRedirect) {
  HttpOptions o;
  o.automatic_redirect = false;
  make(range(0, 1), o);
  EXPECT_EQ(soup_message_get_flags(msg_), SOUP_MESSAGE_NO_REDIRECT);
}

#if SOUP_CHECK_VERSION(3, 4, 0)
TEST_F(SoupRequestTest, ForceHttp1IsSetPerMessage) {
  HttpOptions o;
  make(range(0, 1), o);
  EXPECT_TRUE(soup_message_get_force_http1(msg_));
  g_clear_object(&msg_);
  o.force_http1 = false;
  make(range(0, 1), o);
  EXPECT_FALSE(soup_message_get_force_http1(msg_));
}
#endif

TEST_F(SoupRequestTest, AWholeRequestHasNoRangeNorIfRange) {
  RangeRequest r = range(0, std::nullopt, "\"v1\"");
  r.whole = true;
  EXPECT_EQ(make(r, HttpOptions{}), (Headers{{"Accept-Encoding", "identity"}}));
}

TEST_F(SoupRequestTest, IradioModeAsksForIcyMetadata) {
  HttpOptions o;
  o.iradio_mode = true;
  EXPECT_EQ(
      make(range(0, 10), o),
      (Headers{{"Accept-Encoding", "identity"}, {"Range", "bytes=0-9"}, {"icy-metadata", "1"}}));
}

TEST_F(SoupRequestTest, CompressAcceptsGzipAndDeflate) {
  HttpOptions o;
  o.compress = true;
  RangeRequest r = range(0, std::nullopt);
  r.whole = true;
  EXPECT_EQ(make(r, o), (Headers{{"Accept-Encoding", "gzip, deflate"}}));
}

}  // namespace
}  // namespace prefetch
