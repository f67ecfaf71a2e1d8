// The engine under the process's host budget (host_budget.h), against the
// FakeOrigin: Prefetchers of one host hold at most its limit of requests at
// once, a request queued for a slot and then cancelled leaks none, and
// close() does not wait for a slot. Each test uses a host of its own, so
// the process's budget is clean for it.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "engine_fixture.h"
#include "prefetch/host_budget.h"

namespace prefetch::testing {
namespace {

Config budget_config(const std::string& host, unsigned limit, unsigned concurrency = 4) {
  Config c = small_config(Schedule::kWindow, concurrency);
  c.host = host;
  c.max_host_connections = limit;
  return c;
}

// Everything from `offset` to the end.
std::vector<uint8_t> read_all(Prefetcher& p, uint64_t offset = 0) {
  const Drained d = read_to_end(p, offset);
  EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  return d.bytes;
}

// Replies that take a while, so the requests overlap.
Reply slow(const RangeRequest&, unsigned) {
  Reply r;
  r.first_byte_delay = milliseconds(3);
  r.chunk = 250;
  r.chunk_interval = std::chrono::microseconds(300);
  return r;
}

TEST(EngineHostBudgetTest, TwoPrefetchersOfOneHostHoldItsLimitTogether) {
  const std::string host = "http://two-prefetchers.test:80";
  auto origin = std::make_shared<FakeOrigin>(pattern_bytes(120 * kB + 17));
  origin->set_script(slow);
  Prefetcher a(origin, budget_config(host, 3));
  Prefetcher b(origin, budget_config(host, 0));  // the host's limit is still 3
  EXPECT_EQ(HostBudget::process().limit(host), 3u);
  std::vector<uint8_t> got_a, got_b;
  std::thread ta([&] { got_a = read_all(a); });
  std::thread tb([&] { got_b = read_all(b); });
  ta.join();
  tb.join();
  EXPECT_TRUE(got_a == origin->data()) << "a: bytes differ";
  EXPECT_TRUE(got_b == origin->data()) << "b: bytes differ";
  // One origin serves both: its count is the host's.
  EXPECT_LE(origin->max_in_flight(), 3u);
  EXPECT_GE(origin->max_in_flight(), 2u);
  a.close();
  b.close();
  EXPECT_EQ(HostBudget::process().in_use(host), 0u);
}

TEST(EngineHostBudgetTest, CancelledQueuedRequestsLeakNoSlot) {
  const std::string host = "http://cancelled-queued.test:80";
  auto origin = std::make_shared<FakeOrigin>(pattern_bytes(40 * kB));
  Prefetcher p(origin, budget_config(host, 1));
  // The first answer opens the other spans; its body holds the one slot.
  origin->hold_body(0, 10);
  p.begin(0);
  ASSERT_TRUE(origin->wait_held(0, kHang));
  EXPECT_EQ(origin->in_flight(), 1u);
  EXPECT_GT(p.stats().in_flight, 1u) << "no request queued for a slot";
  EXPECT_EQ(p.stats().host_connections, 1u);
  // A jump cancels the queued spans (and the held one); then read to the end.
  p.seek(30 * kB);
  origin->release(0);
  std::vector<uint8_t> got = read_all(p, 30 * kB);
  EXPECT_TRUE(got == std::vector<uint8_t>(origin->data().begin() + 30 * kB, origin->data().end()));
  EXPECT_LE(origin->max_in_flight(), 1u);
  // Every request ended: the slots granted to the asks of cancelled ones
  // went back too.
  ASSERT_TRUE(origin->wait_idle(kHang));
  for (int i = 0; i < 100 && HostBudget::process().in_use(host) != 0; ++i)
    std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(HostBudget::process().in_use(host), 0u);
  EXPECT_EQ(p.stats().host_connections, 0u);
  p.close();
  EXPECT_EQ(HostBudget::process().in_use(host), 0u);
}

TEST(EngineHostBudgetTest, CloseWithQueuedRequestsReturnsPromptly) {
  const std::string host = "http://close-queued.test:80";
  auto origin = std::make_shared<FakeOrigin>(pattern_bytes(40 * kB));
  auto p = std::make_unique<Prefetcher>(origin, budget_config(host, 1));
  origin->hold_body(0, 10);  // the first answer opens the others; it holds the slot
  p->begin(0);
  ASSERT_TRUE(origin->wait_held(0, kHang));
  EXPECT_GT(p->stats().in_flight, 1u) << "no request queued for a slot";
  auto closer = std::async(std::launch::async, [&] { p->close(); });
  ASSERT_EQ(closer.wait_for(milliseconds(500)), std::future_status::ready)
      << "close() hangs with queued requests";
  EXPECT_EQ(origin->request_count(), 1u) << "a queued request was sent after close()";
  EXPECT_EQ(HostBudget::process().in_use(host), 0u);
  p.reset();
  EXPECT_TRUE(origin->wait_all_done(kHang));
}

// A reader that waits gets a slot from a holder that does not: the holder's
// span farthest ahead yields, and both streams are exact.
TEST(EngineHostBudgetTest, AWaitingReaderTakesASlotFromOneFetchingAhead) {
  const std::string host = "http://yield.test:80";
  auto origin = std::make_shared<FakeOrigin>(pattern_bytes(60 * kB));
  origin->set_script(slow);
  Prefetcher a(origin, budget_config(host, 2));
  a.begin(0);
  ASSERT_TRUE(origin->wait_requests(2, kHang));  // a holds both slots, reading nothing
  Prefetcher b(origin, budget_config(host, 2));
  std::vector<uint8_t> got_b = read_all(b);  // b waits: a must give way
  EXPECT_TRUE(got_b == origin->data()) << "b: bytes differ";
  std::vector<uint8_t> got_a = read_all(a);
  EXPECT_TRUE(got_a == origin->data()) << "a: bytes differ";
  EXPECT_LE(origin->max_in_flight(), 2u);
}

// The request for the reader's block waits for a slot while the only one
// the element holds is its own span farther ahead (one that makes no
// progress: paused where the look-ahead ends, or stalled), and the host's
// other slot is another element's, held by its head (needed now, so it
// cannot yield). The budget asks other clients to yield, never the asker:
// the element ends its own span ahead instead, and its reader gets its
// bytes (it used to wait for itself for ever).
TEST(EngineHostBudgetTest, AReaderWaitingForASlotTakesItFromItsOwnSpanAhead) {
  const std::string host = "http://own-span-ahead.test:80";
  auto origin = std::make_shared<FakeOrigin>(pattern_bytes(20 * kB));
  // The first span is cut after 1500 bytes (in block 1): its rest is asked
  // for again.
  origin->set_script([](const RangeRequest& r, unsigned attempt) {
    Reply reply;
    reply.chunk = 500;
    if (r.begin == 0 && attempt == 0) reply.cut_after = 1500;
    return reply;
  });
  Config ca = budget_config(host, 2, 2);
  ca.max_request_bytes = 2 * kB;  // spans of two blocks
  ca.lookahead_blocks = 4;
  ca.hedge.enabled = false;
  Prefetcher a(origin, ca);
  origin->hold_body(0, 1500);
  origin->hold_body(2 * kB, 500);  // the span ahead stalls
  a.begin(0);
  ASSERT_TRUE(origin->wait_held(0, kHang));
  ASSERT_TRUE(origin->wait_held(2 * kB, kHang)) << "no span ahead";
  ASSERT_EQ(HostBudget::process().in_use(host), 2u);

  // Another element of the host asks for a slot (queued: the host is full)
  // and, once it has one, its answer is held.
  auto other_origin = std::make_shared<FakeOrigin>(pattern_bytes(20 * kB));
  other_origin->hold_head(0);
  Prefetcher b(other_origin, budget_config(host, 2, 2));
  b.begin(0);
  ASSERT_EQ(other_origin->request_count(), 0u);

  // a's reader takes block 0 and waits in block 1; the cut frees the first
  // span's slot, which goes to b's ask; a's retry of block 1 waits.
  auto reader = std::async(std::launch::async, [&] {
    std::vector<uint8_t> out;
    while (out.size() < 2 * kB) {
      ReadResult r = a.read(out.size(), 2 * kB - out.size(), ReadMode::kAvailable);
      if (r.status != ReadStatus::kOk) break;
      out.insert(out.end(), r.chunk.data, r.chunk.data + r.chunk.size);
    }
    return out;
  });
  origin->release(0);
  ASSERT_TRUE(other_origin->wait_held(0, kHang)) << "b never got the freed slot";
  const bool done = reader.wait_for(milliseconds(5000)) == std::future_status::ready;
  origin->release_all();  // a hang ends now, whatever happened
  other_origin->release_all();
  ASSERT_TRUE(done) << "a's reader waits for the slot its own span ahead holds";
  std::vector<uint8_t> got = reader.get();
  bool ahead_ended = false;
  for (const auto& r : origin->requests())
    if (r.begin == 2 * kB && r.attempt == 0) ahead_ended = r.cancel_called;
  EXPECT_TRUE(ahead_ended) << "the span ahead was not the one that gave way";
  std::vector<uint8_t> rest = read_all(a, got.size());
  got.insert(got.end(), rest.begin(), rest.end());
  EXPECT_TRUE(got == origin->data()) << "a: bytes differ";
  EXPECT_LE(origin->max_in_flight(), 2u);
  b.close();
  a.close();
  EXPECT_EQ(HostBudget::process().in_use(host), 0u);
}

}  // namespace
}  // namespace prefetch::testing
