// The fixture of the core's HTTP tests: a SoupOrigin + Prefetcher against
// the in-process TestServer, a hang guard, and reading to the end.
//
// Timeouts here are hang guards only (a Watchdog sets the prefetcher
// flushing and the test fails); no assertion depends on how fast a machine is.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "http_names.h"
#include "prefetch/prefetcher.h"
#include "prefetch/soup_origin.h"
#include "test_server.h"

namespace prefetch {
namespace {

inline Logger test_logger() {
  if (!g_getenv("PREFETCH_TEST_LOG")) return Logger();
  return Logger([](LogLevel level, const std::string& line) {
    std::fprintf(stderr, "[prefetch %d] %s\n", static_cast<int>(level), line.c_str());
  });
}

// Sets the prefetcher flushing if the test body takes longer than `limit`,
// so a hang becomes a failure instead of a stuck suite.
class Watchdog {
 public:
  Watchdog(Prefetcher* p, std::chrono::milliseconds limit) : p_(p) {
    thread_ = std::thread([this, limit] {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
        fired_ = true;
        lock.unlock();
        p_->set_flushing(true);
      }
    });
  }
  ~Watchdog() { stop(); }
  // Returns true if the watchdog fired.
  bool stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    return fired_;
  }

 private:
  Prefetcher* p_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool fired_ = false;
  std::thread thread_;
};

// A prefetcher under its own hang guard.
class Guarded {
 public:
  Guarded(std::unique_ptr<Prefetcher> p, milliseconds limit)
      : p_(std::move(p)), dog_(p_.get(), limit) {}
  Prefetcher* operator->() const { return p_.get(); }
  Prefetcher& operator*() const { return *p_; }
  // Stops the guard: false if it fired.
  bool in_time() { return !dog_.stop(); }
  // Closes the prefetcher and stops the guard: false if the guard fired.
  bool close_in_time() {
    p_->close();
    return in_time();
  }

 private:
  std::unique_ptr<Prefetcher> p_;
  Watchdog dog_;
};

struct Fetched {
  ReadStatus status = ReadStatus::kOk;  // the status that ended the loop
  Error error;
  std::vector<uint8_t> bytes;
  bool order_ok = true;  // every chunk started where the previous ended
  Stats stats;           // the engine's, at the end (fetch() only)
  std::optional<uint64_t> size;
};

// Reads from `offset` until EOS, an error, flushing, or `limit` bytes.
inline Fetched read_until_end(Prefetcher& p, uint64_t offset, size_t length, ReadMode mode,
                              uint64_t limit = UINT64_MAX) {
  Fetched f;
  uint64_t at = offset;
  while (f.bytes.size() < limit) {
    ReadResult r = p.read(at, length, mode);
    f.status = r.status;
    if (r.status != ReadStatus::kOk) {
      f.error = r.error;
      break;
    }
    if (r.chunk.size == 0 || r.chunk.offset != at) {
      f.order_ok = false;
      break;
    }
    f.bytes.insert(f.bytes.end(), r.chunk.data, r.chunk.data + r.chunk.size);
    at += r.chunk.size;
  }
  return f;
}

inline std::vector<uint8_t> slice(const std::vector<uint8_t>& v, uint64_t begin, uint64_t end) {
  return std::vector<uint8_t>(v.begin() + begin, v.begin() + end);
}

// The first byte of a "bytes=a-..." Range header, or -1.
inline int64_t range_first(const RequestRecord& r) {
  unsigned long long a;
  if (std::sscanf(r.range.c_str(), "bytes=%llu-", &a) == 1) return static_cast<int64_t>(a);
  return -1;
}

// The fetch reached EOS and delivered exactly `data`.
inline void expect_exact(const Fetched& f, const std::vector<uint8_t>& data) {
  EXPECT_EQ(f.status, ReadStatus::kEos) << to_string(f.error.kind) << " " << f.error.message;
  EXPECT_EQ(testing::sha256_hex(f.bytes), testing::sha256_hex(data));
}

// The fetch ended in an error of `kind` with `http_status` (0: none).
inline void expect_error(const Fetched& f, ErrorKind kind, int http_status) {
  EXPECT_EQ(f.status, ReadStatus::kError);
  EXPECT_EQ(f.error.kind, kind) << to_string(f.error.kind) << " " << f.error.message;
  EXPECT_EQ(f.error.http_status, http_status);
}

