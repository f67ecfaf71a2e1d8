/* The element's properties: one pspec table, indexed by the ids of
 * plugin/element_properties.h and installed at once; the schedule enum type;
 * the stats structure. Setting and reading them is in
 * plugin/element_property_values.cc. */
#include "element_properties.h"

#include "gstprefetchsrc_private.h"

GType gst_prefetch_src_schedule_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_PREFETCH_SRC_SCHEDULE_WINDOW, "Sliding window: a request starts whenever a slot is free",
       "window"},
      {GST_PREFETCH_SRC_SCHEDULE_BATCH,
       "Batches of `concurrency` blocks, each delivered when complete", "batch"},
      {GST_PREFETCH_SRC_SCHEDULE_BARRIER,
       "Batches delivered only when all of the batch is complete (for comparison)", "barrier"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstPrefetchSrcSchedule", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

namespace {

// The properties by the type of their value, one row each: id, name, nick,
// blurb, then the range and default. Comments say what a row is for where
// its blurb does not.
struct StringProperty {
  guint id;
  const char* name;
  const char* nick;
  const char* blurb;
  const char* default_value;
};
struct BooleanProperty {
  guint id;
  const char* name;
  const char* nick;
  const char* blurb;
  gboolean default_value;
};
template <typename T>
struct RangeProperty {
  guint id;
  const char* name;
  const char* nick;
  const char* blurb;
  T min, max, default_value;
};

const StringProperty kStrings[] = {
    // location: the http:// or https:// URI to read.
    {PROP_LOCATION, "location", "Location", "HTTP or HTTPS URI to read from", nullptr},
    // user-agent: sent with every block request.
    {PROP_USER_AGENT, "user-agent", "User-Agent",
     "Value of the User-Agent HTTP request header field", DEFAULT_USER_AGENT},
    // proxy: empty = the environment's http_proxy / https_proxy / no_proxy.
    {PROP_PROXY, "proxy", "Proxy",
     "HTTP proxy server URI (default: the http_proxy / https_proxy environment variables)", ""},
    // Credentials, as souphttpsrc's: NULL by default, the nick is the name.
    {PROP_PROXY_ID, "proxy-id", "proxy-id", "HTTP proxy URI user id for authentication", nullptr},
    {PROP_PROXY_PW, "proxy-pw", "proxy-pw", "HTTP proxy URI user password for authentication",
     nullptr},
    {PROP_USER_ID, "user-id", "user-id", "HTTP location URI user id for authentication", nullptr},
    {PROP_USER_PW, "user-pw", "user-pw", "HTTP location URI user password for authentication",
     nullptr},
    {PROP_SSL_CA_FILE, "ssl-ca-file", "SSL CA File",
     "Location of a SSL anchor CA file (PEM) to trust", nullptr},
    // method: only GET makes sense for ranged reads; anything else fails at start.
    {PROP_METHOD, "method", "HTTP method",
     "The HTTP method to use; only GET is supported (default: GET)", nullptr},
    // disk-cache: the persistent disk tier (core/include/prefetch/disk_origin.h).
    {PROP_DISK_CACHE, "disk-cache", "Disk cache",
     "Directory of a disk cache shared by every element and process that names it: a replay or "
     "a seek back reads what it holds instead of the origin (validated as HTTP caching says). "
     "Empty = none, unless the PREFETCHSRC_DISK_CACHE environment variable names one",
     nullptr},
};

const BooleanProperty kBooleans[] = {
    {PROP_SSL_STRICT, "ssl-strict", "SSL Strict", "Strict SSL certificate checking",
     DEFAULT_SSL_STRICT},
    {PROP_SSL_USE_SYSTEM_CA_FILE, "ssl-use-system-ca-file", "Use System CA File",
     "Accepted for compatibility with souphttpsrc and ignored, as souphttpsrc ignores it over "
     "libsoup 3: without ssl-ca-file or tls-database the system's trust store is used",
     DEFAULT_SSL_USE_SYSTEM_CA_FILE},
    {PROP_AUTOMATIC_REDIRECT, "automatic-redirect", "automatic-redirect",
     "Automatically follow HTTP redirects (HTTP Status Code 3xx); block requests started after "
     "the first answer go to its target",
     DEFAULT_AUTOMATIC_REDIRECT},
    {PROP_IS_LIVE, "is-live", "is-live", "Act like a live source", DEFAULT_IS_LIVE},
    {PROP_KEEP_ALIVE, "keep-alive", "keep-alive", "Use HTTP persistent connections",
     DEFAULT_KEEP_ALIVE},
    // hedge: second requests for late first bytes (the reader's, late blocks).
    {PROP_HEDGE, "hedge", "Hedge",
     "Send a second request for a late first byte: up to two twins for the reader's at a start "
     "or seek, one hedge for a block near the read position whose first byte is much later than "
     "usual (at most 10% extra requests); the first answer wins",
     DEFAULT_HEDGE},
    // iradio-mode: ask Icecast/SHOUTcast servers for their metadata; on an
    // answer with icy-metaint the caps are application/x-icy (put icydemux
    // downstream) and icy-name/genre/url become tags. Others ignore it.
    {PROP_IRADIO_MODE, "iradio-mode", "iradio-mode",
     "Enable internet radio mode (ask server to send shoutcast/icecast metadata interleaved "
     "with the actual stream data)",
     DEFAULT_IRADIO_MODE},
    // compress: accept gzip and deflate. An encoded body has no byte ranges:
    // it is read as one stream (not seekable, no concurrency).
    {PROP_COMPRESS, "compress", "Compress", "Allow compressed content encodings", DEFAULT_COMPRESS},
};

const RangeProperty<guint> kUints[] = {
    // concurrency: range requests in flight at once (= connections).
    {PROP_CONCURRENCY, "concurrency", "Concurrency",
     "Range requests in flight at once, each on its own connection; 0 (the default) = "
     "automatic: starts at 4, adds connections while that raises the rate, comes down to what "
     "the origin serves on 429/503, drops them when the consumer is slower (window schedule; up "
     "to max-concurrency)",
     0, MAX_CONCURRENCY, DEFAULT_CONCURRENCY},
    // max-concurrency: the automatic concurrency's cap.
    {PROP_MAX_CONCURRENCY, "max-concurrency", "Max concurrency",
     "With concurrency=0 (automatic): transfers at once at most", 1, MAX_CONCURRENCY,
     DEFAULT_MAX_CONCURRENCY},
    // max-host-connections: the process's connections to the location's
    // host, shared by all prefetchsrc elements by need (the smallest non-zero
    // value among them binds).
    {PROP_MAX_HOST_CONNECTIONS, "max-host-connections", "Max host connections",
     "Process-wide connections to one host, shared by all prefetchsrc elements of the process "
     "by need (a waiting reader first); the smallest non-zero value among them binds; 0 = no "
     "limit",
     0, G_MAXUINT, DEFAULT_MAX_HOST_CONNECTIONS},
    // lookahead-blocks: blocks held ahead of the reader (the memory budget).
    {PROP_LOOKAHEAD_BLOCKS, "lookahead-blocks", "Look-ahead blocks",
     "Blocks held in memory from the read position on, fetched or being fetched (0 = 2 x "
     "concurrency); memory is about this x block-size",
     0, 4096, DEFAULT_LOOKAHEAD_BLOCKS},
    // timeout: seconds without progress on one request.
    {PROP_TIMEOUT, "timeout", "Timeout",
     "Seconds a request may bring less than 512 bytes a second (nothing, or a trickle) before "
     "it is retried; after retries + 1 of them the element fails (0 = no timeout)",
     0, 3600, DEFAULT_TIMEOUT},
};

const RangeProperty<guint64> kUint64s[] = {
    // block-size: bytes per range request. Not the inherited `blocksize`,
    // which is the size GstBaseSrc asks create() for (a hint we exceed).
    {PROP_BLOCK_SIZE, "block-size", "Block size",
     "Bytes per HTTP range request (one block); unlike the inherited 'blocksize', which is the "
     "buffer size hint of GstBaseSrc",
     MIN_BLOCK_SIZE, MAX_BLOCK_SIZE, DEFAULT_BLOCK_SIZE},
    // max-request-size: a span's length at most (bytes). A block is the unit
    // of storage and delivery; a span, one range request over consecutive
    // blocks, the unit of transfer. Every value is taken: the engine rounds
    // it up to whole blocks.
    {PROP_MAX_REQUEST_SIZE, "max-request-size", "Max request size",
     "Longest byte range one HTTP request asks for (rounded up to whole blocks); 0 = automatic: "
     "spans grow while reads are sequential and the origin's first-byte time makes longer "
     "requests pay. Window schedule only",
     0, G_MAXUINT64, DEFAULT_MAX_REQUEST_SIZE},
    // cache-size: delivered blocks kept for jumps back (bytes).
    {PROP_CACHE_SIZE, "cache-size", "Cache size",
     "Bytes of complete blocks kept after they leave the look-ahead window (least recently used "
     "first out), so jumps back are served without a request (0 = none)",
     0, G_MAXUINT64, DEFAULT_CACHE_SIZE},
    // disk-cache-max-size: the disk-cache directory's bound (bytes of blocks held).
    {PROP_DISK_CACHE_MAX_SIZE, "disk-cache-max-size", "Disk cache max size",
     "Bytes the disk-cache directory holds at most (least recently used resources go first); "
     "0 = 2 GiB or what leaves 10% of the disk free, whichever is smaller",
     0, G_MAXUINT64, DEFAULT_DISK_CACHE_MAX_SIZE},
};

}  // namespace

void gst_prefetch_src_install_properties(GObjectClass* gobject_class) {
  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);
  GParamSpec* specs[N_PROPERTIES] = {};
  for (const auto& p : kStrings)
    specs[p.id] = g_param_spec_string(p.name, p.nick, p.blurb, p.default_value, rw);
  for (const auto& p : kBooleans)
    specs[p.id] = g_param_spec_boolean(p.name, p.nick, p.blurb, p.default_value, rw);
  for (const auto& p : kUints)
    specs[p.id] = g_param_spec_uint(p.name, p.nick, p.blurb, p.min, p.max, p.default_value, rw);
  for (const auto& p : kUint64s)
    specs[p.id] = g_param_spec_uint64(p.name, p.nick, p.blurb, p.min, p.max, p.default_value, rw);

  // The one-of-a-kind properties (enum, int, boxed and object values).
  // schedule: how requests are started and blocks released.
  specs[PROP_SCHEDULE] =
      g_param_spec_enum("schedule", "Schedule",
                        "How block requests are scheduled (batch and barrier exist to show "
                        "the difference in benchmarks)",
                        GST_TYPE_PREFETCH_SRC_SCHEDULE, DEFAULT_SCHEDULE, rw);
  // http-log-level: libsoup's own HTTP log, shown at GST_DEBUG=prefetchsrc:6.
  specs[PROP_HTTP_LOG_LEVEL] =
      g_param_spec_enum("http-log-level", "HTTP log level",
                        "Set log level for soup's HTTP session log (shown at "
                        "GST_DEBUG=prefetchsrc:6)",
                        prefetch::SoupOrigin::http_log_level_type(), DEFAULT_HTTP_LOG_LEVEL, rw);
  // retries: per block, as souphttpsrc's.
  specs[PROP_RETRIES] =
      g_param_spec_int("retries", "Retries",
                       "Maximum number of retries of one block until giving up (-1 = infinite)", -1,
                       G_MAXINT, DEFAULT_RETRIES, rw);
  // extra-headers: a GstStructure of name=value pairs, sent with every request.
  specs[PROP_EXTRA_HEADERS] =
      g_param_spec_boxed("extra-headers", "Extra Headers",
                         "Extra headers to append to every HTTP request", GST_TYPE_STRUCTURE, rw);
  // cookies: "name=value" strings, sent with every request.
  specs[PROP_COOKIES] =
      g_param_spec_boxed("cookies", "Cookies", "HTTP request cookies", G_TYPE_STRV, rw);
  specs[PROP_TLS_DATABASE] =
      g_param_spec_object("tls-database", "TLS database",
                          "TLS database with anchor certificate authorities used to validate "
                          "the server certificate",
                          G_TYPE_TLS_DATABASE, rw);
  specs[PROP_TLS_INTERACTION] =
      g_param_spec_object("tls-interaction", "TLS interaction",
                          "A GTlsInteraction object to be used when the connection or "
                          "certificate database need to interact with the user",
                          G_TYPE_TLS_INTERACTION, rw);
  // stats: a snapshot, see the README for its fields.
  specs[PROP_STATS] = g_param_spec_boxed(
      "stats", "Statistics",
      "Transfer statistics: bytes-delivered, bytes-received (body bytes "
      "the requests brought), blocks-fetched, requests-started, "
      "bytes-per-request, retries, stalls (requests that brought less than "
      "512 bytes a second for the timeout), probes-sent (of an origin every "
      "request waited on in vain), hedges-sent, hedges-won, races-sent "
      "(twins racing the reader's first byte at a start or seek), races-won, cache-hits, "
      "requests-in-flight, host-connections (slots of max-host-connections "
      "held), concurrency (transfers allowed now), "
      "concurrency-reason (why automatic concurrency last changed it), "
      "ttfb-mean-ms, ttfb-median-ms, ttfb-p95-ms, "
      "throughput (bytes/s over the last interval); with a disk-cache: disk-blocks-read, "
      "disk-bytes-read, disk-blocks-written, disk-bytes-written, disk-blocks-damaged, "
      "disk-blocks-not-written, disk-revalidations, disk-not-modified, disk-changed, "
      "disk-offline",
      GST_TYPE_STRUCTURE, static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  g_object_class_install_properties(gobject_class, N_PROPERTIES, specs);
}

GstStructure* gst_prefetch_src_make_stats(GstPrefetchSrc* self) {
  prefetch::Stats st;
  prefetch::DiskStats disk;
  bool with_disk = false;
  self->priv->life.with_running([&](EngineRun& run) {
    st = run.prefetcher->stats();
    if (run.disk) {
      with_disk = true;
      disk = run.disk->stats();
    }
  });
  GstStructure* s = gst_structure_new("application/x-prefetchsrc-stats",                         //
                                      "bytes-delivered", G_TYPE_UINT64, st.bytes_delivered,      //
                                      "bytes-received", G_TYPE_UINT64, st.bytes_received,        //
                                      "blocks-fetched", G_TYPE_UINT64, st.blocks_fetched,        //
                                      "requests-started", G_TYPE_UINT64, st.requests_started,    //
                                      "bytes-per-request", G_TYPE_DOUBLE, st.bytes_per_request,  //
                                      "retries", G_TYPE_UINT64, st.retries,                      //
                                      "stalls", G_TYPE_UINT64, st.stalls,                        //
                                      "probes-sent", G_TYPE_UINT64, st.probes_sent,              //
                                      "hedges-sent", G_TYPE_UINT64, st.hedges_sent,              //
                                      "hedges-won", G_TYPE_UINT64, st.hedges_won,                //
                                      "races-sent", G_TYPE_UINT64, st.races_sent,                //
                                      "races-won", G_TYPE_UINT64, st.races_won,                  //
                                      "cache-hits", G_TYPE_UINT64, st.cache_hits,                //
                                      "requests-in-flight", G_TYPE_UINT, st.in_flight,           //
                                      "host-connections", G_TYPE_UINT, st.host_connections,      //
                                      "concurrency", G_TYPE_UINT, st.concurrency,                //
                                      "concurrency-reason", G_TYPE_STRING, st.concurrency_why,   //
                                      "ttfb-mean-ms", G_TYPE_DOUBLE, st.ttfb_mean_ms,            //
                                      "ttfb-median-ms", G_TYPE_DOUBLE, st.ttfb_median_ms,        //
                                      "ttfb-p95-ms", G_TYPE_DOUBLE, st.ttfb_p95_ms,              //
                                      "throughput", G_TYPE_DOUBLE, st.throughput_bytes_per_s,    //
                                      nullptr);
  if (with_disk)
    gst_structure_set(s,                                                              //
                      "disk-blocks-read", G_TYPE_UINT64, disk.blocks_read,            //
                      "disk-bytes-read", G_TYPE_UINT64, disk.bytes_read,              //
                      "disk-blocks-written", G_TYPE_UINT64, disk.blocks_written,      //
                      "disk-bytes-written", G_TYPE_UINT64, disk.bytes_written,        //
                      "disk-blocks-damaged", G_TYPE_UINT64, disk.blocks_damaged,      //
                      "disk-blocks-not-written", G_TYPE_UINT64, disk.blocks_dropped,  //
                      "disk-revalidations", G_TYPE_UINT64, disk.revalidations,        //
                      "disk-not-modified", G_TYPE_UINT64, disk.not_modified,          //
                      "disk-changed", G_TYPE_UINT64, disk.changed,                    //
                      "disk-offline", G_TYPE_UINT64, disk.offline,                    //
                      nullptr);
  return s;
}
