// Answers that are not the range asked: short answers, unknown totals,
// origins that ignore Range, changed validators, wrong Content-Range and
// bodies longer than their range. Never a wrong byte.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "engine_fixture.h"

namespace prefetch::testing {
namespace {

class EngineAnswerTest : public EngineTest {
 protected:
  // Opens at 0 with every answer but block 0's held; once block 0 is done
  // the origin's resource changes (other bytes, validator "v2"), and the
  // held answers go.
  void change_the_resource_after_block_0() {
    origin_->hold_all_heads();
    origin_->release(0);
    ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
    ASSERT_TRUE(wait_done(0));
    std::vector<uint8_t> changed = data();
    for (auto& b : changed) b ^= 0x5A;
    origin_->change_resource(changed, "\"v2\"");
  }
};

TEST_F(EngineAnswerTest, ShortAnswersWithAKnownTotalAreProgressNotRetries) {
  make(8 * kB + 11);
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.max_bytes = 300;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  expect_exact_to_eos();
  EXPECT_EQ(prefetcher_->stats().retries, 0u);
  // Each block takes four answers (300, 300, 300, 100 bytes), none failed
  // (a request may see our cancel after its last byte, when its block is
  // delivered before the origin reports the end).
  for (const auto& rec : origin_->requests())
    EXPECT_TRUE(!rec.error || *rec.error == ErrorKind::kCancelled) << "at " << rec.begin;
  EXPECT_EQ(origin_->request_count(), 8u * 4u + 1u);
}

class EngineUnknownTotalTest : public EngineAnswerTest,
                               public ::testing::WithParamInterface<uint64_t> {};

TEST_P(EngineUnknownTotalTest, ShortAnswersReadToTheEndExactly) {
  // Content-Range "a-b/*" with at most 300 bytes an answer, 416 without a
  // size past the end: only the 416 tells where the file ends.
  const uint64_t size = GetParam();
  make(size);
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.max_bytes = 300;
    r.unknown_total = true;
    return r;
  });
  Drained d = drain(0);
  ASSERT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  EXPECT_EQ(d.bytes.size(), size);
  EXPECT_TRUE(d.bytes == slice(0, size)) << "bytes differ";
  EXPECT_EQ(prefetcher_->size(), size);
  EXPECT_EQ(prefetcher_->stats().retries, 0u);
}

TEST_P(EngineUnknownTotalTest, WholeAnswersReadToTheEndExactly) {
  const uint64_t size = GetParam();
  make(size);
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.unknown_total = true;
    return r;
  });
  expect_exact_to_eos();
  EXPECT_EQ(prefetcher_->size(), size);
}

INSTANTIATE_TEST_SUITE_P(Sizes, EngineUnknownTotalTest,
                         ::testing::Values(1, 299, 300, 999, 1000, 5 * kB, 5 * kB + 7, 8 * kB + 1));

TEST_F(EngineAnswerTest, RangeIgnoredFallsBackToOneStreamBytesExact) {
  make(9 * kB + 7);
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.ignore_range = true;
    r.chunk = 333;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  EXPECT_EQ(prefetcher_->size(), 9 * kB + 7);
  EXPECT_FALSE(prefetcher_->seekable());
  expect_exact_to_eos();
}

// compress: a body in a content coding has no byte ranges, so the engine
// asks once for the whole resource (no Range) and reads it as one stream.
TEST_F(EngineAnswerTest, WholeAsksOnceWithoutARangeAndReadsOneStream) {
  Config config = small_config();
  config.whole = true;
  make(9 * kB + 7, config);
  std::mutex mu;
  std::vector<bool> whole;
  origin_->set_script([&](const RangeRequest& request, unsigned) {
    {
      std::lock_guard<std::mutex> lock(mu);
      whole.push_back(request.whole);
    }
    Reply r;
    r.ignore_range = true;  // what a server answers to a request without Range
    r.chunk = 333;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  EXPECT_FALSE(prefetcher_->seekable());
  EXPECT_EQ(prefetcher_->size(), 9 * kB + 7);  // an identity answer's Content-Length
  expect_exact_to_eos();
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(whole, std::vector<bool>{true}) << "one request, asked whole";
}

TEST_F(EngineAnswerTest, RangeIgnoredFromAnOffsetSkipsToIt) {
  make(9 * kB + 7);
  origin_->set_script([](const RangeRequest&, unsigned) {
    Reply r;
    r.ignore_range = true;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(5 * kB + 3).status, ReadStatus::kOk);
  expect_exact_to_eos(5 * kB + 3);
}

TEST_F(EngineAnswerTest, RangesHonouredMeansSeekable) {
  make(3 * kB);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  EXPECT_TRUE(prefetcher_->seekable());
}

TEST_F(EngineAnswerTest, ChangedValidatorIsResourceChanged) {
  make(8 * kB);
  change_the_resource_after_block_0();
  origin_->release_all();
  expect_error_after_exact_bytes(ErrorKind::kResourceChanged);
  // Requests started once the first response was in carry its validator.
  const FakeClock::time_point first_done = requests_at(0).at(0).ended;
  size_t later = 0;
  for (const RequestRecord& r : origin_->requests()) {
    if (r.started < first_done) continue;
    ++later;
    EXPECT_EQ(r.validator, "\"v1\"") << "request at " << r.begin << " sent no validator";
  }
  EXPECT_GT(later, 0u);
}

TEST_F(EngineAnswerTest, IfRangeFullBodyOfAChangedResourceIsResourceChanged) {
  // A real origin answers If-Range with a changed validator by a 200 with the
  // new body: that must not be taken for "ranges are ignored".
  make(8 * kB);
  std::atomic<bool> changed{false};
  origin_->set_script([&changed](const RangeRequest& req, unsigned) {
    Reply r;
    if (changed && !req.validator.empty()) r.ignore_range = true;
    return r;
  });
  change_the_resource_after_block_0();
  changed = true;
  origin_->release_all();
  expect_error_after_exact_bytes(ErrorKind::kResourceChanged);
}

TEST_F(EngineAnswerTest, WrongContentRangeIsNeverSpliced) {
  make(6 * kB);
  origin_->set_script([](const RangeRequest& req, unsigned) {
    Reply r;
    if (req.begin == 3 * kB) r.content_range = std::make_pair(req.begin + 1, req.begin + kB);
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  const Drained d = expect_error_after_exact_bytes(ErrorKind::kRead);
  EXPECT_LE(d.bytes.size(), 3 * kB);
}

TEST_F(EngineAnswerTest, BodyLongerThanItsRangeIsCut) {
  make(4 * kB);
  origin_->set_script([](const RangeRequest& req, unsigned) {
    Reply r;
    if (req.begin == kB) r.extra_bytes = 5000;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  expect_exact_to_eos();
  EXPECT_LT(requests_at(kB).at(0).body_bytes, kB + 5000) << "the overlong body was read to its end";
}

}  // namespace
}  // namespace prefetch::testing
