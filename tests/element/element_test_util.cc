#include "element_test_util.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "test_server.h"

namespace prefetch {
namespace element_test {

std::string describe(const GError* error) {
  if (!error) return "(no error)";
  std::ostringstream out;
  out << g_quark_to_string(error->domain) << "/" << error->code << ": "
      << (error->message ? error->message : "");
  return out.str();
}

Behavior status_behavior(int status, int count, int retry_after) {
  Behavior b;
  b.status = status;
  b.status_count = count;
  b.retry_after_seconds = retry_after;
  return b;
}

Behavior first_byte_behavior(prefetch::testing::DelayFunc delay) {
  Behavior b;
  b.first_byte_delay = std::move(delay);
  return b;
}

// --- watchdog --------------------------------------------------------------------

Watchdog::Watchdog(std::chrono::seconds deadline) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "?";
  thread_ = std::thread([this, deadline, name] {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!cv_.wait_for(lock, deadline, [this] { return done_; })) {
      std::fprintf(stderr, "\n*** WATCHDOG: %s did not finish within %lld s (hang) ***\n",
                   name.c_str(), static_cast<long long>(deadline.count()));
      std::fflush(stderr);
      std::_Exit(3);
    }
  });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ElementTest::SetUp() { watchdog_ = std::make_unique<Watchdog>(60s); }

void ElementTest::TearDown() { watchdog_.reset(); }

void ElementTest::set_deadline(std::chrono::seconds deadline) {
  watchdog_.reset();
  watchdog_ = std::make_unique<Watchdog>(deadline);
}

// --- elements and pipelines --------------------------------------------------------

namespace {
template <typename T>
T stats_field(GstElement* src, const char* field,
              gboolean (*get)(const GstStructure*, const gchar*, T*)) {
  GstStructure* stats = nullptr;
  g_object_get(src, "stats", &stats, nullptr);
  T value = 0;
  if (stats) {
    get(stats, field, &value);
    gst_structure_free(stats);
  }
  return value;
}
}  // namespace

guint64 stats_uint64(GstElement* src, const char* field) {
  return stats_field<guint64>(src, field, gst_structure_get_uint64);
}

guint stats_uint(GstElement* src, const char* field) {
  return stats_field<guint>(src, field, gst_structure_get_uint);
}

GstElement* make_prefetchsrc() {
  GstElement* src = gst_element_factory_make("prefetchsrc", nullptr);
  EXPECT_NE(src, nullptr) << "no prefetchsrc factory (GST_PLUGIN_PATH=" PREFETCH_PLUGIN_DIR ")";
  return src;
}

GstPtr<GstElement> make_owned_prefetchsrc() {
  GstElement* src = make_prefetchsrc();
  if (src) gst_object_ref_sink(src);
  return GstPtr<GstElement>(src);
}

GstElement* make_prefetchsrc(const std::string& location) {
  GstElement* src = make_prefetchsrc();
  if (src) g_object_set(src, "location", location.c_str(), nullptr);
  return src;
}

void set_prop(GstElement* element, const char* name, const std::string& value) {
  ASSERT_NE(g_object_class_find_property(G_OBJECT_GET_CLASS(element), name), nullptr)
      << "no property " << name;
  gst_util_set_object_arg(G_OBJECT(element), name, value.c_str());
}

GstStateChangeReturn set_state_and_wait(GstElement* pipeline, GstState state,
                                        std::chrono::milliseconds timeout) {
  GstStateChangeReturn ret = gst_element_set_state(pipeline, state);
  if (ret == GST_STATE_CHANGE_FAILURE) return ret;
  if (ret == GST_STATE_CHANGE_ASYNC) {
    ret = gst_element_get_state(pipeline, nullptr, nullptr,
                                static_cast<GstClockTime>(timeout.count()) * GST_MSECOND);
    if (ret == GST_STATE_CHANGE_ASYNC) return GST_STATE_CHANGE_FAILURE;
  }
  return ret;
}

MessagePtr wait_error_or_eos(GstElement* pipeline, std::chrono::milliseconds timeout) {
  GstPtr<GstBus> bus(gst_element_get_bus(pipeline));
  GstMessage* msg = gst_bus_timed_pop_filtered(
      bus.get(), static_cast<GstClockTime>(timeout.count()) * GST_MSECOND,
      static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_EOS));
  return MessagePtr(msg);
}

