// iradio-mode and compress, the two souphttpsrc properties for
// live Icecast streams and gzip-encoded bodies:
//  - an in-process Icecast-like server (200, no length, a body that never
//    ends, icy-metaint 8192 and a new StreamTitle in every metadata block)
//    through `prefetchsrc ! icydemux ! fakesink`: x-icy caps, the titles in
//    order, the station tags, and a stop that ends the endless stream at once;
//  - nginx with gzip on through `prefetchsrc compress=true ! appsink`: the
//    decoded bytes exactly, from one gzip-encoded answer to a request without
//    Range; compress=false on the same location still reads ranges.
#include <arpa/inet.h>
#include <gst/gst.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "element_test_util.h"
#include "test_server.h"

namespace prefetch {
namespace element_test {
namespace {

constexpr int kMetaint = 8192;

// A continuous MPEG-1 Layer III stream (128 kbit/s, 44.1 kHz: 417-byte
// frames, silent payload), so icydemux's typefinding finds audio/mpeg.
uint8_t mp3_byte(uint64_t offset) {
  static const uint8_t kHeader[4] = {0xFF, 0xFB, 0x90, 0x64};
  const uint64_t in_frame = offset % 417;
  return in_frame < 4 ? kHeader[in_frame] : 0;
}

// The metadata block after audio block `n` (1-based): a length byte, then
// StreamTitle='Title n'; padded with zeros to a multiple of 16 bytes.
std::string metadata_block(unsigned n) {
  std::string text = "StreamTitle='Title " + std::to_string(n) + "';";
  const size_t units = (text.size() + 15) / 16;
  text.resize(units * 16, '\0');
  return std::string(1, static_cast<char>(units)) + text;
}

// An Icecast-like origin on 127.0.0.1:0: every GET gets 200 with no length
// and a body that never ends. Icy metadata is interleaved (and icy-metaint
// sent) only when the request asked for it with "icy-metadata: 1", as
// Icecast does. One thread per connection; the writes block when the client
// stops reading (TCP holds the server), and end when it closes. With a rate
// (bytes a second) the body goes out in real time, 250 bytes at a time, as a
// live station sends it.
class IcecastServer {
 public:
  explicit IcecastServer(uint64_t rate = 0) : rate_(rate) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(listen_fd_, 16) != 0) {
      ADD_FAILURE() << "cannot listen: " << strerror(errno);
      return;
    }
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~IcecastServer() {
    stopping_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    close(listen_fd_);
    if (acceptor_.joinable()) acceptor_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : connections_) t.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/stream"; }

  // Connections whose body is still being written.
  int open_connections() const { return open_; }
  int connections() const { return accepted_; }
  // The request heads received so far (lower-cased).
  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void accept_loop() {
    while (!stopping_) {
      int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      ++accepted_;
      ++open_;
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(fd);
      connections_.emplace_back([this, fd] {
        serve(fd);
        --open_;
      });
    }
  }

