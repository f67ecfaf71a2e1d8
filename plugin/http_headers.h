/* The `http-headers` structure souphttpsrc gives applications and downstream
 * elements, and the redirect its URI query reports.
 *
 *   http-headers, uri=(string)LOCATION,
 *                 redirection-uri=(string)TARGET,   only when redirected
 *                 http-status-code=(uint)206,
 *                 request-headers=(structure)"request-headers, NAME=(string)VALUE, ...",
 *                 response-headers=(structure)"response-headers, NAME=(string)VALUE, ..."
 *
 * A header that came more than once is a GstValueArray of its values, in
 * order (as souphttpsrc does). It is posted as an element message and pushed
 * downstream as a GST_EVENT_CUSTOM_DOWNSTREAM_STICKY event before the first
 * buffer of the resource, and again when an answer comes from a new redirect
 * target (prefetch::ResourceInfo's serial). */
#pragma once

#include <gst/base/gstbasesrc.h>

#include <functional>
#include <mutex>
#include <string>

#include "prefetch/prefetcher.h"

/* The structure for `head`, asked for at `location`. */
GstStructure* gst_prefetch_src_http_headers_new(const std::string& location,
                                                const prefetch::ResponseHead& head);

/* What the URI query adds to the location: the redirect target of the last
 * http-headers reported for it and whether every redirect on the way was
 * permanent. Written by create(), read by queries on any thread. */
class GstPrefetchSrcRedirect {
 public:
  void remember(const std::string& location, const prefetch::ResponseHead& head);
  /* Sets the redirection (and its permanence) of a URI query for
   * `location`, if one is known for it; nothing otherwise. */
  void answer(GstQuery* query, const std::string& location) const;

 private:
  mutable std::mutex lock_;
  std::string location_; /* the location the target was found for */
  std::string target_;   /* empty: not redirected */
  bool permanent_ = false;
};

/* In create(), on the streaming thread, with no lock held: reports the
 * engine's ResourceInfo once per serial (`*reported` holds the last one
 * reported by this engine): posts the element message, pushes the sticky
 * event and remembers the redirect. `discont` (the first buffer after
 * start() or a seek) also pushes the event again if the pad lost it (a
 * pad-mode switch deactivates the pad, which drops its sticky events).
 * `location` is called only when there is something to report. */
void gst_prefetch_src_report_http_headers(GstBaseSrc* src, const prefetch::Prefetcher& engine,
                                          guint64* reported, bool discont,
                                          const std::function<std::string()>& location,
                                          GstPrefetchSrcRedirect* redirect);
