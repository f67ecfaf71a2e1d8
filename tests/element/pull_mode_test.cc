// Pull mode: the scheduling query offers PULL once the first response says
// the size and that Range is honoured, and gst_pad_pull_range() at any offset
// returns exactly the bytes asked for (fewer only at the end), here on an
// origin whose first byte comes after a jittery wait.
#include <gst/gst.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "element_test_util.h"
#include "test_server.h"

namespace prefetch {
namespace element_test {
namespace {

constexpr uint64_t kSize = 64 * kBlock + 4321;

// 10-250 ms before each response's first byte, a fixed draw per first byte:
// the same run always meets the same waits.
prefetch::testing::DelayFunc jittery() {
  return [](uint64_t first_byte) {
    std::mt19937 draw(static_cast<uint32_t>(first_byte * 2654435761u + 17));
    return std::chrono::milliseconds(std::uniform_int_distribution<int>(10, 250)(draw));
  };
}

// A sink pad of our own, linked to the source, that activates it in pull mode.
class PullModeTest : public ElementTest {
 protected:
  void SetUp() override {
    ElementTest::SetUp();
    server_.add_file("/pull.bin", pattern(kSize));
    Behavior b;
    b.first_byte_delay = jittery();
    server_.set_behavior("/pull.bin", b);
    src_ = make_prefetchsrc();
    ASSERT_NE(src_, nullptr);
    gst_object_ref_sink(src_);
    g_object_set(src_, "location", server_.url("/pull.bin").c_str(), "block-size", kBlock,
                 "concurrency", 4u, "cache-size", static_cast<guint64>(16 * kBlock), nullptr);
    srcpad_ = gst_element_get_static_pad(src_, "src");
    sinkpad_ = gst_pad_new("sink", GST_PAD_SINK);
    ASSERT_EQ(gst_pad_link(srcpad_, sinkpad_), GST_PAD_LINK_OK);
    ASSERT_EQ(gst_element_set_state(src_, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
  }

  void TearDown() override {
    if (sinkpad_) gst_pad_activate_mode(sinkpad_, GST_PAD_MODE_PULL, FALSE);
    if (src_) {
      EXPECT_EQ(gst_element_set_state(src_, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
    }
    // Every request the element started has ended.
    EXPECT_TRUE(server_.wait_idle(10s)) << server_.in_flight() << " responses still in flight";
    if (srcpad_) gst_object_unref(srcpad_);
    if (sinkpad_) gst_object_unref(sinkpad_);
    if (src_) gst_object_unref(src_);
    ElementTest::TearDown();
  }

  // What a demuxer does before it pulls: ask, then activate in pull mode.
  bool activate_pull() {
    GstQuery* query = gst_query_new_scheduling();
    const bool answered = gst_pad_peer_query(sinkpad_, query);
    const bool pull = answered && gst_query_has_scheduling_mode_with_flags(
                                      query, GST_PAD_MODE_PULL, GST_SCHEDULING_FLAG_SEEKABLE);
    gst_query_unref(query);
    if (!pull) return false;
    return gst_pad_activate_mode(sinkpad_, GST_PAD_MODE_PULL, TRUE);
  }

  TestServer server_;
  GstElement* src_ = nullptr;
  GstPad* srcpad_ = nullptr;
  GstPad* sinkpad_ = nullptr;
};

TEST_F(PullModeTest, TwoHundredRandomReadsAreExact) {
  set_deadline(120s);
  const std::vector<uint8_t>& data = pattern(kSize);
  ASSERT_TRUE(activate_pull()) << "PULL was not offered or could not be activated";
  EXPECT_EQ(GST_PAD_MODE(srcpad_), GST_PAD_MODE_PULL);

  std::mt19937 rng(20240606);
  std::uniform_int_distribution<uint64_t> offset_of(0, kSize - 1);
  std::uniform_real_distribution<double> log_size(std::log(16.0), std::log(300000.0));
  std::vector<double> latency_ms;
  for (int i = 0; i < 200; ++i) {
    const uint64_t offset = offset_of(rng);
    const guint size = static_cast<guint>(std::exp(log_size(rng)));
    const uint64_t expected = std::min<uint64_t>(size, kSize - offset);
    SCOPED_TRACE("read " + std::to_string(i) + ": " + std::to_string(size) + " bytes at " +
                 std::to_string(offset));
    GstBuffer* buffer = nullptr;
    const Clock::time_point t0 = Clock::now();
    ASSERT_EQ(gst_pad_pull_range(sinkpad_, offset, size, &buffer), GST_FLOW_OK);
    latency_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    ASSERT_NE(buffer, nullptr);
    ASSERT_EQ(gst_buffer_get_size(buffer), expected);
    EXPECT_EQ(GST_BUFFER_OFFSET(buffer), offset);
    GstMapInfo map;
    ASSERT_TRUE(gst_buffer_map(buffer, &map, GST_MAP_READ));
    const bool same = std::memcmp(map.data, data.data() + offset, expected) == 0;
    gst_buffer_unmap(buffer, &map);
    gst_buffer_unref(buffer);
    ASSERT_TRUE(same) << "wrong bytes";
  }
  // At and past the end.
  GstBuffer* buffer = nullptr;
  EXPECT_EQ(gst_pad_pull_range(sinkpad_, kSize, 100, &buffer), GST_FLOW_EOS);
  EXPECT_EQ(GST_PAD_MODE(srcpad_), GST_PAD_MODE_PULL);

  std::sort(latency_ms.begin(), latency_ms.end());
  const guint64 hits = stats_uint64(src_, "cache-hits");
  const guint64 started = stats_uint64(src_, "requests-started");
  std::printf("pull reads: median %.1f ms, p90 %.1f ms, max %.1f ms; %" G_GUINT64_FORMAT
              " requests, %" G_GUINT64_FORMAT " cache hits\n",
              latency_ms[latency_ms.size() / 2], latency_ms[latency_ms.size() * 9 / 10],
              latency_ms.back(), started, hits);
  RecordProperty("median_read_ms", std::to_string(latency_ms[latency_ms.size() / 2]));
  EXPECT_GT(hits, 0u) << "no read was served from the cache";
}

// The query answer comes from the first response: a Range-ignoring origin
// gets PUSH only, and the bytes still arrive in push mode.
TEST_F(PullModeTest, OriginIgnoringRangeOffersPushOnly) {
  Behavior b;
  b.ignore_range = true;
  server_.set_behavior("/pull.bin", b);
  GstQuery* query = gst_query_new_scheduling();
  ASSERT_TRUE(gst_pad_peer_query(sinkpad_, query));
  EXPECT_TRUE(gst_query_has_scheduling_mode(query, GST_PAD_MODE_PUSH));
  EXPECT_FALSE(gst_query_has_scheduling_mode(query, GST_PAD_MODE_PULL));
  gst_query_unref(query);
}

// The engine started for the query is the one start() uses: block 0 is asked
// for once (and by the twins that engine raced it with, on this jittery
// origin), not once for the query and once for the transfer.
TEST_F(PullModeTest, QueryAndStartShareOneEngine) {
  ASSERT_TRUE(activate_pull());
  GstBuffer* buffer = nullptr;
  ASSERT_EQ(gst_pad_pull_range(sinkpad_, 0, 1000, &buffer), GST_FLOW_OK);
  gst_buffer_unref(buffer);
  uint64_t block0 = 0;
  for (const auto& r : server_.requests("/pull.bin")) block0 += r.first_byte == 0;
  // A twin cancelled before it connected never reaches the server.
  EXPECT_GE(block0, 1u);
  EXPECT_LE(block0, 1 + stats_uint64(src_, "races-sent"));
}

}  // namespace
}  // namespace element_test
}  // namespace prefetch
