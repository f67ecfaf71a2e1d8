/**
 * SECTION:element-prefetchsrc
 * @title: prefetchsrc
 *
 * Reads an http:// or https:// resource as fixed-size byte-range blocks
 * fetched over several connections at once, and pushes the bytes downstream
 * strictly in order: each block as soon as everything before it is there, the
 * block at the head of the line even while it arrives. On origins that are
 * slow per request (long time to first byte, a rate cap per connection) it
 * starts as early as souphttpsrc and then runs up to `concurrency` times
 * faster. Property names follow souphttpsrc, so switching is one word.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 prefetchsrc location=https://example.com/clip.mp4 ! decodebin ! autovideosink
 * gst-launch-1.0 prefetchsrc location=http://127.0.0.1:8080/big.bin concurrency=8 ! filesink
 * location=big.bin
 * ]|
 */

#include "gstprefetchsrc.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gstprefetchsrc_icy.h"
#include "http_headers.h"
#include "prefetch/host_budget.h"
#include "prefetch/prefetcher.h"
#include "prefetch/soup_origin.h"

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

GST_DEBUG_CATEGORY_STATIC(gst_prefetch_src_debug);
#define GST_CAT_DEFAULT gst_prefetch_src_debug

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
};

#define DEFAULT_BLOCK_SIZE (G_GUINT64_CONSTANT(1) << 20)
#define DEFAULT_MAX_REQUEST_SIZE 0 /* automatic */
#define DEFAULT_CONCURRENCY 0
#define DEFAULT_MAX_CONCURRENCY 16
#define DEFAULT_MAX_HOST_CONNECTIONS 0 /* no limit */
#define DEFAULT_LOOKAHEAD_BLOCKS 0
#define DEFAULT_SCHEDULE GST_PREFETCH_SRC_SCHEDULE_WINDOW
#define DEFAULT_RETRIES 3
#define DEFAULT_TIMEOUT 15
#define DEFAULT_USER_AGENT "GStreamer prefetchsrc " VERSION " "
#define DEFAULT_SSL_STRICT TRUE
#define DEFAULT_SSL_USE_SYSTEM_CA_FILE TRUE
#define DEFAULT_AUTOMATIC_REDIRECT TRUE
#define DEFAULT_HTTP_LOG_LEVEL 2 /* SOUP_LOGGER_LOG_HEADERS, as souphttpsrc */
#define DEFAULT_IS_LIVE FALSE
#define DEFAULT_KEEP_ALIVE TRUE
#define DEFAULT_HEDGE TRUE
#define DEFAULT_CACHE_SIZE (G_GUINT64_CONSTANT(8) << 20)
#define DEFAULT_IRADIO_MODE TRUE /* as souphttpsrc */
#define DEFAULT_COMPRESS FALSE

/* The longest the scheduling query waits for the first answer. */
#define SCHEDULING_WAIT_MAX_S 5u
/* How long a standby engine may sit unused before it is dropped. Its normal
 * life is far shorter: the start() that adopts it follows within the same
 * state change (the query) or the same pad-mode switch; a later start()
 * after a drop only repeats the first requests. */
#define STANDBY_IDLE std::chrono::milliseconds(2000)
/* For tests only, not a property: object data under this key (a guint of
 * milliseconds, set with g_object_set_data() before the standby begins)
 * replaces STANDBY_IDLE for the element, so that a test can make the idle
 * time far longer than a pad-mode switch on the slowest build (the switch
 * then never races the reaper) or short enough to watch the reaper act. */
#define STANDBY_IDLE_TEST_KEY "prefetchsrc-test-standby-idle-ms"

#define MIN_BLOCK_SIZE 1024
#define MAX_BLOCK_SIZE (G_GUINT64_CONSTANT(1) << 30)
#define MAX_CONCURRENCY 64
/* Push mode's batching of a block that is still arriving (see create()):
 * how many bytes a buffer waits for, and how long at most. */
#define GATHER_BYTES (G_GUINT64_CONSTANT(512) * 1024)
#define GATHER_WAIT std::chrono::microseconds(3000)
/* Push mode: the last bytes of a file go out in blocksize buffers (create()). */
#define PUSH_TAIL_BYTES (G_GUINT64_CONSTANT(64) * 1024)

namespace {

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
};

/* The engine and what goes with it: what exists while running (and while
 * in standby, see Phase). Shared so that a scheduling query can wait on the
 * engine while another thread stops it. */
struct State {
  std::shared_ptr<prefetch::SoupOrigin> origin;
  std::shared_ptr<prefetch::Prefetcher> prefetcher;
  guint64 block_size = DEFAULT_BLOCK_SIZE;
  guint64 serial = 0; /* the settings' serial it was made from */
  /* Where the last buffer ended: a create() elsewhere is the first after
   * start() or a seek, whose bytes are never held back to gather more. */
  guint64 next_offset = G_MAXUINT64;
  /* Push mode: the most bytes the next buffer may carry. It starts at
   * GstBaseSrc's blocksize after start() and every seek and doubles with
   * each buffer that filled it, up to a block (as souphttpsrc grows its
   * reads): a demuxer in push mode that takes one step per buffer (avidemux
   * reads its header over three) gets its first steps from the first few
   * KiB, the bulk still comes in large buffers. */
  guint64 push_size = 0;
  /* The opening answer's icy caps and tags went out (first create()). */
  bool icy_announced = false;
  guint64 headers_reported = 0; /* ResourceInfo serial last reported (http_headers.h) */
};

/* The element's lifecycle: at most one engine exists, and the phase says
 * who owns it.
 *   kStopped  no engine.
 *   kStandby  an engine that no start() owns: made early by the scheduling
 *             query (downstream asks before our start(): pads are activated
 *             sink to source), or kept by stop() across a pad-mode switch.
 *             start() adopts it when the settings have not changed since, so
 *             nothing is requested twice. Its life is bounded: every state
 *             change that does not adopt it drops it (a downward one first
 *             sets it flushing, which wakes a query waiting on it), and a
 *             reaper thread drops it after STANDBY_IDLE unused. Never in NULL.
 *   kRunning  between start() and stop(); create() reads the engine.
 * Only the functions in "lifecycle transitions" below change the phase:
 *   stopped -> standby  scheduling query, from READY on    enter_standby
 *   running -> standby  stop() in a pad-mode switch        leave_running
 *   standby -> running  start(), settings unchanged        enter_running
 *   stopped -> running  start() (drops a stale standby)    enter_running
 *   running -> stopped  stop()                             leave_running
 *   standby -> stopped  a state change that does not       drop_standby
 *                       adopt it; STANDBY_IDLE unused;     standby_reaper
 *                       finalize                           release_all */
enum class Phase { kStopped, kStandby, kRunning };

}  // namespace

struct GstPrefetchSrcPrivate {
  std::mutex settings_lock;
  Settings settings;
  guint64 settings_serial = 0; /* bumped by every property change */
  /* Guards `phase` and the `engine` pointers against the other threads
   * (scheduling query, unlock(), stats). create() runs only in kRunning,
   * when nothing but stop() changes them, and reads `engine` unlocked. */
  std::mutex state_lock;
  Phase phase = Phase::kStopped;
  State engine; /* empty in kStopped */
  /* Bumped by every state change that drops the standby: a scheduling query
   * that made its engine across one does not install it. */
  guint64 epoch = 0;
  /* The standby's bounded life. Each standby period has an id; the reaper
   * thread of that period waits on standby_cv until the standby has been
   * unused (no query waiting on it) up to standby_deadline, then drops it.
   * It lives only as long as its standby (joined by whoever ends it, or at
   * the next transition), so an element without a standby has no thread. */
  guint64 standby_id = 0;
  unsigned standby_users = 0;
  std::chrono::milliseconds standby_idle = STANDBY_IDLE; /* this period's */
  std::chrono::steady_clock::time_point standby_deadline;
  std::condition_variable standby_cv;
  std::thread reaper;
  GstPrefetchSrcRedirect redirect; /* for the URI query (http_headers.h) */
};

struct _GstPrefetchSrc {
  GstBaseSrc parent;
  GstPrefetchSrcPrivate* priv;
};

static void gst_prefetch_src_uri_handler_init(gpointer g_iface, gpointer iface_data);

