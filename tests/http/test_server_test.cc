// Self-tests of the TestServer (tests/support), with a plain synchronous
// SoupSession as the client: the fault tests of the core are only as good as
// the faults the server really produces.
#include "test_server.h"

#include <glib/gstdio.h>
#include <gtest/gtest.h>
#include <libsoup/soup.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace prefetch {
namespace testing {
namespace {

using std::chrono::milliseconds;

struct Reply {
  int status = 0;
  std::vector<uint8_t> body;
  std::string error;                           // transport error, empty if none
  std::map<std::string, std::string> headers;  // lower-case names
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

class Client {
 public:
  Client() {
    session_ = soup_session_new_with_options("proxy-resolver", nullptr, "max-conns-per-host", 16,
                                             "max-conns", 32, nullptr);
  }
  ~Client() { g_object_unref(session_); }

  Reply get(const std::string& url, std::vector<std::pair<std::string, std::string>> headers = {},
            const char* method = "GET") {
    Reply r;
    SoupMessage* msg = soup_message_new(method, url.c_str());
    soup_message_add_flags(msg, SOUP_MESSAGE_NO_REDIRECT);
    for (const auto& [k, v] : headers) {
      soup_message_headers_replace(soup_message_get_request_headers(msg), k.c_str(), v.c_str());
    }
    GError* error = nullptr;
    GBytes* body = soup_session_send_and_read(session_, msg, nullptr, &error);
    r.status = static_cast<int>(soup_message_get_status(msg));
    if (error) {
      r.error = error->message;
      g_error_free(error);
    }
    if (body) {
      gsize n;
      auto* p = static_cast<const uint8_t*>(g_bytes_get_data(body, &n));
      r.body.assign(p, p + n);
      g_bytes_unref(body);
    }
    SoupMessageHeadersIter iter;
    const char *name, *value;
    soup_message_headers_iter_init(&iter, soup_message_get_response_headers(msg));
    while (soup_message_headers_iter_next(&iter, &name, &value)) {
      gchar* lower = g_ascii_strdown(name, -1);
      r.headers[lower] = value;
      g_free(lower);
    }
    g_object_unref(msg);
    return r;
  }

  SoupSession* session() { return session_; }

