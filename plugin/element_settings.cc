/* Settings -> the engine: its options and configuration, the checks before
 * it is made, and making it (see plugin/element_settings.h). */
#include "element_settings.h"

#include <utility>

#include "gstprefetchsrc_private.h"
#include "prefetch/host_budget.h"

void settings_clear(Settings& s) {
  if (s.extra_headers) gst_structure_free(s.extra_headers);
  s.extra_headers = nullptr;
  g_clear_object(&s.tls_database);
  g_clear_object(&s.tls_interaction);
}

prefetch::HttpOptions settings_http_options(const Settings& s) {
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
  o.tls_database = s.tls_database;
  o.tls_interaction = s.tls_interaction;
  o.automatic_redirect = s.automatic_redirect;
  o.keep_alive = s.keep_alive;
  o.iradio_mode = s.iradio_mode;
  o.compress = s.compress;
  return o;
}

prefetch::Config settings_config(const Settings& s) {
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
  return config;
}

SettingsProblem settings_check(const Settings& s, std::string* why) {
  if (s.location.empty()) return SettingsProblem::kNoLocation;
  *why = prefetch::SoupOrigin::validate_uri(s.location);
  if (!why->empty()) return SettingsProblem::kBadLocation;
  if (!s.method.empty() && g_ascii_strcasecmp(s.method.c_str(), "GET") != 0)
    return SettingsProblem::kBadMethod;
  return SettingsProblem::kNone;
}

EngineRun gst_prefetch_src_make_engine_run(GstPrefetchSrc* self, bool post) {
  Settings s;
  prefetch::HttpOptions options;
  EngineRun run;
  {
    std::lock_guard<std::mutex> lock(self->priv->settings_lock);
    s = self->priv->settings;  // pointers in it stay the settings' own
    run.settings_version = self->priv->settings_version;
    options = settings_http_options(self->priv->settings);
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
  std::string why;
  switch (settings_check(s, &why)) {
    case SettingsProblem::kNone:
      break;
    case SettingsProblem::kNoLocation:
      if (post)
        GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("No URL set."),
                          ("Missing location property"));
      return EngineRun();
    case SettingsProblem::kBadLocation:
      if (post)
        GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("%s", why.c_str()),
                          ("location %s", s.location.c_str()));
      return EngineRun();
    case SettingsProblem::kBadMethod:
      if (post)
        GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS,
                          ("prefetchsrc only supports the GET method, not %s", s.method.c_str()),
                          ("byte-range reads need GET"));
      return EngineRun();
  }

  prefetch::Logger logger = gst_prefetch_src_make_logger(self);
  if (gst_debug_category_get_threshold(GST_CAT_DEFAULT) >= GST_LEVEL_LOG)
    options.http_log_level = s.http_log_level;

  const prefetch::Config config = settings_config(s);
  options.max_connections = config.max_connections();
  options.max_host_connections = config.max_host_connections;

  run.origin = std::make_shared<prefetch::SoupOrigin>(options, logger);
  gst_prefetch_src_add_disk_tier(self, s, logger, run);
  run.prefetcher = std::make_shared<prefetch::Prefetcher>(run.origin, config, logger);
  run.block_size = s.block_size;
  GST_INFO_OBJECT(self, "opening %s", s.location.c_str());
  /* The size arrives with the first response; dynamic size makes GstBaseSrc
   * ask again. */
  run.prefetcher->begin(0);
  return run;
}
