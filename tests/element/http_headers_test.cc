// The `http-headers` structure (element message and sticky event) and the
// URI query's redirect, as souphttpsrc gives them: against nginx (real
// headers, a 302 and a 301) and the in-process server (every redirect
// status, a chain).
#include <gst/gst.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "element_test_util.h"
#include "test_server.h"

namespace prefetch {
namespace element_test {
namespace {

struct StructureDeleter {
  void operator()(GstStructure* s) const {
    if (s) gst_structure_free(s);
  }
};
using StructurePtr = std::unique_ptr<GstStructure, StructureDeleter>;

// What one run of `prefetchsrc ! fakesink` showed of http-headers.
struct HeadersRun {
  bool eos = false;
  std::string error;
  std::vector<StructurePtr> messages;  // element messages named http-headers, in order
  std::vector<StructurePtr> events;    // http-headers events that reached the sink pad
  // Each event's place in the stream: how many buffers had passed before it.
  std::vector<uint64_t> events_after_buffers;
  StructurePtr sticky;  // the sink pad's sticky http-headers event at EOS
  uint64_t buffers = 0;
  // The URI query at EOS.
  std::string uri, redirection;
  gboolean permanent = FALSE;
};

// Records what passes the sink pad (streaming thread).
struct ProbeLog {
  std::mutex mutex;
  HeadersRun* run;
};

GstPadProbeReturn on_sink_data(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* log = static_cast<ProbeLog*>(data);
  std::lock_guard<std::mutex> lock(log->mutex);
  if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) {
    ++log->run->buffers;
  } else if (GstEvent* ev = GST_PAD_PROBE_INFO_EVENT(info)) {
    if (GST_EVENT_TYPE(ev) == GST_EVENT_CUSTOM_DOWNSTREAM_STICKY &&
        gst_event_has_name(ev, "http-headers")) {
      log->run->events.emplace_back(gst_structure_copy(gst_event_get_structure(ev)));
      log->run->events_after_buffers.push_back(log->run->buffers);
    }
  }
  return GST_PAD_PROBE_OK;
}

// The sticky http-headers event a pad holds now (null if none).
StructurePtr sticky_http_headers(GstPad* pad) {
  for (guint i = 0;; ++i) {
    GstEvent* ev = gst_pad_get_sticky_event(pad, GST_EVENT_CUSTOM_DOWNSTREAM_STICKY, i);
    if (!ev) return nullptr;
    StructurePtr s;
    if (gst_event_has_name(ev, "http-headers"))
      s.reset(gst_structure_copy(gst_event_get_structure(ev)));
    gst_event_unref(ev);
    if (s) return s;
  }
}

// Plays `pipeline` (src ! fakesink, already built) to EOS or ERROR and
// collects it all; leaves the pipeline in READY so that it can run again.
void play(GstElement* pipeline, GstElement* src, GstElement* sink, HeadersRun* run) {
  GstPad* pad = gst_element_get_static_pad(sink, "sink");
  ProbeLog log{{}, run};
  const gulong probe = gst_pad_add_probe(
      pad,
      static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
      on_sink_data, &log, nullptr);
  GstBus* bus = gst_element_get_bus(pipeline);
  EXPECT_NE(gst_element_set_state(pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  const gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
  while (g_get_monotonic_time() < deadline) {
    GstMessage* m = gst_bus_timed_pop_filtered(
        bus, 100 * GST_MSECOND,
        static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_ELEMENT));
    if (!m) continue;
    const GstMessageType type = GST_MESSAGE_TYPE(m);
    if (type == GST_MESSAGE_ELEMENT && GST_MESSAGE_SRC(m) == GST_OBJECT(src) &&
        gst_message_has_name(m, "http-headers"))
      run->messages.emplace_back(gst_structure_copy(gst_message_get_structure(m)));
    if (type == GST_MESSAGE_EOS) run->eos = true;
    if (type == GST_MESSAGE_ERROR) run->error = describe(error_of(m).get());
    gst_message_unref(m);
    if (type != GST_MESSAGE_ELEMENT) break;
  }
  run->sticky = sticky_http_headers(pad);
  GstQuery* q = gst_query_new_uri();
  if (gst_element_query(src, q)) {
    gchar *uri = nullptr, *redirection = nullptr;
    gst_query_parse_uri(q, &uri);
    gst_query_parse_uri_redirection(q, &redirection);
    gst_query_parse_uri_redirection_permanent(q, &run->permanent);
    run->uri = uri ? uri : "";
    run->redirection = redirection ? redirection : "";
    g_free(uri);
    g_free(redirection);
  }
  gst_query_unref(q);
  EXPECT_NE(set_state_and_wait(pipeline, GST_STATE_READY), GST_STATE_CHANGE_FAILURE);
  gst_pad_remove_probe(pad, probe);
  gst_object_unref(pad);
  gst_object_unref(bus);
}

std::string field_string(const GstStructure* s, const char* name) {
  const char* v = s ? gst_structure_get_string(s, name) : nullptr;
  return v ? v : "<none>";
}

guint status_of(const GstStructure* s) {
  guint status = 0;
  if (s) gst_structure_get_uint(s, "http-status-code", &status);
  return status;
}

// A sub-structure field ("request-headers", "response-headers"); null if absent.
const GstStructure* headers_of(const GstStructure* s, const char* field) {
  if (!s || !gst_structure_has_field_typed(s, field, GST_TYPE_STRUCTURE)) return nullptr;
  return gst_value_get_structure(gst_structure_get_value(s, field));
}

// Case-insensitive look-up of a header's value(s), joined by ", " when it
// came more than once (a GstValueArray).
std::string header(const GstStructure* s, const char* field, const char* name) {
  const GstStructure* h = headers_of(s, field);
  if (!h) return "<no " + std::string(field) + ">";
  for (int i = 0; i < gst_structure_n_fields(h); ++i) {
    const char* f = gst_structure_nth_field_name(h, i);
    if (g_ascii_strcasecmp(f, name) != 0) continue;
    const GValue* v = gst_structure_get_value(h, f);
    if (G_VALUE_HOLDS_STRING(v)) return g_value_get_string(v);
    if (!GST_VALUE_HOLDS_ARRAY(v)) return "<not a string>";
    std::string all;
    for (guint k = 0; k < gst_value_array_get_size(v); ++k) {
      const GValue* item = gst_value_array_get_value(v, k);
      all += (k ? ", " : "") +
             std::string(G_VALUE_HOLDS_STRING(item) ? g_value_get_string(item) : "<not a string>");
    }
    return "[" + all + "]";
  }
  return "<none>";
}

std::string to_string(const GstStructure* s) {
  if (!s) return "<null>";
  gchar* text = gst_structure_to_string(s);
  std::string out = text;
  g_free(text);
  return out;
}

// `prefetchsrc ! fakesink`, for one or more runs.
struct Pipeline {
  GstPtr<GstElement> pipeline;
  GstElement* src = nullptr;
  GstElement* sink = nullptr;

  Pipeline() {
    pipeline.reset(GST_ELEMENT(gst_object_ref_sink(gst_pipeline_new(nullptr))));
    src = make_prefetchsrc();
    sink = gst_element_factory_make("fakesink", nullptr);
    g_object_set(sink, "sync", FALSE, nullptr);
    gst_bin_add_many(GST_BIN(pipeline.get()), src, sink, nullptr);
    EXPECT_TRUE(gst_element_link(src, sink));
  }
  ~Pipeline() { gst_element_set_state(pipeline.get(), GST_STATE_NULL); }

  void run(const std::string& location, HeadersRun* out) {
    g_object_set(src, "location", location.c_str(), "block-size", static_cast<guint64>(512 * 1024),
                 nullptr);
    play(pipeline.get(), src, sink, out);
  }
};

// The one http-headers of a run: one message, one event (the same
// structure, before the first buffer), still sticky on the sink pad at EOS.
void expect_one_report(const HeadersRun& run) {
  ASSERT_TRUE(run.eos) << run.error;
  ASSERT_EQ(run.messages.size(), 1u) << "http-headers element messages";
  ASSERT_EQ(run.events.size(), 1u) << "http-headers events downstream";
  EXPECT_TRUE(gst_structure_is_equal(run.messages[0].get(), run.events[0].get()))
      << "message: " << to_string(run.messages[0].get())
      << "\nevent:   " << to_string(run.events[0].get());
  EXPECT_EQ(run.events_after_buffers[0], 0u) << "the event must come before the first buffer";
  ASSERT_NE(run.sticky, nullptr) << "no sticky http-headers event on the sink pad";
  EXPECT_TRUE(gst_structure_is_equal(run.sticky.get(), run.events[0].get()));
}

class HttpHeadersNginxTest : public RunningNginxTest {};

// A 302: uri is the location asked, redirection-uri the target; status,
// request and custom response headers as nginx sent them; the URI query
// gives the target, not permanent.
TEST_F(HttpHeadersNginxTest, MessageAndEventAfter302) {
  Pipeline p;
  ASSERT_NE(p.src, nullptr);
  const std::string location = http("/redirect/headers/five.bin");
  const std::string target = http("/headers/five.bin");
  HeadersRun run;
  p.run(location, &run);
  ASSERT_NO_FATAL_FAILURE(expect_one_report(run));
  const GstStructure* s = run.messages[0].get();
  std::printf("http-headers as posted: %s\n", to_string(s).c_str());
  EXPECT_EQ(gst_structure_get_name(s), std::string("http-headers"));
  EXPECT_EQ(status_of(s), 206u);
  EXPECT_EQ(field_string(s, "uri"), location);
  EXPECT_EQ(field_string(s, "redirection-uri"), target);
  EXPECT_EQ(header(s, "response-headers", "X-Test-Header"), "prefetchsrc");
  EXPECT_EQ(header(s, "response-headers", "X-Test-Repeated"), "[one, two]");
  EXPECT_EQ(header(s, "response-headers", "Content-Type"), "application/octet-stream");
  EXPECT_EQ(header(s, "response-headers", "Content-Range").rfind("bytes 0-", 0), 0u)
      << header(s, "response-headers", "Content-Range");
  EXPECT_EQ(header(s, "request-headers", "Range").rfind("bytes=0-", 0), 0u)
      << header(s, "request-headers", "Range");

  EXPECT_EQ(run.uri, location);
  EXPECT_EQ(run.redirection, target);
  EXPECT_FALSE(run.permanent);
}

// One element, two resources: each run reports its own, the second (behind
// a 301) with its redirect, and the URI query follows: nothing redirected
// for the first, the target and permanent for the second.
TEST_F(HttpHeadersNginxTest, SecondResourceAfter301GetsItsOwn) {
  Pipeline p;
  ASSERT_NE(p.src, nullptr);
  ASSERT_TRUE(write_file(root_.file("small.bin"), pattern(100000)));

  HeadersRun first;
  p.run(http("/headers/five.bin"), &first);
  ASSERT_NO_FATAL_FAILURE(expect_one_report(first));
  EXPECT_EQ(status_of(first.messages[0].get()), 206u);
  EXPECT_EQ(field_string(first.messages[0].get(), "uri"), http("/headers/five.bin"));
  EXPECT_FALSE(gst_structure_has_field(first.messages[0].get(), "redirection-uri"))
      << to_string(first.messages[0].get());
  EXPECT_EQ(first.redirection, "");

  HeadersRun second;
  p.run(http("/moved/headers/small.bin"), &second);
  ASSERT_NO_FATAL_FAILURE(expect_one_report(second));
  const GstStructure* s = second.messages[0].get();
  EXPECT_EQ(field_string(s, "uri"), http("/moved/headers/small.bin"));
  EXPECT_EQ(field_string(s, "redirection-uri"), http("/headers/small.bin"));
  // Its own answer, not the first resource's.
  const std::string range = header(s, "response-headers", "Content-Range");
  EXPECT_NE(range.find("/100000"), std::string::npos) << range;
  EXPECT_EQ(header(s, "response-headers", "X-Test-Header"), "prefetchsrc");
  EXPECT_EQ(second.uri, http("/moved/headers/small.bin"));
  EXPECT_EQ(second.redirection, http("/headers/small.bin"));
  EXPECT_TRUE(second.permanent);
}

// Every redirect status libsoup follows, and a chain: permanent only when
// every hop was (301, 308).
class HttpHeadersServerTest : public ElementTest {};

TEST_F(HttpHeadersServerTest, RedirectStatusesAndChains) {
  testing::unset_proxy_env();
  testing::TestServer server;
  server.add_file("/f.bin", pattern(300000));
  testing::Behavior custom;
  custom.extra_response_headers = {{"X-Custom", "yes"}};
  server.set_behavior("/f.bin", custom);
  struct Case {
    std::string from;
    int status;
    bool permanent;
  };
  const std::vector<Case> cases = {
      {"/r301", 301, true}, {"/r302", 302, false}, {"/r307", 307, false}, {"/r308", 308, true}};
  for (const auto& c : cases) server.add_redirect(c.from, "/f.bin", c.status);
  server.add_redirect("/chain302", "/r301", 302);  // temporary, then permanent
  server.add_redirect("/chain301", "/r308", 301);  // permanent twice

  Pipeline p;
  ASSERT_NE(p.src, nullptr);
  auto check = [&](const std::string& from, bool permanent) {
    SCOPED_TRACE(from);
    HeadersRun run;
    p.run(server.url(from), &run);
    ASSERT_NO_FATAL_FAILURE(expect_one_report(run));
    const GstStructure* s = run.messages[0].get();
    EXPECT_EQ(field_string(s, "uri"), server.url(from));
    EXPECT_EQ(field_string(s, "redirection-uri"), server.url("/f.bin"));
    EXPECT_EQ(header(s, "response-headers", "X-Custom"), "yes");
    EXPECT_EQ(run.redirection, server.url("/f.bin"));
    EXPECT_EQ(run.permanent, permanent ? TRUE : FALSE);
  };
  for (const auto& c : cases) check(c.from, c.permanent);
  check("/chain302", false);
  check("/chain301", true);
}

// A pad-mode switch (pull, then push: typefind's way) deactivates the pad,
// which drops its sticky events. The adopted engine's answer is not posted
// again, but the event goes downstream again before the first pushed buffer.
TEST_F(HttpHeadersServerTest, EventPushedAgainAfterAPadModeSwitch) {
  testing::unset_proxy_env();
  testing::TestServer server;
  server.add_file("/f.bin", pattern(300000));
  GstElement* src = make_prefetchsrc();
  ASSERT_NE(src, nullptr);
  gst_object_ref_sink(src);
  g_object_set(src, "location", server.url("/f.bin").c_str(), nullptr);
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(src, bus);
  GstPad* srcpad = gst_element_get_static_pad(src, "src");
  GstPad* sinkpad = gst_pad_new("sink", GST_PAD_SINK);
  ASSERT_EQ(gst_pad_link(srcpad, sinkpad), GST_PAD_LINK_OK);
  struct Seen {
    std::mutex mutex;
    int events = 0;  // http-headers events
    int buffers = 0;
    int events_before_first_buffer = 0;
  } seen;
  GST_PAD_ELEMENT_PRIVATE(sinkpad) = &seen;
  gst_pad_set_chain_function(sinkpad, [](GstPad* pad, GstObject*, GstBuffer* buffer) {
    auto* s = static_cast<Seen*>(GST_PAD_ELEMENT_PRIVATE(pad));
    std::lock_guard<std::mutex> lock(s->mutex);
    if (s->buffers++ == 0) s->events_before_first_buffer = s->events;
    gst_buffer_unref(buffer);
    return GST_FLOW_OK;
  });
  gst_pad_set_event_function(sinkpad, [](GstPad* pad, GstObject*, GstEvent* event) -> gboolean {
    auto* s = static_cast<Seen*>(GST_PAD_ELEMENT_PRIVATE(pad));
    std::lock_guard<std::mutex> lock(s->mutex);
    if (gst_event_has_name(event, "http-headers")) ++s->events;
    gst_event_unref(event);
    return TRUE;
  });

  ASSERT_EQ(gst_element_set_state(src, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
  GstQuery* query = gst_query_new_scheduling();
  ASSERT_TRUE(gst_pad_peer_query(sinkpad, query));
  ASSERT_TRUE(gst_query_has_scheduling_mode(query, GST_PAD_MODE_PULL));
  gst_query_unref(query);
  ASSERT_TRUE(gst_pad_activate_mode(sinkpad, GST_PAD_MODE_PULL, TRUE));
  ASSERT_EQ(gst_element_set_state(src, GST_STATE_PAUSED), GST_STATE_CHANGE_SUCCESS);
  GstBuffer* buffer = nullptr;
  ASSERT_EQ(gst_pad_pull_range(sinkpad, 0, 1000, &buffer), GST_FLOW_OK);
  gst_buffer_unref(buffer);
  ASSERT_NE(sticky_http_headers(srcpad), nullptr) << "no http-headers in pull mode";

  ASSERT_TRUE(gst_pad_activate_mode(sinkpad, GST_PAD_MODE_PULL, FALSE));
  EXPECT_EQ(sticky_http_headers(srcpad), nullptr) << "deactivation keeps sticky events now?";
  {
    std::lock_guard<std::mutex> lock(seen.mutex);
    seen.events = 0;  // whatever pull mode delivered
  }
  ASSERT_TRUE(gst_pad_activate_mode(sinkpad, GST_PAD_MODE_PUSH, TRUE));
  ASSERT_TRUE(gst_pad_activate_mode(srcpad, GST_PAD_MODE_PUSH, TRUE));
  ASSERT_TRUE(server.wait_for(
      [&] {
        std::lock_guard<std::mutex> lock(seen.mutex);
        return seen.buffers > 0;
      },
      5s))
      << "nothing pushed";
  {
    std::lock_guard<std::mutex> lock(seen.mutex);
    EXPECT_EQ(seen.events_before_first_buffer, 1) << "http-headers events in push mode";
  }
  EXPECT_NE(sticky_http_headers(srcpad), nullptr);
  ASSERT_TRUE(gst_pad_activate_mode(srcpad, GST_PAD_MODE_PUSH, FALSE));
  ASSERT_EQ(gst_element_set_state(src, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);

  // One answer, one message, whatever the pad did.
  int messages = 0;
  while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    messages += gst_message_has_name(m, "http-headers");
    gst_message_unref(m);
  }
  EXPECT_EQ(messages, 1);
  gst_element_set_bus(src, nullptr);
  gst_object_unref(bus);
  gst_object_unref(sinkpad);
  gst_object_unref(srcpad);
  gst_object_unref(src);
}

}  // namespace
}  // namespace element_test
}  // namespace prefetch
