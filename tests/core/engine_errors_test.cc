// Statuses to error kinds, retries and their limits: what fails, what is
// retried to exact bytes, and that a failure ahead of the reader loses
// nothing before it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "engine_fixture.h"

namespace prefetch::testing {
namespace {

Reply reply_with(int status) {
  Reply r;
  r.status = status;
  return r;
}

class EngineErrorTest : public EngineTest {
 protected:
  // Every answer is `status`: open() fails with `kind`, carrying the status.
  void expect_open_to_fail(int status, ErrorKind kind) {
    make(4 * kB);
    origin_->set_script([status](const RangeRequest&, unsigned) { return reply_with(status); });
    const ReadResult o = prefetcher_->open(0);
    ASSERT_EQ(o.status, ReadStatus::kError);
    EXPECT_EQ(o.error.kind, kind);
    EXPECT_EQ(o.error.http_status, status);
  }
  // A file of four blocks, one retry, and every answer for block 2 cut
  // after `bytes` body bytes; opened at 0.
  void open_with_block_2_cut_after(uint64_t bytes) {
    Config c = small_config();
    c.retry.retries = 1;
    make(4 * kB, c);
    origin_->set_script([bytes](const RangeRequest& req, unsigned) {
      Reply r;
      if (req.begin >= 2 * kB && req.begin < 3 * kB) r.cut_after = bytes;
      return r;
    });
    ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  }
};

TEST_F(EngineErrorTest, NotFoundFailsOpenWithKNotFound) {
  expect_open_to_fail(404, ErrorKind::kNotFound);
  EXPECT_EQ(requests_at(0).size(), 1u) << "a 404 is not worth a retry";
  // Later reads report the same error.
  ReadResult r = prefetcher_->read(0, kB, ReadMode::kAvailable);
  EXPECT_EQ(r.status, ReadStatus::kError);
  EXPECT_EQ(r.error.kind, ErrorKind::kNotFound);
}

TEST_F(EngineErrorTest, ForbiddenFailsOpenWithKNotAuthorized) {
  expect_open_to_fail(403, ErrorKind::kNotAuthorized);
}

TEST_F(EngineErrorTest, NotFoundOnALaterBlockFailsTheRead) {
  make(8 * kB);
  origin_->set_script([](const RangeRequest& req, unsigned) {
    return req.begin == 5 * kB ? reply_with(404) : Reply{};
  });
  origin_->hold_head(5 * kB);  // the 404 comes after open()
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  origin_->release(5 * kB);
  const Drained d = expect_error_after_exact_bytes(ErrorKind::kNotFound);
  EXPECT_EQ(d.last.error.http_status, 404);
  ASSERT_LE(d.bytes.size(), 5 * kB);
}

TEST_F(EngineErrorTest, ServiceUnavailableIsRetriedToBytesExact) {
  make(6 * kB + 5);
  origin_->set_script([](const RangeRequest&, unsigned attempt) {
    return attempt == 0 ? reply_with(503) : Reply{};
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  expect_exact_to_eos();
  EXPECT_EQ(requests_at(0).size(), 2u);
  EXPECT_GE(prefetcher_->stats().retries, 7u);
}

TEST_F(EngineErrorTest, CutConnectionResumesWhereItStopped) {
  make(6 * kB + 5);
  origin_->set_script([](const RangeRequest&, unsigned attempt) {
    Reply r;
    if (attempt == 0) r.cut_after = 300;
    r.chunk = 100;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  Drained d = drain(0);
  EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  EXPECT_TRUE(d.bytes == data());
  // The retry of block 2 asks only for what is missing.
  std::vector<RequestRecord> resumed = requests_at(2 * kB + 300);
  ASSERT_EQ(resumed.size(), 1u) << "block 2 was not resumed from byte 300";
  EXPECT_EQ(resumed[0].end, 3 * kB);
  EXPECT_EQ(resumed[0].validator, "\"v1\"") << "a resumed request must carry the validator";
}

TEST_F(EngineErrorTest, RetryAfterIsHonoured) {
  make(2 * kB);
  origin_->set_script([](const RangeRequest& req, unsigned attempt) {
    Reply r;
    if (req.begin == kB && attempt == 0) {
      r.status = 503;
      r.retry_after = "1";
    }
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  expect_exact_to_eos();
  std::vector<RequestRecord> block1 = requests_at(kB);
  ASSERT_EQ(block1.size(), 2u);
  EXPECT_GE(block1[1].delay, milliseconds(1000));
}

TEST_F(EngineErrorTest, PersistentServiceUnavailableFailsAfterTheRetries) {
  Config c = small_config();
  c.retry.retries = 2;
  make(4 * kB, c);
  origin_->set_script([](const RangeRequest&, unsigned) { return reply_with(503); });
  ReadResult o = prefetcher_->open(0);
  ASSERT_EQ(o.status, ReadStatus::kError);
  EXPECT_EQ(o.error.http_status, 503);
  EXPECT_THAT(o.error.kind, ::testing::AnyOf(ErrorKind::kOpenRead, ErrorKind::kRead));
  EXPECT_EQ(requests_at(0).size(), 3u) << "1 attempt + 2 retries";
}

TEST_F(EngineErrorTest, CutsWithoutProgressFailTheReadAfterTheRetries) {
  open_with_block_2_cut_after(0);
  const Drained d = expect_error_after_exact_bytes(ErrorKind::kRead);
  ASSERT_LE(d.bytes.size(), 2 * kB);
  EXPECT_EQ(prefetcher_->stats().retries, 1u);
}

// A block ahead of the reader fails for good (404) before the reader gets
// near it: the bytes before it are right and all still come; the error
// comes with the read that reaches the failed block, not at once.
TEST_F(EngineErrorTest, AFailureAheadOfTheReaderLosesNoByteBeforeIt) {
  make(8 * kB);
  origin_->set_script([](const RangeRequest& req, unsigned) {
    Reply r;
    if (req.begin >= 6 * kB) r.status = 404;
    return r;
  });
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_TRUE(wait_done(6 * kB)) << "block 6 was never asked for";
  const Drained d = expect_error_after_exact_bytes(ErrorKind::kNotFound);
  EXPECT_EQ(d.bytes.size(), 6 * kB) << "bytes before the failed block were lost";
  EXPECT_TRUE(requests_at(7 * kB).empty() || requests_at(7 * kB).size() == 1u);
}

TEST_F(EngineErrorTest, CutsThatMakeProgressNeverUseUpTheRetries) {
  // Every answer for block 2 drops after 200 bytes: each attempt makes
  // progress, so the count of failures in a row never passes 1.
  open_with_block_2_cut_after(200);
  expect_exact_to_eos();
  EXPECT_EQ(prefetcher_->stats().retries, kB / 200 - 1);  // the last answer is whole
}

// --- short answers (RFC 9110: a 206 may carry a subset of the range) ---------

}  // namespace
}  // namespace prefetch::testing
