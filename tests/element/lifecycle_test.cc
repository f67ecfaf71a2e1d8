// State changes in the middle of a transfer: NULL -> PLAYING -> NULL on a
// slow origin, repeatedly; stopping while create() waits on a stalled block;
// restarting the same element. None of it may hang or leave requests running.
#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "element_test_util.h"
#include "test_server.h"

namespace prefetch {
namespace element_test {
namespace {

using prefetch::testing::Behavior;
using prefetch::testing::sha256_hex;
using prefetch::testing::TestServer;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kBlock = 64 * 1024;

std::chrono::milliseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

class LifecycleTest : public ElementTest {
 protected:
  GstElement* make_src(const std::string& path) {
    GstElement* src = make_prefetchsrc();
    if (src) {
      g_object_set(src, "location", server_.url(path).c_str(), "block-size", kBlock, "concurrency",
                   4u, nullptr);
    }
    return src;
  }

  TestServer server_;
};

TEST_F(LifecycleTest, PlayingToNullMidTransferRepeatedly) {
  server_.add_file("/slow.bin", pattern(64 * kBlock));
  Behavior b;
  b.first_byte_delay = prefetch::testing::fixed_delay(150ms);
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

}  // namespace
}  // namespace element_test
}  // namespace prefetch