  bool send_all(int fd, const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  void serve(int fd) {
    std::string head;
    char c;
    while (head.find("\r\n\r\n") == std::string::npos && recv(fd, &c, 1, 0) == 1)
      head += static_cast<char>(g_ascii_tolower(c));
    // A connection closed before its request was written (a cancelled
    // request's, say) sent no request: only complete heads are requests.
    const bool request = head.find("\r\n\r\n") != std::string::npos;
    if (request) {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(head);
    }
    const bool icy = head.find("\r\nicy-metadata: 1\r\n") != std::string::npos;
    std::string reply =
        "HTTP/1.0 200 OK\r\nContent-Type: audio/mpeg\r\n"
        "icy-name: Test Radio\r\nicy-genre: Jazz\r\nicy-url: http://radio.example/\r\n";
    if (icy) reply += "icy-metaint: " + std::to_string(kMetaint) + "\r\n";
    reply += "\r\n";
    bool ok = request && send_all(fd, reply);
    uint64_t audio = 0;
    const auto start = std::chrono::steady_clock::now();
    for (unsigned block = 1; ok && !stopping_; ++block) {
      std::string bytes(kMetaint, '\0');
      for (auto& b : bytes) b = static_cast<char>(mp3_byte(audio++));
      if (icy) bytes += metadata_block(block);
      if (!rate_) {
        ok = send_all(fd, bytes);
        continue;
      }
      for (size_t at = 0; ok && at < bytes.size() && !stopping_; at += 250) {
        ok = send_all(fd, bytes.substr(at, 250));
        sent_ += std::min<size_t>(250, bytes.size() - at);
        std::this_thread::sleep_until(start + std::chrono::microseconds(sent_ * 1000000 / rate_));
      }
    }
    close(fd);
    std::lock_guard<std::mutex> lock(mu_);
    fds_.erase(std::remove(fds_.begin(), fds_.end(), fd), fds_.end());
  }

  const uint64_t rate_;
  uint64_t sent_ = 0;  // paced bytes (one connection at a time is paced)
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> open_{0}, accepted_{0};
  mutable std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::string> requests_;
  std::vector<std::thread> connections_;  // joined in the destructor
  std::thread acceptor_;
};

class IradioTest : public ElementTest {};

// The station tags and titles a pipeline's bus carried, in order.
struct SeenTags {
  std::vector<std::string> titles;  // consecutive duplicates dropped
  std::string organization, genre, location;
};

void collect_tags(GstMessage* msg, SeenTags* seen) {
  GstTagList* tags = nullptr;
  gst_message_parse_tag(msg, &tags);
  gchar* s = nullptr;
  if (gst_tag_list_get_string(tags, GST_TAG_TITLE, &s)) {
    if (seen->titles.empty() || seen->titles.back() != s) seen->titles.push_back(s);
    g_free(s);
  }
  if (gst_tag_list_get_string(tags, GST_TAG_ORGANIZATION, &s)) {
    seen->organization = s;
    g_free(s);
  }
  if (gst_tag_list_get_string(tags, GST_TAG_GENRE, &s)) {
    seen->genre = s;
    g_free(s);
  }
  if (gst_tag_list_get_string(tags, GST_TAG_LOCATION, &s)) {
    seen->location = s;
    g_free(s);
  }
  gst_tag_list_unref(tags);
}

TEST_F(IradioTest, IcydemuxGetsTheTitlesInOrderAndStopEndsTheStreamAtOnce) {
  if (!gst_element_factory_find("icydemux")) GTEST_SKIP() << "icydemux is not installed";
  IcecastServer server;
  const std::string launch = "prefetchsrc name=src iradio-mode=true location=" + server.url() +
                             " ! icydemux ! fakesink sync=false";
  GError* err = nullptr;
  GstPtr<GstElement> pipeline(gst_parse_launch(launch.c_str(), &err));
  ASSERT_NE(pipeline, nullptr) << describe(err);
  ASSERT_EQ(err, nullptr) << describe(err);
  GstPtr<GstElement> src(gst_bin_get_by_name(GST_BIN(pipeline.get()), "src"));
  ASSERT_NE(gst_element_set_state(pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);

  // Until five titles came (or an error, EOS or 20 s).
  SeenTags seen;
  GstPtr<GstBus> bus(gst_element_get_bus(pipeline.get()));
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (seen.titles.size() < 5 && std::chrono::steady_clock::now() < deadline) {
    MessagePtr msg(gst_bus_timed_pop_filtered(
        bus.get(), 100 * GST_MSECOND,
        static_cast<GstMessageType>(GST_MESSAGE_TAG | GST_MESSAGE_ERROR | GST_MESSAGE_EOS)));
    if (!msg) continue;
    ASSERT_NE(GST_MESSAGE_TYPE(msg.get()), GST_MESSAGE_ERROR)
        << describe(error_of(msg.get()).get());
    ASSERT_NE(GST_MESSAGE_TYPE(msg.get()), GST_MESSAGE_EOS) << "an endless stream ended";
    collect_tags(msg.get(), &seen);
  }
  ASSERT_GE(seen.titles.size(), 5u) << "icydemux posted too few titles";
  for (size_t i = 0; i < seen.titles.size(); ++i)
    EXPECT_EQ(seen.titles[i], "Title " + std::to_string(i + 1)) << "title #" << i;
  EXPECT_EQ(seen.organization, "Test Radio");
  EXPECT_EQ(seen.genre, "Jazz");
  EXPECT_EQ(seen.location, "http://radio.example/");

  // The caps souphttpsrc gives an Icecast answer.
  GstPtr<GstPad> pad(gst_element_get_static_pad(src.get(), "src"));
  GstCaps* caps = gst_pad_get_current_caps(pad.get());
  ASSERT_NE(caps, nullptr);
  const GstStructure* st = gst_caps_get_structure(caps, 0);
  EXPECT_STREQ(gst_structure_get_name(st), "application/x-icy");
  gint interval = 0;
  EXPECT_TRUE(gst_structure_get_int(st, "metadata-interval", &interval));
  EXPECT_EQ(interval, kMetaint);
  gst_caps_unref(caps);
  for (const auto& head : server.requests())
    EXPECT_NE(head.find("\r\nicy-metadata: 1\r\n"), std::string::npos) << head;

  // Stopping the endless stream: at once, and nothing left reading it. A
  // stop that waited for the stream would never return, one that waited out
  // the read timeout would take 15 s; 5 s is "at once" that a sanitized build
  // on a loaded machine still meets (idle: a few ms).
  const auto before = std::chrono::steady_clock::now();
  EXPECT_EQ(gst_element_set_state(pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  const auto took = std::chrono::steady_clock::now() - before;
  EXPECT_LT(took, 5s) << "set_state(NULL) took "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms";
  const auto closed_by = std::chrono::steady_clock::now() + 5s;
  while (server.open_connections() > 0 && std::chrono::steady_clock::now() < closed_by)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(server.open_connections(), 0) << "a request still reads the stream after stop";
  std::string titles;
  for (const auto& t : seen.titles) titles += (titles.empty() ? "" : ", ") + t;
  std::printf(
      "[ info ] titles: %s; caps metadata-interval %d; set_state(NULL) %lld ms\n", titles.c_str(),
      interval,
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
}

// A 16 kbit/s station (2000 B/s, 250 B at a time) played for 20 s with a
// 2 s timeout: a live stream slower than any file is not a stall. No
// error, no stall, no retry, one connection all along.
TEST_F(IradioTest, ASixteenKbitStationPlaysTwentySecondsWithoutAStall) {
  IcecastServer server(2000);
  const std::string launch = "prefetchsrc name=src timeout=2 location=" + server.url() +
                             " ! fakesink name=sink sync=false";
  GError* err = nullptr;
  GstPtr<GstElement> pipeline(gst_parse_launch(launch.c_str(), &err));
  ASSERT_NE(pipeline, nullptr) << describe(err);
  GstPtr<GstElement> src(gst_bin_get_by_name(GST_BIN(pipeline.get()), "src"));
  ASSERT_NE(gst_element_set_state(pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstPtr<GstBus> bus(gst_element_get_bus(pipeline.get()));
  MessagePtr msg(
      gst_bus_timed_pop_filtered(bus.get(), 20 * GST_SECOND,
                                 static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_EOS)));
  ASSERT_EQ(msg, nullptr) << (GST_MESSAGE_TYPE(msg.get()) == GST_MESSAGE_ERROR
                                  ? describe(error_of(msg.get()).get())
                                  : std::string("EOS from an endless stream"));
  GstStructure* stats = nullptr;
  g_object_get(src.get(), "stats", &stats, nullptr);
  ASSERT_NE(stats, nullptr);
  guint64 stalls = 1, retries = 1, delivered = 0;
  gst_structure_get_uint64(stats, "stalls", &stalls);
  gst_structure_get_uint64(stats, "retries", &retries);
  gst_structure_get_uint64(stats, "bytes-delivered", &delivered);
  gst_structure_free(stats);
  EXPECT_EQ(gst_element_set_state(pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  EXPECT_EQ(stalls, 0u);
  EXPECT_EQ(retries, 0u);
  EXPECT_EQ(server.connections(), 1);
  // 20 s at 2000 B/s; a slow machine may have taken less of it, never more.
  EXPECT_GT(delivered, 0u);
  EXPECT_LE(delivered, 2000u * 21 + 8192);
  std::printf("[ info ] 20 s of a 16 kbit/s station: %llu bytes, %llu stalls, %llu retries\n",
              static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(stalls),
              static_cast<unsigned long long>(retries));
}

// Without iradio-mode the server sends no metadata: the caps stay unset
// (not x-icy) and the bytes are the plain audio stream.
TEST_F(IradioTest, IradioModeOffAsksForNoMetadata) {
  IcecastServer server;
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  g_object_set(src, "location", server.url().c_str(), "iradio-mode", FALSE, nullptr);
  gboolean iradio = TRUE;
  g_object_get(src, "iradio-mode", &iradio, nullptr);
  EXPECT_FALSE(iradio);
  GstPtr<GstElement> pipeline(gst_pipeline_new(nullptr));
  GstElement* sink = gst_element_factory_make("appsink", nullptr);
  gst_bin_add_many(GST_BIN(pipeline.get()), src, sink, nullptr);
  ASSERT_TRUE(gst_element_link(src, sink));
  g_object_set(sink, "sync", FALSE, nullptr);
  ASSERT_NE(gst_element_set_state(pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  SamplePtr sample(gst_app_sink_try_pull_sample(GST_APP_SINK(sink), 10 * GST_SECOND));
  ASSERT_NE(sample, nullptr);
  GstCaps* caps = gst_sample_get_caps(sample.get());
  EXPECT_TRUE(caps == nullptr ||
              !gst_structure_has_name(gst_caps_get_structure(caps, 0), "application/x-icy"));
  GstMapInfo map;
  GstBuffer* buf = gst_sample_get_buffer(sample.get());
  ASSERT_TRUE(gst_buffer_map(buf, &map, GST_MAP_READ));
  for (size_t i = 0; i < std::min<size_t>(map.size, 3 * kMetaint); ++i) {
    if (map.data[i] != mp3_byte(i)) {
      ADD_FAILURE() << "byte " << i << " is not audio";
      break;
    }
  }
  gst_buffer_unmap(buf, &map);
  EXPECT_EQ(gst_element_set_state(pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  for (const auto& head : server.requests())
    EXPECT_EQ(head.find("icy-metadata"), std::string::npos) << head;
}

// ---- compress, against nginx with gzip on ----

class CompressTest : public RunningNginxTest {
 protected:
  void SetUp() override {
    RunningNginxTest::SetUp();
    if (done_or_skipped()) return;
    // Several MiB of text that gzip shrinks a lot.
    for (unsigned i = 0; text_.size() < (6u << 20) + 12345; ++i) {
      const std::string line = "line " + std::to_string(i) +
                               ": the quick brown fox jumps over the lazy dog " +
                               std::to_string(i * 7919u % 100003u) + "\n";
      text_.insert(text_.end(), line.begin(), line.end());
    }
    ASSERT_TRUE(write_file(root_.file("text.txt"), text_));
  }

  // Lines of gzip.log: the /gzip/ location's requests.
  std::vector<std::string> gzip_log() const { return read_lines(state_.path() + "/gzip.log"); }

  std::vector<uint8_t> text_;
};

bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST_F(CompressTest, CompressGivesTheDecodedBytesFromOneGzipAnswer) {
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  g_object_set(src, "location", http("/gzip/text.txt").c_str(), "compress", TRUE, "block-size",
               static_cast<guint64>(256 * 1024), nullptr);
  ASSERT_NO_FATAL_FAILURE(expect_exact_transfer(*run_transfer(src, 60s), text_));
  const auto log = gzip_log();
  std::string all;
  for (const auto& l : log) all += l + "\n";
  ASSERT_EQ(log.size(), 1u) << "one request for the whole body:\n" << all;
  EXPECT_TRUE(has(log[0], "\" 200 ")) << all;
  EXPECT_TRUE(has(log[0], "range=\"-\"")) << "no Range with compress:\n" << all;
  EXPECT_TRUE(has(log[0], "accept=\"gzip")) << all;
  EXPECT_TRUE(has(log[0], "encoding=\"gzip\"")) << "nginx did not gzip the answer:\n" << all;
}

// compress=false on the same location: identity asked, nothing encoded,
// the body read in ranges as always. Requests of four blocks
// (max-request-size): with automatic spans nginx gives the whole body to the
// first request, and "several ranges" would be one.
TEST_F(CompressTest, WithoutCompressTheSameLocationIsReadInRanges) {
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  g_object_set(src, "location", http("/gzip/text.txt").c_str(), "block-size",
               static_cast<guint64>(256 * 1024), "max-request-size",
               static_cast<guint64>(4 * 256 * 1024), nullptr);
  auto result = run_transfer(src, 60s);
  ASSERT_FALSE(result->timed_out);
  ASSERT_TRUE(result->eos) << describe(result->error.get());
  EXPECT_EQ(result->sha256, sha256_hex(text_));
  int ranged = 0;
  std::string all;
  for (const auto& l : gzip_log()) {
    all += l + "\n";
    if (has(l, "\" 206 ") && has(l, "accept=\"identity\"") && has(l, "encoding=\"-\"")) ++ranged;
  }
  EXPECT_GE(ranged, 2) << all;
}

}  // namespace
}  // namespace element_test
}  // namespace prefetch
