// A real H.264/AAC MP4 (made by tests/support/media/make_clip.sh) plays
// through `prefetchsrc ! decodebin` to its last frame, with the index at the
// start (faststart) and at the end (tail: the demuxer reads the end first).
#include <gst/gst.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <string>

#include "element_test_util.h"
#include "test_server.h"

namespace prefetch {
namespace element_test {
namespace {

constexpr int kSeconds = 4;
constexpr int kFps = 30;  // make_clip.sh's frame rate
constexpr guint64 kFrames = kSeconds * kFps;

struct DecodeRun {
  bool eos = false;
  ErrorPtr error;
  guint64 video_frames = 0;
  GstClockTime last_pts = GST_CLOCK_TIME_NONE;
  bool pull_mode = false;  // the source's pad was in pull mode at the first frame
  double first_frame_s = -1;
};

struct DecodeState {
  GstElement* pipeline = nullptr;
  GstPad* src_pad = nullptr;
  std::chrono::steady_clock::time_point started;
  std::atomic<guint64> video_frames{0};
  std::atomic<GstClockTime> last_pts{GST_CLOCK_TIME_NONE};
  std::atomic<bool> pull_mode{false};
  std::atomic<double> first_frame_s{-1};
};

GstPadProbeReturn count_frame(GstPad*, GstPadProbeInfo* info, gpointer user_data) {
  auto* state = static_cast<DecodeState*>(user_data);
  GstBuffer* buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  if (state->video_frames++ == 0) {
    state->pull_mode = GST_PAD_MODE(state->src_pad) == GST_PAD_MODE_PULL;
    state->first_frame_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - state->started).count();
  }
  if (GST_BUFFER_PTS_IS_VALID(buffer)) state->last_pts = GST_BUFFER_PTS(buffer);
  return GST_PAD_PROBE_OK;
}

void on_pad_added(GstElement*, GstPad* pad, gpointer user_data) {
  auto* state = static_cast<DecodeState*>(user_data);
  GstCaps* caps = gst_pad_get_current_caps(pad);
  if (!caps) caps = gst_pad_query_caps(pad, nullptr);
  const bool video =
      g_str_has_prefix(gst_structure_get_name(gst_caps_get_structure(caps, 0)), "video/");
  gst_caps_unref(caps);
  GstElement* sink = gst_element_factory_make("fakesink", nullptr);
  g_object_set(sink, "sync", FALSE, "async", FALSE, nullptr);
  gst_bin_add(GST_BIN(state->pipeline), sink);
  gst_element_sync_state_with_parent(sink);
  GstPad* sinkpad = gst_element_get_static_pad(sink, "sink");
  if (video) {
    gst_pad_add_probe(sinkpad, GST_PAD_PROBE_TYPE_BUFFER, count_frame, state, nullptr);
  }
  gst_pad_link(pad, sinkpad);
  gst_object_unref(sinkpad);
}

// `src ! decodebin`, each decoded stream into a fakesink; video frames counted.
std::unique_ptr<DecodeRun> decode(GstElement* src) {
  auto run = std::make_unique<DecodeRun>();
  GstPtr<GstElement> pipeline(GST_ELEMENT(gst_object_ref_sink(gst_pipeline_new(nullptr))));
  GstElement* decodebin = gst_element_factory_make("decodebin", nullptr);
  gst_bin_add_many(GST_BIN(pipeline.get()), src, decodebin, nullptr);
  EXPECT_TRUE(gst_element_link(src, decodebin));
  DecodeState state;
  state.pipeline = pipeline.get();
  GstPtr<GstPad> src_pad(gst_element_get_static_pad(src, "src"));
  state.src_pad = src_pad.get();
  g_signal_connect(decodebin, "pad-added", G_CALLBACK(on_pad_added), &state);
  state.started = std::chrono::steady_clock::now();
  gst_element_set_state(pipeline.get(), GST_STATE_PLAYING);
  MessagePtr msg = wait_error_or_eos(pipeline.get(), 40s);
  if (msg && GST_MESSAGE_TYPE(msg.get()) == GST_MESSAGE_EOS) run->eos = true;
  run->error = error_of(msg.get());
  EXPECT_TRUE(msg != nullptr) << "decoding neither finished nor failed within 40 s";
  EXPECT_EQ(gst_element_set_state(pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  run->video_frames = state.video_frames;
  run->last_pts = state.last_pts;
  run->pull_mode = state.pull_mode;
  run->first_frame_s = state.first_frame_s;
  return run;
}

// decode() of a prefetchsrc reading the server's /clip.mp4 in blocks of
// `block_size`, 4 requests at a time; null if there is no prefetchsrc.
std::unique_ptr<DecodeRun> decode_served_clip(const TestServer& server, guint64 block_size) {
  GstElement* src = make_prefetchsrc(server.url("/clip.mp4"));
  if (!src) return nullptr;
  g_object_set(src, "block-size", block_size, "concurrency", 4u, nullptr);
  return decode(src);
}

class MediaTest : public ElementTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(MediaTest, PlaysToTheLastFrame) {
  const char* layout = GetParam();
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string clip = dir.file(std::string("clip-") + layout + ".mp4");
  std::string out, err;
  ASSERT_EQ(run_command({PREFETCH_MAKE_CLIP, clip, std::to_string(kSeconds), layout, "320x240"},
                        &out, &err),
            0)
      << err;

  // Reference: the same decode from the file on disk.
  GstElement* filesrc = gst_element_factory_make("filesrc", nullptr);
  g_object_set(filesrc, "location", clip.c_str(), nullptr);
  auto reference = decode(filesrc);
  ASSERT_TRUE(reference->eos) << describe(reference->error.get());
  EXPECT_EQ(reference->video_frames, kFrames);

  TestServer server;
  ASSERT_TRUE(server.add_file_from_disk("/clip.mp4", clip, "video/mp4"));
  // Small blocks so that the clip (a few hundred KB) spans many of them.
  auto run = decode_served_clip(server, 32 * 1024);
  ASSERT_NE(run, nullptr);
  ASSERT_TRUE(run->eos) << describe(run->error.get());
  EXPECT_EQ(run->video_frames, reference->video_frames);
  EXPECT_EQ(run->last_pts, reference->last_pts) << "the last decoded frame differs";
  // qtdemux pulls from prefetchsrc, as it does from filesrc.
  EXPECT_TRUE(reference->pull_mode);
  EXPECT_TRUE(run->pull_mode) << "qtdemux did not read prefetchsrc in pull mode";
}

INSTANTIATE_TEST_SUITE_P(Layouts, MediaTest, ::testing::Values("faststart", "tail"));

// True if the clip's moov box comes after its mdat box (top-level boxes).
bool moov_after_mdat(const std::string& filename) {
  gchar* contents = nullptr;
  gsize length = 0;
  if (!g_file_get_contents(filename.c_str(), &contents, &length, nullptr)) return false;
  const auto* p = reinterpret_cast<const guint8*>(contents);
  gsize at = 0;
  std::optional<gsize> moov, mdat;
  while (at + 8 <= length) {
    guint64 box = GST_READ_UINT32_BE(p + at);
    if (box == 1 && at + 16 <= length) box = GST_READ_UINT64_BE(p + at + 8);
    const std::string type(reinterpret_cast<const char*>(p + at + 4), 4);
    if (type == "moov" && !moov) moov = at;
    if (type == "mdat" && !mdat) mdat = at;
    if (box < 8) break;
    at += box;
  }
  g_free(contents);
  return moov && mdat && *moov > *mdat;
}

// The index at the end on an origin whose first bytes come after a jittery
// wait (0.1-1.5 s): qtdemux reads the head, jumps to the moov at the tail
// and comes back, in pull mode, and the clip plays to its last frame. No
// block that arrived whole is requested again.
TEST_F(MediaTest, TailIndexOnAJitteryOriginPlaysInPullMode) {
  set_deadline(120s);
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string clip = dir.file("clip-tail.mp4");
  std::string out, err;
  ASSERT_EQ(run_command({PREFETCH_MAKE_CLIP, clip, std::to_string(kSeconds), "tail", "320x240"},
                        &out, &err),
            0)
      << err;
  ASSERT_TRUE(moov_after_mdat(clip)) << "make_clip.sh tail did not put the index last";

  TestServer server;
  ASSERT_TRUE(server.add_file_from_disk("/clip.mp4", clip, "video/mp4"));
  prefetch::testing::Behavior b;
  b.first_byte_delay = [](uint64_t first_byte) {
    // Log-uniform 0.1-1.5 s, a fixed draw per first byte.
    std::mt19937 draw(static_cast<uint32_t>(first_byte * 2654435761u + 5));
    const double s =
        std::exp(std::uniform_real_distribution<double>(std::log(0.1), std::log(1.5))(draw));
    return std::chrono::milliseconds(static_cast<int>(s * 1000));
  };
  server.set_behavior("/clip.mp4", b);
  auto run = decode_served_clip(server, 64 * 1024);
  ASSERT_NE(run, nullptr);
  ASSERT_TRUE(run->eos) << describe(run->error.get());
  EXPECT_EQ(run->video_frames, kFrames);
  EXPECT_TRUE(run->pull_mode) << "qtdemux did not read prefetchsrc in pull mode";
  std::printf("tail index, jittery origin: first frame after %.3f s\n", run->first_frame_s);
  std::map<uint64_t, int> complete;
  for (const auto& r : server.requests("/clip.mp4")) complete[r.first_byte] += r.complete;
  for (const auto& [first_byte, n] : complete)
    EXPECT_LE(n, 1) << "bytes from " << first_byte << " were sent whole " << n << " times";
}

}  // namespace
}  // namespace element_test
}  // namespace prefetch
