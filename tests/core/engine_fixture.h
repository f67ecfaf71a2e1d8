// The fixture of the engine tests: a Prefetcher over the scripted FakeOrigin,
// a hang guard, and the reads and checks those tests share. Timeouts here
// are hang guards only: no assertion depends on how fast a machine is.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fake_origin.h"
#include "prefetch/prefetcher.h"

namespace prefetch::testing {

using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr uint64_t kB = 1000;           // block size of most engine tests
constexpr milliseconds kHang{10000};    // a wait for an event: far beyond any honest one
constexpr milliseconds kNoReturn{150};  // "still blocked" observation window

// Small blocks, fast retries, one block per request (the tests script the
// origin block by block; the span tests set max_request_bytes back to 0).
Config small_config(Schedule schedule = Schedule::kWindow, unsigned concurrency = 4);

// The engine's log on stderr when PREFETCH_TEST_LOG is set.
Logger test_logger();

// A read loop's result, reduced to what the tests compare.
struct Drained {
  std::vector<uint8_t> bytes;
  ReadResult last;  // the read that ended the loop (kEos, kError or kFlushing)
  bool offsets_ok = true;
};

// Reads from `offset` until anything but kOk, sleeping `pause` after each
// read (a slow consumer); a chunk that is not where the last one ended, or
// empty, or longer than asked, fails the test and ends the loop.
Drained read_to_end(Prefetcher& p, uint64_t offset, size_t length = 4096,
                    ReadMode mode = ReadMode::kAvailable, microseconds pause = microseconds(0));

// The bytes of one read.
std::vector<uint8_t> bytes_of(const ReadResult& r);

// Fingerprints bytes for readable failure messages on large buffers.
uint64_t checksum(const std::vector<uint8_t>& v);

// The engine's log lines that start with `prefix`, kept as they come (the
// loggers it gives out share its lines, so they may outlive it).
class LogLines {
 public:
  explicit LogLines(std::string prefix = "", LogLevel level = LogLevel::kDebug);
  Logger logger() const;
  std::vector<std::string> lines() const;

 private:
  struct Kept {
    std::mutex mu;
    std::vector<std::string> lines;
  };
  std::string prefix_;
  LogLevel level_;
  std::shared_ptr<Kept> kept_ = std::make_shared<Kept>();
};

class EngineTest : public ::testing::Test {
 protected:
  // A FakeOrigin of `size` pattern bytes and an engine over it.
  void make(uint64_t size, Config config = small_config(), Logger logger = test_logger());
  void TearDown() override;

  // A file of four blocks, opened at 0, whose block 0 has sent `bytes` of
  // its body and holds the rest until the test releases it.
  void open_with_block_0_held_after(uint64_t bytes);

  const std::vector<uint8_t>& data() const { return origin_->data(); }
  std::vector<uint8_t> slice(uint64_t from, uint64_t to) const;
  Drained drain(uint64_t offset, size_t length = 4096, ReadMode mode = ReadMode::kAvailable,
                microseconds pause = microseconds(0));
  // Reads from `from` to the end: EOS after exactly the file's bytes.
  void expect_exact_to_eos(uint64_t from = 0);
  // Reads from 0 until an error of `kind`: exactly the file's bytes before
  // it. What came, for more checks.
  Drained expect_error_after_exact_bytes(ErrorKind kind);
  std::vector<RequestRecord> requests_at(uint64_t begin) const;
  // Waits until a request that begins at `begin` got its on_done.
  bool wait_done(uint64_t begin);

  std::shared_ptr<FakeOrigin> origin_;
  std::unique_ptr<Prefetcher> prefetcher_;

 private:
  void start_watchdog();
  void stop_watchdog();

  std::thread watchdog_;
  std::mutex watchdog_mu_;
  std::condition_variable watchdog_cv_;
  bool watchdog_done_ = false;
};

}  // namespace prefetch::testing
