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

/* This file: the GObject type, the vfuncs' wiring, the GstBaseSrc vfuncs
 * and the URI handler. The rest of the element: see
 * plugin/gstprefetchsrc_private.h. */
#include "gstprefetchsrc.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "element_properties.h"
#include "gstprefetchsrc_icy.h"
#include "gstprefetchsrc_private.h"
#include "http_headers.h"

/* ---- the GObject type ---- */

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

GST_DEBUG_CATEGORY(gst_prefetch_src_debug);

/* The longest the scheduling query waits for the first answer. */
#define SCHEDULING_WAIT_MAX_S 5u
/* Push mode's batching of a block that is still arriving (see create()):
 * how many bytes a buffer waits for, and how long at most. */
#define GATHER_BYTES (G_GUINT64_CONSTANT(512) * 1024)
#define GATHER_WAIT std::chrono::microseconds(3000)
/* Push mode: the last bytes of a file go out in blocksize buffers (create()). */
#define PUSH_TAIL_BYTES (G_GUINT64_CONSTANT(64) * 1024)

static void gst_prefetch_src_uri_handler_init(gpointer g_iface, gpointer iface_data);

#define gst_prefetch_src_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE(GstPrefetchSrc, gst_prefetch_src, GST_TYPE_BASE_SRC,
                        G_IMPLEMENT_INTERFACE(GST_TYPE_URI_HANDLER,
                                              gst_prefetch_src_uri_handler_init);
                        GST_DEBUG_CATEGORY_INIT(gst_prefetch_src_debug, "prefetchsrc", 0,
                                                "HTTP source with concurrent range prefetch"));
GST_ELEMENT_REGISTER_DEFINE(prefetchsrc, "prefetchsrc", GST_RANK_SECONDARY, GST_TYPE_PREFETCH_SRC);

static void gst_prefetch_src_finalize(GObject* object);
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

  gobject_class->finalize = gst_prefetch_src_finalize;
  gobject_class->set_property = gst_prefetch_src_set_property;
  gobject_class->get_property = gst_prefetch_src_get_property;
  gst_prefetch_src_install_properties(gobject_class);

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
  self->priv = new GstPrefetchSrcPrivate(self);
  gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_BYTES);
  gst_base_src_set_dynamic_size(GST_BASE_SRC(self), TRUE);
  gst_base_src_set_live(GST_BASE_SRC(self), DEFAULT_IS_LIVE);
}

static void gst_prefetch_src_finalize(GObject* object) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(object);
  /* A standby engine (an element unreffed in READY) and its reaper. */
  self->priv->life.release();
  settings_clear(self->priv->settings);
  delete self->priv;
  G_OBJECT_CLASS(parent_class)->finalize(object);
}

/* ---- the engine's life: start, stop, state changes (plugin/engine_life.h) ---- */

static gboolean gst_prefetch_src_start(GstBaseSrc* src) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(src);
  uint64_t version;
  {
    std::lock_guard<std::mutex> lock(self->priv->settings_lock);
    version = self->priv->settings_version;
  }
  /* Never waits for the network here (the application thread is in a state
   * change): the first create() waits, and unlock() can wake it. */
  return self->priv->life.enter_running(
      version, [self] { return gst_prefetch_src_make_engine_run(self, true); });
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
  self->priv->life.leave_running(switching);
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
  if (current != next) self->priv->life.begin_state_change(next < current);
  GstStateChangeReturn ret = GST_ELEMENT_CLASS(parent_class)->change_state(element, transition);
  if (current != next) self->priv->life.end_state_change();
  return ret;
}

/* ---- queries: size, seekable, scheduling and the rest ---- */

static gboolean gst_prefetch_src_get_size(GstBaseSrc* src, guint64* size) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(src);
  bool known = false;
  self->priv->life.with_running([&](EngineRun& run) {
    const auto told = run.prefetcher->size();
    if (told) *size = *told;
    known = told.has_value();
  });
  return known;
}

static gboolean gst_prefetch_src_is_seekable(GstBaseSrc* src) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(src);
  bool seekable = false;
  self->priv->life.with_running([&](EngineRun& run) { seekable = run.prefetcher->seekable(); });
  return seekable;
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
  const auto share = [](EngineRun& run) { return run.prefetcher; };
  prefetchsrc::EngineLife<EngineRun>::Ticket ticket; /* the standby we wait in, if any */
  std::shared_ptr<prefetch::Prefetcher> p = priv->life.share(share, &ticket);
  /* Only from READY on, not on the way to NULL: an element in NULL holds
   * nothing and touches no network (an application may ask, then unref).
   * Pads are activated during READY->PAUSED, so downstream normally asks
   * in READY; asked in NULL, we offer push, which works as well. set_state()
   * sets the target before change_state() counts a state change begun: one
   * down either shows in the target here or keeps the engine out (see
   * EngineLife::offer_standby). */
  GST_OBJECT_LOCK(self);
  const bool may_start =
      GST_STATE(self) >= GST_STATE_READY && GST_STATE_TARGET(self) >= GST_STATE_READY;
  GST_OBJECT_UNLOCK(self);
  if (!p && may_start && !gst_base_src_is_live(GST_BASE_SRC(self))) {
    p = priv->life.offer_standby(gst_prefetch_src_make_engine_run(self, false), share, &ticket);
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
    priv->life.done_waiting(ticket);
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

/* ---- reading: seek, unlock (wakes a read), create ---- */

static gboolean gst_prefetch_src_do_seek(GstBaseSrc* src, GstSegment* segment) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(src);
  gboolean done = TRUE; /* not running: nothing to move */
  self->priv->life.with_running([&](EngineRun& run) {
    prefetch::Prefetcher* p = run.prefetcher.get();
    const guint64 offset = segment->start;
    if (!p->seekable() && offset != 0) {
      GST_WARNING_OBJECT(self, "the origin does not support range requests: cannot seek");
      done = FALSE;
      return;
    }
    GST_DEBUG_OBJECT(self, "seek to byte %" G_GUINT64_FORMAT, offset);
    p->seek(offset);
  });
  return done;
}

static gboolean gst_prefetch_src_unlock(GstBaseSrc* src) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(src);
  /* Running or standby: wakes create(), or a scheduling query's wait. */
  self->priv->life.set_flushing(true);
  return TRUE;
}

static gboolean gst_prefetch_src_unlock_stop(GstBaseSrc* src) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(src);
  self->priv->life.set_flushing(false);
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
  EngineRun& state = self->priv->life.running_unlocked();  // running: see engine_life.h
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
