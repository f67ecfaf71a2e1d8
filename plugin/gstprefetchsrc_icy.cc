#include "gstprefetchsrc_icy.h"

#include <string>

/* The element's own debug category (registered with its type). */
static GstDebugCategory* icy_category() {
  static GstDebugCategory* category = [] {
    GstDebugCategory* c = nullptr;
    GST_DEBUG_CATEGORY_GET(c, "prefetchsrc");
    return c;
  }();
  return category;
}
#define GST_CAT_DEFAULT icy_category()

/* A header value as a tag, as souphttpsrc takes it: only valid UTF-8. */
static void add_icy_tag(GstTagList* tags, const char* tag, const std::string& value) {
  if (value.empty() || !g_utf8_validate(value.c_str(), -1, nullptr)) return;
  gst_tag_list_add(tags, GST_TAG_MERGE_REPLACE, tag, value.c_str(), nullptr);
}

void gst_prefetch_src_announce_icy(GstBaseSrc* src, const prefetch::IcyInfo& icy) {
  if (icy.metaint) {
    GstCaps* caps = gst_caps_new_simple("application/x-icy", "metadata-interval", G_TYPE_INT,
                                        *icy.metaint, nullptr);
    if (!icy.content_type.empty() && g_utf8_validate(icy.content_type.c_str(), -1, nullptr))
      gst_caps_set_simple(caps, "content-type", G_TYPE_STRING, icy.content_type.c_str(), nullptr);
    GST_DEBUG_OBJECT(src, "icy-metaint %d: caps %" GST_PTR_FORMAT, *icy.metaint, caps);
    gst_base_src_set_caps(src, caps);
    gst_caps_unref(caps);
  }
  GstTagList* tags = gst_tag_list_new_empty();
  add_icy_tag(tags, GST_TAG_ORGANIZATION, icy.name);
  add_icy_tag(tags, GST_TAG_GENRE, icy.genre);
  add_icy_tag(tags, GST_TAG_LOCATION, icy.url);
  if (gst_tag_list_is_empty(tags)) {
    gst_tag_list_unref(tags);
    return;
  }
  GST_DEBUG_OBJECT(src, "icy tags %" GST_PTR_FORMAT, tags);
  gst_pad_push_event(GST_BASE_SRC_PAD(src), gst_event_new_tag(tags));
}