#define gst_prefetch_src_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE(GstPrefetchSrc, gst_prefetch_src, GST_TYPE_BASE_SRC,
                        G_IMPLEMENT_INTERFACE(GST_TYPE_URI_HANDLER,
                                              gst_prefetch_src_uri_handler_init);
                        GST_DEBUG_CATEGORY_INIT(gst_prefetch_src_debug, "prefetchsrc", 0,
                                                "HTTP source with concurrent range prefetch"));
GST_ELEMENT_REGISTER_DEFINE(prefetchsrc, "prefetchsrc", GST_RANK_SECONDARY, GST_TYPE_PREFETCH_SRC);

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

static void gst_prefetch_src_finalize(GObject* object);
static void gst_prefetch_src_set_property(GObject* object, guint prop_id, const GValue* value,
                                          GParamSpec* pspec);
static void gst_prefetch_src_get_property(GObject* object, guint prop_id, GValue* value,
                                          GParamSpec* pspec);
static GstStateChangeReturn gst_prefetch_src_change_state(GstElement* element,
                                                          GstStateChange transition);
static gboolean gst_prefetch_src_start(GstBaseSrc* src);
static gboolean gst_prefetch_src_stop(GstBaseSrc* src);
static gboolean gst_prefetch_src_get_size(GstBaseSrc* src, guint64* size);
static gboolean gst_prefetch_src_is_seekable(GstBaseSrc* src);
static gboolean gst_prefetch_src_query(GstBaseSrc* src, GstQuery* query);
static gboolean gst_prefetch_src_do_seek(GstBaseSrc* src, GstSegment* segment);
static gboolean gst_prefetch_src_unlock(GstBaseSrc* src);
static gboolean gst_prefetch_src_unlock_stop(GstBaseSrc* src);
static GstFlowReturn gst_prefetch_src_create(GstBaseSrc* src, guint64 offset, guint size,
                                             GstBuffer** buf);