 private:
  SoupSession* session_;
};

std::vector<uint8_t> slice(const std::vector<uint8_t>& v, size_t begin, size_t end) {
  return std::vector<uint8_t>(v.begin() + begin, v.begin() + end);
}

class TestServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unset_proxy_env();
    data_ = make_pattern(100000, 3);
    server_.add_file("/f", data_);
  }
  TestServer server_;
  Client client_;
  std::vector<uint8_t> data_;
};

TEST(PatternTest, DeterministicAndPrefixStable) {
  EXPECT_EQ(make_pattern(1000, 5), make_pattern(1000, 5));
  EXPECT_NE(make_pattern(1000, 5), make_pattern(1000, 6));
  auto long_one = make_pattern(1003, 5);
  EXPECT_EQ(slice(long_one, 0, 1000), make_pattern(1000, 5));
  EXPECT_EQ(sha256_hex("abc", 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(nullptr, 0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_F(TestServerTest, FullGet) {
  Reply r = client_.get(server_.url("/f"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, data_);
  EXPECT_EQ(r.header("accept-ranges"), "bytes");
  EXPECT_FALSE(r.header("etag").empty());
  EXPECT_FALSE(r.header("last-modified").empty());
  EXPECT_EQ(r.header("content-length"), "100000");
  auto log = server_.requests();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].path, "/f");
  EXPECT_EQ(log[0].status, 200);
  EXPECT_TRUE(server_.wait_idle());
  log = server_.requests();
  EXPECT_TRUE(log[0].finished);
  EXPECT_TRUE(log[0].complete);
  EXPECT_EQ(log[0].bytes_sent, 100000u);
  EXPECT_FALSE(log[0].client_gone);
}

TEST_F(TestServerTest, Ranges) {
  constexpr size_t kUnchecked = SIZE_MAX;
  // A Range header, the answer's status, its Content-Range (nullptr:
  // unchecked) and its body as data_[begin, end) (kUnchecked: unchecked).
  const struct {
    const char* range;
    int status;
    const char* content_range;
    size_t begin, end;
  } cases[] = {
      {"bytes=10-19", 206, "bytes 10-19/100000", 10, 20},
      {"bytes=99990-", 206, nullptr, 99990, 100000},
      {"bytes=99990-200000", 206, "bytes 99990-99999/100000", kUnchecked, kUnchecked},
      {"bytes=-5", 206, nullptr, 99995, 100000},
      {"bytes=100000-", 416, "bytes */100000", 0, 0},  // an empty body
      {"bytes=0-1,5-6", 200, nullptr, 0, 100000},      // the whole file
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.range);
    Reply r = client_.get(server_.url("/f"), {{"Range", c.range}});
    EXPECT_EQ(r.status, c.status);
    if (c.content_range) {
      EXPECT_EQ(r.header("content-range"), c.content_range);
    }
    if (c.begin != kUnchecked) {
      EXPECT_EQ(r.body, slice(data_, c.begin, c.end));
    }
  }

  auto log = server_.requests();
  ASSERT_EQ(log.size(), 6u);
  EXPECT_EQ(log[0].range, "bytes=10-19");
  EXPECT_EQ(log[0].first_byte, 10u);
}

TEST_F(TestServerTest, EmptyFileAndHead) {
  server_.add_file("/empty", {});
  Reply r = client_.get(server_.url("/empty"));
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body.empty());
  r = client_.get(server_.url("/empty"), {{"Range", "bytes=0-"}});
  EXPECT_EQ(r.status, 416);
  EXPECT_EQ(r.header("content-range"), "bytes */0");
  r = client_.get(server_.url("/f"), {}, "HEAD");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-length"), "100000");
  EXPECT_TRUE(r.body.empty());
  r = client_.get(server_.url("/missing"));
  EXPECT_EQ(r.status, 404);
}

TEST_F(TestServerTest, StatusForFirstN) {
  Behavior b;
  b.status = 503;
  b.status_count = 2;
  server_.set_behavior("/f", b);
  EXPECT_EQ(client_.get(server_.url("/f")).status, 503);
  EXPECT_EQ(client_.get(server_.url("/f")).status, 503);
  Reply r = client_.get(server_.url("/f"), {{"Range", "bytes=0-9"}});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, slice(data_, 0, 10));

  b = Behavior();
  b.status = 429;
  b.retry_after_seconds = 3;
  server_.set_behavior("/f", b);
  r = client_.get(server_.url("/f"));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.header("retry-after"), "3");
  EXPECT_EQ(client_.get(server_.url("/f")).status, 429);
}

