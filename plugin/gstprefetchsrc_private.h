/* The element's instance, shared by the files that make it up:
 *   plugin/gstprefetchsrc.cc        the GObject type, the GstBaseSrc vfuncs,
 *                                   the URI handler
 *   plugin/element_properties.cc    the properties and the stats structure
 *   plugin/element_settings.cc      settings -> the engine, and their checks
 *   plugin/element_errors.cc        core errors -> GStreamer errors, the logger
 *   plugin/engine_life.h            the engine's life across state changes */
#pragma once

#include <gst/base/gstbasesrc.h>
#include <gst/gst.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "element_settings.h"
#include "engine_life.h"
#include "gstprefetchsrc.h"
#include "http_headers.h"
#include "prefetch/disk_origin.h"
#include "prefetch/prefetcher.h"
#include "prefetch/soup_origin.h"

GST_DEBUG_CATEGORY_EXTERN(gst_prefetch_src_debug);
#define GST_CAT_DEFAULT gst_prefetch_src_debug

/* One engine and what goes with it: what exists while running (and while in
 * standby, see plugin/engine_life.h). Named EngineRun, not State, so that it
 * is never read as a GstState. */
struct EngineRun {
  /* The network, or the disk tier in front of it (`disk`, if a disk-cache). */
  std::shared_ptr<prefetch::Origin> origin;
  std::shared_ptr<prefetch::DiskOrigin> disk;
  /* Shared so that a scheduling query can wait on the engine while another
   * thread stops it. */
  std::shared_ptr<prefetch::Prefetcher> prefetcher;
  guint64 block_size = DEFAULT_BLOCK_SIZE;
  uint64_t settings_version = 0; /* GstPrefetchSrcPrivate's, when it was made */
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

  explicit operator bool() const { return prefetcher != nullptr; }
  void set_flushing(bool on) { prefetcher->set_flushing(on); }
  /* Cancels every request and waits for them, then joins the I/O thread.
   * Never called with a lock held. */
  void close() {
    if (prefetcher) prefetcher->close();
    prefetcher.reset();
    disk.reset(); /* writes what it queued, joins its threads */
    origin.reset();
  }
};

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

struct GstPrefetchSrcPrivate {
  explicit GstPrefetchSrcPrivate(GstPrefetchSrc* self);

  std::mutex settings_lock;
  Settings settings;
  /* Bumped by every property change, under settings_lock: a standby engine
   * made from an older version is not adopted by start(). */
  uint64_t settings_version = 0;
  /* The engine: create() reads it unlocked while running; everything else
   * goes through the lifecycle's lock. */
  prefetchsrc::EngineLife<EngineRun> life;
  GstPrefetchSrcRedirect redirect; /* for the URI query (http_headers.h) */
};

struct _GstPrefetchSrc {
  GstBaseSrc parent;
  GstPrefetchSrcPrivate* priv;
};

inline GstPrefetchSrcPrivate::GstPrefetchSrcPrivate(GstPrefetchSrc* self)
    : life(
          [self] {
            const guint test_ms =
                GPOINTER_TO_UINT(g_object_get_data(G_OBJECT(self), STANDBY_IDLE_TEST_KEY));
            return test_ms ? std::chrono::milliseconds(test_ms) : STANDBY_IDLE;
          },
          [self](const std::string& line) { GST_DEBUG_OBJECT(self, "%s", line.c_str()); }) {}

/* plugin/element_properties.cc, plugin/element_property_values.cc */
void gst_prefetch_src_install_properties(GObjectClass* gobject_class);
gboolean gst_prefetch_src_set_location(GstPrefetchSrc* self, const gchar* uri, GError** error);

/* plugin/element_settings.cc: makes the engine from the current settings and
 * starts fetching at byte 0 (never waiting for the network). Bad settings
 * give an empty EngineRun, with an error posted only if `post`: the
 * scheduling query leaves that to start(). */
EngineRun gst_prefetch_src_make_engine_run(GstPrefetchSrc* self, bool post);

/* plugin/element_disk_cache.cc: the disk tier in front of `network` when
 * `s` names a disk-cache (or PREFETCHSRC_DISK_CACHE does), else `network`
 * itself. A directory that cannot serve posts one warning and is left out. */
void gst_prefetch_src_add_disk_tier(GstPrefetchSrc* self, const Settings& s,
                                    const prefetch::Logger& logger, EngineRun& run);

/* plugin/element_errors.cc */
void gst_prefetch_src_post_error(GstPrefetchSrc* self, const prefetch::Error& e);
prefetch::Logger gst_prefetch_src_make_logger(GstPrefetchSrc* self);