static void gst_prefetch_src_class_init(GstPrefetchSrcClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstBaseSrcClass* basesrc_class = GST_BASE_SRC_CLASS(klass);
  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);

  gobject_class->finalize = gst_prefetch_src_finalize;
  gobject_class->set_property = gst_prefetch_src_set_property;
  gobject_class->get_property = gst_prefetch_src_get_property;

  /* location: the http:// or https:// URI to read. */
  g_object_class_install_property(
      gobject_class, PROP_LOCATION,
      g_param_spec_string("location", "Location", "HTTP or HTTPS URI to read from", nullptr, rw));
  /* block-size: bytes per range request. Not the inherited `blocksize`,
   * which is the size GstBaseSrc asks create() for (a hint we exceed). */
  g_object_class_install_property(
      gobject_class, PROP_BLOCK_SIZE,
      g_param_spec_uint64("block-size", "Block size",
                          "Bytes per HTTP range request (one block); unlike the inherited "
                          "'blocksize', which is the buffer size hint of GstBaseSrc",
                          MIN_BLOCK_SIZE, MAX_BLOCK_SIZE, DEFAULT_BLOCK_SIZE, rw));
  /* max-request-size: a span's length at most (bytes). A block is the unit
   * of storage and delivery; a span, one range request over consecutive
   * blocks, the unit of transfer. Every value is taken: the engine rounds it
   * up to whole blocks. */
  g_object_class_install_property(
      gobject_class, PROP_MAX_REQUEST_SIZE,
      g_param_spec_uint64("max-request-size", "Max request size",
                          "Longest byte range one HTTP request asks for (rounded up to whole "
                          "blocks); 0 = automatic: spans grow while reads are sequential and "
                          "the origin's first-byte time makes longer requests pay. Window "
                          "schedule only",
                          0, G_MAXUINT64, DEFAULT_MAX_REQUEST_SIZE, rw));
  /* concurrency: range requests in flight at once (= connections). */
  g_object_class_install_property(
      gobject_class, PROP_CONCURRENCY,
      g_param_spec_uint("concurrency", "Concurrency",
                        "Range requests in flight at once, each on its own connection; 0 (the "
                        "default) = automatic: starts at 4, adds connections while that raises "
                        "the rate, comes down to what the origin serves on 429/503, drops them "
                        "when the consumer is slower (window schedule; up to max-concurrency)",
                        0, MAX_CONCURRENCY, DEFAULT_CONCURRENCY, rw));
  /* max-concurrency: the automatic concurrency's cap. */
  g_object_class_install_property(
      gobject_class, PROP_MAX_CONCURRENCY,
      g_param_spec_uint("max-concurrency", "Max concurrency",
                        "With concurrency=0 (automatic): transfers at once at most", 1,
                        MAX_CONCURRENCY, DEFAULT_MAX_CONCURRENCY, rw));
  /* max-host-connections: the process's connections to the location's host,
   * shared by all prefetchsrc elements by need (the smallest non-zero value
   * among them binds). */
  g_object_class_install_property(
      gobject_class, PROP_MAX_HOST_CONNECTIONS,
      g_param_spec_uint("max-host-connections", "Max host connections",
                        "Process-wide connections to one host, shared by all prefetchsrc "
                        "elements of the process by need (a waiting reader first); the "
                        "smallest non-zero value among them binds; 0 = no limit",
                        0, G_MAXUINT, DEFAULT_MAX_HOST_CONNECTIONS, rw));
  /* lookahead-blocks: blocks held ahead of the reader (the memory budget). */
  g_object_class_install_property(
      gobject_class, PROP_LOOKAHEAD_BLOCKS,
      g_param_spec_uint("lookahead-blocks", "Look-ahead blocks",
                        "Blocks held in memory from the read position on, fetched or being "
                        "fetched (0 = 2 x concurrency); memory is about this x block-size",
                        0, 4096, DEFAULT_LOOKAHEAD_BLOCKS, rw));
  /* schedule: how requests are started and blocks released. */
  g_object_class_install_property(
      gobject_class, PROP_SCHEDULE,
      g_param_spec_enum("schedule", "Schedule",
                        "How block requests are scheduled (batch and barrier exist to show "
                        "the difference in benchmarks)",
                        GST_TYPE_PREFETCH_SRC_SCHEDULE, DEFAULT_SCHEDULE, rw));
  /* retries: per block, as souphttpsrc's. */
  g_object_class_install_property(
      gobject_class, PROP_RETRIES,
      g_param_spec_int("retries", "Retries",
                       "Maximum number of retries of one block until giving up (-1 = infinite)", -1,
                       G_MAXINT, DEFAULT_RETRIES, rw));
  /* timeout: seconds without progress on one request. */
  g_object_class_install_property(
      gobject_class, PROP_TIMEOUT,
      g_param_spec_uint("timeout", "Timeout",
                        "Seconds a request may bring less than 512 bytes a second (nothing, "
                        "or a trickle) before it is retried; after retries + 1 of them the "
                        "element fails (0 = no timeout)",
                        0, 3600, DEFAULT_TIMEOUT, rw));
  /* user-agent: sent with every block request. */
  g_object_class_install_property(
      gobject_class, PROP_USER_AGENT,
      g_param_spec_string("user-agent", "User-Agent",
                          "Value of the User-Agent HTTP request header field", DEFAULT_USER_AGENT,
                          rw));
  /* extra-headers: a GstStructure of name=value pairs, sent with every request. */
  g_object_class_install_property(
      gobject_class, PROP_EXTRA_HEADERS,
      g_param_spec_boxed("extra-headers", "Extra Headers",
                         "Extra headers to append to every HTTP request", GST_TYPE_STRUCTURE, rw));
  /* cookies: "name=value" strings, sent with every request. */
  g_object_class_install_property(
      gobject_class, PROP_COOKIES,
      g_param_spec_boxed("cookies", "Cookies", "HTTP request cookies", G_TYPE_STRV, rw));
  /* proxy: empty = the environment's http_proxy / https_proxy / no_proxy. */
  g_object_class_install_property(
      gobject_class, PROP_PROXY,
      g_param_spec_string("proxy", "Proxy",
                          "HTTP proxy server URI (default: the http_proxy / https_proxy "
                          "environment variables)",
                          "", rw));
  /* Credentials, as souphttpsrc's: NULL by default, the nick is the name. */
  static const struct {
    guint id;
    const char* name;
    const char* blurb;
  } credentials[] = {
      {PROP_PROXY_ID, "proxy-id", "HTTP proxy URI user id for authentication"},
      {PROP_PROXY_PW, "proxy-pw", "HTTP proxy URI user password for authentication"},
      {PROP_USER_ID, "user-id", "HTTP location URI user id for authentication"},
      {PROP_USER_PW, "user-pw", "HTTP location URI user password for authentication"},
  };
  for (const auto& c : credentials) {
    g_object_class_install_property(gobject_class, c.id,
                                    g_param_spec_string(c.name, c.name, c.blurb, nullptr, rw));
  }
  g_object_class_install_property(
      gobject_class, PROP_SSL_STRICT,
      g_param_spec_boolean("ssl-strict", "SSL Strict", "Strict SSL certificate checking",
                           DEFAULT_SSL_STRICT, rw));
  g_object_class_install_property(
      gobject_class, PROP_SSL_CA_FILE,
      g_param_spec_string("ssl-ca-file", "SSL CA File",
                          "Location of a SSL anchor CA file (PEM) to trust", nullptr, rw));
  g_object_class_install_property(
      gobject_class, PROP_SSL_USE_SYSTEM_CA_FILE,
      g_param_spec_boolean("ssl-use-system-ca-file", "Use System CA File",
                           "Use the system's CA file when no ssl-ca-file or tls-database is set",
                           DEFAULT_SSL_USE_SYSTEM_CA_FILE, rw));
  g_object_class_install_property(
      gobject_class, PROP_TLS_DATABASE,
      g_param_spec_object("tls-database", "TLS database",
                          "TLS database with anchor certificate authorities used to validate "
                          "the server certificate",
                          G_TYPE_TLS_DATABASE, rw));
  g_object_class_install_property(
      gobject_class, PROP_TLS_INTERACTION,
      g_param_spec_object("tls-interaction", "TLS interaction",
                          "A GTlsInteraction object to be used when the connection or "
                          "certificate database need to interact with the user",
                          G_TYPE_TLS_INTERACTION, rw));
  g_object_class_install_property(
      gobject_class, PROP_AUTOMATIC_REDIRECT,
      g_param_spec_boolean("automatic-redirect", "automatic-redirect",
                           "Automatically follow HTTP redirects (HTTP Status Code 3xx); block "
                           "requests started after the first answer go to its target",
                           DEFAULT_AUTOMATIC_REDIRECT, rw));
  /* http-log-level: libsoup's own HTTP log, shown at GST_DEBUG=prefetchsrc:6. */
  g_object_class_install_property(
      gobject_class, PROP_HTTP_LOG_LEVEL,
      g_param_spec_enum("http-log-level", "HTTP log level",
                        "Set log level for soup's HTTP session log (shown at "
                        "GST_DEBUG=prefetchsrc:6)",
                        prefetch::SoupOrigin::http_log_level_type(), DEFAULT_HTTP_LOG_LEVEL, rw));
  g_object_class_install_property(
      gobject_class, PROP_IS_LIVE,
      g_param_spec_boolean("is-live", "is-live", "Act like a live source", DEFAULT_IS_LIVE, rw));
  g_object_class_install_property(
      gobject_class, PROP_KEEP_ALIVE,
      g_param_spec_boolean("keep-alive", "keep-alive", "Use HTTP persistent connections",
                           DEFAULT_KEEP_ALIVE, rw));
  /* method: only GET makes sense for ranged reads; anything else fails at start. */
  g_object_class_install_property(
      gobject_class, PROP_METHOD,
      g_param_spec_string("method", "HTTP method",
                          "The HTTP method to use; only GET is supported (default: GET)", nullptr,
                          rw));
  /* hedge: duplicate requests for late blocks at the head of the line. */
  g_object_class_install_property(
      gobject_class, PROP_HEDGE,
      g_param_spec_boolean("hedge", "Hedge",
                           "Send a second request for a block near the read position whose "
                           "first byte is much later than usual (at most 10% extra requests, "
                           "one per block); the first answer wins",
                           DEFAULT_HEDGE, rw));
  /* cache-size: delivered blocks kept for jumps back (bytes). */
  g_object_class_install_property(
      gobject_class, PROP_CACHE_SIZE,
      g_param_spec_uint64("cache-size", "Cache size",
                          "Bytes of complete blocks kept after they leave the look-ahead "
                          "window (least recently used first out), so jumps back are served "
                          "without a request (0 = none)",
                          0, G_MAXUINT64, DEFAULT_CACHE_SIZE, rw));
  /* stats: a snapshot, see the README for its fields. */
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics",
                         "Transfer statistics: bytes-delivered, bytes-received (body bytes "
                         "the requests brought), blocks-fetched, requests-started, "
                         "bytes-per-request, retries, stalls (requests that brought less than "
                         "512 bytes a second for the timeout), probes-sent (of an origin every "
                         "request waited on in vain), hedges-sent, hedges-won, cache-hits, "
                         "requests-in-flight, host-connections (slots of max-host-connections "
                         "held), concurrency (transfers allowed now), "
                         "concurrency-reason (why automatic concurrency last changed it), "
                         "ttfb-mean-ms, ttfb-median-ms, ttfb-p95-ms, "
                         "throughput (bytes/s over the last interval)",
                         GST_TYPE_STRUCTURE,
                         static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  /* iradio-mode: ask Icecast/SHOUTcast servers for their metadata; on an
   * answer with icy-metaint the caps are application/x-icy (put icydemux
   * downstream) and icy-name/genre/url become tags. Others ignore it. */
  g_object_class_install_property(
      gobject_class, PROP_IRADIO_MODE,
      g_param_spec_boolean("iradio-mode", "iradio-mode",
                           "Enable internet radio mode (ask server to send shoutcast/icecast "
                           "metadata interleaved with the actual stream data)",
                           DEFAULT_IRADIO_MODE, rw));
  /* compress: accept gzip and deflate. An encoded body has no byte ranges:
   * it is read as one stream (not seekable, no concurrency). */
  g_object_class_install_property(
      gobject_class, PROP_COMPRESS,
      g_param_spec_boolean("compress", "Compress", "Allow compressed content encodings",
                           DEFAULT_COMPRESS, rw));

  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "HTTP prefetching source", "Source/Network",
      "Reads HTTP(S) resources as concurrent byte-range blocks, delivered in order",
      "prefetchsrc developers");

  element_class->change_state = GST_DEBUG_FUNCPTR(gst_prefetch_src_change_state);
  basesrc_class->start = GST_DEBUG_FUNCPTR(gst_prefetch_src_start);
  basesrc_class->stop = GST_DEBUG_FUNCPTR(gst_prefetch_src_stop);
  basesrc_class->get_size = GST_DEBUG_FUNCPTR(gst_prefetch_src_get_size);
  basesrc_class->is_seekable = GST_DEBUG_FUNCPTR(gst_prefetch_src_is_seekable);
  basesrc_class->query = GST_DEBUG_FUNCPTR(gst_prefetch_src_query);
  basesrc_class->do_seek = GST_DEBUG_FUNCPTR(gst_prefetch_src_do_seek);
  basesrc_class->unlock = GST_DEBUG_FUNCPTR(gst_prefetch_src_unlock);
  basesrc_class->unlock_stop = GST_DEBUG_FUNCPTR(gst_prefetch_src_unlock_stop);
  basesrc_class->create = GST_DEBUG_FUNCPTR(gst_prefetch_src_create);

  gst_type_mark_as_plugin_api(GST_TYPE_PREFETCH_SRC_SCHEDULE, static_cast<GstPluginAPIFlags>(0));
}

static void gst_prefetch_src_init(GstPrefetchSrc* self) {
  self->priv = new GstPrefetchSrcPrivate();
  gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_BYTES);
  gst_base_src_set_dynamic_size(GST_BASE_SRC(self), TRUE);
  gst_base_src_set_live(GST_BASE_SRC(self), DEFAULT_IS_LIVE);
}

static void gst_prefetch_src_release_all(GstPrefetchSrc* self);

static void gst_prefetch_src_finalize(GObject* object) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(object);
  /* A standby engine (an element unreffed in READY) and its reaper. */
  gst_prefetch_src_release_all(self);
  Settings& s = self->priv->settings;
  if (s.extra_headers) gst_structure_free(s.extra_headers);
  g_clear_object(&s.tls_database);
  g_clear_object(&s.tls_interaction);
  delete self->priv;
  G_OBJECT_CLASS(parent_class)->finalize(object);
}

/* ---- properties ---- */

static std::string string_or_empty(const GValue* value) {
  const gchar* s = g_value_get_string(value);
  return s ? s : "";
}

static void set_string_or_null(GValue* value, const std::string& s) {
  g_value_set_string(value, s.empty() ? nullptr : s.c_str());
}