ErrorPtr error_of(GstMessage* message) {
  if (!message || GST_MESSAGE_TYPE(message) != GST_MESSAGE_ERROR) return nullptr;
  GError* error = nullptr;
  gst_message_parse_error(message, &error, nullptr);
  return ErrorPtr(error);
}

namespace {

struct HashState {
  GChecksum* checksum = g_checksum_new(G_CHECKSUM_SHA256);
  uint64_t bytes = 0;
  uint64_t buffers = 0;
  std::string offset_problem;
  ~HashState() { g_checksum_free(checksum); }
};

GstFlowReturn on_new_sample(GstAppSink* sink, gpointer user_data) {
  auto* state = static_cast<HashState*>(user_data);
  return pull_mapped(sink, [state](GstBuffer* buffer, const GstMapInfo& map) {
    if (state->offset_problem.empty()) {
      guint64 offset = GST_BUFFER_OFFSET(buffer);
      guint64 offset_end = GST_BUFFER_OFFSET_END(buffer);
      if (offset != state->bytes || offset_end != state->bytes + map.size || map.size == 0) {
        std::ostringstream out;
        out << "buffer #" << state->buffers << ": OFFSET=" << offset << " OFFSET_END=" << offset_end
            << " size=" << map.size << ", expected OFFSET=" << state->bytes
            << " OFFSET_END=" << state->bytes + map.size << " and size > 0";
        state->offset_problem = out.str();
      }
    }
    g_checksum_update(state->checksum, map.data, static_cast<gssize>(map.size));
    state->bytes += map.size;
    state->buffers++;
  });
}

}  // namespace

GstFlowReturn pull_mapped(GstAppSink* sink,
                          const std::function<void(GstBuffer*, const GstMapInfo&)>& use) {
  SamplePtr sample(gst_app_sink_pull_sample(sink));
  if (!sample) return GST_FLOW_ERROR;
  GstBuffer* buffer = gst_sample_get_buffer(sample.get());
  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) return GST_FLOW_ERROR;
  use(buffer, map);
  gst_buffer_unmap(buffer, &map);
  return GST_FLOW_OK;
}

std::unique_ptr<TransferResult> run_transfer(GstElement* src, std::chrono::milliseconds timeout) {
  auto result = std::make_unique<TransferResult>();
  GstPtr<GstElement> pipeline(gst_pipeline_new(nullptr));
  GstElement* sink = gst_element_factory_make("appsink", nullptr);
  g_object_set(sink, "sync", FALSE, "max-buffers", 8u, "drop", FALSE, nullptr);
  gst_bin_add_many(GST_BIN(pipeline.get()), src, sink, nullptr);
  EXPECT_TRUE(gst_element_link(src, sink));

  HashState state;
  GstAppSinkCallbacks callbacks = {};
  callbacks.new_sample = on_new_sample;
  gst_app_sink_set_callbacks(GST_APP_SINK(sink), &callbacks, &state, nullptr);
  // Warnings are kept as they are posted (the waits below drop them).
  struct Warnings {
    std::mutex mu;
    std::vector<std::string> texts;
  } warnings;
  GstPtr<GstBus> bus(gst_element_get_bus(pipeline.get()));
  gst_bus_set_sync_handler(
      bus.get(),
      [](GstBus*, GstMessage* m, gpointer data) {
        if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_WARNING) {
          GError* e = nullptr;
          gst_message_parse_warning(m, &e, nullptr);
          auto* w = static_cast<Warnings*>(data);
          std::lock_guard<std::mutex> lock(w->mu);
          w->texts.push_back(e ? e->message : "");
          g_clear_error(&e);
        }
        return GST_BUS_PASS;
      },
      &warnings, nullptr);

  gst_element_set_state(pipeline.get(), GST_STATE_PLAYING);
  MessagePtr msg = wait_error_or_eos(pipeline.get(), timeout);
  // The stats at the end, or where it hangs (what a failure prints).
  const auto stats = [src] {
    GstStructure* s = nullptr;
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(src), "stats"))
      g_object_get(src, "stats", &s, nullptr);
    return s;
  };
  if (!msg) {
    result->timed_out = true;
    result->stats = stats();
  } else if (GST_MESSAGE_TYPE(msg.get()) == GST_MESSAGE_EOS) {
    result->eos = true;
    result->stats = stats();
  } else {
    result->error = error_of(msg.get());
  }
  EXPECT_NE(gst_element_set_state(pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_FAILURE);
  result->bytes = state.bytes;
  result->buffers = state.buffers;
  result->sha256 = g_checksum_get_string(state.checksum);
  result->offset_problem = state.offset_problem;
  gst_bus_set_sync_handler(bus.get(), nullptr, nullptr, nullptr);
  std::lock_guard<std::mutex> lock(warnings.mu);
  result->warnings = warnings.texts;
  return result;
}

