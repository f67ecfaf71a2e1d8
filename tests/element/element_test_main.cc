// element_tests: GoogleTest main that points GStreamer at the freshly built
// plugin and at a private registry before gst_init.
#include <gst/gst.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "test_server.h"

// `element_tests --play-with-disk-cache URL DIR [OUT]`: plays URL through
// prefetchsrc with the disk cache in DIR to the end (exit 0) or an error
// (exit 1), into the file OUT if given. The disk cache's tests run it as a
// process of its own, built as the tests are (sanitizers included): killed
// midway (then on two connections, so that a capped origin makes the play
// last seconds), or beside another play.
static int play_with_disk_cache(const char* url, const char* dir, const char* out) {
  gst_init(nullptr, nullptr);
  GstElement* pipeline = gst_pipeline_new(nullptr);
  GstElement* src = gst_element_factory_make("prefetchsrc", nullptr);
  GstElement* sink = gst_element_factory_make(out ? "filesink" : "fakesink", nullptr);
  if (!src || !sink) return 2;
  g_object_set(src, "location", url, "disk-cache", dir, "block-size", static_cast<guint64>(1 << 20),
               nullptr);
  if (out)
    g_object_set(sink, "location", out, nullptr);
  else
    g_object_set(src, "concurrency", 2u, nullptr);
  gst_bin_add_many(GST_BIN(pipeline), src, sink, nullptr);
  gst_element_link(src, sink);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* m = gst_bus_timed_pop_filtered(
      bus, GST_CLOCK_TIME_NONE, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  const int rc = m && GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS ? 0 : 1;
  if (m) gst_message_unref(m);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  return rc;
}

int main(int argc, char** argv) {
  if ((argc == 4 || argc == 5) && std::string(argv[1]) == "--play-with-disk-cache")
    return play_with_disk_cache(argv[2], argv[3], argc == 5 ? argv[4] : nullptr);
  ::testing::InitGoogleTest(&argc, argv);

  // Only the plugin under test plus the system's plugins; a registry of our
  // own so that neither a stale system cache nor another test run interferes.
  setenv("GST_PLUGIN_PATH", PREFETCH_PLUGIN_DIR, 1);
  std::string registry = std::string(g_get_tmp_dir()) + "/prefetch-element-registry-" +
                         std::to_string(getpid()) + ".bin";
  setenv("GST_REGISTRY", registry.c_str(), 1);
  setenv("GST_REGISTRY_FORK", "no", 1);
  prefetch::testing::unset_proxy_env();

  gst_init(&argc, &argv);
  int rc = RUN_ALL_TESTS();
  std::remove(registry.c_str());
  return rc;
}
