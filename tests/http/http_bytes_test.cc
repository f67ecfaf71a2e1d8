// Exact bytes whatever the shape of the transfer: awkward sizes and block
// sizes, requests in flight up to the concurrency, later blocks answering
// first, and bodies longer or shorter than their headers say.
#include <gtest/gtest.h>

#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "http_fixture.h"

namespace prefetch {
namespace {

class HttpBytesTest : public HttpTest {};

// Sizes 0, 1, a block and one either side of it, and a large odd one, for
// three block sizes and both read modes.

std::string exact_bytes_name(
    const ::testing::TestParamInfo<std::tuple<uint64_t, int, ReadMode>>& info) {
  static const char* const kNames[] = {"0", "1", "BlockMinus1", "Block", "BlockPlus1", "5000003"};
  return "Block" + std::to_string(std::get<0>(info.param) / kKiB) + "KiB_Size" +
         kNames[std::get<1>(info.param)] +
         (std::get<2>(info.param) == ReadMode::kExact ? "_Exact" : "_Available");
}

class ExactBytesTest : public HttpTest,
                       public ::testing::WithParamInterface<std::tuple<uint64_t, int, ReadMode>> {};

TEST_P(ExactBytesTest, Sha256Equal) {
  const uint64_t block = std::get<0>(GetParam());
  const int which = std::get<1>(GetParam());
  const ReadMode mode = std::get<2>(GetParam());
  const uint64_t sizes[] = {0, 1, block - 1, block, block + 1, 5000003};
  const uint64_t size = sizes[which];
  auto data = serve("/f", size, static_cast<uint32_t>(block + size));

  const size_t read_length = mode == ReadMode::kExact ? 100003 : 64 * kKiB;
  Fetched f = fetch(options("/f"), config(block, 4), read_length, mode);
  expect_exact(f, data);
  EXPECT_TRUE(f.order_ok);
  EXPECT_EQ(f.bytes.size(), size);

  // Spans: every request asked for a range from a block boundary, no two
  // from the same one, none past the end (no 416: until the first answer
  // tells the size there is one request; an empty file answers it 416), and
  // no more requests than blocks. A file of one block or less costs one
  // request. The start's first byte may be raced: its twins ask from 0 too
  // and are counted apart.
  const uint64_t twins = f.stats.races_sent;
  uint64_t from_zero = 0;
  std::set<int64_t> firsts;
  const auto requests = server_.requests("/f");
  for (const auto& r : requests) {
    EXPECT_EQ(r.method, "GET");
    if (size > 0) {
      EXPECT_NE(r.status, 416) << "Range: " << r.range;  // 0 bytes: 416 says so
    }
    int64_t first = range_first(r);
    EXPECT_GE(first, 0) << "Range: " << r.range;
    if (size > 0 && first >= 0) {
      EXPECT_LT(static_cast<uint64_t>(first), size) << "Range: " << r.range;
      EXPECT_EQ(static_cast<uint64_t>(first) % block, 0u) << "Range: " << r.range;
      if (first == 0) ++from_zero;
      EXPECT_TRUE(firsts.insert(first).second || first == 0)
          << "asked twice from there: " << r.range;
    }
  }
  const uint64_t blocks = std::max<uint64_t>(1, (size + block - 1) / block);
  if (size > 0) {
    EXPECT_EQ(from_zero, 1 + twins) << "requests from 0 besides the start's twins";
  }
  EXPECT_LE(requests.size(), blocks + twins);
  if (size <= block) {
    EXPECT_EQ(requests.size(), 1u + twins);
  }
  std::printf("[ info ] %llu bytes, block %llu: %zu requests\n",
              static_cast<unsigned long long>(size), static_cast<unsigned long long>(block),
              requests.size());
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, ExactBytesTest,
    ::testing::Combine(::testing::Values(64 * kKiB, 256 * kKiB, 1 * kMiB), ::testing::Range(0, 6),
                       ::testing::Values(ReadMode::kAvailable, ReadMode::kExact)),
    exact_bytes_name);

// Concurrency: requests in flight reach `concurrency` and never exceed it.
class ConcurrencyTest : public HttpTest,
                        public ::testing::WithParamInterface<std::tuple<unsigned, Schedule>> {};

TEST_P(ConcurrencyTest, InFlightReachesAndNeverExceedsConcurrency) {
  const unsigned concurrency = std::get<0>(GetParam());
  const uint64_t block = 64 * kKiB;
  const uint64_t blocks = 3 * concurrency + 5;
  Behavior b;
  // Every block waits before its first byte, so requests overlap.
  b.first_byte_delay = testing::fixed_delay(milliseconds(120));
  auto data = serve("/f", blocks * block - 17, 11, b);

  Config c = block_config(block, concurrency);
  c.schedule = std::get<1>(GetParam());
  // Hedging off: a hedge takes the one spare slot beyond concurrency by
  // design, and a sanitizer's uneven first bytes made one (7 in flight at
  // concurrency 6, ASan with two busy loops beside it).
  c.hedge.enabled = false;
  Fetched f = fetch(options("/f", c.max_connections()), c);
  expect_exact(f, data);
  EXPECT_EQ(server_.max_in_flight(), concurrency);
  EXPECT_EQ(server_.request_count(), blocks) << "one request per block, no retries";
}

INSTANTIATE_TEST_SUITE_P(Concurrency, ConcurrencyTest,
                         ::testing::Combine(::testing::Values(1u, 2u, 4u, 6u),
                                            ::testing::Values(Schedule::kWindow, Schedule::kBatch,
                                                              Schedule::kBarrier)),
                         [](const auto& info) {
                           return "C" + std::to_string(std::get<0>(info.param)) + "_" +
                                  to_string(std::get<1>(info.param));
                         });

// Later blocks answer first: bytes still come exactly, in order.
TEST_F(HttpBytesTest, OutOfOrderCompletionGivesBytesInOrder) {
  const uint64_t block = 64 * kKiB;
  const unsigned n = 8;
  std::vector<milliseconds> delays = {milliseconds(0)};
  for (unsigned i = 1; i < n; ++i) delays.push_back(milliseconds(60 * (n - i)));
  Behavior b;
  b.first_byte_delay = testing::block_delay_schedule(block, delays);
  auto data = serve("/f", n * block, 5, b);

  Fetched f = fetch(options("/f"), block_config(block, n));
  expect_exact(f, data);
  EXPECT_TRUE(f.order_ok);

  // The test means something only if the server really finished a later
  // block before an earlier one.
  std::optional<TestClock::time_point> end1, end_last;
  for (const auto& r : server_.requests("/f")) {
    if (range_first(r) == static_cast<int64_t>(block)) end1 = r.end;
    if (range_first(r) == static_cast<int64_t>((n - 1) * block)) end_last = r.end;
  }
  ASSERT_TRUE(end1 && end_last);
  EXPECT_LT(*end_last, *end1);
}

// Bodies that lie about their length: never wrong bytes.
class BodyLengthTest : public HttpTest, public ::testing::WithParamInterface<int> {};

TEST_P(BodyLengthTest, NeverWrongBytes) {
  Behavior b;
  b.body_length_delta = GetParam();
  auto data = serve("/f", 400 * kKiB, 13, b);
  Fetched f = fetch(options("/f"), config(64 * kKiB, 2, /*retries=*/2), 64 * kKiB,
                    ReadMode::kAvailable, seconds(10));
  ASSERT_LE(f.bytes.size(), data.size());
  EXPECT_EQ(f.bytes, slice(data, 0, f.bytes.size())) << "delivered bytes differ from the file";
  if (f.status == ReadStatus::kError) {
    EXPECT_EQ(f.error.kind, ErrorKind::kRead);
  } else {
    EXPECT_EQ(f.status, ReadStatus::kEos);
    EXPECT_EQ(f.bytes.size(), data.size());
  }
}

INSTANTIATE_TEST_SUITE_P(Deltas, BodyLengthTest, ::testing::Values(-100, 100),
                         [](const auto& info) {
                           return std::string(info.param < 0 ? "Shorter" : "Longer");
                         });

}  // namespace
}  // namespace prefetch