void expect_exact_transfer(const TransferResult& result, const std::vector<uint8_t>& data) {
  ASSERT_FALSE(result.timed_out) << "no EOS or ERROR in time, got " << result.bytes << " of "
                                 << data.size() << " bytes";
  ASSERT_TRUE(result.eos) << describe(result.error.get());
  EXPECT_EQ(result.bytes, data.size());
  EXPECT_EQ(result.sha256, sha256_hex(data)) << "received bytes differ from the file";
  EXPECT_EQ(result.offset_problem, "");
}

SeekPipeline make_seek_pipeline(GstElement* src, guint max_buffers) {
  SeekPipeline p;
  p.pipeline.reset(GST_ELEMENT(gst_object_ref_sink(gst_pipeline_new(nullptr))));
  p.src = src;
  p.sink = gst_element_factory_make("appsink", "sink");
  g_object_set(p.sink, "sync", FALSE, "max-buffers", max_buffers, "drop", FALSE, nullptr);
  gst_bin_add_many(GST_BIN(p.pipeline.get()), src, p.sink, nullptr);
  EXPECT_TRUE(gst_element_link(src, p.sink));
  return p;
}

uint16_t unused_port() {
  GError* error = nullptr;
  GSocket* socket =
      g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  if (!socket) {
    ADD_FAILURE() << describe(error);
    g_clear_error(&error);
    return 1;
  }
  GInetAddress* loopback = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
  GSocketAddress* any = g_inet_socket_address_new(loopback, 0);
  uint16_t port = 1;
  if (g_socket_bind(socket, any, FALSE, &error)) {
    GSocketAddress* bound = g_socket_get_local_address(socket, &error);
    if (bound) {
      port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
      g_object_unref(bound);
    }
  }
  g_clear_error(&error);
  g_object_unref(any);
  g_object_unref(loopback);
  g_socket_close(socket, nullptr);
  g_object_unref(socket);
  return port;
}

TempDir::TempDir() {
  GError* error = nullptr;
  gchar* dir = g_dir_make_tmp("prefetch-element-XXXXXX", &error);
  if (!dir) {
    ADD_FAILURE() << describe(error);
    g_clear_error(&error);
    return;
  }
  path_ = dir;
  g_free(dir);
}

TempDir::~TempDir() {
  if (!path_.empty()) run_command({"rm", "-rf", path_});
}

bool write_file(const std::string& filename, const std::vector<uint8_t>& data) {
  GError* error = nullptr;
  bool ok = g_file_set_contents(filename.c_str(), reinterpret_cast<const gchar*>(data.data()),
                                static_cast<gssize>(data.size()), &error);
  if (!ok) {
    ADD_FAILURE() << describe(error);
    g_clear_error(&error);
  }
  return ok;
}

