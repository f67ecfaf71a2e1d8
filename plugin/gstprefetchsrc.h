/* prefetchsrc: an HTTP source that fetches byte-range blocks concurrently and
 * pushes them downstream strictly in order. */
#pragma once

#include <gst/base/gstbasesrc.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_PREFETCH_SRC (gst_prefetch_src_get_type())
G_DECLARE_FINAL_TYPE(GstPrefetchSrc, gst_prefetch_src, GST, PREFETCH_SRC, GstBaseSrc)

#define GST_TYPE_PREFETCH_SRC_SCHEDULE (gst_prefetch_src_schedule_get_type())
GType gst_prefetch_src_schedule_get_type(void);

typedef enum {
  GST_PREFETCH_SRC_SCHEDULE_WINDOW = 0,
  GST_PREFETCH_SRC_SCHEDULE_BATCH = 1,
  GST_PREFETCH_SRC_SCHEDULE_BARRIER = 2,
} GstPrefetchSrcSchedule;

GST_ELEMENT_REGISTER_DECLARE(prefetchsrc);

G_END_DECLS
