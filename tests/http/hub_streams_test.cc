// Many streams over one hub against the in-process TestServer: 32 streams
// on one I/O thread, each exact; the host budget bounding what eight
// streams have in flight at the server.
//
// Timeouts are hang guards only; no assertion depends on a machine's speed.
#include "hub_test_util.h"
#include "request_overlap.h"

namespace prefetch {
namespace hubtest {
namespace {

TEST_F(HubTest, ThirtyTwoStreamsRunOnOneThread) {
  constexpr int kStreams = 32;
  const auto data = make_pattern(512 * kKiB + 3, 11);
  server_.add_file("/s", data);
  Behavior paced;
  paced.rate_bytes_per_sec = 1024 * kKiB;
  server_.set_behavior("/s", paced);
  const size_t threads_before = own_threads().size();
  std::vector<std::unique_ptr<Prefetcher>> streams;
  for (int i = 0; i < kStreams; ++i)
    streams.push_back(std::make_unique<Prefetcher>(
        std::make_shared<SoupOrigin>(options("/s"), Logger()), config(64 * kKiB, 2)));
  EXPECT_EQ(io_threads(), 1u);
  EXPECT_EQ(own_threads().size(), threads_before + 1) << describe(own_threads());
  std::vector<std::string> sha(kStreams);
  std::vector<double> rate(kStreams);
  std::vector<std::thread> readers;
  for (int i = 0; i < kStreams; ++i) {
    readers.emplace_back([&, i] {
      const auto start = std::chrono::steady_clock::now();
      sha[i] = read_all(*streams[i]);
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      rate[i] = data.size() / s;
    });
  }
  for (auto& r : readers) r.join();
  for (int i = 0; i < kStreams; ++i) EXPECT_EQ(sha[i], sha256_hex(data)) << "stream " << i;
  EXPECT_EQ(io_threads(), 1u);
  double mean = 0;
  for (double r : rate) mean += r / kStreams;
  const double slowest = *std::min_element(rate.begin(), rate.end());
  RecordProperty("max_in_flight", static_cast<int>(server_.max_in_flight()));
  RecordProperty("slowest_over_mean_percent", static_cast<int>(100 * slowest / mean));
  streams.clear();
  EXPECT_EQ(io_threads(), 0u);
  EXPECT_EQ(own_threads().size(), threads_before) << describe(own_threads());
}

// Eight streams from one host, each its own origin and engine with
// max_host_connections 4: the process-wide host budget keeps the server at 4
// requests at once whatever each engine's concurrency (3 each, 24 in all),
// and every stream is exact. (Cancelled requests linger at the server: see
// below.)
TEST_F(HubTest, HostBudgetBoundsTheConnectionsOfEightStreams) {
  constexpr int kStreams = 8;
  const auto data = make_pattern(256 * kKiB + 7, 12);
  server_.add_file("/b", data);
  Behavior paced;
  paced.first_byte_delay = testing::fixed_delay(milliseconds(5));
  paced.rate_bytes_per_sec = 2048 * kKiB;
  server_.set_behavior("/b", paced);
  Config c = config(16 * kKiB, 3);
  c.host = host_key(server_.url("/b"));
  c.max_host_connections = 4;
  std::vector<std::unique_ptr<Prefetcher>> streams;
  for (int i = 0; i < kStreams; ++i)
    streams.push_back(
        std::make_unique<Prefetcher>(std::make_shared<SoupOrigin>(options("/b"), Logger()), c));
  std::vector<std::string> sha(kStreams);
  std::vector<std::thread> readers;
  for (int i = 0; i < kStreams; ++i)
    readers.emplace_back([&, i] { sha[i] = read_all(*streams[i]); });
  for (auto& r : readers) r.join();
  for (int i = 0; i < kStreams; ++i) EXPECT_EQ(sha[i], sha256_hex(data)) << "stream " << i;
  // A request the client cancelled (a yield gives its connection to a
  // needier stream) ends at the client at once, but at the server only when
  // it next writes: the server's own count runs over by those for a moment.
  // The requests the client did not abandon are exact.
  ASSERT_TRUE(server_.wait_idle());
  const testing::RequestOverlap overlap = testing::request_overlap(server_.requests("/b"));
  EXPECT_LE(overlap.most, 4);
  EXPECT_LE(server_.max_in_flight(), 4u + overlap.abandoned);
  RecordProperty("max_in_flight", static_cast<int>(server_.max_in_flight()));
  RecordProperty("abandoned", static_cast<int>(overlap.abandoned));
  EXPECT_GE(server_.max_in_flight(), 2u);  // the streams did share the host
  streams.clear();
  EXPECT_EQ(HostBudget::process().in_use(c.host), 0u);
}

// Origins of one setting made and destroyed on several threads at once, each
// fetching: the hub is made, shared and ended without a race (run under
// ThreadSanitizer), and no thread stays behind.

}  // namespace
}  // namespace hubtest
}  // namespace prefetch
