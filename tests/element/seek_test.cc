// Flushing BYTES seeks, in PAUSED and in PLAYING: the first buffer after each
// seek starts exactly at the seek offset and carries the file's bytes there.
#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "element_test_util.h"
#include "test_server.h"

namespace prefetch {
namespace element_test {
namespace {

constexpr uint64_t kSize = 20 * kBlock + 4321;
constexpr size_t kCompareBytes = 4096;

// The offsets every seek test visits, in this order (forward and backward
// jumps, block boundaries and their neighbours, the last byte).
std::vector<uint64_t> seek_offsets() {
  return {kSize / 2,   0,         5 * kBlock,       5 * kBlock - 1, 5 * kBlock + 1,
          17 * kBlock, kSize - 1, 3 * kBlock + 100, kSize - 2000,   0};
}

class SeekTest : public ElementTest {
 protected:
  void SetUp() override {
    ElementTest::SetUp();
    server_.add_file("/seek.bin", pattern(kSize));
  }

  GstElement* make_src() {
    GstElement* src = make_prefetchsrc();
    if (src) {
      g_object_set(src, "location", server_.url("/seek.bin").c_str(), "block-size", kBlock,
                   "concurrency", 3u, nullptr);
    }
    return src;
  }

  // make_src() in a seek pipeline (an appsink of `max_buffers`) brought to
  // `state`; its first buffer (the preroll in PAUSED) starts the file.
  void start(SeekPipeline* p, GstState state, guint max_buffers) {
    GstElement* src = make_src();
    ASSERT_NE(src, nullptr);
    *p = make_seek_pipeline(src, max_buffers);
    ASSERT_EQ(set_state_and_wait(p->pipeline.get(), state), GST_STATE_CHANGE_SUCCESS);
    GstAppSink* sink = GST_APP_SINK(p->sink);
    SamplePtr first(state == GST_STATE_PAUSED
                        ? gst_app_sink_try_pull_preroll(sink, 10 * GST_SECOND)
                        : gst_app_sink_try_pull_sample(sink, 10 * GST_SECOND));
    ASSERT_NE(first, nullptr);
    EXPECT_EQ(check_buffer(gst_sample_get_buffer(first.get()), pattern(kSize), 0, kCompareBytes),
              "");
  }

  TestServer server_;
};

TEST_F(SeekTest, FlushingSeeksInPaused) {
  const std::vector<uint8_t>& data = pattern(kSize);
  SeekPipeline p;
  ASSERT_NO_FATAL_FAILURE(start(&p, GST_STATE_PAUSED, 1));
  for (uint64_t offset : seek_offsets()) {
    SCOPED_TRACE("seek to " + std::to_string(offset));
    ASSERT_TRUE(flushing_seek(p.pipeline.get(), offset));
    ASSERT_EQ(gst_element_get_state(p.pipeline.get(), nullptr, nullptr, 10 * GST_SECOND),
              GST_STATE_CHANGE_SUCCESS);
    SamplePtr preroll(gst_app_sink_try_pull_preroll(GST_APP_SINK(p.sink), 10 * GST_SECOND));
    ASSERT_NE(preroll, nullptr) << "no preroll buffer after the seek";
    const GstSegment* segment = gst_sample_get_segment(preroll.get());
    ASSERT_NE(segment, nullptr);
    EXPECT_EQ(segment->format, GST_FORMAT_BYTES);
    EXPECT_EQ(segment->start, offset);
    EXPECT_EQ(check_buffer(gst_sample_get_buffer(preroll.get()), data, offset, kCompareBytes), "");
  }
  EXPECT_EQ(gst_element_set_state(p.pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
}

TEST_F(SeekTest, FlushingSeeksInPlaying) {
  const std::vector<uint8_t>& data = pattern(kSize);
  // A slow-ish origin so that seeks land while blocks are in flight.
  Behavior b;
  b.first_byte_delay = prefetch::testing::fixed_delay(20ms);
  server_.set_behavior("/seek.bin", b);
  SeekPipeline p;
  ASSERT_NO_FATAL_FAILURE(start(&p, GST_STATE_PLAYING, 2));
  for (uint64_t offset : seek_offsets()) {
    SCOPED_TRACE("seek to " + std::to_string(offset));
    ASSERT_TRUE(flushing_seek(p.pipeline.get(), offset));
    // Read on until kCompareBytes bytes (or the end of the file) have come,
    // checking that they continue each other and match the file.
    uint64_t next = 0;
    ASSERT_NO_FATAL_FAILURE(expect_data_after_seek(p, data, offset, kCompareBytes, &next));
    if (offset == kSize - 1) {
      // The last byte is followed by EOS.
      EXPECT_EQ(gst_app_sink_try_pull_sample(GST_APP_SINK(p.sink), 10 * GST_SECOND), nullptr);
      EXPECT_TRUE(gst_app_sink_is_eos(GST_APP_SINK(p.sink)));
    }
  }
  EXPECT_EQ(gst_element_set_state(p.pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
}

TEST_F(SeekTest, SeekThenReadToEndIsExact) {
  // After a seek into the middle of a block, the rest of the file arrives
  // whole: every byte from the offset to the end, then EOS.
  const std::vector<uint8_t>& data = pattern(kSize);
  const uint64_t offset = 7 * kBlock + 333;
  GstElement* src = make_src();
  ASSERT_NE(src, nullptr);
  SeekPipeline p = make_seek_pipeline(src, 4);
  ASSERT_EQ(set_state_and_wait(p.pipeline.get(), GST_STATE_PAUSED), GST_STATE_CHANGE_SUCCESS);
  ASSERT_TRUE(gst_element_seek_simple(p.pipeline.get(), GST_FORMAT_BYTES,
                                      static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH),
                                      static_cast<gint64>(offset)));
  ASSERT_EQ(set_state_and_wait(p.pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
  uint64_t expected = offset;
  while (true) {
    SamplePtr sample(gst_app_sink_try_pull_sample(GST_APP_SINK(p.sink), 10 * GST_SECOND));
    if (!sample) break;
    GstBuffer* buffer = gst_sample_get_buffer(sample.get());
    ASSERT_EQ(check_buffer(buffer, data, expected, SIZE_MAX), "");
    expected += gst_buffer_get_size(buffer);
  }
  EXPECT_TRUE(gst_app_sink_is_eos(GST_APP_SINK(p.sink)));
  EXPECT_EQ(expected, kSize);
  EXPECT_EQ(gst_element_set_state(p.pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
}

}  // namespace
}  // namespace element_test
}  // namespace prefetch
