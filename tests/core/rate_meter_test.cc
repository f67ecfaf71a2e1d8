#include "prefetch/rate_meter.h"

#include <gtest/gtest.h>

namespace prefetch {
namespace {

using std::chrono::milliseconds;

TEST(RateMeterTest, ReportsTheLastClosedWindowUntilTheOpenOneIsHalfASecond) {
  const RateMeter::Clock::time_point t0{};
  RateMeter m(t0);
  EXPECT_EQ(m.rate(t0 + milliseconds(100)), 0);
  m.add(1000, t0 + milliseconds(100));
  m.add(1000, t0 + milliseconds(400));
  // The open window (2000 bytes since t0) spans half a second at 500 ms.
  EXPECT_EQ(m.rate(t0 + milliseconds(499)), 0);
  EXPECT_DOUBLE_EQ(m.rate(t0 + milliseconds(500)), 4000);
  // Bytes at 1 s close it: 2000 bytes over 1 s.
  m.add(500, t0 + milliseconds(1000));
  EXPECT_DOUBLE_EQ(m.rate(t0 + milliseconds(1100)), 2000);
}

TEST(RateMeterTest, AStallShowsOnceTheOpenWindowIsLongEnough) {
  const RateMeter::Clock::time_point t0{};
  RateMeter m(t0);
  m.add(1000, t0);
  m.add(1000, t0 + milliseconds(600));  // closes a window of 1000 bytes / 0.6 s
  EXPECT_NEAR(m.rate(t0 + milliseconds(700)), 1000 / 0.6, 1e-6);
  // Nothing more arrives: the open window (1000 bytes since 0.6 s) decays.
  EXPECT_DOUBLE_EQ(m.rate(t0 + milliseconds(2600)), 500);
}

}  // namespace
}  // namespace prefetch
