// Helpers shared by the element tests: pipelines around prefetchsrc, a
// per-test watchdog (a hang fails the run instead of stalling it), bus waits
// and byte checks.
#pragma once

#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_server.h"

namespace prefetch {
namespace element_test {

using namespace std::chrono_literals;

// The test server's names every element test uses.
using prefetch::testing::Behavior;
using prefetch::testing::sha256_hex;
using prefetch::testing::TestServer;
using Clock = std::chrono::steady_clock;

// The block size of most tests: small, so that a file of a few hundred KiB
// is many blocks.
constexpr uint64_t kBlock = 64 * 1024;

// The origin faults the tests use most. `status` to the first `count`
// requests (-1: to all), with Retry-After when `retry_after` >= 0.
Behavior status_behavior(int status, int count = -1, int retry_after = -1);
// Every answer's first byte held back by `delay`.
Behavior first_byte_behavior(prefetch::testing::DelayFunc delay);

// Milliseconds since `start`.
inline std::chrono::milliseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

// --- owning pointers ---------------------------------------------------------
struct GstObjectDeleter {
  void operator()(gpointer p) const {
    if (p) gst_object_unref(p);
  }
};
struct GErrorDeleter {
  void operator()(GError* e) const {
    if (e) g_error_free(e);
  }
};
struct GstMessageDeleter {
  void operator()(GstMessage* m) const {
    if (m) gst_message_unref(m);
  }
};
struct GstSampleDeleter {
  void operator()(GstSample* s) const {
    if (s) gst_sample_unref(s);
  }
};
template <typename T>
using GstPtr = std::unique_ptr<T, GstObjectDeleter>;
using ErrorPtr = std::unique_ptr<GError, GErrorDeleter>;
using MessagePtr = std::unique_ptr<GstMessage, GstMessageDeleter>;
using SamplePtr = std::unique_ptr<GstSample, GstSampleDeleter>;

// "domain/code: message" for failure output.
std::string describe(const GError* error);

// --- watchdog ------------------------------------------------------------------
// Every test fixture arms one: if the test body does not finish within the
// deadline, the process prints the test's name and exits with status 3, so a
// hang (a wait that is never woken, a state change that never returns) is a
// failure of the run, never a stalled CI job.
class Watchdog {
 public:
  explicit Watchdog(std::chrono::seconds deadline);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

class ElementTest : public ::testing::Test {
 protected:
  // The whole test must finish within this time; override per test with
  // set_deadline() before the slow part.
  void SetUp() override;
  void TearDown() override;
  void set_deadline(std::chrono::seconds deadline);