TEST_F(TestServerTest, IgnoreRangeAndAcceptRangesNone) {
  Behavior b;
  b.ignore_range = true;
  b.accept_ranges_none = true;
  server_.set_behavior("/f", b);
  Reply r = client_.get(server_.url("/f"), {{"Range", "bytes=10-19"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, data_);
  EXPECT_EQ(r.header("accept-ranges"), "none");
  EXPECT_TRUE(r.header("content-range").empty());
}

TEST_F(TestServerTest, CutConnection) {
  Behavior b;
  b.cut_every = 2;
  b.cut_after_bytes = 1000;
  server_.set_behavior("/f", b);
  Reply r = client_.get(server_.url("/f"), {{"Range", "bytes=0-49999"}});
  EXPECT_FALSE(r.error.empty());  // premature end of body
  r = client_.get(server_.url("/f"), {{"Range", "bytes=0-49999"}});
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.body, slice(data_, 0, 50000));
  r = client_.get(server_.url("/f"), {{"Range", "bytes=0-49999"}});
  EXPECT_FALSE(r.error.empty());
  ASSERT_TRUE(server_.wait_idle());
  auto log = server_.requests();
  ASSERT_EQ(log.size(), 3u);
  EXPECT_TRUE(log[0].cut);
  EXPECT_EQ(log[0].bytes_sent, 1000u);
  EXPECT_FALSE(log[0].complete);
  EXPECT_FALSE(log[1].cut);
  EXPECT_TRUE(log[1].complete);
  EXPECT_TRUE(log[2].cut);
}

TEST_F(TestServerTest, CutAtZeroBytes) {
  Behavior b;
  b.cut_every = 1;
  b.cut_count = 1;
  server_.set_behavior("/f", b);
  Reply r = client_.get(server_.url("/f"));
  EXPECT_FALSE(r.error.empty());
  r = client_.get(server_.url("/f"));
  EXPECT_EQ(r.body, data_);
  ASSERT_TRUE(server_.wait_idle());
  EXPECT_EQ(server_.requests()[0].bytes_sent, 0u);
  EXPECT_TRUE(server_.requests()[0].cut);
}

TEST_F(TestServerTest, EtagChangesAfterN) {
  Behavior b;
  b.etag_change_after = 1;
  server_.set_behavior("/f", b);
  Reply a = client_.get(server_.url("/f"), {{"Range", "bytes=0-0"}});
  Reply c = client_.get(server_.url("/f"), {{"Range", "bytes=0-0"}});
  EXPECT_FALSE(a.header("etag").empty());
  EXPECT_NE(a.header("etag"), c.header("etag"));
  EXPECT_NE(a.header("last-modified"), c.header("last-modified"));
  // If-Range with the old validator: the full (new) body; If-Match: 412.
  Reply d =
      client_.get(server_.url("/f"), {{"Range", "bytes=0-9"}, {"If-Range", a.header("etag")}});
  EXPECT_EQ(d.status, 200);
  Reply e =
      client_.get(server_.url("/f"), {{"Range", "bytes=0-9"}, {"If-Match", a.header("etag")}});
  EXPECT_EQ(e.status, 412);
  Reply f =
      client_.get(server_.url("/f"), {{"Range", "bytes=0-9"}, {"If-Range", c.header("etag")}});
  EXPECT_EQ(f.status, 206);
}

TEST_F(TestServerTest, BodyLengthDelta) {
  Behavior b;
  b.body_length_delta = 5;
  server_.set_behavior("/f", b);
  Reply r = client_.get(server_.url("/f"), {{"Range", "bytes=0-9"}});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.header("content-range"), "bytes 0-9/100000");
  EXPECT_EQ(r.body, slice(data_, 0, 15));
  b.body_length_delta = -4;
  server_.set_behavior("/f", b);
  r = client_.get(server_.url("/f"), {{"Range", "bytes=0-9"}});
  EXPECT_EQ(r.header("content-range"), "bytes 0-9/100000");
  EXPECT_EQ(r.body, slice(data_, 0, 6));
}

TEST_F(TestServerTest, DelayRateAndStall) {
  Behavior b;
  b.first_byte_delay = block_delay_schedule(50000, {milliseconds(300), milliseconds(0)});
  server_.set_behavior("/f", b);
  auto t0 = TestClock::now();
  client_.get(server_.url("/f"), {{"Range", "bytes=0-99"}});
  EXPECT_GE(TestClock::now() - t0, milliseconds(300));
  client_.get(server_.url("/f"), {{"Range", "bytes=50000-50099"}});
  ASSERT_TRUE(server_.wait_idle());
  auto log = server_.requests();
  ASSERT_EQ(log.size(), 2u);
  ASSERT_TRUE(log[0].first_byte_time);
  EXPECT_GE(*log[0].first_byte_time - log[0].start, milliseconds(300));

  b = Behavior();
  b.rate_bytes_per_sec = 200000;  // 100 kB in about 0.5 s
  b.chunk_bytes = 10000;
  server_.set_behavior("/f", b);
  t0 = TestClock::now();
  Reply r = client_.get(server_.url("/f"));
  EXPECT_EQ(r.body, data_);
  EXPECT_GE(TestClock::now() - t0, milliseconds(400));

  b = Behavior();
  b.stall_after_bytes = 5000;
  b.stall_duration = milliseconds(300);
  server_.set_behavior("/f", b);
  t0 = TestClock::now();
  r = client_.get(server_.url("/f"));
  EXPECT_EQ(r.body, data_);
  EXPECT_GE(TestClock::now() - t0, milliseconds(300));
}

