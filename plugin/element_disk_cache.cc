/* The disk-cache property: the disk tier (core/include/prefetch/disk_origin.h)
 * put in front of the network origin, and its warnings on the bus. */
#include <cstdlib>
#include <string>

#include "gstprefetchsrc_private.h"
#include "prefetch/disk_store.h"

namespace {

/* The resource's key: the location without credentials or fragment. */
std::string resource_key(const std::string& location) {
  GUri* uri = g_uri_parse(location.c_str(), G_URI_FLAGS_ENCODED, nullptr);
  if (!uri) return location;
  gchar* text = g_uri_to_string_partial(
      uri, static_cast<GUriHideFlags>(G_URI_HIDE_USERINFO | G_URI_HIDE_FRAGMENT));
  std::string key = text;
  g_free(text);
  g_uri_unref(uri);
  return key;
}

bool names_credentials(const gchar* field) {
  return g_ascii_strcasecmp(field, "Authorization") == 0 ||
         g_ascii_strcasecmp(field, "Cookie") == 0;
}

/* Whether the requests carry credentials: an answer to them is kept only
 * where the origin marks it cacheable for that (cache_freshness.h). */
bool with_credentials(const Settings& s) {
  if (!s.user_id.empty() || !s.cookies.empty()) return true;
  if (s.location.find('@') != std::string::npos && resource_key(s.location) != s.location)
    return true;
  if (!s.extra_headers) return false;
  for (gint i = 0; i < gst_structure_n_fields(s.extra_headers); ++i)
    if (names_credentials(gst_structure_nth_field_name(s.extra_headers, i))) return true;
  return false;
}

}  // namespace

void gst_prefetch_src_add_disk_tier(GstPrefetchSrc* self, const Settings& s,
                                    const prefetch::Logger& logger, EngineRun& run) {
  std::string dir = s.disk_cache;
  if (dir.empty()) {
    const char* env = g_getenv("PREFETCHSRC_DISK_CACHE");
    if (env) dir = env;
  }
  if (dir.empty() || s.compress) return; /* a content-coded body has no blocks to keep */
  std::string error;
  std::shared_ptr<prefetch::DiskStore> store =
      prefetch::DiskStore::open(dir, s.disk_cache_max_size, &error);
  if (!store) {
    GST_ELEMENT_WARNING(
        self, RESOURCE, OPEN_WRITE,
        ("The disk cache %s cannot be used: playing from the network only", dir.c_str()),
        ("%s", error.c_str()));
    return;
  }
  prefetch::DiskOriginOptions options;
  options.key = resource_key(s.location);
  options.block_size = s.block_size;
  options.with_credentials = with_credentials(s);
  /* The warnings come from the tier's threads, which close() joins before
   * the element can go. */
  run.disk = std::make_shared<prefetch::DiskOrigin>(
      run.origin, std::move(store), options, logger, [self](const std::string& message) {
        GST_ELEMENT_WARNING(self, RESOURCE, FAILED, ("%s", message.c_str()), (nullptr));
      });
  run.origin = run.disk;
  GST_INFO_OBJECT(self, "disk cache in %s", dir.c_str());
}
