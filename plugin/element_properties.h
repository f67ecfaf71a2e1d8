/* The element's property ids, shared by the pspec table
 * (plugin/element_properties.cc) and set/get_property
 * (plugin/element_property_values.cc). Ids follow the order the properties
 * are installed in. */
#pragma once

#include <gst/gst.h>

#include "gstprefetchsrc.h"

enum {
  PROP_0,
  PROP_LOCATION,
  PROP_BLOCK_SIZE,
  PROP_MAX_REQUEST_SIZE,
  PROP_CONCURRENCY,
  PROP_MAX_CONCURRENCY,
  PROP_MAX_HOST_CONNECTIONS,
  PROP_LOOKAHEAD_BLOCKS,
  PROP_SCHEDULE,
  PROP_RETRIES,
  PROP_TIMEOUT,
  PROP_USER_AGENT,
  PROP_EXTRA_HEADERS,
  PROP_COOKIES,
  PROP_PROXY,
  PROP_PROXY_ID,
  PROP_PROXY_PW,
  PROP_USER_ID,
  PROP_USER_PW,
  PROP_SSL_STRICT,
  PROP_SSL_CA_FILE,
  PROP_SSL_USE_SYSTEM_CA_FILE,
  PROP_TLS_DATABASE,
  PROP_TLS_INTERACTION,
  PROP_AUTOMATIC_REDIRECT,
  PROP_HTTP_LOG_LEVEL,
  PROP_IS_LIVE,
  PROP_KEEP_ALIVE,
  PROP_METHOD,
  PROP_HEDGE,
  PROP_CACHE_SIZE,
  PROP_STATS,
  PROP_IRADIO_MODE,
  PROP_COMPRESS,
  PROP_DISK_CACHE,
  PROP_DISK_CACHE_MAX_SIZE,
  N_PROPERTIES
};

/* The `stats` property's structure: a snapshot of the running engine's
 * counters (all zero when not running). */
GstStructure* gst_prefetch_src_make_stats(GstPrefetchSrc* self);
void gst_prefetch_src_set_property(GObject* object, guint prop_id, const GValue* value,
                                   GParamSpec* pspec);
void gst_prefetch_src_get_property(GObject* object, guint prop_id, GValue* value,
                                   GParamSpec* pspec);
