#include "engine_fixture.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

namespace prefetch::testing {

// A stuck test fails (the watchdog sets the engine flushing, which wakes
// every wait) within this, under ctest's 120 s per test.
constexpr std::chrono::seconds kWatchdog{90};

Config small_config(Schedule schedule, unsigned concurrency) {
  Config c;
  c.block_size = kB;
  c.concurrency = concurrency;
  c.schedule = schedule;
  c.retry.backoff_base = milliseconds(2);
  c.retry.backoff_max = milliseconds(20);
  c.max_request_bytes = kB;
  return c;
}

Logger test_logger() {
  if (!std::getenv("PREFETCH_TEST_LOG")) return Logger();
  return Logger(
      [](LogLevel, const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); },
      LogLevel::kDebug);
}

Drained read_to_end(Prefetcher& p, uint64_t offset, size_t length, ReadMode mode,
                    microseconds pause) {
  Drained d;
  for (;;) {
    ReadResult r = p.read(offset, length, mode);
    if (r.status != ReadStatus::kOk) {
      d.last = r;
      return d;
    }
    if (r.chunk.offset != offset || r.chunk.size == 0 || r.chunk.size > length || !r.chunk.data ||
        !r.chunk.owner) {
      ADD_FAILURE() << "bad chunk at " << offset << ": offset " << r.chunk.offset << " size "
                    << r.chunk.size;
      d.offsets_ok = false;
      d.last = r;
      return d;
    }
    d.bytes.insert(d.bytes.end(), r.chunk.data, r.chunk.data + r.chunk.size);
    offset += r.chunk.size;
    if (pause.count()) std::this_thread::sleep_for(pause);
  }
}

std::vector<uint8_t> bytes_of(const ReadResult& r) {
  if (!r.chunk.data) return {};
  return std::vector<uint8_t>(r.chunk.data, r.chunk.data + r.chunk.size);
}

uint64_t checksum(const std::vector<uint8_t>& v) {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : v) h = (h ^ b) * 1099511628211ull;
  return h;
}

LogLines::LogLines(std::string prefix, LogLevel level)
    : prefix_(std::move(prefix)), level_(level) {}

Logger LogLines::logger() const {
  return Logger(
      [kept = kept_, prefix = prefix_](LogLevel, const std::string& line) {
        if (line.rfind(prefix, 0) != 0) return;
        std::lock_guard<std::mutex> lock(kept->mu);
        kept->lines.push_back(line);
      },
      level_);
}

std::vector<std::string> LogLines::lines() const {
  std::lock_guard<std::mutex> lock(kept_->mu);
  return kept_->lines;
}

void EngineTest::make(uint64_t size, Config config, Logger logger) {
  origin_ = std::make_shared<FakeOrigin>(pattern_bytes(size));
  prefetcher_ = std::make_unique<Prefetcher>(origin_, config, std::move(logger));
  start_watchdog();
}

void EngineTest::TearDown() {
  stop_watchdog();
  if (!prefetcher_) return;
  prefetcher_->close();
  // close() waits for every on_done; the origin's records must agree.
  for (const RequestRecord& r : origin_->requests()) {
    EXPECT_TRUE(r.done) << "request " << r.id << " at " << r.begin << " never got on_done";
  }
  prefetcher_.reset();
  origin_.reset();
}

void EngineTest::open_with_block_0_held_after(uint64_t bytes) {
  make(4 * kB);
  origin_->hold_body(0, bytes);
  ASSERT_EQ(prefetcher_->open(0).status, ReadStatus::kOk);
  ASSERT_TRUE(origin_->wait_held(0, kHang));
}

std::vector<uint8_t> EngineTest::slice(uint64_t from, uint64_t to) const {
  return std::vector<uint8_t>(data().begin() + from, data().begin() + to);
}

Drained EngineTest::drain(uint64_t offset, size_t length, ReadMode mode, microseconds pause) {
  return read_to_end(*prefetcher_, offset, length, mode, pause);
}

void EngineTest::expect_exact_to_eos(uint64_t from) {
  const Drained d = drain(from);
  EXPECT_EQ(d.last.status, ReadStatus::kEos) << d.last.error.message;
  ASSERT_EQ(d.bytes.size(), data().size() - from);
  EXPECT_EQ(checksum(d.bytes), checksum(slice(from, data().size()))) << "bytes differ";
}

Drained EngineTest::expect_error_after_exact_bytes(ErrorKind kind) {
  Drained d = drain(0);
  EXPECT_EQ(d.last.status, ReadStatus::kError);
  EXPECT_EQ(d.last.error.kind, kind) << d.last.error.message;
  EXPECT_LE(d.bytes.size(), data().size());
  EXPECT_TRUE(d.bytes.size() <= data().size() && d.bytes == slice(0, d.bytes.size()))
      << "wrong bytes before the error";
  return d;
}

std::vector<RequestRecord> EngineTest::requests_at(uint64_t begin) const {
  std::vector<RequestRecord> out;
  for (const RequestRecord& r : origin_->requests()) {
    if (r.begin == begin) out.push_back(r);
  }
  return out;
}

bool EngineTest::wait_done(uint64_t begin) {
  const auto deadline = std::chrono::steady_clock::now() + kHang;
  while (std::chrono::steady_clock::now() < deadline) {
    for (const RequestRecord& r : requests_at(begin)) {
      if (r.done) return true;
    }
    std::this_thread::sleep_for(milliseconds(1));
  }
  return false;
}

// Hang guard: wakes every wait of the engine, so a stuck test fails with
// kFlushing instead of hanging the suite.
void EngineTest::start_watchdog() {
  watchdog_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(watchdog_mu_);
    if (!watchdog_cv_.wait_for(lock, kWatchdog, [&] { return watchdog_done_; })) {
      ADD_FAILURE() << "watchdog: the test hung; flushing the engine";
      prefetcher_->set_flushing(true);
    }
  });
}

void EngineTest::stop_watchdog() {
  if (!watchdog_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(watchdog_mu_);
    watchdog_done_ = true;
  }
  watchdog_cv_.notify_all();
  watchdog_.join();
}

}  // namespace prefetch::testing
