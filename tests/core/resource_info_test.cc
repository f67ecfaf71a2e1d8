// Prefetcher::resource_info(): the head an application sees (the plugin's
// http-headers) is the first accepted answer's, and again the first from
// another URI (a new redirect target), each with a new serial; rejected
// answers and answers from the same URI change nothing.
#include <gtest/gtest.h>

#include <chrono>

#include "fake_origin.h"
#include "prefetch/prefetcher.h"

namespace prefetch {
namespace {

using testing::FakeOrigin;
using testing::PatternBytes;
using testing::Reply;

constexpr uint64_t kB = 1000;

Config OneAtATime() {
  Config c;
  c.block_size = kB;
  c.concurrency = 1;         // requests in block order: the script's URIs come in order
  c.max_request_bytes = kB;  // one block each: the script answers by block
  c.hedge.enabled = false;
  c.retry.backoff_base = std::chrono::milliseconds(1);
  c.retry.backoff_max = std::chrono::milliseconds(2);
  return c;
}

// Reads everything from 0; the last status.
ReadStatus DrainAll(Prefetcher& p) {
  uint64_t offset = 0;
  for (;;) {
    ReadResult r = p.read(offset, 4096, ReadMode::kAvailable);
    if (r.status != ReadStatus::kOk) return r.status;
    offset += r.chunk.size;
  }
}

TEST(ResourceInfoTest, NothingBeforeTheFirstAnswer) {
  auto origin = std::make_shared<FakeOrigin>(PatternBytes(4 * kB));
  Prefetcher p(origin, OneAtATime());
  EXPECT_EQ(p.resource_info().serial, 0u);
}

TEST(ResourceInfoTest, FirstAcceptedAnswerThenEachNewUri) {
  auto origin = std::make_shared<FakeOrigin>(PatternBytes(6 * kB));
  // Block 0: one 503 (rejected, retried), then from /a; blocks 1-2 from /a
  // too; blocks 3-5 from /b (a new redirect target).
  origin->set_script([](const RangeRequest& rq, unsigned attempt) {
    Reply r;
    if (rq.begin == 0 && attempt == 0) {
      r.status = 503;
      r.uri = "http://origin/rejected";
      return r;
    }
    r.uri = rq.begin < 3 * kB ? "http://origin/a" : "http://origin/b";
    return r;
  });
  Prefetcher p(origin, OneAtATime());
  ASSERT_EQ(p.open(0).status, ReadStatus::kOk);
  ResourceInfo first = p.resource_info();
  EXPECT_EQ(first.serial, 1u);
  EXPECT_EQ(first.head.uri, "http://origin/a");
  EXPECT_EQ(first.head.status, 206);
  // Nothing new: only the serial comes back, no copy.
  ResourceInfo same = p.resource_info(first.serial);
  EXPECT_EQ(same.serial, first.serial);
  EXPECT_EQ(same.head.uri, "");

  ASSERT_EQ(DrainAll(p), ReadStatus::kEos);
  ResourceInfo last = p.resource_info(first.serial);
  EXPECT_EQ(last.serial, 2u);
  EXPECT_EQ(last.head.uri, "http://origin/b");
  EXPECT_EQ(last.head.first, 3 * kB) << "the first answer from /b, not a later one";
}

TEST(ResourceInfoTest, StreamModeAnswerCounts) {
  auto origin = std::make_shared<FakeOrigin>(PatternBytes(3 * kB));
  origin->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.ignore_range = true;  // 200 with the whole body
    r.uri = "http://origin/whole";
    return r;
  });
  Prefetcher p(origin, OneAtATime());
  ASSERT_EQ(p.open(0).status, ReadStatus::kOk);
  ResourceInfo info = p.resource_info();
  EXPECT_EQ(info.serial, 1u);
  EXPECT_EQ(info.head.status, 200);
  EXPECT_EQ(info.head.uri, "http://origin/whole");
  EXPECT_EQ(DrainAll(p), ReadStatus::kEos);
  EXPECT_EQ(p.resource_info().serial, 1u);
}

}  // namespace
}  // namespace prefetch