/* Properties that are one plain member of Settings, set and read through
 * these tables; the switches in set/get_property keep the ones with logic of
 * their own. An int member may back an int, enum or boolean property: the
 * GValue's own type says which. */
template <typename T>
struct PlainProp {
  guint id;
  T Settings::*member;
};
static const PlainProp<gint> kIntProps[] = {
    {PROP_SCHEDULE, &Settings::schedule},
    {PROP_RETRIES, &Settings::retries},
    {PROP_HTTP_LOG_LEVEL, &Settings::http_log_level},
    {PROP_SSL_STRICT, &Settings::ssl_strict},
    {PROP_SSL_USE_SYSTEM_CA_FILE, &Settings::ssl_use_system_ca_file},
    {PROP_AUTOMATIC_REDIRECT, &Settings::automatic_redirect},
    {PROP_KEEP_ALIVE, &Settings::keep_alive},
    {PROP_HEDGE, &Settings::hedge},
    {PROP_IRADIO_MODE, &Settings::iradio_mode},
    {PROP_COMPRESS, &Settings::compress},
};
static const PlainProp<guint> kUintProps[] = {
    {PROP_CONCURRENCY, &Settings::concurrency},
    {PROP_MAX_CONCURRENCY, &Settings::max_concurrency},
    {PROP_MAX_HOST_CONNECTIONS, &Settings::max_host_connections},
    {PROP_LOOKAHEAD_BLOCKS, &Settings::lookahead_blocks},
    {PROP_TIMEOUT, &Settings::timeout},
};
static const PlainProp<guint64> kUint64Props[] = {
    {PROP_BLOCK_SIZE, &Settings::block_size},
    {PROP_MAX_REQUEST_SIZE, &Settings::max_request_size},
    {PROP_CACHE_SIZE, &Settings::cache_size},
};
/* Strings read back as NULL when empty, except where souphttpsrc gives "". */
static const PlainProp<std::string> kStringProps[] = {
    {PROP_LOCATION, &Settings::location}, /* set through the URI handler, read here */
    {PROP_USER_AGENT, &Settings::user_agent},   {PROP_PROXY, &Settings::proxy},
    {PROP_PROXY_ID, &Settings::proxy_id},       {PROP_PROXY_PW, &Settings::proxy_pw},
    {PROP_USER_ID, &Settings::user_id},         {PROP_USER_PW, &Settings::user_pw},
    {PROP_SSL_CA_FILE, &Settings::ssl_ca_file}, {PROP_METHOD, &Settings::method},
};

static void from_value(const GValue* v, gint* x) {
  if (G_VALUE_HOLDS_BOOLEAN(v))
    *x = g_value_get_boolean(v);
  else if (G_VALUE_HOLDS_ENUM(v))
    *x = g_value_get_enum(v);
  else
    *x = g_value_get_int(v);
}
static void from_value(const GValue* v, guint* x) { *x = g_value_get_uint(v); }
static void from_value(const GValue* v, guint64* x) { *x = g_value_get_uint64(v); }
static void from_value(const GValue* v, std::string* x) { *x = string_or_empty(v); }

static void to_value(GValue* v, gint x) {
  if (G_VALUE_HOLDS_BOOLEAN(v))
    g_value_set_boolean(v, x);
  else if (G_VALUE_HOLDS_ENUM(v))
    g_value_set_enum(v, x);
  else
    g_value_set_int(v, x);
}
static void to_value(GValue* v, guint x) { g_value_set_uint(v, x); }
static void to_value(GValue* v, guint64 x) { g_value_set_uint64(v, x); }

template <typename T, size_t N>
static bool set_plain(const PlainProp<T> (&table)[N], Settings& s, guint id, const GValue* v) {
  for (const PlainProp<T>& p : table) {
    if (p.id != id) continue;
    from_value(v, &(s.*p.member));
    return true;
  }
  return false;
}

template <typename T, size_t N>
static bool get_plain(const PlainProp<T> (&table)[N], const Settings& s, guint id, GValue* v) {
  for (const PlainProp<T>& p : table) {
    if (p.id != id) continue;
    to_value(v, s.*p.member);
    return true;
  }
  return false;
}

static gboolean gst_prefetch_src_set_location(GstPrefetchSrc* self, const gchar* uri,
                                              GError** error) {
  const std::string problem = uri ? prefetch::SoupOrigin::validate_uri(uri) : "";
  if (!problem.empty()) {
    g_set_error(error, GST_URI_ERROR, GST_URI_ERROR_UNSUPPORTED_PROTOCOL, "%s", problem.c_str());
    return FALSE;
  }
  if (GST_STATE(self) > GST_STATE_READY) {
    g_set_error(error, GST_URI_ERROR, GST_URI_ERROR_BAD_STATE,
                "Changing the location of a running prefetchsrc is not supported");
    return FALSE;
  }
  std::lock_guard<std::mutex> lock(self->priv->settings_lock);
  self->priv->settings.location = uri ? uri : "";
  ++self->priv->settings_serial; /* also for the URI handler's path */
  return TRUE;
}

