// State changes in the middle of a transfer: NULL -> PLAYING -> NULL on a
// slow origin, repeatedly; stopping while create() waits on a stalled block;
// restarting the same element. None of it may hang or leave requests running.
// Then the standby engine (made by the scheduling query, or kept across a
// pad-mode switch): it never outlives the element's state, never blocks a
// state change, and is dropped when no start() adopts it.
#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "element_test_util.h"
#include "proc_net_tcp.h"
#include "test_server.h"

namespace prefetch {
namespace element_test {
namespace {

class LifecycleTest : public ElementTest {
 protected:
  GstElement* make_src(const std::string& path) {
    GstElement* src = make_prefetchsrc(server_.url(path));
    if (src) g_object_set(src, "block-size", kBlock, "concurrency", 4u, nullptr);
    return src;
  }

  TestServer server_;
};

TEST_F(LifecycleTest, PlayingToNullMidTransferRepeatedly) {
  server_.add_file("/slow.bin", pattern(64 * kBlock));
  Behavior b = first_byte_behavior(prefetch::testing::fixed_delay(150ms));
  b.rate_bytes_per_sec = 512 * 1024;
  b.chunk_bytes = 4096;
  server_.set_behavior("/slow.bin", b);

  // Stop at different moments: right away, while the first requests wait
  // for their first byte, and while bytes are streaming.
  const std::vector<std::chrono::milliseconds> waits = {0ms, 50ms, 200ms, 400ms, 700ms, 0ms};
  for (size_t i = 0; i < waits.size(); ++i) {
    SCOPED_TRACE("round " + std::to_string(i) + ", stop after " + std::to_string(waits[i].count()) +
                 " ms");
    GstElement* src = make_src("/slow.bin");
    ASSERT_NE(src, nullptr);
    SeekPipeline p = make_seek_pipeline(src, 4);
    // Keep messages through READY -> NULL, which flushes the bus by default:
    // otherwise the check below could never see an error.
    gst_pipeline_set_auto_flush_bus(GST_PIPELINE(p.pipeline.get()), FALSE);
    ASSERT_NE(gst_element_set_state(p.pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    std::this_thread::sleep_for(waits[i]);
    auto start = Clock::now();
    EXPECT_EQ(gst_element_set_state(p.pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
    EXPECT_LT(since(start).count(), 3000) << "PLAYING -> NULL took too long";
    // No error on the bus from a plain stop.
    GstPtr<GstBus> bus(gst_element_get_bus(p.pipeline.get()));
    MessagePtr error(gst_bus_pop_filtered(bus.get(), GST_MESSAGE_ERROR));
    EXPECT_EQ(error, nullptr) << describe(error_of(error.get()).get());
  }
  // stop() cancelled what it started: the origin sees no request left.
  EXPECT_TRUE(server_.wait_idle(5s))
      << server_.in_flight() << " responses still in flight 5 s after the last stop";
}

TEST_F(LifecycleTest, StopWhileWaitingForAStalledBlock) {
  // Block 0 takes 6 s to start (less than the default 15 s timeout). The
  // state change to PLAYING must not wait for the origin (the application
  // thread is not the place to wait on the network), and a stop while the
  // first block is pending must return promptly.
  server_.add_file("/stalled.bin", pattern(8 * kBlock));
  Behavior b;
  b.first_byte_delay = prefetch::testing::fixed_delay(6s);
  server_.set_behavior("/stalled.bin", b);
  GstElement* src = make_src("/stalled.bin");
  ASSERT_NE(src, nullptr);
  SeekPipeline p = make_seek_pipeline(src, 4);
  auto start = Clock::now();
  ASSERT_NE(gst_element_set_state(p.pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  EXPECT_LT(since(start).count(), 2000) << "set_state(PLAYING) blocked on the origin's first byte";
  ASSERT_TRUE(server_.wait_for_requests(1, 5s)) << "the element sent no request";
  std::this_thread::sleep_for(200ms);
  auto stop = Clock::now();
  EXPECT_EQ(gst_element_set_state(p.pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  EXPECT_LT(since(stop).count(), 3000) << "stop did not wake the waiting create()";
}

TEST_F(LifecycleTest, FlushingSeekWhileWaitingForAStalledBlock) {
  // The block at the read position does not arrive for 10 s; a flushing seek
  // elsewhere must unblock create() and deliver the new position promptly.
  const uint64_t size = 16 * kBlock;
  const std::vector<uint8_t>& data = pattern(size);
  server_.add_file("/s.bin", data);
  Behavior b;
  b.first_byte_delay = prefetch::testing::block_delay_schedule(kBlock, {0ms, 10000ms}, 0ms);
  server_.set_behavior("/s.bin", b);
  GstElement* src = make_src("/s.bin");
  ASSERT_NE(src, nullptr);
  // One block per request: block 1's own request is the one that stalls.
  g_object_set(src, "max-request-size", static_cast<guint64>(kBlock), nullptr);
  SeekPipeline p = make_seek_pipeline(src, 2);
  ASSERT_EQ(set_state_and_wait(p.pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
  ASSERT_TRUE(server_.wait_for_requests(2, 5s));
  // Drain block 0 so that create() blocks on block 1.
  uint64_t got = 0;
  while (got < kBlock) {
    SamplePtr sample(gst_app_sink_try_pull_sample(GST_APP_SINK(p.sink), 5 * GST_SECOND));
    ASSERT_NE(sample, nullptr) << "block 0 did not arrive";
    got += gst_buffer_get_size(gst_sample_get_buffer(sample.get()));
  }
  const uint64_t offset = 9 * kBlock + 5;
  auto start = Clock::now();
  ASSERT_TRUE(gst_element_seek_simple(p.pipeline.get(), GST_FORMAT_BYTES, GST_SEEK_FLAG_FLUSH,
                                      static_cast<gint64>(offset)));
  SamplePtr sample(gst_app_sink_try_pull_sample(GST_APP_SINK(p.sink), 5 * GST_SECOND));
  ASSERT_NE(sample, nullptr) << "no buffer after seeking away from the stalled block";
  EXPECT_LT(since(start).count(), 3000);
  GstBuffer* buffer = gst_sample_get_buffer(sample.get());
  EXPECT_EQ(GST_BUFFER_OFFSET(buffer), offset);
  GstMapInfo map;
  ASSERT_TRUE(gst_buffer_map(buffer, &map, GST_MAP_READ));
  ASSERT_GT(map.size, 0u);
  EXPECT_EQ(0, memcmp(map.data, data.data() + offset, std::min<size_t>(map.size, 4096)));
  gst_buffer_unmap(buffer, &map);
  auto stop = Clock::now();
  EXPECT_EQ(gst_element_set_state(p.pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  EXPECT_LT(since(stop).count(), 3000);
}

TEST_F(LifecycleTest, SameElementRestartsAfterStop) {
  const uint64_t size = 12 * kBlock + 7;
  const std::vector<uint8_t>& data = pattern(size);
  server_.add_file("/r.bin", data);
  Behavior b;
  b.rate_bytes_per_sec = 1024 * 1024;
  server_.set_behavior("/r.bin", b);
  GstElement* src = make_src("/r.bin");
  ASSERT_NE(src, nullptr);
  SeekPipeline p = make_seek_pipeline(src, 4);
  // First run: stop mid-transfer.
  ASSERT_NE(gst_element_set_state(p.pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  SamplePtr first(gst_app_sink_try_pull_sample(GST_APP_SINK(p.sink), 10 * GST_SECOND));
  ASSERT_NE(first, nullptr);
  ASSERT_EQ(gst_element_set_state(p.pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  server_.clear_behavior("/r.bin");
  // Second run from scratch: all bytes from offset 0.
  ASSERT_NE(gst_element_set_state(p.pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GChecksum* checksum = g_checksum_new(G_CHECKSUM_SHA256);
  uint64_t bytes = 0;
  bool offsets_ok = true;
  while (SamplePtr sample{gst_app_sink_try_pull_sample(GST_APP_SINK(p.sink), 10 * GST_SECOND)}) {
    GstBuffer* buffer = gst_sample_get_buffer(sample.get());
    if (GST_BUFFER_OFFSET(buffer) != bytes) offsets_ok = false;
    GstMapInfo map;
    ASSERT_TRUE(gst_buffer_map(buffer, &map, GST_MAP_READ));
    g_checksum_update(checksum, map.data, static_cast<gssize>(map.size));
    bytes += map.size;
    gst_buffer_unmap(buffer, &map);
  }
  EXPECT_TRUE(gst_app_sink_is_eos(GST_APP_SINK(p.sink)));
  EXPECT_TRUE(offsets_ok);
  EXPECT_EQ(bytes, size);
  EXPECT_EQ(std::string(g_checksum_get_string(checksum)), sha256_hex(data));
  g_checksum_free(checksum);
  EXPECT_EQ(gst_element_set_state(p.pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
}

// --- the standby engine ------------------------------------------------------

// Entries of a /proc directory (threads in /proc/self/task, descriptors in
// /proc/self/fd; the directory's own descriptor counts the same every time).
size_t count_entries(const char* path) {
  GDir* dir = g_dir_open(path, 0, nullptr);
  if (!dir) return 0;
  size_t n = 0;
  while (g_dir_read_name(dir)) ++n;
  g_dir_close(dir);
  return n;
}

// This process's TCP sockets on 127.0.0.1:`port`: the client ends (remote
// port `port`) and the test server's own ends (local port `port`). The
// server runs in this process, and a response it holds back for a first-byte
// delay does not notice that the client left until the delay is over, so its
// end of a connection stays open that long: the client's ends are what say
// whether the element closed its connections.
struct PortSockets {
  size_t client = 0;
  size_t server = 0;
};
PortSockets sockets_on_port(uint16_t port) {
  std::map<std::string, std::pair<unsigned, unsigned>> ports_of_inode;  // local, remote
  for (const auto& e : prefetch::testing::proc_net_tcp())
    ports_of_inode[e.inode] = {e.local_port, e.remote_port};
  PortSockets out;
  for (const auto& inode : prefetch::testing::own_socket_inodes()) {
    auto it = ports_of_inode.find(inode);
    if (it == ports_of_inode.end()) continue;
    if (it->second.second == port) ++out.client;
    if (it->second.first == port) ++out.server;
  }
  return out;
}

// Threads and descriptors of the process, the test server's ends of its
// connections left out (see sockets_on_port).
struct ProcessResources {
  explicit ProcessResources(uint16_t server_port) {
    const PortSockets sockets = sockets_on_port(server_port);
    threads = count_entries("/proc/self/task");
    fds = count_entries("/proc/self/fd") - sockets.server;
    client_sockets = sockets.client;
  }
  size_t threads = 0;
  size_t fds = 0;
  size_t client_sockets = 0;
};

// Waits (up to `settle`) until the process has no more threads and
// descriptors than `base` and no connection to the server; returns what it
// saw last.
ProcessResources settle_to(const ProcessResources& base, uint16_t server_port,
                           std::chrono::milliseconds settle) {
  const auto deadline = Clock::now() + settle;
  ProcessResources now(server_port);
  while ((now.threads > base.threads || now.fds > base.fds || now.client_sockets > 0) &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    now = ProcessResources(server_port);
  }
  return now;
}

// prefetchsrc alone, its src pad linked to a sink pad of the test's own: what
// a demuxer does (scheduling query, pull-mode activation) is done by hand.
class StandbyTest : public LifecycleTest {
 protected:
  void TearDown() override {
    if (sinkpad_ && GST_PAD_MODE(sinkpad_) == GST_PAD_MODE_PULL)
      gst_pad_activate_mode(sinkpad_, GST_PAD_MODE_PULL, FALSE);
    if (src_) {
      EXPECT_EQ(gst_element_set_state(src_, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
    }
    drop_element();
    ElementTest::TearDown();
  }

  // A new element (owned, not floating) reading `path`, linked to sinkpad_.
  void make_linked(const std::string& path) {
    src_ = make_src(path);
    ASSERT_NE(src_, nullptr);
    gst_object_ref_sink(src_);
    srcpad_ = gst_element_get_static_pad(src_, "src");
    sinkpad_ = gst_pad_new("sink", GST_PAD_SINK);
    ASSERT_EQ(gst_pad_link(srcpad_, sinkpad_), GST_PAD_LINK_OK);
  }

  void drop_element() {
    if (srcpad_) gst_object_unref(srcpad_);
    if (sinkpad_) gst_object_unref(sinkpad_);
    if (src_) gst_object_unref(src_);
    srcpad_ = sinkpad_ = nullptr;
    src_ = nullptr;
  }

  // The standby's idle time for src_ (the plugin's test-only knob, read when
  // a standby period begins): far longer than any pad-mode switch on the
  // slowest build, or short, to watch the reaper act.
  void set_standby_idle(std::chrono::milliseconds idle) {
    g_object_set_data(G_OBJECT(src_), "prefetchsrc-test-standby-idle-ms",
                      GUINT_TO_POINTER(static_cast<guint>(idle.count())));
  }

  // Downstream's scheduling query; true if it offered PULL.
  bool query_offers_pull() {
    GstQuery* query = gst_query_new_scheduling();
    const bool answered = gst_pad_peer_query(sinkpad_, query);
    const bool pull = answered && gst_query_has_scheduling_mode(query, GST_PAD_MODE_PULL);
    gst_query_unref(query);
    return pull;
  }

  // After warm_up(), `path` (8 blocks) served with every first byte 10 s
  // late; returns what the process holds before an element reads it.
  ProcessResources warm_up_then_serve_late(const std::string& path) {
    warm_up();
    server_.add_file(path, pattern(8 * kBlock));
    server_.set_behavior(path, first_byte_behavior(prefetch::testing::fixed_delay(10s)));
    return ProcessResources(server_.port());
  }

  // After the element is gone: within 3 s the process is back to `base`
  // threads and descriptors, with no connection to the origin open.
  void expect_nothing_left(const ProcessResources& base) {
    const ProcessResources after = settle_to(base, server_.port(), 3s);
    EXPECT_EQ(after.client_sockets, 0u) << "connections to the origin left open";
    EXPECT_LE(after.threads, base.threads) << "threads left behind";
    EXPECT_LE(after.fds, base.fds) << "file descriptors left behind";
  }

  // As a demuxer starts: READY, the scheduling query offers PULL, pull mode,
  // PAUSED, and a first pull of 1000 bytes.
  void pull_in_paused() {
    ASSERT_EQ(gst_element_set_state(src_, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
    ASSERT_TRUE(query_offers_pull());
    ASSERT_TRUE(gst_pad_activate_mode(sinkpad_, GST_PAD_MODE_PULL, TRUE));
    ASSERT_EQ(gst_element_set_state(src_, GST_STATE_PAUSED), GST_STATE_CHANGE_SUCCESS);
    GstBuffer* buffer = nullptr;
    ASSERT_EQ(gst_pad_pull_range(sinkpad_, 0, 1000, &buffer), GST_FLOW_OK);
    gst_buffer_unref(buffer);
  }

  // One full query / pull / stop cycle on a fast path, so that whatever the
  // process makes once (GLib's and GStreamer's lazy threads) exists before a
  // test counts threads and descriptors.
  void warm_up() {
    server_.add_file("/warm.bin", pattern(4 * kBlock));
    make_linked("/warm.bin");
    ASSERT_EQ(gst_element_set_state(src_, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
    ASSERT_TRUE(query_offers_pull());
    ASSERT_TRUE(gst_pad_activate_mode(sinkpad_, GST_PAD_MODE_PULL, TRUE));
    GstBuffer* buffer = nullptr;
    ASSERT_EQ(gst_pad_pull_range(sinkpad_, 0, 1000, &buffer), GST_FLOW_OK);
    gst_buffer_unref(buffer);
    ASSERT_TRUE(gst_pad_activate_mode(sinkpad_, GST_PAD_MODE_PULL, FALSE));
    ASSERT_EQ(gst_element_set_state(src_, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
    drop_element();
    ASSERT_TRUE(server_.wait_idle(5s));
    server_.reset_log();
  }

  GstElement* src_ = nullptr;
  GstPad* srcpad_ = nullptr;
  GstPad* sinkpad_ = nullptr;
};

// An element in NULL holds nothing: a scheduling query there (a dynamic
// pipeline may link and ask before the source leaves NULL) answers at once
// without touching the network, and after unref no thread, descriptor or
// request of the element is left.
TEST_F(StandbyTest, SchedulingQueryInNullThenUnrefLeavesNothing) {
  const ProcessResources base = warm_up_then_serve_late("/null.bin");
  ASSERT_FALSE(HasFatalFailure());

  make_linked("/null.bin");
  const auto start = Clock::now();
  EXPECT_FALSE(query_offers_pull()) << "PULL offered by an element in NULL";
  EXPECT_LT(since(start).count(), 1000) << "the scheduling query in NULL waited on the network";
  gst_pad_unlink(srcpad_, sinkpad_);
  drop_element();  // the last reference: finalize

  expect_nothing_left(base);
  EXPECT_EQ(server_.in_flight(), 0u) << "requests left in flight";
  EXPECT_EQ(server_.request_count(), 0u) << "an element in NULL sent a request";
}

// A scheduling query blocked on a standby engine whose origin takes 10 s to
// answer, on an element in READY (where downstream asks) or NULL: a
// set_state(NULL) from another thread returns promptly (the engine's close
// included), the query returns promptly after it (or never waited), and
// nothing of the engine is left running. "Promptly" is kWoken: a few ms on a
// normal build, far less than the query's own limit (SCHEDULING_WAIT_MAX_S,
// 5 s) or the origin's 10 s, with room for a sanitizer build under load.
class StandbyWaitTest : public StandbyTest, public ::testing::WithParamInterface<GstState> {};
constexpr std::chrono::milliseconds kWoken = 2000ms;

TEST_P(StandbyWaitTest, SetStateNullWakesASchedulingQueryWaitingOnTheOrigin) {
  const ProcessResources base = warm_up_then_serve_late("/wait.bin");
  ASSERT_FALSE(HasFatalFailure());

  make_linked("/wait.bin");
  ASSERT_EQ(gst_element_set_state(src_, GetParam()), GST_STATE_CHANGE_SUCCESS);
  std::atomic<bool> pull{false};
  std::atomic<bool> answered{false};
  Clock::time_point query_end;
  std::thread downstream([&] {
    pull = query_offers_pull();
    query_end = Clock::now();
    answered = true;
  });
  if (GetParam() == GST_STATE_READY) {
    // The request reached the origin, so the engine exists and the query is
    // about to wait (or waits) on it.
    EXPECT_TRUE(server_.wait_for_requests(1, 5s))
        << "the scheduling query in READY started no engine";
  }
  // Ample time for the query to be in its wait.
  std::this_thread::sleep_for(300ms);
  if (GetParam() == GST_STATE_READY) {
    EXPECT_FALSE(answered) << "the query did not wait";
  }

  const auto start = Clock::now();
  const GstStateChangeReturn ret = gst_element_set_state(src_, GST_STATE_NULL);
  const auto took = since(start);
  EXPECT_EQ(ret, GST_STATE_CHANGE_SUCCESS);
  EXPECT_LT(took.count(), kWoken.count()) << "set_state(NULL) took too long";
  downstream.join();
  std::printf(
      "[ info ] set_state(NULL) took %lld ms; the query returned %lld ms after it began\n",
      static_cast<long long>(took.count()),
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(query_end - start).count()));
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(query_end - start).count(),
            kWoken.count())
      << "the scheduling query was not woken by set_state(NULL)";
  EXPECT_FALSE(pull) << "PULL offered without an answer from the origin";

  gst_pad_unlink(srcpad_, sinkpad_);
  drop_element();
  // Nothing of the engine is left: its connections are closed (the server
  // itself notices only when the 10 s are over), its threads joined.
  expect_nothing_left(base);
}

INSTANTIATE_TEST_SUITE_P(FromReadyAndNull, StandbyWaitTest,
                         ::testing::Values(GST_STATE_READY, GST_STATE_NULL),
                         [](const ::testing::TestParamInfo<GstState>& info) {
                           return std::string(gst_element_state_get_name(info.param));
                         });

// The origin answers block 0 at once and every other block only after 30 s,
// so the blocks the engine fetches ahead stay in flight.
void serve_head_only(TestServer& server, const std::string& path) {
  server.add_file(path, pattern(64 * kBlock));
  Behavior b;
  b.first_byte_delay = prefetch::testing::block_delay_schedule(kBlock, {0ms}, 30s);
  server.set_behavior(path, b);
}

// Pull mode, then the pad is deactivated while the element stays PAUSED (as
// in a pad-mode switch), and no start() follows: the engine kept for it is
// dropped after a short idle time, its requests cancelled.
TEST_F(StandbyTest, PadModeSwitchStandbyWithoutStartIsDropped) {
  serve_head_only(server_, "/switch.bin");
  make_linked("/switch.bin");
  // One block per request, so the blocks after the first wait at the origin
  // (serve_head_only) with their requests open.
  g_object_set(src_, "max-request-size", static_cast<guint64>(kBlock), nullptr);
  ASSERT_NO_FATAL_FAILURE(pull_in_paused());
  ASSERT_TRUE(server_.wait_for([&] { return server_.in_flight() > 0; }, 5s))
      << "no block was fetched ahead";

  ASSERT_TRUE(gst_pad_activate_mode(sinkpad_, GST_PAD_MODE_PULL, FALSE));
  const auto deactivated = Clock::now();
  // Kept for a start() that may follow (the mode switch)...
  std::this_thread::sleep_for(100ms);
  EXPECT_GT(sockets_on_port(server_.port()).client, 0u)
      << "the engine was not kept across the deactivation";
  // ... but not for ever: its bounded life is 2 s of idle time. Its
  // connections close (the held-back responses end on the server only when
  // their 30 s are over: see sockets_on_port). The limit is only how long
  // a slow build may take to get there.
  const bool closed =
      server_.wait_for([&] { return sockets_on_port(server_.port()).client == 0; }, 25s);
  EXPECT_TRUE(closed) << sockets_on_port(server_.port()).client
                      << " connections of the standby engine still open "
                      << since(deactivated).count() << " ms after the pad was deactivated";
  EXPECT_GE(since(deactivated).count(), 1000) << "dropped before its idle time";
  EXPECT_EQ(GST_STATE(src_), GST_STATE_PAUSED);
}

// The same standby is dropped by the next state change, not by its idle
// time: that is made longer than the test may take, so a close seen at all
// is the state change's.
TEST_F(StandbyTest, PadModeSwitchStandbyIsDroppedByTheNextStateChange) {
  serve_head_only(server_, "/change.bin");
  make_linked("/change.bin");
  set_standby_idle(600s);
  // One block per request, so the blocks after the first wait at the origin
  // (serve_head_only) with their requests open.
  g_object_set(src_, "max-request-size", static_cast<guint64>(kBlock), nullptr);
  ASSERT_EQ(gst_element_set_state(src_, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
  ASSERT_TRUE(query_offers_pull());
  ASSERT_TRUE(gst_pad_activate_mode(sinkpad_, GST_PAD_MODE_PULL, TRUE));
  ASSERT_EQ(gst_element_set_state(src_, GST_STATE_PAUSED), GST_STATE_CHANGE_SUCCESS);
  ASSERT_TRUE(server_.wait_for([&] { return server_.in_flight() > 1; }, 5s))
      << "no block was fetched ahead";
  ASSERT_TRUE(gst_pad_activate_mode(sinkpad_, GST_PAD_MODE_PULL, FALSE));
  EXPECT_GT(sockets_on_port(server_.port()).client, 0u)
      << "the engine was not kept across the deactivation";
  ASSERT_EQ(gst_element_set_state(src_, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
  EXPECT_TRUE(server_.wait_for([&] { return sockets_on_port(server_.port()).client == 0; }, 25s))
      << "the standby engine's connections still open after PAUSED -> READY";
}

// A pad-mode switch that completes (pull, then push) keeps the engine: block
// 0 is requested once in all. The standby's idle time is made longer than
// the test may take: a switch slower than the default 2 s (a sanitizer
// build under load) must not turn into a false failure; the idle drop has
// its own test (PadModeSwitchStandbyWithoutStartIsDropped).
TEST_F(StandbyTest, PadModeSwitchStandbyIsAdoptedByTheStartThatFollows) {
  serve_head_only(server_, "/adopt.bin");
  make_linked("/adopt.bin");
  set_standby_idle(600s);
  // No twin requests (hedging) for block 0: a twin would count as a second
  // request of it without saying anything about the engine being kept.
  g_object_set(src_, "hedge", FALSE, nullptr);
  std::atomic<int> buffers{0};
  gst_pad_set_chain_function_full(
      sinkpad_,
      [](GstPad* pad, GstObject*, GstBuffer* buffer) -> GstFlowReturn {
        ++*static_cast<std::atomic<int>*>(GST_PAD_ELEMENT_PRIVATE(pad));
        gst_buffer_unref(buffer);
        return GST_FLOW_OK;
      },
      nullptr, nullptr);
  GST_PAD_ELEMENT_PRIVATE(sinkpad_) = &buffers;
  // One block per request, so the blocks after the first wait at the origin
  // (serve_head_only) with their requests open. Without it the first span
  // may bring the whole file before any other is sent (a fast loopback).
  g_object_set(src_, "max-request-size", static_cast<guint64>(kBlock), nullptr);
  gst_pad_set_event_function(sinkpad_, [](GstPad*, GstObject*, GstEvent* event) -> gboolean {
    gst_event_unref(event);
    return TRUE;
  });
  ASSERT_NO_FATAL_FAILURE(pull_in_paused());
  ASSERT_TRUE(gst_pad_activate_mode(sinkpad_, GST_PAD_MODE_PULL, FALSE));
  ASSERT_TRUE(gst_pad_activate_mode(sinkpad_, GST_PAD_MODE_PUSH, TRUE));
  ASSERT_TRUE(gst_pad_activate_mode(srcpad_, GST_PAD_MODE_PUSH, TRUE));
  // Block 0 is all the origin gives in time: it arrives in push mode.
  ASSERT_TRUE(server_.wait_for([&] { return buffers > 0; }, 25s)) << "nothing pushed";
  int block0 = 0;
  std::string asked;
  for (const auto& r : server_.requests("/adopt.bin")) {
    block0 += r.first_byte == 0;
    asked += " " + r.method + " " + (r.range.empty() ? "(no range)" : r.range) + " -> " +
             std::to_string(r.status) + ";";
  }
  EXPECT_EQ(block0, 1) << "the engine was not kept across the pad-mode switch:" << asked;
  // Adopted: the engine that pushes is the one kept, its blocks asked for
  // ahead still in flight (a new engine would have asked for block 0).
  EXPECT_GT(sockets_on_port(server_.port()).client, 0u) << "the adopted engine was dropped";
  ASSERT_TRUE(gst_pad_activate_mode(srcpad_, GST_PAD_MODE_PUSH, FALSE));
}

}  // namespace
}  // namespace element_test
}  // namespace prefetch