TEST_F(TestServerTest, MaxInFlight) {
  Behavior b;
  // Clients are made first and released together, so on a loaded machine
  // the three requests still overlap within the delay.
  b.first_byte_delay = fixed_delay(milliseconds(2000));
  server_.set_behavior("/f", b);
  std::mutex m;
  std::condition_variable cv;
  int ready = 0;
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      Client c;
      {
        std::unique_lock<std::mutex> lock(m);
        ++ready;
        cv.notify_all();
        cv.wait(lock, [&] { return ready == 3; });
      }
      EXPECT_EQ(c.get(server_.url("/f")).status, 200);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(server_.max_in_flight(), 3u);
  // The server finishes its bookkeeping just after the client has its answer.
  EXPECT_TRUE(server_.wait_idle(std::chrono::seconds(5)));
  EXPECT_EQ(server_.in_flight(), 0u);
  server_.reset_log();
  EXPECT_EQ(server_.max_in_flight(), 0u);
  EXPECT_EQ(server_.request_count(), 0u);
}

TEST_F(TestServerTest, ClientGoneIsLogged) {
  Behavior b;
  b.rate_bytes_per_sec = 50000;
  b.chunk_bytes = 5000;
  server_.set_behavior("/f", b);
  {
    Client c;
    SoupMessage* msg = soup_message_new("GET", server_.url("/f").c_str());
    GError* error = nullptr;
    GInputStream* in = soup_session_send(c.session(), msg, nullptr, &error);
    ASSERT_NE(in, nullptr);
    char buf[100];
    gsize got = 0;
    g_input_stream_read_all(in, buf, sizeof buf, &got, nullptr, nullptr);
    EXPECT_EQ(got, sizeof buf);
    g_input_stream_close(in, nullptr, nullptr);
    g_object_unref(in);
    g_object_unref(msg);
    soup_session_abort(c.session());
  }
  ASSERT_TRUE(server_.wait_idle(std::chrono::seconds(5)));
  auto log = server_.requests();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_TRUE(log[0].client_gone);
  EXPECT_LT(log[0].bytes_sent, 100000u);
}

TEST_F(TestServerTest, RedirectAndBasicAuth) {
  server_.add_redirect("/r", "/f", 302);
  Reply r = client_.get(server_.url("/r"));
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(r.header("location"), server_.url("/f"));

  server_.add_file("/secret", data_);
  server_.require_basic_auth("/secret", "u", "p");
  r = client_.get(server_.url("/secret"));
  EXPECT_EQ(r.status, 401);
  r = client_.get(server_.url("/secret"), {{"Authorization", "Basic dTpw"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, data_);
  auto log = server_.requests("/secret");
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[1].header("authorization").value_or(""), "Basic dTpw");
}

TEST_F(TestServerTest, DiskFile) {
  gchar* path = nullptr;
  gint fd = g_file_open_tmp("test-server-XXXXXX", &path, nullptr);
  ASSERT_GE(fd, 0);
  close(fd);
  ASSERT_TRUE(g_file_set_contents(path, reinterpret_cast<const char*>(data_.data()),
                                  static_cast<gssize>(data_.size()), nullptr));
  EXPECT_TRUE(server_.add_file_from_disk("/disk", path));
  EXPECT_FALSE(server_.add_file_from_disk("/nope", "/nonexistent/file"));
  Reply r = client_.get(server_.url("/disk"), {{"Range", "bytes=5-9"}});
  EXPECT_EQ(r.body, slice(data_, 5, 10));
  g_unlink(path);
  g_free(path);
}

}  // namespace
}  // namespace testing
}  // namespace prefetch
