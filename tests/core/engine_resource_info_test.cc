// Prefetcher::resource_info(): the head an application sees (the plugin's
// http-headers) is the first accepted answer's, and again the first from
// another URI (a new redirect target), each with a new serial; rejected
// answers and answers from the same URI change nothing.
#include <gtest/gtest.h>

#include <chrono>

#include "engine_fixture.h"

namespace prefetch::testing {
namespace {

class EngineResourceInfoTest : public EngineTest {};

Config one_at_a_time() {
  // One at a time: requests in block order, so the script's URIs come in
  // order; one block each (small_config): the script answers by block.
  Config c = small_config(Schedule::kWindow, 1);
  c.hedge.enabled = false;
  c.retry.backoff_base = milliseconds(1);
  c.retry.backoff_max = milliseconds(2);
  return c;
}

TEST_F(EngineResourceInfoTest, NothingBeforeTheFirstAnswer) {
  make(4 * kB, one_at_a_time());
  EXPECT_EQ(prefetcher_->resource_info().serial, 0u);
}

TEST_F(EngineResourceInfoTest, FirstAcceptedAnswerThenEachNewUri) {
  make(6 * kB, one_at_a_time());
  // Block 0: one 503 (rejected, retried), then from /a; blocks 1-2 from /a
  // too; blocks 3-5 from /b (a new redirect target).
  origin_->set_script([](const RangeRequest& rq, unsigned attempt) {
    Reply r;
    if (rq.begin == 0 && attempt == 0) {
      r.status = 503;
      r.uri = "http://origin/rejected";
      return r;
    }
    r.uri = rq.begin < 3 * kB ? "http://origin/a" : "http://origin/b";
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ResourceInfo first = prefetcher_->resource_info();
  EXPECT_EQ(first.serial, 1u);
  EXPECT_EQ(first.head.uri, "http://origin/a");
  EXPECT_EQ(first.head.status, 206);
  // Nothing new: only the serial comes back, no copy.
  ResourceInfo same = prefetcher_->resource_info(first.serial);
  EXPECT_EQ(same.serial, first.serial);
  EXPECT_EQ(same.head.uri, "");

  ASSERT_EQ(drain(0).last.status, ReadStatus::kEos);
  ResourceInfo last = prefetcher_->resource_info(first.serial);
  EXPECT_EQ(last.serial, 2u);
  EXPECT_EQ(last.head.uri, "http://origin/b");
  EXPECT_EQ(last.head.first, 3 * kB) << "the first answer from /b, not a later one";
}

TEST_F(EngineResourceInfoTest, StreamModeAnswerCounts) {
  make(3 * kB, one_at_a_time());
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.ignore_range = true;  // 200 with the whole body
    r.uri = "http://origin/whole";
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ResourceInfo info = prefetcher_->resource_info();
  EXPECT_EQ(info.serial, 1u);
  EXPECT_EQ(info.head.status, 200);
  EXPECT_EQ(info.head.uri, "http://origin/whole");
  EXPECT_EQ(drain(0).last.status, ReadStatus::kEos);
  EXPECT_EQ(prefetcher_->resource_info().serial, 1u);
}

}  // namespace
}  // namespace prefetch::testing
