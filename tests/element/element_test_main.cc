// element_tests: GoogleTest main that points GStreamer at the freshly built
// plugin and at a private registry before gst_init.
#include <gst/gst.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "test_server.h"

int main(int argc, char** argv) {
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
