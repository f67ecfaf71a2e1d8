/* Plugin registration: one element, prefetchsrc. */
#include <gst/gst.h>

#include "gstprefetchsrc.h"

static gboolean plugin_init(GstPlugin* plugin) { return GST_ELEMENT_REGISTER(prefetchsrc, plugin); }

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, prefetchsrc,
                  "HTTP source with concurrent byte-range prefetch", plugin_init, VERSION, "LGPL",
                  PACKAGE, "Unknown package origin")
