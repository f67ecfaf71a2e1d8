/* Setting and reading the element's properties (ids in
 * plugin/element_properties.h): plain members of Settings through tables,
 * the rest by hand. Every change bumps the settings' version. */
#include <mutex>
#include <string>
#include <vector>

#include "element_properties.h"
#include "gstprefetchsrc_private.h"

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
    {PROP_DISK_CACHE_MAX_SIZE, &Settings::disk_cache_max_size},
};
/* Strings read back as NULL when empty, except where souphttpsrc gives "". */
static const PlainProp<std::string> kStringProps[] = {
    {PROP_LOCATION, &Settings::location}, /* set through the URI handler, read here */
    {PROP_USER_AGENT, &Settings::user_agent},   {PROP_PROXY, &Settings::proxy},
    {PROP_PROXY_ID, &Settings::proxy_id},       {PROP_PROXY_PW, &Settings::proxy_pw},
    {PROP_USER_ID, &Settings::user_id},         {PROP_USER_PW, &Settings::user_pw},
    {PROP_SSL_CA_FILE, &Settings::ssl_ca_file}, {PROP_METHOD, &Settings::method},
    {PROP_DISK_CACHE, &Settings::disk_cache},
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

gboolean gst_prefetch_src_set_location(GstPrefetchSrc* self, const gchar* uri, GError** error) {
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
  ++self->priv->settings_version; /* also for the URI handler's path */
  return TRUE;
}

void gst_prefetch_src_set_property(GObject* object, guint prop_id, const GValue* value,
                                   GParamSpec* pspec) {
  GstPrefetchSrc* self = GST_PREFETCH_SRC(object);
  /* Every change bumps settings_version in the same locked section that
   * writes the value, so a standby engine (plugin/engine_life.h) is never
   * stamped with a version newer than its settings. */
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
        ++self->priv->settings_version;
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
  ++self->priv->settings_version;
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

void gst_prefetch_src_get_property(GObject* object, guint prop_id, GValue* value,
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
