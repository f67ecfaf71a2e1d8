/* The `http-headers` message and sticky event, and the URI query's
 * redirect: see http_headers.h. */

#include "http_headers.h"

GST_DEBUG_CATEGORY_STATIC(gst_prefetch_src_headers_debug);
#define GST_CAT_DEFAULT gst_prefetch_src_headers_debug

#define HTTP_HEADERS "http-headers"

/* Adds one header field as souphttpsrc does: a string, or, once the name
 * came again, a GstValueArray of its values in order. Fields that are not
 * UTF-8 are left out (a GstStructure string must be). */
static void add_header(GstStructure* headers, const std::string& name, const std::string& value) {
  if (!g_utf8_validate(name.c_str(), -1, nullptr) || !g_utf8_validate(value.c_str(), -1, nullptr))
    return;
  GValue v = G_VALUE_INIT;
  g_value_init(&v, G_TYPE_STRING);
  g_value_set_string(&v, value.c_str());
  const GValue* old = gst_structure_get_value(headers, name.c_str());
  if (old && GST_VALUE_HOLDS_ARRAY(old)) {
    gst_value_array_append_value(const_cast<GValue*>(old), &v);
  } else if (old && G_VALUE_HOLDS_STRING(old)) {
    GValue array = G_VALUE_INIT;
    gst_value_array_init(&array, 2);
    gst_value_array_append_value(&array, old);
    gst_value_array_append_value(&array, &v);
    gst_structure_take_value(headers, name.c_str(), &array);
  } else {
    gst_structure_set_value(headers, name.c_str(), &v);
  }
  g_value_unset(&v);
}

static void set_headers(GstStructure* s, const char* field, const prefetch::HttpHeaders& list) {
  GstStructure* headers = gst_structure_new_empty(field);
  for (const auto& [name, value] : list) add_header(headers, name, value);
  GValue v = G_VALUE_INIT;
  g_value_init(&v, GST_TYPE_STRUCTURE);
  g_value_take_boxed(&v, headers);
  gst_structure_take_value(s, field, &v);
}

GstStructure* gst_prefetch_src_http_headers_new(const std::string& location,
                                                const prefetch::ResponseHead& head) {
  GstStructure* s =
      gst_structure_new(HTTP_HEADERS, "uri", G_TYPE_STRING, location.c_str(), "http-status-code",
                        G_TYPE_UINT, static_cast<guint>(head.status), nullptr);
  if (head.redirected)
    gst_structure_set(s, "redirection-uri", G_TYPE_STRING, head.uri.c_str(), nullptr);
  set_headers(s, "request-headers", head.request_headers);
  set_headers(s, "response-headers", head.response_headers);
  return s;
}

void GstPrefetchSrcRedirect::remember(const std::string& location,
                                      const prefetch::ResponseHead& head) {
  std::lock_guard<std::mutex> lock(lock_);
  location_ = location;
  target_ = head.redirected ? head.uri : std::string();
  permanent_ = head.redirected && head.redirect_permanent;
}

void GstPrefetchSrcRedirect::answer(GstQuery* query, const std::string& location) const {
  std::lock_guard<std::mutex> lock(lock_);
  if (target_.empty() || location_ != location) return;
  gst_query_set_uri_redirection(query, target_.c_str());
  gst_query_set_uri_redirection_permanent(query, permanent_);
}

/* Whether the pad holds an http-headers sticky event now. */
static bool pad_has_http_headers(GstPad* pad) {
  bool found = false;
  for (guint i = 0; !found; ++i) {
    GstEvent* ev = gst_pad_get_sticky_event(pad, GST_EVENT_CUSTOM_DOWNSTREAM_STICKY, i);
    if (!ev) break;
    found = gst_event_has_name(ev, HTTP_HEADERS);
    gst_event_unref(ev);
  }
  return found;
}

void gst_prefetch_src_report_http_headers(GstBaseSrc* src, const prefetch::Prefetcher& engine,
                                          guint64* reported, bool discont,
                                          const std::function<std::string()>& location,
                                          GstPrefetchSrcRedirect* redirect) {
  GstPad* pad = GST_BASE_SRC_PAD(src);
  /* Only the serial, unless there is something new to report. */
  prefetch::ResourceInfo info = engine.resource_info(*reported);
  if (info.serial == *reported) {
    if (!discont || !*reported || pad_has_http_headers(pad)) return;
    info = engine.resource_info();
  }
  if (info.serial == 0) return;
  static gsize debug_ready = 0;
  if (g_once_init_enter(&debug_ready)) {
    GST_DEBUG_CATEGORY_GET(gst_prefetch_src_headers_debug, "prefetchsrc");
    g_once_init_leave(&debug_ready, 1);
  }
  const std::string uri = location();
  GstStructure* s = gst_prefetch_src_http_headers_new(uri, info.head);
  if (info.serial != *reported) {
    GST_DEBUG_OBJECT(src, "%" GST_PTR_FORMAT, s);
    redirect->remember(uri, info.head);
    gst_element_post_message(GST_ELEMENT(src),
                             gst_message_new_element(GST_OBJECT(src), gst_structure_copy(s)));
    *reported = info.serial;
  } else {
    GST_DEBUG_OBJECT(src, "the pad lost its http-headers event: pushing it again");
  }
  gst_pad_push_event(pad, gst_event_new_custom(GST_EVENT_CUSTOM_DOWNSTREAM_STICKY, s));
}
