// Answers that end or pause before their end: cut connections, 206s
// carrying part of the range, an unknown total, stalls. Bytes stay exact.
#include <gtest/gtest.h>

#include "http_fixture.h"

namespace prefetch {
namespace {

class HttpCutsTest : public HttpTest {};

TEST_F(HttpCutsTest, CutConnectionsAreRetriedToExactBytes) {
  auto data = serve("/f", 1 * kMiB + 12345, 8, cutting(3, 10000, 4));
  expect_exact(fetch(options("/f"), block_config(64 * kKiB, 4, /*retries=*/5)), data);
  EXPECT_EQ(count_requests("/f", [](const RequestRecord& r) { return r.cut; }), 4u);
}

TEST_F(HttpCutsTest, CutRetryResumesFromBytesReceived) {
  Behavior b = cutting(1, 40000, 1);
  b.chunk_bytes = 4000;
  auto data = serve("/f", 256 * kKiB, 8, b);
  expect_exact(fetch(options("/f"), config(256 * kKiB, 1)), data);
  auto log = server_.requests("/f");
  ASSERT_EQ(log.size(), 2u);
  EXPECT_TRUE(log[0].cut);
  EXPECT_EQ(log[0].bytes_sent, 40000u);
  // The retry asks for what is missing, not the whole block again.
  EXPECT_EQ(range_first(log[1]), 40000);
}

TEST_F(HttpCutsTest, CutsWithoutProgressFailWithReadError) {
  serve("/f", 256 * kKiB, 8, cutting(1, 0));
  Fetched f = fetch(options("/f"), config(64 * kKiB, 2, /*retries=*/2), 64 * kKiB,
                    ReadMode::kAvailable, seconds(10));
  EXPECT_EQ(f.status, ReadStatus::kError);
  EXPECT_EQ(f.error.kind, ErrorKind::kRead);  // heads came, bodies never did
  EXPECT_TRUE(f.bytes.empty());
}

TEST_F(HttpCutsTest, CutsThatMakeProgressResetTheRetriesAndLoseNothing) {
  // Every answer drops after 10 kB: a link that fails now and then but
  // always makes progress. Each block takes 7 attempts with retries=2; the
  // count of failures in a row resets whenever bytes arrive.
  auto data = serve("/f", 256 * kKiB, 8, cutting(1, 10000));
  Fetched f = fetch(options("/f"), config(64 * kKiB, 2, /*retries=*/2), 64 * kKiB,
                    ReadMode::kAvailable, seconds(20));
  ASSERT_EQ(f.status, ReadStatus::kEos) << f.error.message;
  EXPECT_EQ(testing::sha256_hex(f.bytes), testing::sha256_hex(data));
}

// A 206 may carry a subset of the range asked (RFC 9110): 300,000 bytes an
// answer for 1 MiB blocks, as an origin did that lost prefetchsrc the rest
// of an 8 MiB file. A subset is progress: the rest is asked for at once.
TEST_F(HttpCutsTest, ShortAnswersWithAKnownTotalAreProgressNotRetries) {
  Behavior b;
  b.max_range_bytes = 300000;
  auto data = serve("/f", 8 * kMiB, 21, b);
  Fetched f = fetch(options("/f"), config(kMiB, 4));
  std::printf("[ info ] %zu bytes, sha256 %s, %zu requests, %llu retries\n", f.bytes.size(),
              testing::sha256_hex(f.bytes).c_str(), server_.requests("/f").size(),
              static_cast<unsigned long long>(f.stats.retries));
  expect_exact(f, data);
  EXPECT_EQ(f.stats.retries, 0u);
  for (const auto& r : server_.requests("/f")) EXPECT_EQ(r.status, 206) << r.range;
}

TEST_F(HttpCutsTest, ShortAnswersWithAnUnknownTotalReadToTheEnd) {
  // "Content-Range: bytes 0-299999/*": only a 416 past the end tells where
  // the file ends; a short answer is not the end.
  Behavior b;
  b.max_range_bytes = 300000;
  b.unknown_total = true;
  auto data = serve("/f", 8 * kMiB, 22, b);
  Fetched f = fetch(options("/f"), config(kMiB, 4));
  std::printf("[ info ] %zu bytes of %zu, size %llu, sha256 equal: %s, %llu retries\n",
              f.bytes.size(), data.size(), static_cast<unsigned long long>(f.size.value_or(0)),
              testing::sha256_hex(f.bytes) == testing::sha256_hex(data) ? "yes" : "no",
              static_cast<unsigned long long>(f.stats.retries));
  expect_exact(f, data);
  EXPECT_EQ(f.size, data.size());
  EXPECT_EQ(f.stats.retries, 0u);
}

TEST_F(HttpCutsTest, AnUnknownTotalEndsWhereA416Says) {
  Behavior b;
  b.unknown_total = true;
  auto data = serve("/f", 3 * kMiB + 5, 23, b);
  Fetched f = fetch(options("/f"), config(kMiB, 4));
  expect_exact(f, data);
  EXPECT_EQ(f.size, data.size());
}

TEST_F(HttpCutsTest, StallShorterThanTimeoutIsHarmless) {
  auto data = serve("/f", 300 * kKiB, 12, stalling(20000, milliseconds(400), 2));
  expect_exact(fetch(options("/f"), config(64 * kKiB, 4)), data);
}

TEST_F(HttpCutsTest, StallLongerThanTimeoutIsRetried) {
  auto data = serve("/f", 200 * kKiB, 12, stalling(20000, milliseconds(30000), 1));
  HttpOptions o = options("/f");
  o.timeout_seconds = 1;
  Fetched f = fetch(o, config(64 * kKiB, 2), 64 * kKiB, ReadMode::kAvailable, seconds(15));
  expect_exact(f, data);
}

}  // namespace
}  // namespace prefetch
