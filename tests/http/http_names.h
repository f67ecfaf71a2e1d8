// The names the HTTP tests (http_fixture.h, hub_test_util.h) use
// unqualified: chrono units, the TestServer's types and byte sizes.
#pragma once

#include <chrono>
#include <cstdint>

#include "test_server.h"

namespace prefetch {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::Behavior;
using testing::make_pattern;
using testing::RequestRecord;
using testing::sha256_hex;
using testing::TestClock;
using testing::TestServer;

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * 1024;

}  // namespace prefetch