static void gst_prefetch_src_set_property(GObject* object, guint prop_id, const GValue* value,
                                          GParamSpec* pspec) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(object);
  /* Every change bumps settings_serial in the same locked section that
   * writes the value, so a standby engine (see GstPrefetchSrcPrivate) is never
   * stamped with a serial newer than its settings. */
  if (prop_id == PROP_LOCATION) {
    /* Keep the raw string: a non-http(s) location fails at start with a
     * clear error, as the URI handler refuses it when set. */
    GError* err = nullptr;
    const gchar* uri = g_value_get_string(value);
    if (!gst_prefetch_src_set_location(self, uri, &err)) {
      GST_WARNING_OBJECT(self, "location %s: %s", uri, err->message);
      if (err->code == GST_URI_ERROR_UNSUPPORTED_PROTOCOL) {
        std::lock_guard<std::mutex> lock(self->priv->settings_lock);
        self->priv->settings.location = uri;
        ++self->priv->settings_serial;
      }
      g_error_free(err);
    }
    return;
  }
  if (prop_id == PROP_IS_LIVE) {
    gst_base_src_set_live(GST_BASE_SRC(self), g_value_get_boolean(value));
    return;
  }
  std::lock_guard<std::mutex> lock(self->priv->settings_lock);
  ++self->priv->settings_serial;
  Settings& s = self->priv->settings;
  if (set_plain(kIntProps, s, prop_id, value) || set_plain(kUintProps, s, prop_id, value) ||
      set_plain(kUint64Props, s, prop_id, value) || set_plain(kStringProps, s, prop_id, value))
    return;
  switch (prop_id) {
    case PROP_EXTRA_HEADERS: {
      const GstStructure* st = gst_value_get_structure(value);
      if (s.extra_headers) gst_structure_free(s.extra_headers);
      s.extra_headers = st ? gst_structure_copy(st) : nullptr;
      break;
    }
    case PROP_COOKIES: {
      s.cookies.clear();
      auto** strv = static_cast<gchar**>(g_value_get_boxed(value));
      for (gchar** c = strv; c && *c; ++c) s.cookies.emplace_back(*c);
      break;
    }
    case PROP_TLS_DATABASE:
      g_clear_object(&s.tls_database);
      s.tls_database = static_cast<GTlsDatabase*>(g_value_dup_object(value));
      break;
    case PROP_TLS_INTERACTION:
      g_clear_object(&s.tls_interaction);
      s.tls_interaction = static_cast<GTlsInteraction*>(g_value_dup_object(value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
  }
}

static GstStructure* gst_prefetch_src_make_stats(GstPrefetchSrc* self) {
  prefetch::Stats st;
  {
    std::lock_guard<std::mutex> lock(self->priv->state_lock);
    if (self->priv->phase == Phase::kRunning) st = self->priv->engine.prefetcher->stats();
  }
  return gst_structure_new("application/x-prefetchsrc-stats",                         //
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
}

static void gst_prefetch_src_get_property(GObject* object, guint prop_id, GValue* value,
                                          GParamSpec* pspec) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(object);
  if (prop_id == PROP_STATS) {
    g_value_take_boxed(value, gst_prefetch_src_make_stats(self));
    return;
  }
  if (prop_id == PROP_IS_LIVE) {
    g_value_set_boolean(value, gst_base_src_is_live(GST_BASE_SRC(self)));
    return;
  }
  std::lock_guard<std::mutex> lock(self->priv->settings_lock);
  const Settings& s = self->priv->settings;
  if (get_plain(kIntProps, s, prop_id, value) || get_plain(kUintProps, s, prop_id, value) ||
      get_plain(kUint64Props, s, prop_id, value))
    return;
  for (const PlainProp<std::string>& p : kStringProps) {
    if (p.id != prop_id) continue;
    /* user-agent and proxy read back "" when empty, as souphttpsrc's do. */
    if (prop_id == PROP_USER_AGENT || prop_id == PROP_PROXY)
      g_value_set_string(value, (s.*p.member).c_str());
    else
      set_string_or_null(value, s.*p.member);
    return;
  }
  switch (prop_id) {
    case PROP_EXTRA_HEADERS:
      gst_value_set_structure(value, s.extra_headers);
      break;
    case PROP_COOKIES: {
      std::vector<const gchar*> v;
      for (const auto& c : s.cookies) v.push_back(c.c_str());
      v.push_back(nullptr);
      g_value_set_boxed(value, v.data());
      break;
    }
    case PROP_TLS_DATABASE:
    case PROP_TLS_INTERACTION:
      g_value_set_object(value, prop_id == PROP_TLS_DATABASE
                                    ? static_cast<gpointer>(s.tls_database)
                                    : static_cast<gpointer>(s.tls_interaction));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
  }
}

/* ---- errors and logging ---- */

/* The one place core errors become GStreamer errors, with the HTTP status
 * attached as souphttpsrc does ("http-status-code" in the details). */
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

static void gst_prefetch_src_post_error(GstPrefetchSrc* self, const prefetch::Error& e) {
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

static prefetch::Logger gst_prefetch_src_make_logger(GstPrefetchSrc* self) {
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

/* ---- GstBaseSrc vfuncs, in lifecycle order ---- */

static prefetch::HttpOptions gst_prefetch_src_http_options(const Settings& s) {
  prefetch::HttpOptions o;
  o.uri = s.location;
  o.user_agent = s.user_agent;
  if (s.extra_headers) {
    gst_structure_foreach(
        s.extra_headers,
        [](GQuark field, const GValue* value, gpointer user) -> gboolean {
          auto* headers = static_cast<std::vector<std::pair<std::string, std::string>>*>(user);
          GValue str = G_VALUE_INIT;
          g_value_init(&str, G_TYPE_STRING);
          if (g_value_transform(value, &str) && g_value_get_string(&str))
            headers->emplace_back(g_quark_to_string(field), g_value_get_string(&str));
          g_value_unset(&str);
          return TRUE;
        },
        &o.extra_headers);
  }
  o.cookies = s.cookies;
  o.timeout_seconds = s.timeout;
  o.proxy = s.proxy;
  o.proxy_id = s.proxy_id;
  o.proxy_pw = s.proxy_pw;
  o.user_id = s.user_id;
  o.user_pw = s.user_pw;
  o.ssl_strict = s.ssl_strict;
  o.ssl_ca_file = s.ssl_ca_file;
  o.ssl_use_system_ca_file = s.ssl_use_system_ca_file;
  o.tls_database = s.tls_database;
  o.tls_interaction = s.tls_interaction;
  o.automatic_redirect = s.automatic_redirect;
  o.keep_alive = s.keep_alive;
  o.iradio_mode = s.iradio_mode;
  o.compress = s.compress;
  return o;
}

/* Makes the engine from the current settings and starts fetching at byte 0
 * (never waiting for the network). Bad settings give an empty State, with an
 * error posted only if `post`: the scheduling query leaves that to start(). */
static State gst_prefetch_src_make_state(GstPrefetchSrc* self, bool post) {
  Settings s;
  prefetch::HttpOptions options;
  State state;
  {
    std::lock_guard<std::mutex> lock(self->priv->settings_lock);
    s = self->priv->settings;  // pointers in it stay the settings' own
    state.serial = self->priv->settings_serial;
    options = gst_prefetch_src_http_options(self->priv->settings);
    /* The origin reads these while it is constructed, below: keep them alive. */
    if (options.tls_database) g_object_ref(options.tls_database);
    if (options.tls_interaction) g_object_ref(options.tls_interaction);
  }
  s.extra_headers = nullptr;
  s.tls_database = nullptr;
  s.tls_interaction = nullptr;
  struct Unref {
    prefetch::HttpOptions& o;
    ~Unref() {
      if (o.tls_database) g_object_unref(o.tls_database);
      if (o.tls_interaction) g_object_unref(o.tls_interaction);
    }
  } unref{options};
  if (s.location.empty()) {
    if (post)
      GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("No URL set."), ("Missing location property"));
    return State();
  }
  const std::string problem = prefetch::SoupOrigin::validate_uri(s.location);
  if (!problem.empty()) {
    if (post)
      GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("%s", problem.c_str()),
                        ("location %s", s.location.c_str()));
    return State();
  }
  if (!s.method.empty() && g_ascii_strcasecmp(s.method.c_str(), "GET") != 0) {
    if (post)
      GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS,
                        ("prefetchsrc only supports the GET method, not %s", s.method.c_str()),
                        ("byte-range reads need GET"));
    return State();
  }

  prefetch::Logger logger = gst_prefetch_src_make_logger(self);
  if (gst_debug_category_get_threshold(GST_CAT_DEFAULT) >= GST_LEVEL_LOG)
    options.http_log_level = s.http_log_level;

  prefetch::Config config;
  config.block_size = s.block_size;
  config.max_request_bytes = s.max_request_size; /* window schedule only (the engine) */
  config.concurrency = s.concurrency;
  config.max_concurrency = s.max_concurrency;
  config.host = prefetch::host_key(s.location);
  config.max_host_connections = s.max_host_connections;
  config.lookahead_blocks = s.lookahead_blocks;
  config.schedule = static_cast<prefetch::Schedule>(s.schedule);
  config.retry.retries = s.retries;
  config.hedge.enabled = s.hedge;
  config.cache_bytes = s.cache_size;
  config.whole = s.compress; /* an encoded body has no byte ranges */
  options.max_connections = config.max_connections();
  options.max_host_connections = config.max_host_connections;

  state.origin = std::make_shared<prefetch::SoupOrigin>(options, logger);
  state.prefetcher = std::make_shared<prefetch::Prefetcher>(state.origin, config, logger);
  state.block_size = s.block_size;
  GST_INFO_OBJECT(self, "opening %s", s.location.c_str());
  /* The size arrives with the first response; dynamic size makes GstBaseSrc
   * ask again. */
  state.prefetcher->begin(0);
  return state;
}

/* Cancels every request of `state` and waits for them, then joins its I/O
 * thread. Never called with a lock held. */
static void gst_prefetch_src_close_state(State& state) {
  if (state.prefetcher) state.prefetcher->close();
  state.prefetcher.reset();
  state.origin.reset();
}

/* ---- lifecycle transitions ----
 * The only code that changes the phase. Each holds state_lock for the change
 * only: engines are closed after it is released (closing waits for the
 * engine's I/O thread). */

/* The standby's reaper (see GstPrefetchSrcPrivate): drops standby period
 * `id` once it has been unused for STANDBY_IDLE. A thread of its own, not a
 * GLib timeout: nothing guarantees that the application iterates a main
 * context, and a check at the next state change alone would leave a standby
 * kept for a pad-mode switch that never completes fetching until the
 * pipeline stops. It holds no reference to the element (finalize joins it). */
static void gst_prefetch_src_standby_reaper(GstPrefetchSrc* self, guint64 id) {
  GstPrefetchSrcPrivate* priv = self->priv;
  State expired;
  {
    std::unique_lock<std::mutex> lock(priv->state_lock);
    for (;;) {
      if (priv->phase != Phase::kStandby || priv->standby_id != id) return;
      if (priv->standby_users == 0 && std::chrono::steady_clock::now() >= priv->standby_deadline)
        break;
      if (priv->standby_users > 0)
        priv->standby_cv.wait(lock);
      else
        priv->standby_cv.wait_until(lock, priv->standby_deadline);
    }
    /* standby -> stopped: idle too long. */
    GST_DEBUG_OBJECT(self, "standby engine unused for %d ms: dropping it",
                     static_cast<int>(priv->standby_idle.count()));
    expired = std::move(priv->engine);
    priv->engine = State();
    priv->phase = Phase::kStopped;
  }
  gst_prefetch_src_close_state(expired);
}

