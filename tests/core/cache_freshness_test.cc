#include "prefetch/cache_freshness.h"

#include <gtest/gtest.h>

namespace prefetch {
namespace {

// The answer arrives at RFC 9110's example date, so Date = response time.
constexpr int64_t kNow = 784111777;
constexpr const char* kDate = "Sun, 06 Nov 1994 08:49:37 GMT";

CacheVerdict verdict(HttpHeaders headers, int status = 200, bool credentials = false) {
  return cache_verdict(headers, status, credentials, kNow);
}

TEST(CacheFreshnessTest, MaxAgeGivesLifetime) {
  const CacheVerdict v = verdict({{"Date", kDate}, {"Cache-Control", "max-age=60"}});
  EXPECT_TRUE(v.storable);
  EXPECT_EQ(v.fresh_until, kNow + 60);
}

TEST(CacheFreshnessTest, MaxAgeWinsOverExpires) {
  const CacheVerdict v = verdict({{"Date", kDate},
                                  {"Expires", "Sun, 06 Nov 1994 09:49:37 GMT"},
                                  {"Cache-Control", "max-age=60"}});
  EXPECT_EQ(v.fresh_until, kNow + 60);
}

TEST(CacheFreshnessTest, QuotedMaxAge) {
  EXPECT_EQ(verdict({{"Date", kDate}, {"Cache-Control", "max-age=\"60\""}}).fresh_until, kNow + 60);
}

TEST(CacheFreshnessTest, DirectivesIgnoreCaseAndSpaces) {
  EXPECT_EQ(verdict({{"date", kDate}, {"CACHE-control", " Public ,  MAX-AGE = 30 "}}).fresh_until,
            kNow + 30);
}

TEST(CacheFreshnessTest, InvalidMaxAgeIsStaleAndHidesExpires) {
  for (const char* cc : {"max-age=abc", "max-age=-5", "max-age=", "max-age", "max-age=6 0",
                         "max-age=\"60", "max-age=abc, max-age=60"}) {
    const CacheVerdict v = verdict(
        {{"Date", kDate}, {"Expires", "Sun, 06 Nov 1994 09:49:37 GMT"}, {"Cache-Control", cc}});
    EXPECT_EQ(v.fresh_until, kNow) << cc;
    EXPECT_TRUE(v.storable) << cc;
  }
}

TEST(CacheFreshnessTest, FirstMaxAgeCounts) {
  EXPECT_EQ(verdict({{"Cache-Control", "max-age=10"}, {"Cache-Control", "max-age=99"}}).fresh_until,
            kNow + 10);
}

TEST(CacheFreshnessTest, HugeMaxAgeIsClamped) {
  EXPECT_EQ(verdict({{"Cache-Control", "max-age=99999999999999999999999"}}).fresh_until,
            kNow + (int64_t{1} << 31));
}

TEST(CacheFreshnessTest, CommaInQuotedValueDoesNotSplit) {
  const CacheVerdict v =
      verdict({{"Cache-Control", "private=\"a, no-store\", max-age=60"}}, 200, true);
  EXPECT_TRUE(v.storable);
  EXPECT_EQ(v.fresh_until, kNow + 60);
}

TEST(CacheFreshnessTest, ExpiresMinusDate) {
  EXPECT_EQ(verdict({{"Date", kDate}, {"Expires", "Sun, 06 Nov 1994 09:49:37 GMT"}}).fresh_until,
            kNow + 3600);
  // Sent 100 s before it arrived: an hour of lifetime, 100 s of it spent.
  EXPECT_EQ(verdict({{"Date", "Sun, 06 Nov 1994 08:47:57 GMT"},
                     {"Expires", "Sun, 06 Nov 1994 09:47:57 GMT"}})
                .fresh_until,
            kNow + 3500);
}

TEST(CacheFreshnessTest, ExpiresWithoutValidDateUsesResponseTime) {
  EXPECT_EQ(verdict({{"Expires", "Sun, 06 Nov 1994 09:49:37 GMT"}}).fresh_until, kNow + 3600);
  EXPECT_EQ(
      verdict({{"Date", "yesterday"}, {"Expires", "Sun, 06 Nov 1994 09:49:37 GMT"}}).fresh_until,
      kNow + 3600);
}

TEST(CacheFreshnessTest, InvalidOrPastExpiresIsStale) {
  for (const char* e : {"0", "-1", "never", "Sun, 06 Nov 1994 07:26:17 GMT"}) {
    const CacheVerdict v = verdict(
        {{"Date", kDate}, {"Expires", e}, {"Last-Modified", "Fri, 07 Oct 1994 08:49:37 GMT"}});
    EXPECT_EQ(v.fresh_until, kNow) << e;
    EXPECT_TRUE(v.storable) << e;
  }
}

TEST(CacheFreshnessTest, HeuristicIsTenPercentOfAge) {
  EXPECT_EQ(
      verdict({{"Date", kDate}, {"Last-Modified", "Sun, 06 Nov 1994 07:26:17 GMT"}}).fresh_until,
      kNow + 500);
  // No Date: from the response time.
  EXPECT_EQ(verdict({{"Last-Modified", "Sun, 06 Nov 1994 07:26:17 GMT"}}).fresh_until, kNow + 500);
}

TEST(CacheFreshnessTest, HeuristicIsCappedAtOneDay) {
  // Modified 30 days before: 10 % is three days, capped to one.
  EXPECT_EQ(
      verdict({{"Date", kDate}, {"Last-Modified", "Fri, 07 Oct 1994 08:49:37 GMT"}}).fresh_until,
      kNow + 86400);
}

TEST(CacheFreshnessTest, HeuristicIsNeverNegative) {
  EXPECT_EQ(
      verdict({{"Date", kDate}, {"Last-Modified", "Sun, 06 Nov 1994 08:51:17 GMT"}}).fresh_until,
      kNow);
}

TEST(CacheFreshnessTest, NoLifetimeAndNoLastModifiedIsStale) {
  const CacheVerdict v = verdict({{"Date", kDate}});
  EXPECT_TRUE(v.storable);
  EXPECT_EQ(v.fresh_until, kNow);
  EXPECT_EQ(verdict({{"Date", kDate}, {"Last-Modified", "garbage"}}).fresh_until, kNow);
}

TEST(CacheFreshnessTest, NoCacheMustRevalidate) {
  for (const char* cc : {"no-cache, max-age=600", "max-age=600, No-Cache=\"Set-Cookie, Foo\""}) {
    const CacheVerdict v = verdict({{"Date", kDate}, {"Cache-Control", cc}});
    EXPECT_TRUE(v.storable) << cc;
    EXPECT_EQ(v.fresh_until, kNow) << cc;
  }
}

TEST(CacheFreshnessTest, ImmutableDoesNotChangeLifetime) {
  EXPECT_EQ(verdict({{"Cache-Control", "immutable, max-age=60"}}).fresh_until, kNow + 60);
}

TEST(CacheFreshnessTest, NoStoreIsNotStorable) {
  EXPECT_FALSE(verdict({{"Cache-Control", "no-store"}}).storable);
  EXPECT_FALSE(
      verdict({{"Cache-Control", "max-age=60"}, {"Cache-Control", "public, NO-STORE"}}).storable);
}

TEST(CacheFreshnessTest, CredentialsNeedExplicitPermission) {
  EXPECT_FALSE(verdict({{"Cache-Control", "max-age=60"}}, 200, true).storable);
  EXPECT_FALSE(verdict({}, 200, true).storable);
  for (const char* cc : {"public", "private", "must-revalidate", "s-maxage=10"})
    EXPECT_TRUE(verdict({{"Cache-Control", cc}}, 200, true).storable) << cc;
  EXPECT_FALSE(verdict({{"Cache-Control", "public, no-store"}}, 200, true).storable);
  EXPECT_TRUE(verdict({{"Cache-Control", "max-age=60"}}, 200, false).storable);
}

TEST(CacheFreshnessTest, OnlyStatus200And206AreStorable) {
  EXPECT_TRUE(verdict({}, 200).storable);
  EXPECT_TRUE(verdict({}, 206).storable);
  for (int status : {203, 204, 301, 304, 404, 500})
    EXPECT_FALSE(verdict({{"Cache-Control", "public, max-age=60"}}, status).storable) << status;
}

TEST(CacheFreshnessTest, Validators) {
  CacheVerdict v =
      verdict({{"ETag", "\"abc\""}, {"Last-Modified", "Fri, 07 Oct 1994 08:49:37 GMT"}});
  EXPECT_EQ(v.strong_etag, "\"abc\"");
  EXPECT_EQ(v.last_modified, "Fri, 07 Oct 1994 08:49:37 GMT");
  v = verdict({{"etag", "W/\"abc\""}});
  EXPECT_EQ(v.strong_etag, "");
  EXPECT_EQ(v.last_modified, "");
}

TEST(CacheFreshnessTest, AgeReducesFreshness) {
  const HttpHeaders base = {{"Date", kDate}, {"Cache-Control", "max-age=600"}};
  auto with = [&](HttpHeaders extra) {
    HttpHeaders h = base;
    h.insert(h.end(), extra.begin(), extra.end());
    return cache_verdict(h, 200, false, kNow).fresh_until;
  };
  EXPECT_EQ(with({{"Age", "100"}}), kNow + 500);
  EXPECT_EQ(with({{"Age", "1000"}}), kNow - 400);  // stale at once
  EXPECT_EQ(with({{"Age", "abc"}}), kNow + 600);   // ignored
  EXPECT_EQ(with({{"Age", "-5"}}), kNow + 600);
  // Sent 200 s before it arrived: that beats a smaller Age.
  EXPECT_EQ(cache_verdict({{"Date", "Sun, 06 Nov 1994 08:46:17 GMT"},
                           {"Cache-Control", "max-age=600"},
                           {"Age", "50"}},
                          200, false, kNow)
                .fresh_until,
            kNow + 400);
}

TEST(CacheFreshnessTest, CacheControlSplitAcrossFields) {
  const CacheVerdict v = verdict(
      {{"Date", kDate}, {"Cache-Control", "public"}, {"cache-control", "max-age=10"}}, 200, true);
  EXPECT_TRUE(v.storable);
  EXPECT_EQ(v.fresh_until, kNow + 10);
}

TEST(CacheFreshnessTest, ParsesTheThreeDateForms) {
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), kNow);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), kNow);
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), kNow);
  EXPECT_EQ(parse_http_date("Sun Nov 06 08:49:37 1994"), kNow);
  EXPECT_EQ(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
  EXPECT_EQ(parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"), 951782400);
  // A two-digit year not more than 50 years ahead stays in this century.
  EXPECT_EQ(parse_http_date("Tuesday, 01-Jan-30 00:00:00 GMT"), 1893456000);
}

TEST(CacheFreshnessTest, RejectsGarbageDates) {
  for (const char* s : {"",
                        "0",
                        "garbage",
                        "1994-11-06T08:49:37Z",
                        "Sun, 06 Nov 1994 08:49:37 UTC",
                        "Sun, 06 Nov 1994 08:49:37 gmt",
                        "Sun, 6 Nov 1994 08:49:37 GMT",
                        "Sun, 06 Nov 94 08:49:37 GMT",
                        "Sun, 06 Nov 1994 08:49:37 GMT extra",
                        "Xyz, 06 Nov 1994 08:49:37 GMT",
                        "Sun, 06 Foo 1994 08:49:37 GMT",
                        "Sun, 31 Feb 1994 08:49:37 GMT",
                        "Sun, 29 Feb 1900 08:49:37 GMT",
                        "Sun, 00 Nov 1994 08:49:37 GMT",
                        "Sun, 06 Nov 1994 24:00:00 GMT",
                        "Sun, 06 Nov 1994 08:60:00 GMT",
                        "Sun, 06 Nov +994 08:49:37 GMT",
                        "Sun, 06 Nov 1994 08-49-37 GMT",
                        "Sun, 06-Nov-94 08:49:37 GMT",
                        "Sunday, 06-Nov-94 08:49:37 UTC",
                        "Sunday, 06-Nov-9x 08:49:37 GMT",
                        "Sunday, 31-Feb-94 08:49:37 GMT",
                        "Sunday, 06-Nov-1994 08:49:37 GMT",
                        "Sunday, 06 Nov 1994 08:49:37 GMT",
                        "Sun Nov  6 08:49:37 94",
                        "Sun Nov   6 08:49:37 1994"})
    EXPECT_EQ(parse_http_date(s), std::nullopt) << s;
}

}  // namespace
}  // namespace prefetch