 private:
  std::unique_ptr<Watchdog> watchdog_;
};

// --- elements and pipelines -----------------------------------------------------
// One counter of a prefetchsrc's `stats` structure (0 where it is missing).
guint64 stats_uint64(GstElement* src, const char* field);
guint stats_uint(GstElement* src, const char* field);

// A new prefetchsrc (fails the test and returns null if the factory is missing).
GstElement* make_prefetchsrc();
// A new prefetchsrc owned by the caller (not floating); null as above.
GstPtr<GstElement> make_owned_prefetchsrc();
// The same, reading `location`.
GstElement* make_prefetchsrc(const std::string& location);

// Sets a property from a string as gst-launch would (enums by nick, etc.).
void set_prop(GstElement* element, const char* name, const std::string& value);

// set_state and wait for it to complete; returns the final result
// (GST_STATE_CHANGE_FAILURE on error or timeout).
GstStateChangeReturn set_state_and_wait(GstElement* pipeline, GstState state,
                                        std::chrono::milliseconds timeout = 10s);

// Pops the first ERROR or EOS from the pipeline's bus within `timeout`;
// null on timeout.
MessagePtr wait_error_or_eos(GstElement* pipeline, std::chrono::milliseconds timeout);

// The GError of an ERROR message (null for anything else).
ErrorPtr error_of(GstMessage* message);

// Pulls a sample from `sink` and gives `use` its buffer, mapped for reading;
// GST_FLOW_ERROR if no sample came or it could not be mapped.
GstFlowReturn pull_mapped(GstAppSink* sink,
                          const std::function<void(GstBuffer*, const GstMapInfo&)>& use);

// What a full transfer through `prefetchsrc ! appsink` delivered.
struct TransferResult {
  bool eos = false;
  bool timed_out = false;
  ErrorPtr error;  // set if the bus carried an ERROR
  uint64_t bytes = 0;
  uint64_t buffers = 0;
  std::string sha256;
  // First buffer whose OFFSET / OFFSET_END did not continue the byte count;
  // empty if all did.
  std::string offset_problem;
  GstStructure* stats = nullptr;      // the element's stats after EOS (owned)
  std::vector<std::string> warnings;  // the WARNING messages' texts, in order
  ~TransferResult() {
    if (stats) gst_structure_free(stats);
  }
};

// Runs `src ! appsink` (src already configured; ownership taken) to EOS or
// ERROR (or `timeout`), hashing every byte and checking offsets.
std::unique_ptr<TransferResult> run_transfer(GstElement* src,
                                             std::chrono::milliseconds timeout = 60s);

// Expects `result` to have ended in EOS with exactly `data`: no hang, every
// byte right (SHA-256), continuous offsets.
void expect_exact_transfer(const TransferResult& result, const std::vector<uint8_t>& data);

// A pipeline `src ! appsink name=sink` (sync=false), for seek tests.
struct SeekPipeline {
  GstPtr<GstElement> pipeline;
  GstElement* src = nullptr;   // borrowed
  GstElement* sink = nullptr;  // borrowed (appsink)
};
SeekPipeline make_seek_pipeline(GstElement* src, guint max_buffers);

// Compares `buffer` with `data` at `expected_offset` (at most `max_compare`
// bytes, plus OFFSET / OFFSET_END); "" if it matches, else what is wrong.
std::string check_buffer(GstBuffer* buffer, const std::vector<uint8_t>& data,
                         uint64_t expected_offset, size_t max_compare);

// What comes after a flushing seek of `p` to `offset`: pulls buffers (10 s
// each) until `compare` bytes from `offset` (or the end of `data`) have come.
// The first carries a BYTES segment that starts at `offset` and OFFSET
// `offset`; each continues the one before and matches `data` (check_buffer,
// `compare` bytes). *next is the offset after the last buffer.
void expect_data_after_seek(const SeekPipeline& p, const std::vector<uint8_t>& data,
                            uint64_t offset, size_t compare, uint64_t* next);

// A flushing, accurate BYTES seek of `pipeline` to `offset`.
gboolean flushing_seek(GstElement* pipeline, uint64_t offset);

// Expects `result` (of a transfer run with `timeout`) to have ended in an
// ERROR of `domain`/`code`: no EOS, no timeout.
void expect_transfer_error(const TransferResult& result, GQuark domain, gint code,
                           std::chrono::milliseconds timeout);

// Expects `result` to have ended in an ERROR of `domain` (any code): no
// EOS, no timeout.
void expect_transfer_error_in(const TransferResult& result, GQuark domain);

// A free TCP port on 127.0.0.1 that nothing listens on (bound then closed).
uint16_t unused_port();

// A temporary directory, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes bytes to a file; false on error.
bool write_file(const std::string& filename, const std::vector<uint8_t>& data);

// The lines of a text file (a server's log); none if it cannot be read.
std::vector<std::string> read_lines(const std::string& filename);

// Runs a command (argv), returns exit status (-1 if it could not run);
// stdout into *out when given.
int run_command(const std::vector<std::string>& argv, std::string* out = nullptr,
                std::string* err = nullptr);

// Starts this test binary again as a player (element_test_main.cc):
// prefetchsrc location=`url` disk-cache=`dir` ! fakesink (on two
// connections), or ! filesink location=`out` if given. Its pid, or -1.
pid_t fork_player(const std::string& url, const std::string& dir, const std::string& out = "");

// A counter of a `stats` structure (0 if it or the field is missing).
guint64 stats_uint64_field(const GstStructure* stats, const char* field);

// Whether the private nginx can run: /usr/sbin/nginx exists or $NGINX names
// one (tests/support/nginx/nginx.sh uses that).
bool nginx_installed();

// A private nginx (tests/support/nginx/nginx.sh) serving root_ (with
// five.bin, kNginxFileSize bytes of pattern()) for one test, started when a
// test asks (start_nginx()). RunningNginxTest starts it in SetUp.
class NginxFixture : public ElementTest {
 public:
  static constexpr size_t kNginxFileSize = 5000003;

 protected:
  // Writes five.bin, starts nginx and reads its ports (and CA file).
  void start_nginx();
  void TearDown() override;

  std::string http(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(http_port_) + path;
  }
  std::string https(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(https_port_) + path;
  }

  TempDir root_;
  TempDir state_;
  bool started_ = false;
  int http_port_ = 0;
  int https_port_ = 0;
  std::string ca_;
};

// NginxFixture with nginx started in SetUp; the test is skipped where nginx
// is not installed. A subclass's SetUp calls this one first and returns if
// it skipped or failed (done_or_skipped()).
class RunningNginxTest : public NginxFixture {
 protected:
  void SetUp() override;
  bool done_or_skipped() const { return IsSkipped() || HasFatalFailure(); }
};

// prefetchsrc ranked above every other source for the test, as
// GST_PLUGIN_FEATURE_RANK=prefetchsrc:MAX ranks it: playbin picks it for
// http(s) URIs. TearDown gives it its rank back.
class RankedFirstTest : public ElementTest {
 protected:
  void SetUp() override;
  void TearDown() override;

  GstPtr<GstElementFactory> factory_;
  guint old_rank_ = 0;
};

// The pattern bytes used by the suite, cached per size (the 64 MiB file is
// made once).
const std::vector<uint8_t>& pattern(size_t size);

}  // namespace element_test
}  // namespace prefetch
