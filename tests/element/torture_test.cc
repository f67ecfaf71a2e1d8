// Torture tests: many random flushing seeks while data flows, a
// hundred NULL -> PLAYING -> NULL cycles mid-transfer, 32 pipelines at once,
// and the origin's faults end to end through the element. Every test has a
// watchdog (ElementTest) so that a hang fails the run instead of stalling it.
#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "element_test_util.h"
#include "proc_threads.h"
#include "test_server.h"

namespace prefetch {
namespace element_test {
namespace {

using prefetch::testing::make_pattern;

// Live threads of this process now (a joined one is gone at once).
int thread_count() { return static_cast<int>(prefetch::testing::live_thread_names().size()); }

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(g_ascii_tolower(c));
  return s;
}

// Counts ERROR and WARNING messages as they are posted (a sync handler: the
// pipeline flushes its bus on READY -> NULL, so popping the bus after a stop
// would never see them).
struct BusCounter {
  std::atomic<int> errors{0};
  std::atomic<int> warnings{0};
  std::mutex mutex;
  std::string first_error;

  static GstBusSyncReply on_message(GstBus*, GstMessage* message, gpointer data) {
    auto* self = static_cast<BusCounter*>(data);
    if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR) {
      if (self->errors++ == 0) {
        ErrorPtr error = error_of(message);
        std::lock_guard<std::mutex> lock(self->mutex);
        self->first_error = describe(error.get());
      }
    } else if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_WARNING) {
      self->warnings++;
    }
    return GST_BUS_PASS;
  }
  void attach(GstElement* pipeline) {
    GstPtr<GstBus> bus(gst_element_get_bus(pipeline));
    gst_bus_set_sync_handler(bus.get(), &BusCounter::on_message, this, nullptr);
  }
  static void detach(GstElement* pipeline) {
    GstPtr<GstBus> bus(gst_element_get_bus(pipeline));
    gst_bus_set_sync_handler(bus.get(), nullptr, nullptr, nullptr);
  }
};

class TortureTest : public ElementTest {
 protected:
  GstElement* make_src(const std::string& path, uint64_t block_size, unsigned concurrency) {
    GstElement* src = make_prefetchsrc(server_.url(path));
    if (src) {
      g_object_set(src, "block-size", static_cast<guint64>(block_size), "concurrency", concurrency,
                   nullptr);
    }
    return src;
  }

  // Serves `data` at `path` as `b` says, and expects exactly it from
  // make_src(path, kBlock, concurrency).
  void expect_exact_served(const std::string& path, const std::vector<uint8_t>& data,
                           const Behavior& b, unsigned concurrency) {
    server_.add_file(path, data);
    server_.set_behavior(path, b);
    GstElement* src = make_src(path, kBlock, concurrency);
    ASSERT_NE(src, nullptr);
    expect_exact(src, data);
  }

  // Full transfer; expects EOS with exactly `data`.
  void expect_exact(GstElement* src, const std::vector<uint8_t>& data,
                    std::chrono::milliseconds timeout = 40s) {
    expect_exact_transfer(*run_transfer(src, timeout), data);
  }

  // Full transfer; expects an ERROR of `domain`/`code` (no EOS, no hang).
  ErrorPtr expect_error(GstElement* src, GQuark domain, gint code,
                        std::chrono::milliseconds timeout = 30s) {
    auto result = run_transfer(src, timeout);
    expect_transfer_error(*result, domain, code, timeout);
    return std::move(result->error);
  }

  TestServer server_;
};

// ==================================================================================
// 40 random flushing seeks while data flows
// ==================================================================================