/* Starts a standby period (phase just set to kStandby, lock held): a fresh
 * deadline and a reaper for it. Returns the reaper of an earlier period, for
 * the caller to join once the lock is released. */
static std::thread gst_prefetch_src_begin_standby_locked(GstPrefetchSrc* self) {
  GstPrefetchSrcPrivate* priv = self->priv;
  ++priv->standby_id;
  priv->standby_users = 0;
  const guint test_idle_ms =
      GPOINTER_TO_UINT(g_object_get_data(G_OBJECT(self), STANDBY_IDLE_TEST_KEY));
  priv->standby_idle = test_idle_ms ? std::chrono::milliseconds(test_idle_ms) : STANDBY_IDLE;
  priv->standby_deadline = std::chrono::steady_clock::now() + priv->standby_idle;
  std::thread old = std::move(priv->reaper);
  priv->reaper = std::thread(gst_prefetch_src_standby_reaper, self, priv->standby_id);
  priv->standby_cv.notify_all();  // an earlier reaper still waiting: its period is over
  return old;
}

static void gst_prefetch_src_join(std::thread& thread) {
  if (thread.joinable()) thread.join();
}

/* Joins the reaper of a standby period that is over (none while a standby
 * is there: its reaper is still needed). Never called with a lock held. */
static void gst_prefetch_src_join_reaper(GstPrefetchSrc* self) {
  GstPrefetchSrcPrivate* priv = self->priv;
  std::thread reaper;
  {
    std::lock_guard<std::mutex> lock(priv->state_lock);
    if (priv->phase == Phase::kStandby) return;
    reaper = std::move(priv->reaper);
    priv->standby_cv.notify_all();
  }
  gst_prefetch_src_join(reaper);
}

/* The engine a scheduling query may wait on (lock held): the running one,
 * or the standby, which then counts the query as a user (not idle) until
 * gst_prefetch_src_done_with_standby(); `*standby` gets the period's id. */
static std::shared_ptr<prefetch::Prefetcher> gst_prefetch_src_use_engine_locked(
    GstPrefetchSrc* self, guint64* standby) {
  GstPrefetchSrcPrivate* priv = self->priv;
  if (priv->phase == Phase::kStandby) {
    ++priv->standby_users;
    *standby = priv->standby_id;
  }
  return priv->phase == Phase::kStopped ? nullptr : priv->engine.prefetcher;
}

/* A scheduling query is done with standby period `id`: its idle time starts
 * again from now. */
static void gst_prefetch_src_done_with_standby(GstPrefetchSrc* self, guint64 id) {
  GstPrefetchSrcPrivate* priv = self->priv;
  std::lock_guard<std::mutex> lock(priv->state_lock);
  if (priv->phase != Phase::kStandby || priv->standby_id != id) return;
  if (priv->standby_users > 0) --priv->standby_users;
  priv->standby_deadline = std::chrono::steady_clock::now() + priv->standby_idle;
  priv->standby_cv.notify_all();
}

/* stopped -> standby: the scheduling query installs the engine it made,
 * unless another thread installed or started one meanwhile, or a state
 * change began since the query read `epoch` (it would drop the standby, or
 * already has). Returns the engine the query should wait on (null if none,
 * see use_engine_locked for `*standby`); `fresh` is left holding an engine
 * that was not installed, for the caller to close. */
static std::shared_ptr<prefetch::Prefetcher> gst_prefetch_src_enter_standby(GstPrefetchSrc* self,
                                                                            State& fresh,
                                                                            guint64 epoch,
                                                                            guint64* standby) {
  GstPrefetchSrcPrivate* priv = self->priv;
  std::thread old_reaper;
  std::shared_ptr<prefetch::Prefetcher> p;
  {
    std::lock_guard<std::mutex> lock(priv->state_lock);
    if (priv->phase == Phase::kStopped && fresh.prefetcher && priv->epoch == epoch) {
      GST_DEBUG_OBJECT(self, "scheduling query: engine started early (standby)");
      priv->engine = std::move(fresh);
      fresh = State();
      priv->phase = Phase::kStandby;
      old_reaper = gst_prefetch_src_begin_standby_locked(self);
    }
    p = gst_prefetch_src_use_engine_locked(self, standby);
  }
  gst_prefetch_src_join(old_reaper);
  return p;
}

/* standby -> stopped: takes the standby engine (if any) out, for the
 * caller to close. Its reaper, woken, ends; gst_prefetch_src_join_reaper()
 * joins it. */
static State gst_prefetch_src_drop_standby(GstPrefetchSrc* self) {
  GstPrefetchSrcPrivate* priv = self->priv;
  std::lock_guard<std::mutex> lock(priv->state_lock);
  if (priv->phase != Phase::kStandby) return State();
  GST_DEBUG_OBJECT(self, "dropping the standby engine");
  State standby = std::move(priv->engine);
  priv->engine = State();
  priv->phase = Phase::kStopped;
  priv->standby_cv.notify_all();
  return standby;
}

/* The start of a state change (before chaining up): a scheduling query
 * that has not installed its engine yet will not, and on the way down the
 * standby is set flushing, which wakes a query waiting on it at once (it
 * then answers push; the engine is dropped after chaining up). */
static void gst_prefetch_src_begin_state_change(GstPrefetchSrc* self, bool downward) {
  GstPrefetchSrcPrivate* priv = self->priv;
  std::lock_guard<std::mutex> lock(priv->state_lock);
  ++priv->epoch;
  if (downward && priv->phase == Phase::kStandby) priv->engine.prefetcher->set_flushing(true);
}

/* standby -> stopped or running -> stopped, whatever the phase (finalize):
 * closes the engine and joins the reaper. */
static void gst_prefetch_src_release_all(GstPrefetchSrc* self) {
  GstPrefetchSrcPrivate* priv = self->priv;
  State old;
  std::thread reaper;
  {
    std::lock_guard<std::mutex> lock(priv->state_lock);
    old = std::move(priv->engine);
    priv->engine = State();
    priv->phase = Phase::kStopped;
    reaper = std::move(priv->reaper);
    priv->standby_cv.notify_all();
  }
  if (old.prefetcher) old.prefetcher->set_flushing(true);
  gst_prefetch_src_join(reaper);
  gst_prefetch_src_close_state(old);
}

/* standby -> running (adopted: the settings serial is unchanged) or
 * stopped -> running (a new engine; a standby made from other settings is
 * dropped first). FALSE, staying stopped, if the settings are bad (the
 * error is posted). */
static gboolean gst_prefetch_src_enter_running(GstPrefetchSrc* self) {
  GstPrefetchSrcPrivate* priv = self->priv;
  guint64 serial;
  {
    std::lock_guard<std::mutex> lock(priv->settings_lock);
    serial = priv->settings_serial;
  }
  bool adopted = false;
  {
    std::lock_guard<std::mutex> lock(priv->state_lock);
    if (priv->phase == Phase::kStandby && priv->engine.serial == serial) {
      GST_DEBUG_OBJECT(self, "adopting the engine started before");
      priv->engine.prefetcher->set_flushing(false);
      priv->phase = Phase::kRunning;
      priv->standby_cv.notify_all();  // its reaper ends
      adopted = true;
    }
  }
  if (!adopted) {
    State standby = gst_prefetch_src_drop_standby(self);
    gst_prefetch_src_close_state(standby);
  }
  gst_prefetch_src_join_reaper(self);
  if (adopted) return TRUE;
  /* Never waits for the network here (the application thread is in a state
   * change): the first create() waits, and unlock() can wake it. */
  State state = gst_prefetch_src_make_state(self, true);
  if (!state.prefetcher) return FALSE;
  State raced;
  std::thread reaper;
  {
    std::lock_guard<std::mutex> lock(priv->state_lock);
    /* A scheduling query on another thread may have installed a standby
     * since: ours wins, theirs is closed (its waiter holds a reference). */
    raced = std::move(priv->engine);
    priv->engine = std::move(state);
    priv->phase = Phase::kRunning;
    reaper = std::move(priv->reaper);
    priv->standby_cv.notify_all();
  }
  gst_prefetch_src_join(reaper);
  gst_prefetch_src_close_state(raced);
  return TRUE;
}

/* running -> standby (a pad-mode switch: the start() that follows adopts the
 * engine and the blocks it holds; the reaper drops it if none does) or
 * running -> stopped. */
