// What the hub tests share (hub_test.cc, hub_streams_test.cc): threads and
// client sockets counted in /proc, a listener that collects one fetch's body,
// and the fixture (a TestServer; no I/O thread before or after a test).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http_names.h"
#include "prefetch/host_budget.h"
#include "prefetch/prefetcher.h"
#include "prefetch/soup_origin.h"
#include "proc_net_tcp.h"
#include "proc_threads.h"
#include "test_server.h"

namespace prefetch {
namespace hubtest {

// The process's threads but GLib's own process-wide workers, which GIO
// starts on first use and keeps or lets go as it likes (the proxy
// resolver's first lookup starts "gmain", "dconf worker" and "pool" ones).
inline std::vector<std::string> own_threads() {
  std::vector<std::string> names = testing::live_thread_names();
  names.erase(std::remove_if(names.begin(), names.end(),
                             [](const std::string& n) {
                               return n == "gmain" || n == "gdbus" || n == "dconf worker" ||
                                      n.rfind("pool", 0) == 0;
                             }),
              names.end());
  return names;
}

inline std::string describe(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// The hubs' I/O threads (named "prefetch-io").
inline size_t io_threads() {
  auto names = testing::live_thread_names();
  return static_cast<size_t>(std::count(names.begin(), names.end(), "prefetch-io"));
}

// This process's client sockets connected to 127.0.0.1:`port` (the test
// server runs in this process; its own ends have `port` as local port).
inline size_t client_sockets(uint16_t port) {
  std::map<std::string, unsigned> remote_of_inode;
  for (const testing::TcpSocketEntry& e : testing::proc_net_tcp())
    if (e.state == 1) remote_of_inode[e.inode] = e.remote_port;  // ESTABLISHED
  size_t n = 0;
  for (const std::string& inode : testing::own_socket_inodes()) {
    auto it = remote_of_inode.find(inode);
    if (it != remote_of_inode.end() && it->second == port) ++n;
  }
  return n;
}

// Collects one fetch's body; wait() until on_done.
class Collect : public FetchListener {
 public:
  bool on_head(const ResponseHead& head) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = head.status;
    return true;
  }
  uint8_t* write_area(size_t* length) override {
    bytes_.resize(used_ + 64 * kKiB);
    *length = 64 * kKiB;
    return bytes_.data() + used_;
  }
  void on_data(size_t n) override { used_ += n; }
  void on_sent(const SentInfo& info) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++sent_count_;
    sent_ = info;
    sent_before_head_ = status_ == 0;
  }
  void on_done(const Error* error) override {
    std::lock_guard<std::mutex> lock(mu_);
    bytes_.resize(used_);
    ok_ = error == nullptr;
    if (error) kind_ = error->kind;
    done_ = true;
    cv_.notify_all();
  }
  // False if on_done did not come within `limit`.
  bool wait(milliseconds limit = seconds(20)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, limit, [this] { return done_; });
  }
  bool ok() const { return ok_; }
  ErrorKind kind() const { return kind_; }
  int status() const { return status_; }
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  // What on_sent said (the last of them), how often it came, and whether
  // it came before on_head.
  const SentInfo& sent() const { return sent_; }
  unsigned sent_count() const { return sent_count_; }
  bool sent_before_head() const { return sent_before_head_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool ok_ = false;
  ErrorKind kind_ = ErrorKind::kCancelled;
  int status_ = 0;
  size_t used_ = 0;
  std::vector<uint8_t> bytes_;
  SentInfo sent_;
  unsigned sent_count_ = 0;
  bool sent_before_head_ = false;
};

inline RangeRequest range(uint64_t begin, uint64_t end) {
  RangeRequest r;
  r.begin = begin;
  r.end = end;
  return r;
}

// Starts a fetch of bytes [0, size) from `origin` into `c`, which outlives it.
inline void start_whole(Origin& origin, uint64_t size, Collect& c) {
  origin.start(range(0, size), std::shared_ptr<FetchListener>(&c, [](FetchListener*) {}));
}

class HubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::unset_proxy_env();
    ASSERT_EQ(io_threads(), 0u) << "an earlier test left an I/O thread";
    ASSERT_EQ(SoupOrigin::hubs(), 0u);
  }
  void TearDown() override {
    EXPECT_EQ(io_threads(), 0u);
    EXPECT_EQ(SoupOrigin::hubs(), 0u);
  }

  HttpOptions options(const std::string& path) {
    HttpOptions o;
    o.uri = server_.url(path);
    o.timeout_seconds = 10;
    o.max_connections = 8;
    return o;
  }
  static Config config(uint64_t block_size, unsigned concurrency) {
    Config c;
    c.block_size = block_size;
    c.concurrency = concurrency;
    c.max_request_bytes = block_size;  // one request per block
    c.retry.retries = 3;
    c.retry.backoff_base = milliseconds(5);
    c.retry.backoff_max = milliseconds(50);
    return c;
  }
  // Everything through `p` from 0, as a sha256 ("" on an error).
  static std::string read_all(Prefetcher& p) {
    if (p.open(0).status != ReadStatus::kOk) return "";
    std::vector<uint8_t> bytes;
    uint64_t at = 0;
    for (;;) {
      ReadResult r = p.read(at, 64 * kKiB, ReadMode::kAvailable);
      if (r.status == ReadStatus::kEos) break;
      if (r.status != ReadStatus::kOk || r.chunk.offset != at) return "";
      bytes.insert(bytes.end(), r.chunk.data, r.chunk.data + r.chunk.size);
      at += r.chunk.size;
    }
    return sha256_hex(bytes);
  }

  TestServer server_;
};

}  // namespace hubtest
}  // namespace prefetch
