#include "prefetch/retry_policy.h"

#include <gtest/gtest.h>

namespace prefetch {
namespace {

using std::chrono::milliseconds;

RetryPolicy policy_of(int retries) {
  RetryPolicy p;
  p.retries = retries;
  p.backoff_base = milliseconds(200);
  p.backoff_max = milliseconds(5000);
  return p;
}

Error Transient() { return make_error(ErrorKind::kRead, 503, "busy", true); }

TEST(RetryPolicyTest, TransientFailuresAreRetriedWhileAttemptsRemain) {
  const RetryPolicy p = policy_of(3);
  EXPECT_TRUE(decide_retry(p, Transient(), 1, 0).retry);
  EXPECT_TRUE(decide_retry(p, Transient(), 3, 0).retry);
  EXPECT_FALSE(decide_retry(p, Transient(), 4, 0).retry);
}

TEST(RetryPolicyTest, NegativeRetriesMeansForever) {
  EXPECT_TRUE(decide_retry(policy_of(-1), Transient(), 1000, 0).retry);
}

TEST(RetryPolicyTest, ZeroRetriesNeverRetries) {
  EXPECT_FALSE(decide_retry(policy_of(0), Transient(), 1, 0).retry);
}

TEST(RetryPolicyTest, PermanentFailuresAreNotRetried) {
  EXPECT_FALSE(
      decide_retry(policy_of(3), make_error(ErrorKind::kNotFound, 404, "gone"), 1, 0).retry);
  EXPECT_FALSE(decide_retry(policy_of(3), make_error(ErrorKind::kSeek, 416, "range"), 1, 0).retry);
}

TEST(RetryPolicyTest, ACancelWeDidNotAskForIsRetried) {
  EXPECT_TRUE(
      decide_retry(policy_of(3), make_error(ErrorKind::kCancelled, 0, "cancelled"), 1, 0).retry);
}

TEST(RetryPolicyTest, BackoffDoublesPerAttemptWithEqualJitter) {
  const RetryPolicy p = policy_of(10);
  // Ceiling 200, 400, 800 ms: the wait lies in [ceiling/2, ceiling].
  EXPECT_EQ(backoff(p, 1, milliseconds(-1), 0), milliseconds(100));
  EXPECT_EQ(backoff(p, 1, milliseconds(-1), 100), milliseconds(200));
  EXPECT_EQ(backoff(p, 2, milliseconds(-1), 0), milliseconds(200));
  EXPECT_EQ(backoff(p, 3, milliseconds(-1), 0), milliseconds(400));
  for (uint64_t draw = 0; draw < 1000; draw += 37) {
    const auto w = backoff(p, 3, milliseconds(-1), draw);
    EXPECT_GE(w, milliseconds(400));
    EXPECT_LE(w, milliseconds(800));
  }
}

TEST(RetryPolicyTest, BackoffIsCappedByTheMaximum) {
  const RetryPolicy p = policy_of(100);
  EXPECT_EQ(backoff(p, 30, milliseconds(-1), 0), milliseconds(2500));
  EXPECT_EQ(backoff(p, 30, milliseconds(-1), 2500), milliseconds(5000));
}

TEST(RetryPolicyTest, RetryAfterIsAFloorButNeverOverAMinute) {
  const RetryPolicy p = policy_of(3);
  EXPECT_EQ(backoff(p, 1, milliseconds(3000), 0), milliseconds(3000));
  EXPECT_EQ(backoff(p, 1, milliseconds(10), 0), milliseconds(100));
  EXPECT_EQ(backoff(p, 1, milliseconds(600000), 0), milliseconds(60000));
  Error e = Transient();
  e.retry_after = milliseconds(2000);
  EXPECT_EQ(decide_retry(p, e, 1, 0).wait, milliseconds(2000));
}

}  // namespace
}  // namespace prefetch