// The chunk of `r` is exactly `data` from `begin` to `end`.
inline void expect_chunk(const ReadResult& r, const std::vector<uint8_t>& data, uint64_t begin,
                         uint64_t end) {
  EXPECT_EQ(std::vector<uint8_t>(r.chunk.data, r.chunk.data + r.chunk.size),
            slice(data, begin, end));
}

// Answers with `status` (and an empty body) to the first `count` requests
// (-1: every request).
inline Behavior answering(int status, int count = -1) {
  Behavior b;
  b.status = status;
  b.status_count = count;
  return b;
}

// Cuts every `every`-th answer after `after_bytes` body bytes, `count`
// answers at the most (-1: no limit).
inline Behavior cutting(unsigned every, uint64_t after_bytes, int count = -1) {
  Behavior b;
  b.cut_every = every;
  b.cut_after_bytes = after_bytes;
  b.cut_count = count;
  return b;
}

// Sends nothing for `duration` after `after_bytes` body bytes, in `count`
// answers.
inline Behavior stalling(uint64_t after_bytes, milliseconds duration, int count) {
  Behavior b;
  b.stall_after_bytes = after_bytes;
  b.stall_duration = duration;
  b.stall_count = count;
  return b;
}

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override { testing::unset_proxy_env(); }

  HttpOptions options(const std::string& path, unsigned max_connections = 8) {
    HttpOptions o;
    o.uri = server_.url(path);
    o.timeout_seconds = 10;
    o.max_connections = max_connections;
    return o;
  }

  static Config config(uint64_t block_size, unsigned concurrency, int retries = 3) {
    Config c;
    c.block_size = block_size;
    c.concurrency = concurrency;
    c.retry.retries = retries;
    c.retry.backoff_base = milliseconds(5);
    c.retry.backoff_max = milliseconds(50);
    return c;
  }
  // One request per block: for tests that script or count the origin's
  // answers block by block (spans would carry several blocks per answer).
  static Config block_config(uint64_t block_size, unsigned concurrency, int retries = 3) {
    Config c = config(block_size, concurrency, retries);
    c.max_request_bytes = block_size;
    return c;
  }

  // `size` bytes of pattern `seed` served at `path` (as `b` says); returns them.
  std::vector<uint8_t> serve(const std::string& path, uint64_t size, uint32_t seed) {
    auto data = make_pattern(size, seed);
    server_.add_file(path, data);
    return data;
  }
  std::vector<uint8_t> serve(const std::string& path, uint64_t size, uint32_t seed,
                             const Behavior& b) {
    auto data = serve(path, size, seed);
    server_.set_behavior(path, b);
    return data;
  }

  // How many requests for `path` the server logged that `pred` holds for.
  template <typename Pred>
  size_t count_requests(const std::string& path, Pred pred) {
    const auto log = server_.requests(path);
    return static_cast<size_t>(std::count_if(log.begin(), log.end(), pred));
  }

  std::unique_ptr<Prefetcher> make(const HttpOptions& o, const Config& c) {
    auto origin = std::make_shared<SoupOrigin>(o, test_logger());
    return std::make_unique<Prefetcher>(origin, c, test_logger());
  }
  Guarded guarded(const HttpOptions& o, const Config& c, milliseconds limit) {
    return Guarded(make(o, c), limit);
  }

  // open + read everything, under a watchdog.
  Fetched fetch(const HttpOptions& o, const Config& c, size_t read_length = 64 * kKiB,
                ReadMode mode = ReadMode::kAvailable, milliseconds guard = seconds(20)) {
    Guarded p = guarded(o, c, guard);
    Fetched f;
    ReadResult opened = p->open(0);
    if (opened.status != ReadStatus::kOk) {
      f.status = opened.status;
      f.error = opened.error;
    } else {
      f = read_until_end(*p, 0, read_length, mode);
    }
    f.stats = p->stats();
    f.size = p->size();
    EXPECT_TRUE(p.close_in_time()) << "hang guard fired";
    return f;
  }

  TestServer server_;
};

}  // namespace
}  // namespace prefetch