std::vector<std::string> read_lines(const std::string& filename) {
  std::vector<std::string> lines;
  std::ifstream in(filename);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

int run_command(const std::vector<std::string>& argv, std::string* out, std::string* err) {
  std::vector<gchar*> args;
  for (const auto& a : argv) args.push_back(const_cast<gchar*>(a.c_str()));
  args.push_back(nullptr);
  gchar* std_out = nullptr;
  gchar* std_err = nullptr;
  gint status = 0;
  GError* error = nullptr;
  bool ran = g_spawn_sync(nullptr, args.data(), nullptr, G_SPAWN_SEARCH_PATH, nullptr, nullptr,
                          &std_out, &std_err, &status, &error);
  if (!ran) {
    if (err) *err = describe(error);
    g_clear_error(&error);
    return -1;
  }
  if (out) *out = std_out ? std_out : "";
  if (err) *err = std_err ? std_err : "";
  g_free(std_out);
  g_free(std_err);
  if (!WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

const std::vector<uint8_t>& pattern(size_t size) {
  static std::mutex mutex;
  static std::map<size_t, std::vector<uint8_t>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(size);
  if (it == cache.end()) {
    it = cache.emplace(size, prefetch::testing::make_pattern(size, 11)).first;
  }
  return it->second;
}

std::string check_buffer(GstBuffer* buffer, const std::vector<uint8_t>& data,
                         uint64_t expected_offset, size_t max_compare) {
  std::ostringstream problem;
  if (GST_BUFFER_OFFSET(buffer) != expected_offset) {
    problem << "OFFSET=" << GST_BUFFER_OFFSET(buffer) << ", expected " << expected_offset << "; ";
  }
  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) return "unmappable buffer";
  if (map.size == 0) problem << "empty buffer; ";
  if (expected_offset + map.size > data.size()) {
    problem << "buffer of " << map.size << " bytes at " << expected_offset << " runs past the end ("
            << data.size() << "); ";
  } else {
    size_t n = std::min(map.size, max_compare);
    if (std::memcmp(map.data, data.data() + expected_offset, n) != 0) {
      size_t i = 0;
      while (i < n && map.data[i] == data[expected_offset + i]) ++i;
      problem << "bytes differ from the file at offset " << expected_offset + i << "; ";
    }
  }
  if (GST_BUFFER_OFFSET_END(buffer) != expected_offset + map.size) {
    problem << "OFFSET_END=" << GST_BUFFER_OFFSET_END(buffer) << ", expected "
            << expected_offset + map.size << "; ";
  }
  gst_buffer_unmap(buffer, &map);
  return problem.str();
}

void expect_data_after_seek(const SeekPipeline& p, const std::vector<uint8_t>& data,
                            uint64_t offset, size_t compare, uint64_t* next) {
  uint64_t expected = offset;
  *next = expected;
  const uint64_t want = std::min<uint64_t>(offset + compare, data.size());
  while (expected < want) {
    SamplePtr sample(gst_app_sink_try_pull_sample(GST_APP_SINK(p.sink), 10 * GST_SECOND));
    ASSERT_NE(sample, nullptr) << "no buffer at " << expected << " after the seek"
                               << (gst_app_sink_is_eos(GST_APP_SINK(p.sink)) ? " (EOS)" : "");
    GstBuffer* buffer = gst_sample_get_buffer(sample.get());
    if (expected == offset) {
      const GstSegment* segment = gst_sample_get_segment(sample.get());
      ASSERT_NE(segment, nullptr);
      EXPECT_EQ(segment->format, GST_FORMAT_BYTES);
      EXPECT_EQ(segment->start, offset);
      ASSERT_EQ(GST_BUFFER_OFFSET(buffer), offset) << "first buffer after the seek";
    }
    ASSERT_EQ(check_buffer(buffer, data, expected, compare), "");
    expected += gst_buffer_get_size(buffer);
    *next = expected;
  }
}

gboolean flushing_seek(GstElement* pipeline, uint64_t offset) {
  return gst_element_seek_simple(
      pipeline, GST_FORMAT_BYTES,
      static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE),
      static_cast<gint64>(offset));
}

void expect_transfer_error(const TransferResult& result, GQuark domain, gint code,
                           std::chrono::milliseconds timeout) {
  EXPECT_FALSE(result.timed_out) << "neither ERROR nor EOS within " << timeout.count() << " ms";
  EXPECT_FALSE(result.eos) << "expected an error, got EOS after " << result.bytes << " bytes";
  EXPECT_NE(result.error, nullptr);
  if (result.error) {
    EXPECT_TRUE(g_error_matches(result.error.get(), domain, code))
        << "expected " << g_quark_to_string(domain) << "/" << code << ", got "
        << describe(result.error.get());
  }
}

void expect_transfer_error_in(const TransferResult& result, GQuark domain) {
  ASSERT_FALSE(result.timed_out) << "neither ERROR nor EOS";
  EXPECT_FALSE(result.eos) << "expected an error, got EOS after " << result.bytes << " bytes";
  ASSERT_NE(result.error, nullptr);
  EXPECT_EQ(result.error->domain, domain) << describe(result.error.get());
}

pid_t fork_player(const std::string& url, const std::string& dir, const std::string& out) {
  // Everything the child needs is made before fork: it only execs.
  std::vector<std::string> args = {"element_tests", "--play-with-disk-cache", url, dir};
  if (!out.empty()) args.push_back(out);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  return pid;
}

guint64 stats_uint64_field(const GstStructure* stats, const char* field) {
  guint64 v = 0;
  if (stats) gst_structure_get_uint64(stats, field, &v);
  return v;
}

bool nginx_installed() {
  return access("/usr/sbin/nginx", X_OK) == 0 || std::getenv("NGINX") != nullptr;
}

void NginxFixture::start_nginx() {
  ASSERT_TRUE(write_file(root_.file("five.bin"), pattern(kNginxFileSize)));
  std::string out, err;
  ASSERT_EQ(run_command({PREFETCH_NGINX_SH, "start", root_.path(), state_.path()}, &out, &err), 0)
      << err;
  started_ = true;
  std::istringstream in(out);
  std::string word;
  while (in >> word) {
    if (word.rfind("http=", 0) == 0) http_port_ = std::stoi(word.substr(5));
    if (word.rfind("https=", 0) == 0) https_port_ = std::stoi(word.substr(6));
    if (word.rfind("ca=", 0) == 0) ca_ = word.substr(3);
  }
  ASSERT_GT(http_port_, 0) << "nginx.sh printed: " << out;
  ASSERT_GT(https_port_, 0) << "nginx.sh printed: " << out;
}

void NginxFixture::TearDown() {
  if (started_) run_command({PREFETCH_NGINX_SH, "stop", state_.path()});
  ElementTest::TearDown();
}

void RunningNginxTest::SetUp() {
  NginxFixture::SetUp();
  if (!nginx_installed()) GTEST_SKIP() << "nginx is not installed (tests/run installs it)";
  start_nginx();
}

void RankedFirstTest::SetUp() {
  ElementTest::SetUp();
  factory_.reset(gst_element_factory_find("prefetchsrc"));
  ASSERT_NE(factory_, nullptr);
  old_rank_ = gst_plugin_feature_get_rank(GST_PLUGIN_FEATURE(factory_.get()));
  gst_plugin_feature_set_rank(GST_PLUGIN_FEATURE(factory_.get()), G_MAXINT);
}

void RankedFirstTest::TearDown() {
  if (factory_) gst_plugin_feature_set_rank(GST_PLUGIN_FEATURE(factory_.get()), old_rank_);
  ElementTest::TearDown();
}

}  // namespace element_test
}  // namespace prefetch
