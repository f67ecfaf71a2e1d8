// Nothing hangs: a trickling origin fails as too slow, a live stream slower
// than a file is not a stall, and a network that drops and comes back is
// found again within a probe's second, not after a whole timeout.
//
// The outages are played by an OutageProxy in front of the TestServer. The
// times are those of docs/reliability.md scaled down (timeout 2-5 s,
// outages of 7-10 s); the full-size figures come from the benchmark. Bounds
// are the rules a user sees (resumed within 2 s of the network's return; an
// error before an outage longer than the element's patience ends), each
// with the margin of a probe's period or more.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include "http_fixture.h"
#include "outage_proxy.h"

namespace prefetch {
namespace {

using testing::OutageProxy;

class StallTest : public HttpTest {
 protected:
  static Config stall_config(unsigned retries) {
    Config c = config(256 * kKiB, 4);
    c.retry.retries = static_cast<int>(retries);
    return c;
  }
  // 32 MiB of pattern `seed` at /o, sent at 4 MiB/s.
  std::vector<uint8_t> serve_at_4mib_per_s(uint32_t seed) {
    Behavior b;
    b.rate_bytes_per_sec = 4 * kMiB;
    return serve("/o", 32 * kMiB, seed, b);
  }
  // Options for /o through `proxy`, with `timeout_seconds`.
  HttpOptions through(const OutageProxy& proxy, unsigned timeout_seconds) {
    HttpOptions o = options("/o");
    o.uri = "http://127.0.0.1:" + std::to_string(proxy.port()) + "/o";
    o.timeout_seconds = timeout_seconds;
    return o;
  }
};

// 1 byte a second, each answer closed after 30 s: every attempt stalls
// after `timeout` with a few bytes, and after `retries` of them the
// transfer fails as too slow, where resetting the retries on those bytes
// once kept it waiting forever.
TEST_F(StallTest, ATricklingOriginFailsAsTooSlow) {
  Behavior b = cutting(1, 30);
  b.rate_bytes_per_sec = 1;
  b.chunk_bytes = 1;
  const auto data = serve("/t", 64 * kKiB, 3, b);
  HttpOptions o = options("/t");
  o.timeout_seconds = 1;
  const auto start = TestClock::now();
  Fetched f = fetch(o, stall_config(1), 64 * kKiB, ReadMode::kAvailable, seconds(60));
  ASSERT_EQ(f.status, ReadStatus::kError);
  EXPECT_EQ(f.error.kind, ErrorKind::kRead) << f.error.message;
  EXPECT_TRUE(f.error.stalled) << f.error.message;
  EXPECT_EQ(f.stats.stalls, 2u);  // the first attempt and its one retry
  EXPECT_EQ(f.stats.retries, 1u);
  // Its silences between bytes may draw probes; none passes (4 KiB do not
  // come in time), so no request is cancelled as stalled and asked again:
  // the origin saw the two attempts, the probes and the start's twins (if
  // its first byte was raced), nothing else.
  EXPECT_EQ(server_.requests("/t").size(), 2u + f.stats.probes_sent + f.stats.races_sent);
  EXPECT_LE(f.bytes.size(), 4u);
  EXPECT_EQ(f.bytes, slice(data, 0, f.bytes.size()));
  // Two attempts of 1 s each; the 30 s answer is what it must not wait for.
  EXPECT_LT(TestClock::now() - start, seconds(30));
  std::printf("[ info ] %s\n", f.error.message.c_str());
}

// A 16 kbit/s live stream (2000 B/s, in 250 B pieces, no ranges: Icecast)
// read for 8 s with a 2 s timeout: slow, not stalled.
TEST_F(StallTest, ALiveStreamAt16KbitIsNotAStall) {
  Behavior b;
  b.rate_bytes_per_sec = 2000;
  b.chunk_bytes = 250;
  b.ignore_range = true;
  const auto data = serve("/live", 40000, 4, b);
  HttpOptions o = options("/live");
  o.timeout_seconds = 2;
  Guarded p = guarded(o, stall_config(3), seconds(60));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  Fetched f = read_until_end(*p, 0, 4096, ReadMode::kAvailable, 16000);
  const Stats st = p->stats();
  EXPECT_TRUE(p.close_in_time());
  ASSERT_EQ(f.status, ReadStatus::kOk) << f.error.message;
  ASSERT_GE(f.bytes.size(), 16000u);
  EXPECT_EQ(f.bytes, slice(data, 0, f.bytes.size()));
  EXPECT_EQ(st.stalls, 0u);
  EXPECT_EQ(st.retries, 0u);
  EXPECT_EQ(server_.requests("/live").size(), 1u + st.races_sent);  // no request but the start's
}

// Reads `p` to the end from 0, recording the longest wait for a read.
struct Timed {
  Fetched f;
  std::chrono::milliseconds longest{0};
  TestClock::time_point longest_end{};  // when that wait ended
};
Timed read_timed(Prefetcher& p) {
  Timed t;
  uint64_t at = 0;
  for (;;) {
    const auto before = TestClock::now();
    ReadResult r = p.read(at, 64 * kKiB, ReadMode::kAvailable);
    const auto now = TestClock::now();
    const auto waited = std::chrono::duration_cast<milliseconds>(now - before);
    if (waited > t.longest) {
      t.longest = waited;
      t.longest_end = now;
    }
    t.f.status = r.status;
    if (r.status != ReadStatus::kOk) {
      t.f.error = r.error;
      return t;
    }
    t.f.bytes.insert(t.f.bytes.end(), r.chunk.data, r.chunk.data + r.chunk.size);
    at += r.chunk.size;
  }
}

// The network drops (nothing passes, no FIN, no RST; connections opened
// meanwhile hang; those open during it stay dead) 1 s into a 4 MiB/s
// transfer and comes back 7 s later. With a 5 s timeout each stalled
// request would wait it out and retry on a connection opened in the gap
// (dead too): the reader would resume about 3.4 s after the return. The
// probes find the origin again within a second of it: bytes exact, the
// reader's longest wait at most the outage plus 2 s.
TEST_F(StallTest, ANetworkThatComesBackIsFoundWithinTwoSeconds) {
  const auto data = serve_at_4mib_per_s(5);
  OutageProxy proxy(server_.port());
  Guarded p = guarded(through(proxy, 5), config(kMiB, 4), seconds(120));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  const milliseconds outage(7000);
  TestClock::time_point back;
  std::thread network([&] {
    // 1 s of transfer first: by then the connections carry bodies.
    std::this_thread::sleep_for(seconds(1));
    proxy.set_down(true);
    std::this_thread::sleep_for(outage);
    back = TestClock::now();
    proxy.set_down(false);
  });
  Timed t = read_timed(*p);
  network.join();
  const Stats st = p->stats();
  EXPECT_TRUE(p.close_in_time()) << "hang guard fired";
  expect_exact(t.f, data);
  EXPECT_GE(st.probes_sent, 1u);
  const auto resumed = std::chrono::duration_cast<milliseconds>(t.longest_end - back).count();
  EXPECT_LE(t.longest.count(), (outage + seconds(2)).count())
      << "resumed " << resumed << " ms after the network came back";
  std::printf(
      "[ info ] outage %lld ms: the reader's longest wait %lld ms, resumed %lld ms after "
      "the return, %llu probes\n",
      static_cast<long long>(outage.count()), static_cast<long long>(t.longest.count()),
      static_cast<long long>(resumed), static_cast<unsigned long long>(st.probes_sent));
}

// An outage longer than the element's patience ((retries + 1) x timeout:
// 2 x 2 s here) still ends in the error, before the network returns (12 s
// later), with every byte before it right.
TEST_F(StallTest, AnOutageLongerThanThePatienceEndsInAnError) {
  const auto data = serve_at_4mib_per_s(6);
  OutageProxy proxy(server_.port());
  Guarded p = guarded(through(proxy, 2), stall_config(1), seconds(120));
  ASSERT_EQ(p->open(0).status, ReadStatus::kOk);
  std::mutex mu;
  std::condition_variable cv;
  bool read_done = false;
  bool network_back = false;
  std::thread network([&] {
    std::this_thread::sleep_for(seconds(1));
    proxy.set_down(true);
    std::unique_lock<std::mutex> lock(mu);
    // Three times the patience, or until the reader ends.
    cv.wait_for(lock, seconds(12), [&] { return read_done; });
    network_back = true;
    proxy.set_down(false);
  });
  Timed t = read_timed(*p);
  bool ended_in_outage;
  {
    std::lock_guard<std::mutex> lock(mu);
    ended_in_outage = !network_back;
    read_done = true;
  }
  cv.notify_all();
  network.join();
  const Stats st = p->stats();
  EXPECT_TRUE(p.close_in_time()) << "hang guard fired";
  ASSERT_EQ(t.f.status, ReadStatus::kError);
  EXPECT_EQ(t.f.error.kind, ErrorKind::kRead) << t.f.error.message;
  EXPECT_TRUE(ended_in_outage);
  EXPECT_LT(t.f.bytes.size(), data.size());
  EXPECT_EQ(t.f.bytes, slice(data, 0, t.f.bytes.size())) << "a byte before the error is wrong";
  // The first attempt stalls mid-body (the low-speed limit); its retry, on
  // a connection opened in the outage, may time out waiting for its head
  // (libsoup's timeout) instead: which of the two ends it depends on speed.
  EXPECT_GE(st.stalls, 1u);
  EXPECT_GE(st.retries, 1u);
  std::printf("[ info ] %zu bytes, then: %s\n", t.f.bytes.size(), t.f.error.message.c_str());
}

}  // namespace
}  // namespace prefetch