static void gst_prefetch_src_leave_running(GstPrefetchSrc* self, bool switching) {
  GstPrefetchSrcPrivate* priv = self->priv;
  State old;
  std::thread old_reaper;
  {
    std::lock_guard<std::mutex> lock(priv->state_lock);
    if (priv->phase != Phase::kRunning) return;
    if (switching) {
      GST_DEBUG_OBJECT(self, "pad mode switch: keeping the engine (standby)");
      priv->phase = Phase::kStandby;
      old_reaper = gst_prefetch_src_begin_standby_locked(self);
    } else {
      old = std::move(priv->engine);
      priv->engine = State();
      priv->phase = Phase::kStopped;
    }
  }
  gst_prefetch_src_join(old_reaper);
  gst_prefetch_src_close_state(old);
}

static gboolean gst_prefetch_src_start(GstBaseSrc* src) {
  return gst_prefetch_src_enter_running(GST_PREFETCH_SRC(src));
}

static gboolean gst_prefetch_src_stop(GstBaseSrc* src) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(src);
  /* A pad-mode switch (typefind found the type in pull mode and goes on in
   * push mode) deactivates the pad and activates it again while the element
   * stays on its way to PAUSED or PLAYING: keep the engine, and the blocks it
   * holds, for the start() that follows. A real stop has a target below. */
  GST_OBJECT_LOCK(self);
  const bool switching = GST_STATE_TARGET(self) >= GST_STATE_PAUSED;
  GST_OBJECT_UNLOCK(self);
  gst_prefetch_src_leave_running(self, switching);
  GST_INFO_OBJECT(self, "stopped");
  return TRUE;
}

/* Every state change is a point where a standby engine is either adopted
 * (READY->PAUSED: start() runs inside the chain-up) or no longer wanted: one
 * that is still there after chaining up is dropped. A downward change sets
 * it flushing before chaining up, so a scheduling query waiting on it
 * returns at once and nothing below waits for the origin. Same-state calls
 * (set_state to the current state) change nothing. */
static GstStateChangeReturn gst_prefetch_src_change_state(GstElement* element,
                                                          GstStateChange transition) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(element);
  const GstState current = GST_STATE_TRANSITION_CURRENT(transition);
  const GstState next = GST_STATE_TRANSITION_NEXT(transition);
  if (current != next) gst_prefetch_src_begin_state_change(self, next < current);
  GstStateChangeReturn ret = GST_ELEMENT_CLASS(parent_class)->change_state(element, transition);
  if (current != next) {
    State standby = gst_prefetch_src_drop_standby(self);
    gst_prefetch_src_close_state(standby);
    gst_prefetch_src_join_reaper(self);
  }
  return ret;
}

static gboolean gst_prefetch_src_get_size(GstBaseSrc* src, guint64* size) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(src);
  std::lock_guard<std::mutex> lock(self->priv->state_lock);
  if (self->priv->phase != Phase::kRunning) return FALSE;
  const auto known = self->priv->engine.prefetcher->size();
  if (!known) return FALSE;
  *size = *known;
  return TRUE;
}

static gboolean gst_prefetch_src_is_seekable(GstBaseSrc* src) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(src);
  std::lock_guard<std::mutex> lock(self->priv->state_lock);
  return self->priv->phase == Phase::kRunning && self->priv->engine.prefetcher->seekable();
}

/* Pull mode needs the size and an origin that honours Range, which only the
 * first response tells; downstream asks before our start(). So the query
 * starts the engine if it is not running (start() adopts it), waits for the
 * first response head (at most `timeout` or SCHEDULING_WAIT_MAX_S; unlock(),
 * a state change downward and errors end the wait early), and offers PULL
 * only when both are known. An error is not posted
 * here: the engine keeps it and the first create() posts it, as without the
 * query. */
static gboolean gst_prefetch_src_query_scheduling(GstPrefetchSrc* self, GstQuery* query) {
  GstPrefetchSrcPrivate* priv = self->priv;
  std::shared_ptr<prefetch::Prefetcher> p;
  guint64 standby = 0; /* the standby period we wait in, if any */
  guint64 epoch;
  {
    std::lock_guard<std::mutex> lock(priv->state_lock);
    p = gst_prefetch_src_use_engine_locked(self, &standby);
    epoch = priv->epoch;
  }
  /* Only from READY on, not on the way to NULL: an element in NULL holds
   * nothing and touches no network (an application may ask, then unref).
   * Pads are activated during READY->PAUSED, so downstream normally asks
   * in READY; asked in NULL, we offer push, which works as well. set_state()
   * sets the target before change_state() bumps the epoch: a state change
   * down either shows in the target here or keeps the engine out (see
   * enter_standby). */
  GST_OBJECT_LOCK(self);
  const bool may_start =
      GST_STATE(self) >= GST_STATE_READY && GST_STATE_TARGET(self) >= GST_STATE_READY;
  GST_OBJECT_UNLOCK(self);
  if (!p && may_start && !gst_base_src_is_live(GST_BASE_SRC(self))) {
    State fresh = gst_prefetch_src_make_state(self, false);
    p = gst_prefetch_src_enter_standby(self, fresh, epoch, &standby);
    gst_prefetch_src_close_state(fresh);  // not installed (see enter_standby)
    gst_prefetch_src_join_reaper(self);   // a previous standby's, if it ended
  }
  bool pull = false, seekable = true;
  if (p) {
    /* The application thread waits here (in downstream's state change):
     * keep it short. unlock() and our own state change downward end it at
     * once. An origin slower than that to answer gets push mode, which works
     * as well, with seeks. */
    guint timeout;
    {
      std::lock_guard<std::mutex> lock(priv->settings_lock);
      timeout = priv->settings.timeout ? priv->settings.timeout : DEFAULT_TIMEOUT;
    }
    const prefetch::ReadResult r =
        p->wait_open(std::chrono::seconds(std::min<guint>(timeout, SCHEDULING_WAIT_MAX_S)));
    seekable = p->seekable();
    pull = r.status == prefetch::ReadStatus::kOk && seekable && p->size().has_value();
    GST_DEBUG_OBJECT(self, "scheduling query: %s (open status %d)", pull ? "pull and push" : "push",
                     static_cast<int>(r.status));
    if (standby) gst_prefetch_src_done_with_standby(self, standby);
  }
  /* Bandwidth-limited, as souphttpsrc says: uridecodebin and players take it
   * for "a network stream" and buffer (queue2, download buffering). */
  const int flags = GST_SCHEDULING_FLAG_BANDWIDTH_LIMITED |
                    (seekable ? GST_SCHEDULING_FLAG_SEEKABLE : GST_SCHEDULING_FLAG_SEQUENTIAL);
  gst_query_set_scheduling(query, static_cast<GstSchedulingFlags>(flags), 1, -1, 0);
  gst_query_add_scheduling_mode(query, GST_PAD_MODE_PUSH);
  if (pull) gst_query_add_scheduling_mode(query, GST_PAD_MODE_PULL);
  return TRUE;
}

static gboolean gst_prefetch_src_query(GstBaseSrc* src, GstQuery* query) {
  if (GST_QUERY_TYPE(query) == GST_QUERY_SCHEDULING)
    return gst_prefetch_src_query_scheduling(GST_PREFETCH_SRC(src), query);
  if (GST_QUERY_TYPE(query) == GST_QUERY_DURATION) {
    GstFormat format;
    gst_query_parse_duration(query, &format, nullptr);
    /* Bytes are all we know: a duration in time (or frames) is the
     * demuxer's to answer, and a demuxer asks upstream first and takes a
     * TRUE answer as the truth. GstBaseSrc would say TRUE with -1 ("unknown")
     * before the size is in its segment. */
    if (format != GST_FORMAT_BYTES && format != GST_FORMAT_PERCENT) return FALSE;
    /* GstBaseSrc's segment may still hold the size of start(), before the
     * first response: answer bytes from what the origin said since. */
    guint64 size;
    if (format == GST_FORMAT_BYTES && gst_prefetch_src_get_size(src, &size)) {
      gst_query_set_duration(query, GST_FORMAT_BYTES, static_cast<gint64>(size));
      return TRUE;
    }
  }
  if (GST_QUERY_TYPE(query) == GST_QUERY_BUFFERING) {
    /* GstBaseSrc answers a random-access source (a file) with "all of it is
     * here"; over the network nothing is until it arrived. As souphttpsrc:
     * the range is unknown, and queue2 downstream answers for what it holds. */
    GstFormat format;
    gst_query_parse_buffering_range(query, &format, nullptr, nullptr, nullptr);
    gst_query_set_buffering_range(query, format, -1, -1, -1);
    return TRUE;
  }
  if (GST_QUERY_TYPE(query) == GST_QUERY_URI) {
    GstPrefetchSrc* self = GST_PREFETCH_SRC(src);
    std::lock_guard<std::mutex> lock(self->priv->settings_lock);
    gst_query_set_uri(query, self->priv->settings.location.c_str());
    self->priv->redirect.answer(query, self->priv->settings.location);
    return TRUE;
  }
  return GST_BASE_SRC_CLASS(parent_class)->query(src, query);
}