TEST_F(TortureTest, FortyRandomFlushingSeeksWhileDataFlows) {
  set_deadline(60s);
  const uint64_t size = 96 * kBlock + 777;
  const std::vector<uint8_t>& data = pattern(size);
  server_.add_file("/seek.bin", data);
  std::mt19937 rng(20240404);
  // Small, different first-byte delays per block and a rate cap, so that
  // blocks are really in flight (and arriving) when the seeks land.
  std::vector<std::chrono::milliseconds> delays;
  for (int i = 0; i < 97; ++i) delays.emplace_back(std::uniform_int_distribution<int>(2, 40)(rng));
  Behavior b;
  b.first_byte_delay = prefetch::testing::block_delay_schedule(kBlock, delays, 10ms);
  b.rate_bytes_per_sec = 1024 * 1024;
  b.chunk_bytes = 8 * 1024;
  server_.set_behavior("/seek.bin", b);

  GstElement* src = make_src("/seek.bin", kBlock, 4);
  ASSERT_NE(src, nullptr);
  SeekPipeline p = make_seek_pipeline(src, 2);
  ASSERT_EQ(set_state_and_wait(p.pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
  constexpr size_t kCompare = 8 * 1024;
  {
    SamplePtr first(gst_app_sink_try_pull_sample(GST_APP_SINK(p.sink), 10 * GST_SECOND));
    ASSERT_NE(first, nullptr);
    EXPECT_EQ(check_buffer(gst_sample_get_buffer(first.get()), data, 0, kCompare), "");
  }
  std::uniform_int_distribution<uint64_t> any_offset(0, size - 1);
  std::uniform_int_distribution<int> pulls(0, 6);
  uint64_t in_flight_seen = 0;
  for (int i = 0; i < 40; ++i) {
    const uint64_t offset = any_offset(rng);
    SCOPED_TRACE("seek #" + std::to_string(i) + " to " + std::to_string(offset));
    in_flight_seen += server_.in_flight() > 0;
    ASSERT_TRUE(flushing_seek(p.pipeline.get(), offset));
    uint64_t expected = offset;
    ASSERT_NO_FATAL_FAILURE(expect_data_after_seek(p, data, offset, kCompare, &expected));
    // Let data flow on a little (a random number of further buffers) so
    // that the next seek lands in the middle of arriving blocks.
    for (int k = pulls(rng); k > 0 && expected < size; --k) {
      SamplePtr sample(gst_app_sink_try_pull_sample(GST_APP_SINK(p.sink), 10 * GST_SECOND));
      ASSERT_NE(sample, nullptr);
      GstBuffer* buffer = gst_sample_get_buffer(sample.get());
      ASSERT_EQ(check_buffer(buffer, data, expected, kCompare), "");
      expected += gst_buffer_get_size(buffer);
    }
  }
  EXPECT_EQ(gst_element_set_state(p.pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  // The seeks really landed while requests were running (not on an idle
  // element). How many do depends on the machine's speed (sanitizers slow the
  // reader, and the window then fills up); a fifth shows the point.
  EXPECT_GE(in_flight_seen, 8u) << "seeks should land while blocks are in flight";
  EXPECT_TRUE(server_.wait_idle(5s)) << server_.in_flight() << " responses still in flight";
}

// ==================================================================================
// 100 NULL -> PLAYING -> NULL cycles mid-transfer
// ==================================================================================

TEST_F(TortureTest, HundredStartStopCyclesMidTransfer) {
  set_deadline(80s);
  server_.add_file("/slow.bin", pattern(64 * kBlock));
  Behavior b;
  b.first_byte_delay = prefetch::testing::fixed_delay(40ms);
  b.rate_bytes_per_sec = 256 * 1024;
  b.chunk_bytes = 4096;
  server_.set_behavior("/slow.bin", b);

  BusCounter bus_counter;
  // Even cycles restart one long-lived pipeline; odd cycles build and drop a
  // new one (so both restart and finalize are exercised).
  GstElement* kept_src = make_src("/slow.bin", kBlock, 4);
  ASSERT_NE(kept_src, nullptr);
  SeekPipeline kept = make_seek_pipeline(kept_src, 2);
  bus_counter.attach(kept.pipeline.get());

  auto cycle = [&](SeekPipeline& p, int i) {
    ASSERT_NE(gst_element_set_state(p.pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    switch (i % 5) {
      case 0:  // stop right away
        break;
      case 1:  // while the first requests wait for their first byte
        std::this_thread::sleep_for(10ms);
        break;
      case 2:
        std::this_thread::sleep_for(30ms);
        break;
      case 3:
      case 4: {  // while bytes are streaming
        SamplePtr s(gst_app_sink_try_pull_sample(GST_APP_SINK(p.sink), 5 * GST_SECOND));
        ASSERT_NE(s, nullptr) << "no data in cycle " << i;
        if (i % 5 == 4) std::this_thread::sleep_for(50ms);
        break;
      }
    }
    auto start = Clock::now();
    EXPECT_EQ(gst_element_set_state(p.pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
    // At once (a few ms idle), not after a request's timeout (15 s): 8 s is a
    // bound a sanitized build on a loaded machine meets.
    EXPECT_LT(since(start).count(), 8000) << "PLAYING -> NULL took too long in cycle " << i;
  };

  // A first cycle of each kind so that GStreamer's and GLib's pooled threads
  // exist before the baseline is taken.
  cycle(kept, 3);
  {
    GstElement* src = make_src("/slow.bin", kBlock, 4);
    ASSERT_NE(src, nullptr);
    SeekPipeline p = make_seek_pipeline(src, 2);
    cycle(p, 3);
  }
  ASSERT_TRUE(server_.wait_idle(5s));
  std::this_thread::sleep_for(200ms);
  const int threads_before = thread_count();

  auto start = Clock::now();
  for (int i = 0; i < 100; ++i) {
    SCOPED_TRACE("cycle " + std::to_string(i));
    if (i % 2 == 0) {
      cycle(kept, i);
    } else {
      GstElement* src = make_src("/slow.bin", kBlock, 4);
      ASSERT_NE(src, nullptr);
      SeekPipeline p = make_seek_pipeline(src, 2);
      bus_counter.attach(p.pipeline.get());
      cycle(p, i);
      BusCounter::detach(p.pipeline.get());
    }
    if (HasFatalFailure()) return;
  }
  const auto cycles_ms = since(start).count();
  BusCounter::detach(kept.pipeline.get());
  kept.pipeline.reset();

  EXPECT_EQ(bus_counter.errors.load(), 0) << "first: " << bus_counter.first_error;
  EXPECT_EQ(bus_counter.warnings.load(), 0);
  EXPECT_TRUE(server_.wait_idle(5s))
      << server_.in_flight() << " responses still in flight 5 s after the last stop";
  // Threads: allow the count to settle (a stopped element's I/O thread is
  // joined in stop(), but GstTask threads go back to GStreamer's pool and
  // GLib's worker pools keep a few idle threads). The slack of 4 covers those
  // pools (GstTaskPool's default GThreadPool, GLib's shared pool, the GIO
  // worker and resolver threads); a leak of one thread per element (or per
  // cycle) would be 50-100 here.
  int threads_after = thread_count();
  for (int i = 0; i < 40 && threads_after > threads_before + 4; ++i) {
    std::this_thread::sleep_for(50ms);
    threads_after = thread_count();
  }
  RecordProperty("threads_before", threads_before);
  RecordProperty("threads_after", threads_after);
  RecordProperty("cycles_ms", static_cast<int>(cycles_ms));
  EXPECT_LE(threads_after, threads_before + 4)
      << "threads before " << threads_before << ", after 100 cycles " << threads_after;
}

// ==================================================================================
// 32 pipelines in one process at once
// ==================================================================================

struct ParallelRun {
  GstPtr<GstElement> pipeline;
  GChecksum* checksum = g_checksum_new(G_CHECKSUM_SHA256);
  uint64_t bytes = 0;
  bool offsets_ok = true;
  ~ParallelRun() { g_checksum_free(checksum); }

  static GstFlowReturn on_new_sample(GstAppSink* sink, gpointer data) {
    auto* self = static_cast<ParallelRun*>(data);
    return pull_mapped(sink, [self](GstBuffer* buffer, const GstMapInfo& map) {
      if (GST_BUFFER_OFFSET(buffer) != self->bytes) self->offsets_ok = false;
      g_checksum_update(self->checksum, map.data, static_cast<gssize>(map.size));
      self->bytes += map.size;
    });
  }
};

TEST_F(TortureTest, ThirtyTwoPipelinesAtOnce) {
  set_deadline(80s);
  constexpr int kPipelines = 32;
  std::mt19937 rng(32);
  std::uniform_int_distribution<size_t> any_size(2'000'000, 5'000'000);
  std::vector<std::vector<uint8_t>> files;
  std::vector<std::string> hashes;
  for (int i = 0; i < kPipelines; ++i) {
    files.push_back(make_pattern(any_size(rng), 1000 + i));
    hashes.push_back(sha256_hex(files.back()));
    server_.add_file("/f" + std::to_string(i), files.back());
  }
  Behavior b;  // a little first-byte latency so that the windows fill
  b.first_byte_delay = prefetch::testing::fixed_delay(5ms);
  server_.set_default_behavior(b);

  std::vector<std::unique_ptr<ParallelRun>> runs;
  for (int i = 0; i < kPipelines; ++i) {
    auto run = std::make_unique<ParallelRun>();
    GstElement* src = make_src("/f" + std::to_string(i), 256 * 1024, 4);
    ASSERT_NE(src, nullptr);
    run->pipeline.reset(GST_ELEMENT(gst_object_ref_sink(gst_pipeline_new(nullptr))));
    GstElement* sink = gst_element_factory_make("appsink", nullptr);
    g_object_set(sink, "sync", FALSE, "max-buffers", 8u, "drop", FALSE, nullptr);
    gst_bin_add_many(GST_BIN(run->pipeline.get()), src, sink, nullptr);
    ASSERT_TRUE(gst_element_link(src, sink));
    GstAppSinkCallbacks callbacks = {};
    callbacks.new_sample = &ParallelRun::on_new_sample;
    gst_app_sink_set_callbacks(GST_APP_SINK(sink), &callbacks, run.get(), nullptr);
    runs.push_back(std::move(run));
  }
  auto start = Clock::now();
  for (auto& run : runs) {
    ASSERT_NE(gst_element_set_state(run->pipeline.get(), GST_STATE_PLAYING),
              GST_STATE_CHANGE_FAILURE);
  }
  for (int i = 0; i < kPipelines; ++i) {
    SCOPED_TRACE("pipeline " + std::to_string(i) + " (" + std::to_string(files[i].size()) +
                 " bytes)");
    auto left = std::chrono::milliseconds(60000 - since(start).count());
    MessagePtr msg = wait_error_or_eos(runs[i]->pipeline.get(), std::max(left, 1000ms));
    ASSERT_NE(msg, nullptr) << "no EOS/ERROR within 60 s, got " << runs[i]->bytes << " bytes";
    ASSERT_EQ(GST_MESSAGE_TYPE(msg.get()), GST_MESSAGE_EOS) << describe(error_of(msg.get()).get());
    EXPECT_EQ(runs[i]->bytes, files[i].size());
    EXPECT_EQ(std::string(g_checksum_get_string(runs[i]->checksum)), hashes[i]);
    EXPECT_TRUE(runs[i]->offsets_ok);
  }
  RecordProperty("all_eos_ms", static_cast<int>(since(start).count()));
  for (auto& run : runs) {
    EXPECT_EQ(gst_element_set_state(run->pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  }
  EXPECT_TRUE(server_.wait_idle(5s));
}

// ==================================================================================
// Origin faults end to end
// ==================================================================================

TEST_F(TortureTest, Fault503OnFirstRequestsIsRetried) {
  // Until the first answer tells the size the element makes one request, so
  // every 503 falls on that request and its retries. Three failures use its
  // whole budget (retries=3, the default: attempts after the first); the
  // fourth attempt is answered. (Before spans, 6 failures spread over 3
  // concurrent block requests, at most 2 each; 6 on one request would be
  // more than the budget, and an error is then the right outcome.)
  ASSERT_NO_FATAL_FAILURE(
      expect_exact_served("/f.bin", pattern(12 * kBlock + 5), status_behavior(503, 3), 3));
  size_t failed = 0;
  for (const auto& r : server_.requests("/f.bin")) failed += r.status == 503;
  EXPECT_EQ(failed, 3u);
}

TEST_F(TortureTest, FaultCutEveryThirdResponseIsResumed) {
  // Requests of two blocks (max-request-size): with automatic spans the
  // whole file comes in one request and its resume, so one cut. The file is
  // 41 blocks (24 before spans) so that its 21 spans and their resumes still
  // meet at least 8 cuts.
  const std::vector<uint8_t>& data = pattern(40 * kBlock + 999);
  server_.add_file("/f.bin", data);
  Behavior b;
  b.cut_every = 3;
  b.cut_after_bytes = 12345;  // no cut_count: every third response, all along
  server_.set_behavior("/f.bin", b);
  GstElement* src = make_src("/f.bin", kBlock, 4);
  ASSERT_NE(src, nullptr);
  g_object_set(src, "max-request-size", static_cast<guint64>(2 * kBlock), nullptr);
  expect_exact(src, data);
  size_t cut = 0;
  for (const auto& r : server_.requests("/f.bin")) cut += r.cut;
  EXPECT_GE(cut, 8u) << "the fault was not exercised";
}

TEST_F(TortureTest, FaultRangeIgnoredGivesExactBytes) {
  const std::vector<uint8_t>& data = pattern(40 * kBlock + 3);
  server_.add_file("/f.bin", data);
  Behavior b;
  b.ignore_range = true;
  b.first_byte_delay = prefetch::testing::fixed_delay(20ms);
  server_.set_behavior("/f.bin", b);
  GstElement* src = make_src("/f.bin", kBlock, 4);
  ASSERT_NE(src, nullptr);
  expect_exact(src, data);
  EXPECT_TRUE(server_.wait_idle(5s));
}

TEST_F(TortureTest, FaultValidatorChangeAfterRequestsIsReadError) {
  server_.add_file("/f.bin", pattern(30 * kBlock));
  Behavior b;
  b.etag_change_after = 5;
  b.rate_bytes_per_sec = 4 * 1024 * 1024;
  server_.set_behavior("/f.bin", b);
  GstElement* src = make_src("/f.bin", kBlock, 3);
  ASSERT_NE(src, nullptr);
  // A request per block, so that the sixth request (the first to see the new
  // validators) comes however the spans would have been split: with
  // automatic spans a slow run asked the whole file in five.
  g_object_set(src, "max-request-size", kBlock, nullptr);
  ErrorPtr error = expect_error(src, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ);
  ASSERT_NE(error, nullptr);
  EXPECT_NE(lower(error->message ? error->message : "").find("changed"), std::string::npos)
      << "message does not mention the change: " << describe(error.get());
}

TEST_F(TortureTest, FaultBodyLongerThanDeclaredGivesExactBytes) {
  const std::vector<uint8_t>& data = pattern(10 * kBlock + 11);
  server_.add_file("/f.bin", data);
  Behavior b;
  b.body_length_delta = 1000;  // extra bytes continue the file: must not be spliced in
  server_.set_behavior("/f.bin", b);
  GstElement* src = make_src("/f.bin", kBlock, 4);
  ASSERT_NE(src, nullptr);
  expect_exact(src, data);
}

TEST_F(TortureTest, FaultBodyShorterThanDeclaredUntilFixedGivesExactBytes) {
  // Every response is 1000 bytes short of its Content-Range for a while
  // (the retries resume from what came), then the origin recovers. Requests
  // of two blocks (max-request-size): the origin recovers once 4 requests
  // came. With automatic spans the first request asks bytes=0- alone, and
  // its resumes ask the last 1000 bytes, which a body 1000 short leaves
  // empty: the fourth request is its last retry (retries=3), all short.
  // Two-block spans start three more requests once the first is answered.
  const std::vector<uint8_t>& data = pattern(8 * kBlock + 11);
  server_.add_file("/f.bin", data);
  Behavior b;
  b.body_length_delta = -1000;
  b.first_byte_delay = prefetch::testing::fixed_delay(30ms);
  server_.set_behavior("/f.bin", b);
  GstElement* src = make_src("/f.bin", kBlock, 4);
  ASSERT_NE(src, nullptr);
  g_object_set(src, "max-request-size", static_cast<guint64>(2 * kBlock), nullptr);
  std::thread fixer([&] {
    server_.wait_for_requests(4, 10s);
    server_.update_behavior("/f.bin", [](Behavior& x) { x.body_length_delta = 0; });
  });
  expect_exact(src, data);
  fixer.join();
  // A short answer: 1000 bytes less than the range it was asked (of any
  // length now; one block before spans).
  size_t short_ones = 0;
  for (const auto& r : server_.requests("/f.bin")) {
    uint64_t a = 0, z = 0;
    const bool closed = std::sscanf(r.range.c_str(), "bytes=%" SCNu64 "-%" SCNu64, &a, &z) == 2;
    short_ones += r.status == 206 && closed && r.body_length + 1000 == z - a + 1;
  }
  EXPECT_GE(short_ones, 1u) << "the fault was not exercised";
}

TEST_F(TortureTest, FaultBodyAlwaysShorterThanDeclaredIsReadError) {
  server_.add_file("/f.bin", pattern(4 * kBlock));
  Behavior b;
  b.body_length_delta = -1000;
  server_.set_behavior("/f.bin", b);
  GstElement* src = make_src("/f.bin", kBlock, 2);
  ASSERT_NE(src, nullptr);
  g_object_set(src, "retries", 2, nullptr);
  expect_error(src, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ);
}

TEST_F(TortureTest, FaultStallLongerThanTimeoutIsRetried) {
  const std::vector<uint8_t>& data = pattern(6 * kBlock + 1);
  server_.add_file("/f.bin", data);
  Behavior b;
  b.stall_after_bytes = 20000;
  b.stall_duration = 12s;
  b.stall_count = 2;
  server_.set_behavior("/f.bin", b);
  GstElement* src = make_src("/f.bin", kBlock, 2);
  ASSERT_NE(src, nullptr);
  // Requests of two blocks (max-request-size), so that two requests stall
  // at once: with automatic spans the whole file is one request, stalled,
  // and its resume, stalled again.
  g_object_set(src, "timeout", 1u, "hedge", FALSE, "max-request-size",
               static_cast<guint64>(2 * kBlock), nullptr);
  auto start = Clock::now();
  expect_exact(src, data);
  // A retry after ~1 s (about 1.5 s in all, idle), not a wait for the 12 s
  // stall to end: 10 s is a bound a sanitized build on a loaded machine meets.
  EXPECT_LT(since(start).count(), 10000) << "the stalled requests were waited out, not timed out";
  // The stalled spans (each from a block's start) were asked again from
  // where their bytes stopped (the server may only notice the abandoned
  // responses when its stall ends).
  size_t resumed = 0;
  for (const auto& r : server_.requests("/f.bin")) resumed += r.first_byte % kBlock == 20000;
  EXPECT_GE(resumed, 2u) << "the stalled requests were not resumed from their 20000th byte";
}

TEST_F(TortureTest, FaultStallWithoutRetriesIsResourceError) {
  server_.add_file("/f.bin", pattern(4 * kBlock));
  Behavior b;
  b.stall_after_bytes = 20000;
  b.stall_duration = 20s;
  server_.set_behavior("/f.bin", b);
  GstElement* src = make_src("/f.bin", kBlock, 2);
  ASSERT_NE(src, nullptr);
  g_object_set(src, "timeout", 1u, "retries", 0, nullptr);
  auto start = Clock::now();
  expect_error(src, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ, 19s);
  // The error after the 1 s timeout (about 1 s idle), not after the 20 s
  // stall: 16 s is a bound a sanitized build on a loaded machine meets.
  EXPECT_LT(since(start).count(), 16000);
}

TEST_F(TortureTest, Fault429WithRetryAfterIsHonoured) {
  ASSERT_NO_FATAL_FAILURE(
      expect_exact_served("/f.bin", pattern(5 * kBlock + 9), status_behavior(429, 2, 1), 2));
  auto requests = server_.requests("/f.bin");
  ASSERT_GE(requests.size(), 3u);
  // The blocks refused with 429 were asked again only after Retry-After.
  int checked = 0;
  for (const auto& refused : requests) {
    if (refused.status != 429) continue;
    for (const auto& r : requests) {
      if (r.id <= refused.id || r.range != refused.range || r.status == 429) continue;
      auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(r.start - refused.start);
      EXPECT_GE(gap.count(), 950) << "range " << r.range << " retried " << gap.count()
                                  << " ms after a 429 with Retry-After: 1";
      ++checked;
      break;
    }
  }
  EXPECT_EQ(checked, 2) << "both refused ranges should have been asked again";
}

}  // namespace
}  // namespace element_test
}  // namespace prefetch
