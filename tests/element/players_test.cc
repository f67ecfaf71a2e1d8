// What players read: every query a downstream element or an application sends
// the source, answered by prefetchsrc as souphttpsrc answers it on the same
// nginx file (the intended differences listed and explained); and what
// playbin and the discoverer (uridecodebin) show through prefetchsrc ranked
// first: the duration of every clip of a media matrix, playbin's seeking
// range and a seek to the middle, beside souphttpsrc and filesrc.
#include <gst/gst.h>
#include <gst/pbutils/pbutils.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "element_test_util.h"
#include "test_server.h"

namespace prefetch {
namespace element_test {
namespace {}  // namespace

// Frees what held a souphttpsrc (its pipeline, playbin, or the discoverer).
// souphttpsrc (GStreamer 1.22) leaves 32 bytes behind per element when the
// last reference to its shared session goes with the pipeline's context;
// tests/support/lsan.supp names this function, and only it, for that leak.
// Everything prefetchsrc does is released elsewhere.
extern "C" __attribute__((noinline)) void prefetch_test_release_after_souphttpsrc(gpointer object) {
  g_object_unref(object);
  __asm__ volatile("" ::: "memory");  // not a tail call: this frame stays in the stack
}

namespace {

// ---- the pad-level parity ----------------------------------------------------------

const GstFormat kFormats[] = {GST_FORMAT_TIME, GST_FORMAT_BYTES, GST_FORMAT_PERCENT,
                              GST_FORMAT_DEFAULT};

std::string name_of(GstFormat f) { return gst_format_get_name(f); }

// One query's answer as text: "FALSE", or "TRUE" and its fields.
template <typename Fill>
std::string answer(GstPad* pad, GstQuery* query, Fill fill) {
  std::ostringstream out;
  if (!gst_pad_query(pad, query)) {
    out << "FALSE";
  } else {
    out << "TRUE";
    fill(query, out);
  }
  gst_query_unref(query);
  return out.str();
}

// Every query type in every format, at `pad`. `size` is the file's: a
// position is told as "in 0..size" (how far each source has read when
// preroll ends depends on its buffer sizes, not on what it answers).
std::map<std::string, std::string> ask_everything(GstPad* pad, gint64 size) {
  std::map<std::string, std::string> a;
  for (GstFormat f : kFormats) {
    const std::string n = name_of(f);
    a["duration " + n] = answer(pad, gst_query_new_duration(f), [](GstQuery* q, auto& out) {
      GstFormat format;
      gint64 v;
      gst_query_parse_duration(q, &format, &v);
      out << " " << name_of(format) << " " << v;
    });
    a["position " + n] = answer(pad, gst_query_new_position(f), [&](GstQuery* q, auto& out) {
      GstFormat format;
      gint64 v;
      gst_query_parse_position(q, &format, &v);
      const gint64 end = format == GST_FORMAT_PERCENT ? GST_FORMAT_PERCENT_MAX : size;
      out << " " << name_of(format) << " " << (v >= 0 && v <= end ? "in range" : std::to_string(v));
    });
    a["seeking " + n] = answer(pad, gst_query_new_seeking(f), [](GstQuery* q, auto& out) {
      GstFormat format;
      gboolean seekable;
      gint64 start, end;
      gst_query_parse_seeking(q, &format, &seekable, &start, &end);
      out << " " << name_of(format) << " seekable " << seekable << " " << start << ".." << end;
    });
    a["segment " + n] = answer(pad, gst_query_new_segment(f), [](GstQuery* q, auto& out) {
      gdouble rate;
      GstFormat format;
      gint64 start, stop;
      gst_query_parse_segment(q, &rate, &format, &start, &stop);
      out << " rate " << rate << " " << name_of(format) << " " << start << ".." << stop;
    });
    a["buffering " + n] = answer(pad, gst_query_new_buffering(f), [](GstQuery* q, auto& out) {
      GstFormat format;
      gint64 start, stop, estimated;
      gst_query_parse_buffering_range(q, &format, &start, &stop, &estimated);
      gboolean busy;
      gint percent;
      gst_query_parse_buffering_percent(q, &busy, &percent);
      out << " " << name_of(format) << " " << start << ".." << stop << " estimated " << estimated
          << " busy " << busy << " percent " << percent;
    });
    for (GstFormat to : kFormats) {
      a["convert 1000 " + n + " to " + name_of(to)] =
          answer(pad, gst_query_new_convert(f, 1000, to), [](GstQuery* q, auto& out) {
            gint64 v;
            gst_query_parse_convert(q, nullptr, nullptr, nullptr, &v);
            out << " " << v;
          });
    }
  }
  a["scheduling"] = answer(pad, gst_query_new_scheduling(), [](GstQuery* q, auto& out) {
    GstSchedulingFlags flags;
    gint minsize, maxsize, align;
    gst_query_parse_scheduling(q, &flags, &minsize, &maxsize, &align);
    out << " flags " << flags << " min " << minsize << " max " << maxsize << " align " << align
        << " modes";
    for (guint i = 0; i < gst_query_get_n_scheduling_modes(q); ++i)
      out << " " << gst_pad_mode_get_name(gst_query_parse_nth_scheduling_mode(q, i));
  });
  a["latency"] = answer(pad, gst_query_new_latency(), [](GstQuery* q, auto& out) {
    gboolean live;
    GstClockTime min, max;
    gst_query_parse_latency(q, &live, &min, &max);
    out << " live " << live << " min " << min << " max " << max;
  });
  a["uri"] = answer(pad, gst_query_new_uri(), [](GstQuery* q, auto& out) {
    gchar *uri = nullptr, *redirect = nullptr;
    gboolean permanent = FALSE;
    gst_query_parse_uri(q, &uri);
    gst_query_parse_uri_redirection(q, &redirect);
    gst_query_parse_uri_redirection_permanent(q, &permanent);
    out << " " << (uri ? uri : "(null)") << " redirect " << (redirect ? redirect : "(none)")
        << " permanent " << permanent;
    g_free(uri);
    g_free(redirect);
  });
  return a;
}

struct Prerolled {
  std::map<std::string, std::string> answers;
  int duration_changed = 0;  // messages from the source before preroll ended
};

// `factory location=url ! fakesink`, prerolled (the first buffer is at the
// sink), then every query at the source's pad.
Prerolled preroll_and_ask(const char* factory, const std::string& url, gint64 size) {
  Prerolled out;
  GstPtr<GstElement> pipeline(gst_pipeline_new(nullptr));
  GstElement* src = gst_element_factory_make(factory, "src");
  GstElement* sink = gst_element_factory_make("fakesink", nullptr);
  EXPECT_TRUE(src && sink) << factory;
  if (!src || !sink) return out;
  g_object_set(src, "location", url.c_str(), nullptr);
  gst_bin_add_many(GST_BIN(pipeline.get()), src, sink, nullptr);
  EXPECT_TRUE(gst_element_link(src, sink));
  EXPECT_EQ(set_state_and_wait(pipeline.get(), GST_STATE_PAUSED, 30s), GST_STATE_CHANGE_SUCCESS)
      << factory;
  GstPtr<GstBus> bus(gst_element_get_bus(pipeline.get()));
  while (MessagePtr m{gst_bus_pop_filtered(bus.get(), GST_MESSAGE_DURATION_CHANGED)}) {
    if (GST_MESSAGE_SRC(m.get()) == GST_OBJECT(src)) ++out.duration_changed;
  }
  GstPtr<GstPad> pad(gst_element_get_static_pad(src, "src"));
  out.answers = ask_everything(pad.get(), size);
  EXPECT_EQ(gst_element_set_state(pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  if (std::string(factory) == "souphttpsrc")
    prefetch_test_release_after_souphttpsrc(pipeline.release());
  return out;
}

// Where prefetchsrc answers differently on purpose, and why (the README's
// drop-in section says the same). Each must still differ: a difference that
// went away is taken off the list.
const std::map<std::string, std::string> kIntended = {
    {"scheduling",
     "prefetchsrc offers pull mode and says seekable where souphttpsrc says sequential: any "
     "range is a parallel request away, so a demuxer may read an index at the end directly"},
};

class QueryParityTest : public RunningNginxTest {
 protected:
  void SetUp() override {
    GstPtr<GstElementFactory> soup(gst_element_factory_find("souphttpsrc"));
    if (!soup) {
      ElementTest::SetUp();
      GTEST_SKIP() << "souphttpsrc is not installed";
    }
    RunningNginxTest::SetUp();
  }
};

TEST_F(QueryParityTest, EveryQueryIsAnsweredAsSouphttpsrcAnswersIt) {
  const std::string url = http("/five.bin");
  const gint64 size = kNginxFileSize;
  const Prerolled soup = preroll_and_ask("souphttpsrc", url, size);
  const Prerolled ours = preroll_and_ask("prefetchsrc", url, size);
  ASSERT_EQ(ours.answers.size(), soup.answers.size());
  for (const auto& [query, theirs] : soup.answers) {
    SCOPED_TRACE(query);
    const std::string& mine = ours.answers.at(query);
    std::printf("[ info ] %-34s souphttpsrc: %s\n%-43s prefetchsrc: %s\n", query.c_str(),
                theirs.c_str(), "", mine.c_str());
    const auto intended = kIntended.find(query);
    if (intended == kIntended.end()) {
      EXPECT_EQ(mine, theirs) << "a difference not on the list of intended ones";
    } else {
      EXPECT_NE(mine, theirs) << "no longer differs: take it off the list (" << intended->second
                              << ")";
    }
  }
  // What the size is in, once the first answer told it.
  const std::string bytes = "TRUE bytes " + std::to_string(size);
  EXPECT_EQ(ours.answers.at("duration bytes"), bytes);
  EXPECT_EQ(ours.answers.at("duration time"), "FALSE") << "a demuxer takes TRUE for the truth";
  EXPECT_EQ(ours.answers.at("seeking bytes"), "TRUE bytes seekable 1 0.." + std::to_string(size));
  EXPECT_EQ(ours.answers.at("segment bytes"), "TRUE rate 1 bytes 0.." + std::to_string(size));
  EXPECT_EQ(ours.answers.at("scheduling"), "TRUE flags 5 min 1 max -1 align 0 modes push pull");
  // The size is told to the application as souphttpsrc tells it.
  EXPECT_EQ(ours.duration_changed, soup.duration_changed);
  EXPECT_EQ(ours.duration_changed, 1);
}

// ---- players: the discoverer and playbin, prefetchsrc ranked first -----------------

// The clips of tests/support/media/make_matrix.sh and the type an origin
// (nginx's mime.types) serves each with.
const std::pair<const char*, const char*> kMatrix[] = {
    {"clip.mkv", "video/x-matroska"},
    {"clip.webm", "video/webm"},
    {"clip.ts", "video/mp2t"},
    {"clip.avi", "video/x-msvideo"},
    {"clip.ogg", "video/ogg"},
    {"clip.mp3", "audio/mpeg"},
    {"clip.flac", "audio/flac"},
    {"clip.mp4", "video/mp4"},
    {"clip-noninterleaved.mp4", "video/mp4"},
};
constexpr int kMatrixSeconds = 6;

// Which source a playbin or discoverer made, and the rank that chose it.
class PlayersTest : public ElementTest {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::string out, err;
    matrix_made_ = run_command({PREFETCH_MAKE_MATRIX, dir_->path(), std::to_string(kMatrixSeconds)},
                               &out, &err) == 0;
    if (!matrix_made_) std::fprintf(stderr, "make_matrix.sh: %s\n", err.c_str());
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    ElementTest::SetUp();
    ASSERT_TRUE(matrix_made_) << "make_matrix.sh failed";
    factory_.reset(gst_element_factory_find("prefetchsrc"));
    ASSERT_NE(factory_, nullptr);
    old_rank_ = gst_plugin_feature_get_rank(GST_PLUGIN_FEATURE(factory_.get()));
    if (!gst_element_factory_find("souphttpsrc")) GTEST_SKIP() << "souphttpsrc is not installed";
  }
  void TearDown() override {
    if (factory_) gst_plugin_feature_set_rank(GST_PLUGIN_FEATURE(factory_.get()), old_rank_);
    ElementTest::TearDown();
  }
  // What GST_PLUGIN_FEATURE_RANK=prefetchsrc:MAX does (first = true), or
  // prefetchsrc below souphttpsrc.
  void rank_prefetchsrc_first(bool first) {
    gst_plugin_feature_set_rank(GST_PLUGIN_FEATURE(factory_.get()),
                                first ? G_MAXINT : GST_RANK_NONE);
  }
  static std::string clip(const std::string& name) { return dir_->file(name); }

  static TempDir* dir_;
  static bool matrix_made_;
  GstPtr<GstElementFactory> factory_;
  guint old_rank_ = 0;
};
TempDir* PlayersTest::dir_ = nullptr;
bool PlayersTest::matrix_made_ = false;

struct Discovered {
  GstDiscovererResult result = GST_DISCOVERER_ERROR;
  std::string error;
  GstClockTime duration = GST_CLOCK_TIME_NONE;
  std::string source;  // the factory the discoverer's uridecodebin made
};

void on_discoverer_source(GstDiscoverer*, GstElement* source, gpointer user_data) {
  GstElementFactory* f = gst_element_get_factory(source);
  *static_cast<std::string*>(user_data) = f ? GST_OBJECT_NAME(f) : "(none)";
}

Discovered discover(const std::string& uri) {
  Discovered out;
  GError* err = nullptr;
  GstPtr<GstDiscoverer> d(gst_discoverer_new(30 * GST_SECOND, &err));
  if (!d) {
    out.error = describe(err);
    g_clear_error(&err);
    return out;
  }
  g_signal_connect(d.get(), "source-setup", G_CALLBACK(on_discoverer_source), &out.source);
  GstDiscovererInfo* info = gst_discoverer_discover_uri(d.get(), uri.c_str(), &err);
  if (err) out.error = describe(err);
  g_clear_error(&err);
  if (info) {
    out.result = gst_discoverer_info_get_result(info);
    out.duration = gst_discoverer_info_get_duration(info);
    g_object_unref(info);
  }
  if (out.source == "souphttpsrc") prefetch_test_release_after_souphttpsrc(d.release());
  return out;
}

std::string seconds(GstClockTime t) {
  if (!GST_CLOCK_TIME_IS_VALID(t)) return "unknown";
  char text[32];
  std::snprintf(text, sizeof text, "%.3f s", static_cast<double>(t) / GST_SECOND);
  return text;
}

// A duration a demuxer estimates (MPEG-TS from the PCRs it has seen so far)
// depends on how far it had parsed when asked: the same source can give a
// different answer from run to run (a VBR MP3 without a Xing header gave
// 5.679 s, 5.929 s or 6.010 s through either source, and filesrc too). So
// each source is asked kRuns times, turn about, and the medians compared.
constexpr int kRuns = 3;

GstClockTime median_duration(std::vector<GstClockTime> d) {
  // GST_CLOCK_TIME_NONE (unknown) sorts last: the furthest off.
  std::sort(d.begin(), d.end());
  return d[d.size() / 2];
}

std::string all_seconds(const std::vector<GstClockTime>& d) {
  std::string out;
  for (GstClockTime t : d) out += (out.empty() ? "" : ", ") + seconds(t);
  return out;
}

// Every clip of the matrix, discovered through prefetchsrc (ranked first),
// souphttpsrc and filesrc: through prefetchsrc the duration is known in
// every run, and its median within 1 % of filesrc's or no further off than
// souphttpsrc's median. Two estimates within 1 % of the length of each
// other count as the same answer (the tolerance the first clause grants):
// for two runs of one estimate a strict comparison is a coin toss.
//
// The origin holds each clip's last 64 KiB back from an answer that began
// at its start: on a local origin the whole clip would otherwise be in
// queue2 before the demuxer asked for its end, and oggdemux (GStreamer
// 1.22) takes the EOS of that first pass, racing its own seek, for the end
// of its duration scan and reports the duration of the bytes it had read
// (0.53 s of 6 s, with either source, at random). A ranged request that
// starts near the end (the demuxer's) is answered at once, as a slow origin
// would answer it before the first pass got there.
TEST_F(PlayersTest, TheDiscovererKnowsEveryClipsDurationAsFilesrcDoes) {
  set_deadline(900s);
  TestServer server;
  constexpr uint64_t kTail = 64 * 1024;
  for (const auto& [name, type] : kMatrix) {
    const std::string path = std::string("/") + name;
    ASSERT_TRUE(server.add_file_from_disk(path, clip(name), type)) << name;
    Behavior b;
    b.stall_after_bytes =
        static_cast<uint64_t>(std::ifstream(clip(name), std::ios::ate | std::ios::binary).tellg()) -
        kTail;
    b.stall_duration = std::chrono::milliseconds(10000);
    server.set_behavior(path, b);
  }
  std::printf("[ info ] %-24s %-9s %-30s %-30s\n", "clip", "filesrc", "souphttpsrc (each run)",
              "prefetchsrc (each run)");
  for (const auto& [name, type] : kMatrix) {
    SCOPED_TRACE(name);
    const std::string url = server.url(std::string("/") + name);
    GError* err = nullptr;
    gchar* file_uri = gst_filename_to_uri(clip(name).c_str(), &err);
    ASSERT_NE(file_uri, nullptr) << describe(err);
    const Discovered file = discover(file_uri);
    g_free(file_uri);
    ASSERT_EQ(file.result, GST_DISCOVERER_OK) << file.error;
    ASSERT_TRUE(GST_CLOCK_TIME_IS_VALID(file.duration));
    std::vector<GstClockTime> soup, ours;
    for (int run = 0; run < kRuns; ++run) {
      rank_prefetchsrc_first(false);
      const Discovered s = discover(url);
      EXPECT_EQ(s.source, "souphttpsrc");
      soup.push_back(s.duration);
      rank_prefetchsrc_first(true);
      const Discovered o = discover(url);
      EXPECT_EQ(o.source, "prefetchsrc");
      EXPECT_EQ(o.result, GST_DISCOVERER_OK) << "run " << run << ": " << o.error;
      EXPECT_TRUE(GST_CLOCK_TIME_IS_VALID(o.duration)) << "run " << run << ": unknown";
      ours.push_back(o.duration);
    }
    std::printf("[ info ] %-24s %-9s %-30s %-30s\n", name, seconds(file.duration).c_str(),
                all_seconds(soup).c_str(), all_seconds(ours).c_str());
    const GstClockTime ours_median = median_duration(ours);
    const GstClockTime soup_median = median_duration(soup);
    ASSERT_TRUE(GST_CLOCK_TIME_IS_VALID(ours_median)) << "unknown through prefetchsrc";
    const double want = static_cast<double>(file.duration);
    const double same = 0.01 * want;
    const double off = std::fabs(static_cast<double>(ours_median) - want);
    const double soup_off = GST_CLOCK_TIME_IS_VALID(soup_median)
                                ? std::fabs(static_cast<double>(soup_median) - want)
                                : std::numeric_limits<double>::infinity();
    EXPECT_TRUE(off <= same || off <= soup_off + same)
        << "median through prefetchsrc " << seconds(ours_median) << ", filesrc "
        << seconds(file.duration) << ", souphttpsrc " << seconds(soup_median);
  }
}

struct PlaybinView {
  std::string source;
  gint64 duration = -1;
  std::string seeking;     // "seekable S..E" in time
  gint64 after_seek = -1;  // position once a seek to the middle prerolled
};

void on_playbin_source(GstElement*, GstElement* source, gpointer user_data) {
  GstElementFactory* f = gst_element_get_factory(source);
  *static_cast<std::string*>(user_data) = f ? GST_OBJECT_NAME(f) : "(none)";
}

// A player's first look: playbin prerolled, its duration and seeking range,
// then an accurate seek to the middle and the position it prerolled at.
PlaybinView look_with_playbin(const std::string& uri) {
  PlaybinView v;
  GstPtr<GstElement> playbin(gst_element_factory_make("playbin", nullptr));
  EXPECT_NE(playbin, nullptr);
  if (!playbin) return v;
  gst_object_ref_sink(playbin.get());
  g_object_set(playbin.get(), "uri", uri.c_str(), "video-sink",
               gst_element_factory_make("fakesink", nullptr), "audio-sink",
               gst_element_factory_make("fakesink", nullptr), nullptr);
  g_signal_connect(playbin.get(), "source-setup", G_CALLBACK(on_playbin_source), &v.source);
  EXPECT_EQ(set_state_and_wait(playbin.get(), GST_STATE_PAUSED, 30s), GST_STATE_CHANGE_SUCCESS);
  gst_element_query_duration(playbin.get(), GST_FORMAT_TIME, &v.duration);
  GstQuery* q = gst_query_new_seeking(GST_FORMAT_TIME);
  if (gst_element_query(playbin.get(), q)) {
    gboolean seekable;
    gint64 start, end;
    gst_query_parse_seeking(q, nullptr, &seekable, &start, &end);
    v.seeking = "seekable " + std::to_string(seekable) + " " + std::to_string(start) + ".." +
                std::to_string(end);
  }
  gst_query_unref(q);
  if (v.duration > 0) {
    EXPECT_TRUE(gst_element_seek_simple(
        playbin.get(), GST_FORMAT_TIME,
        static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE), v.duration / 2));
    EXPECT_EQ(set_state_and_wait(playbin.get(), GST_STATE_PAUSED, 30s), GST_STATE_CHANGE_SUCCESS);
    gst_element_query_position(playbin.get(), GST_FORMAT_TIME, &v.after_seek);
  }
  EXPECT_EQ(gst_element_set_state(playbin.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  if (v.source == "souphttpsrc") prefetch_test_release_after_souphttpsrc(playbin.release());
  return v;
}

TEST_F(PlayersTest, PlaybinShowsTheDurationAndSeeksAsWithSouphttpsrc) {
  TestServer server;
  ASSERT_TRUE(server.add_file_from_disk("/clip.mp4", clip("clip.mp4"), "video/mp4"));
  const std::string url = server.url("/clip.mp4");
  rank_prefetchsrc_first(false);
  const PlaybinView soup = look_with_playbin(url);
  rank_prefetchsrc_first(true);
  const PlaybinView ours = look_with_playbin(url);
  std::printf("[ info ] souphttpsrc: duration %" PRId64 ", %s, at %" PRId64
              " after the seek\n[ info ] prefetchsrc: duration %" PRId64 ", %s, at %" PRId64
              " after the seek\n",
              soup.duration, soup.seeking.c_str(), soup.after_seek, ours.duration,
              ours.seeking.c_str(), ours.after_seek);
  EXPECT_EQ(soup.source, "souphttpsrc");
  EXPECT_EQ(ours.source, "prefetchsrc");
  EXPECT_GT(soup.duration, (kMatrixSeconds - 1) * GST_SECOND);
  EXPECT_EQ(ours.duration, soup.duration);
  EXPECT_EQ(ours.seeking, soup.seeking);
  EXPECT_EQ(ours.seeking, "seekable 1 0.." + std::to_string(soup.duration));
  EXPECT_EQ(ours.after_seek, soup.after_seek);
  EXPECT_EQ(ours.after_seek, soup.duration / 2) << "an accurate seek prerolls where it was asked";
}

}  // namespace
}  // namespace element_test
}  // namespace prefetch
