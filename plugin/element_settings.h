/* The element's settings: property values, their defaults, and how they
 * become the engine's prefetch::HttpOptions and prefetch::Config. The
 * properties themselves are in plugin/element_properties.cc. */
#pragma once

#include <gst/gst.h>

#include <string>
#include <vector>

#include "gstprefetchsrc.h"
#include "prefetch/prefetcher.h"
#include "prefetch/soup_origin.h"

/* Defaults: the engine's where it has one (core/include/prefetch/), so
 * that each is written once; the element's own below. */
#define DEFAULT_BLOCK_SIZE prefetch::Config::kDefaultBlockSize
#define DEFAULT_MAX_REQUEST_SIZE prefetch::Config::kDefaultMaxRequestBytes /* 0: automatic */
#define DEFAULT_CONCURRENCY prefetch::Config::kDefaultConcurrency          /* 0: automatic */
#define DEFAULT_MAX_CONCURRENCY prefetch::Config::kDefaultMaxConcurrency
#define DEFAULT_MAX_HOST_CONNECTIONS prefetch::Config::kDefaultMaxHostConnections /* 0: none */
#define DEFAULT_LOOKAHEAD_BLOCKS prefetch::Config::kDefaultLookaheadBlocks        /* 0: automatic */
#define DEFAULT_CACHE_SIZE prefetch::Config::kDefaultCacheBytes
#define DEFAULT_RETRIES prefetch::RetryPolicy::kDefaultRetries
#define DEFAULT_HEDGE prefetch::HedgePolicy::kDefaultEnabled
#define DEFAULT_TIMEOUT prefetch::HttpOptions::kDefaultTimeoutSeconds
#define DEFAULT_SSL_STRICT prefetch::HttpOptions::kDefaultSslStrict
#define DEFAULT_AUTOMATIC_REDIRECT prefetch::HttpOptions::kDefaultAutomaticRedirect
#define DEFAULT_KEEP_ALIVE prefetch::HttpOptions::kDefaultKeepAlive
#define DEFAULT_COMPRESS prefetch::HttpOptions::kDefaultCompress
#define DEFAULT_SCHEDULE GST_PREFETCH_SRC_SCHEDULE_WINDOW
#define DEFAULT_USER_AGENT "GStreamer prefetchsrc " VERSION " "
#define DEFAULT_HTTP_LOG_LEVEL 2 /* SOUP_LOGGER_LOG_HEADERS, as souphttpsrc */
#define DEFAULT_IS_LIVE FALSE
/* Accepted and ignored, as souphttpsrc does over libsoup 3. */
#define DEFAULT_SSL_USE_SYSTEM_CA_FILE TRUE
#define DEFAULT_IRADIO_MODE TRUE      /* as souphttpsrc */
#define DEFAULT_DISK_CACHE_MAX_SIZE 0 /* 0: 2 GiB or 10% of the disk free */

#define MIN_BLOCK_SIZE 1024
#define MAX_BLOCK_SIZE (G_GUINT64_CONSTANT(1) << 30)
#define MAX_CONCURRENCY 64

/* Property values: set from the application thread, copied at start(). */
struct Settings {
  std::string location;
  guint64 block_size = DEFAULT_BLOCK_SIZE;
  guint64 max_request_size = DEFAULT_MAX_REQUEST_SIZE;
  guint concurrency = DEFAULT_CONCURRENCY;
  guint max_concurrency = DEFAULT_MAX_CONCURRENCY;
  guint max_host_connections = DEFAULT_MAX_HOST_CONNECTIONS;
  guint lookahead_blocks = DEFAULT_LOOKAHEAD_BLOCKS;
  gint schedule = DEFAULT_SCHEDULE; /* a GstPrefetchSrcSchedule */
  gint retries = DEFAULT_RETRIES;
  guint timeout = DEFAULT_TIMEOUT;
  std::string user_agent = DEFAULT_USER_AGENT;
  GstStructure* extra_headers = nullptr;
  std::vector<std::string> cookies;
  std::string proxy, proxy_id, proxy_pw, user_id, user_pw;
  gboolean ssl_strict = DEFAULT_SSL_STRICT;
  std::string ssl_ca_file;
  gboolean ssl_use_system_ca_file = DEFAULT_SSL_USE_SYSTEM_CA_FILE;
  GTlsDatabase* tls_database = nullptr;
  GTlsInteraction* tls_interaction = nullptr;
  gboolean automatic_redirect = DEFAULT_AUTOMATIC_REDIRECT;
  gint http_log_level = DEFAULT_HTTP_LOG_LEVEL;
  gboolean keep_alive = DEFAULT_KEEP_ALIVE;
  std::string method;
  gboolean hedge = DEFAULT_HEDGE;
  guint64 cache_size = DEFAULT_CACHE_SIZE;
  gboolean iradio_mode = DEFAULT_IRADIO_MODE;
  gboolean compress = DEFAULT_COMPRESS;
  std::string disk_cache; /* empty: PREFETCHSRC_DISK_CACHE's, or none */
  guint64 disk_cache_max_size = DEFAULT_DISK_CACHE_MAX_SIZE;
};

/* Frees what the settings own (extra-headers, the TLS objects). */
void settings_clear(Settings& s);

/* The transport's options for `s` (borrowing its TLS objects). */
prefetch::HttpOptions settings_http_options(const Settings& s);

/* The engine's configuration for `s`. */
prefetch::Config settings_config(const Settings& s);

/* Why `s` cannot start an engine, if it cannot. */
enum class SettingsProblem { kNone, kNoLocation, kBadLocation, kBadMethod };
SettingsProblem settings_check(const Settings& s, std::string* why);