static gboolean gst_prefetch_src_do_seek(GstBaseSrc* src, GstSegment* segment) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(src);
  std::lock_guard<std::mutex> lock(self->priv->state_lock);
  if (self->priv->phase != Phase::kRunning) return TRUE;
  prefetch::Prefetcher* p = self->priv->engine.prefetcher.get();
  const guint64 offset = segment->start;
  if (!p->seekable() && offset != 0) {
    GST_WARNING_OBJECT(self, "the origin does not support range requests: cannot seek");
    return FALSE;
  }
  GST_DEBUG_OBJECT(self, "seek to byte %" G_GUINT64_FORMAT, offset);
  p->seek(offset);
  return TRUE;
}

static gboolean gst_prefetch_src_unlock(GstBaseSrc* src) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(src);
  std::lock_guard<std::mutex> lock(self->priv->state_lock);
  /* Running or standby: wakes create(), or a scheduling query's wait. */
  if (self->priv->engine.prefetcher) self->priv->engine.prefetcher->set_flushing(true);
  return TRUE;
}

static gboolean gst_prefetch_src_unlock_stop(GstBaseSrc* src) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(src);
  std::lock_guard<std::mutex> lock(self->priv->state_lock);
  if (self->priv->engine.prefetcher) self->priv->engine.prefetcher->set_flushing(false);
  return TRUE;
}

static void chunk_free(gpointer data) { delete static_cast<prefetch::Chunk*>(data); }

/* The size the origin told (first answer, or a later one that changed it)
 * goes into GstBaseSrc's segment, as souphttpsrc puts it there: the
 * duration, seeking, segment and percent queries read it from there, and
 * GstBaseSrc ends the stream at it. start() saw no size in push mode (the
 * first answer comes later), so a change is told with duration-changed. */
static void gst_prefetch_src_tell_size(GstPrefetchSrc* self, const prefetch::Prefetcher& p) {
  const auto size = p.size();
  if (!size) return;
  GstBaseSrc* base = GST_BASE_SRC(self);
  GST_OBJECT_LOCK(self);
  const bool changed = base->segment.duration != *size;
  if (changed) base->segment.duration = *size;
  GST_OBJECT_UNLOCK(self);
  if (!changed) return;
  GST_DEBUG_OBJECT(self, "size %" G_GUINT64_FORMAT " bytes", *size);
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_duration_changed(GST_OBJECT(self)));
}

static GstFlowReturn gst_prefetch_src_create(GstBaseSrc* src, guint64 offset, guint size,
                                             GstBuffer** buf) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(src);
  State& state = self->priv->engine;  // kRunning: see GstPrefetchSrcPrivate
  if (!state.prefetcher) return GST_FLOW_FLUSHING;
  /* Pull mode must get exactly `size` bytes; push mode takes what is there
   * (up to a block), without a copy. */
  const bool pull = GST_PAD_MODE(GST_BASE_SRC_PAD(src)) == GST_PAD_MODE_PULL;
  const prefetch::ReadMode mode =
      pull ? prefetch::ReadMode::kExact : prefetch::ReadMode::kAvailable;
  const bool discont = offset != state.next_offset;
  if (discont || !state.push_size) state.push_size = std::max<guint64>(size, 1);
  size_t length = pull ? size : std::min(state.push_size, state.block_size);
  /* The file's last PUSH_TAIL_BYTES go in buffers of GstBaseSrc's blocksize:
   * demuxers in push mode scan a file's tail for its length, and oggdemux
   * stops once a buffer brought it within 8 KiB of the end, with the last
   * time it read: at the end of a 512 KiB buffer, that was 0.7 s short. */
  if (const auto total = state.prefetcher->size(); !pull && total && offset < *total) {
    const guint64 left = *total - offset;
    length = left <= PUSH_TAIL_BYTES ? std::min<guint64>(length, std::max<guint>(size, 1))
                                     : std::min<guint64>(length, left - PUSH_TAIL_BYTES);
  }
  /* Push mode on a fast origin: let the head block's bytes gather a little
   * (see Prefetcher::gather: at most GATHER_WAIT, and only when its rate
   * says they are due by then) so that downstream gets fewer, larger buffers. */
  if (!pull && !discont)
    state.prefetcher->gather(offset, std::min<guint64>(GATHER_BYTES, length), GATHER_WAIT);
  prefetch::ReadResult r = state.prefetcher->read(offset, length, mode);
  /* The response head is in by now: http-headers goes before the bytes. */
  if (r.status == prefetch::ReadStatus::kOk || r.status == prefetch::ReadStatus::kEos)
    gst_prefetch_src_report_http_headers(
        src, *state.prefetcher, &state.headers_reported, discont,
        [self] {
          std::lock_guard<std::mutex> lock(self->priv->settings_lock);
          return self->priv->settings.location;
        },
        &self->priv->redirect);
  switch (r.status) {
    case prefetch::ReadStatus::kFlushing:
      return GST_FLOW_FLUSHING;
    case prefetch::ReadStatus::kEos:
      GST_DEBUG_OBJECT(self, "end of stream at byte %" G_GUINT64_FORMAT, offset);
      return GST_FLOW_EOS;
    case prefetch::ReadStatus::kError:
      gst_prefetch_src_post_error(self, r.error);
      return GST_FLOW_ERROR;
    case prefetch::ReadStatus::kOk:
      break;
  }
  gst_prefetch_src_tell_size(self, *state.prefetcher);
  if (!state.icy_announced) {
    /* The first read came after the opening answer: its caps and tags go
     * out before its first buffer. */
    state.icy_announced = true;
    gst_prefetch_src_announce_icy(src, state.prefetcher->resource_info().head.icy);
  }
  auto* chunk = new prefetch::Chunk(std::move(r.chunk));
  GstBuffer* out =
      gst_buffer_new_wrapped_full(GST_MEMORY_FLAG_READONLY, const_cast<uint8_t*>(chunk->data),
                                  chunk->size, 0, chunk->size, chunk, chunk_free);
  GST_BUFFER_OFFSET(out) = offset;
  GST_BUFFER_OFFSET_END(out) = offset + gst_buffer_get_size(out);
  state.next_offset = GST_BUFFER_OFFSET_END(out);
  if (gst_buffer_get_size(out) >= length) state.push_size = 2 * length;
  GST_LOG_OBJECT(self, "buffer at %" G_GUINT64_FORMAT ", %" G_GSIZE_FORMAT " bytes", offset,
                 gst_buffer_get_size(out));
  *buf = out;
  return GST_FLOW_OK;
}

/* ---- GstURIHandler ---- */

static GstURIType gst_prefetch_src_uri_get_type(GType) { return GST_URI_SRC; }

static const gchar* const* gst_prefetch_src_uri_get_protocols(GType) {
  static const gchar* protocols[] = {"http", "https", nullptr};
  return protocols;
}

static gchar* gst_prefetch_src_uri_get_uri(GstURIHandler* handler) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(handler);
  std::lock_guard<std::mutex> lock(self->priv->settings_lock);
  const std::string& l = self->priv->settings.location;
  return l.empty() ? nullptr : g_strdup(l.c_str());
}

static gboolean gst_prefetch_src_uri_set_uri(GstURIHandler* handler, const gchar* uri,
                                             GError** error) {
  return gst_prefetch_src_set_location(GST_PREFETCH_SRC(handler), uri, error);
}

static void gst_prefetch_src_uri_handler_init(gpointer g_iface, gpointer iface_data) {
  auto* iface = static_cast<GstURIHandlerInterface*>(g_iface);
  iface->get_type = gst_prefetch_src_uri_get_type;
  iface->get_protocols = gst_prefetch_src_uri_get_protocols;
  iface->get_uri = gst_prefetch_src_uri_get_uri;
  iface->set_uri = gst_prefetch_src_uri_set_uri;
}
