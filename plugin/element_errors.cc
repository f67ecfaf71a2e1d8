/* Errors and logging: the one place core errors become GStreamer errors, and
 * the core's log lines going to the prefetchsrc debug category. */
#include <algorithm>
#include <mutex>
#include <string>

#include "gstprefetchsrc_private.h"

/* With the HTTP status attached as souphttpsrc does ("http-status-code" in
 * the details). */
static GstResourceError gst_prefetch_src_error_code(prefetch::ErrorKind kind) {
  switch (kind) {
    case prefetch::ErrorKind::kNotFound:
      return GST_RESOURCE_ERROR_NOT_FOUND;
    case prefetch::ErrorKind::kNotAuthorized:
      return GST_RESOURCE_ERROR_NOT_AUTHORIZED;
    case prefetch::ErrorKind::kOpenRead:
      return GST_RESOURCE_ERROR_OPEN_READ;
    case prefetch::ErrorKind::kSeek:
      return GST_RESOURCE_ERROR_SEEK;
    default: /* read, resource changed (cancelled is never posted) */
      return GST_RESOURCE_ERROR_READ;
  }
}

void gst_prefetch_src_post_error(GstPrefetchSrc* self, const prefetch::Error& e) {
  const GstResourceError code = gst_prefetch_src_error_code(e.kind);
  std::string location;
  {
    std::lock_guard<std::mutex> lock(self->priv->settings_lock);
    location = self->priv->settings.location;
  }
  gchar* message = g_strdup(e.message.c_str());
  gchar* debug = g_strdup_printf("%s (%s; HTTP status %d; %s)", location.c_str(),
                                 prefetch::to_string(e.kind), e.http_status, e.detail.c_str());
  gst_element_message_full_with_details(
      GST_ELEMENT(self), GST_MESSAGE_ERROR, GST_RESOURCE_ERROR, code, message, debug, __FILE__,
      GST_FUNCTION, __LINE__,
      gst_structure_new("details", "http-status-code", G_TYPE_UINT,
                        static_cast<guint>(e.http_status), nullptr));
}

prefetch::Logger gst_prefetch_src_make_logger(GstPrefetchSrc* self) {
  const GstDebugLevel threshold = gst_debug_category_get_threshold(GST_CAT_DEFAULT);
  auto level = static_cast<prefetch::LogLevel>(std::min<int>(threshold, GST_LEVEL_LOG));
  if (threshold < GST_LEVEL_ERROR) return prefetch::Logger();
  GObject* obj = G_OBJECT(self);  // outlives the core objects: stop() frees them
  return prefetch::Logger(
      [obj](prefetch::LogLevel l, const std::string& line) {
        gst_debug_log(GST_CAT_DEFAULT, static_cast<GstDebugLevel>(l), __FILE__, "core", 0, obj,
                      "%s", line.c_str());
      },
      level);
}
