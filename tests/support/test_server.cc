// TestServer implementation. Everything that touches libsoup runs on the
// server thread; the public methods only take the mutex.
#include "test_server.h"

#include <libsoup/soup.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <thread>

namespace prefetch {
namespace testing {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

bool iequals(const std::string& a, const std::string& b) {
  return a.size() == b.size() && g_ascii_strncasecmp(a.c_str(), b.c_str(), a.size()) == 0;
}

std::string trim(std::string s) {
  auto not_space = [](unsigned char c) { return !g_ascii_isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// Parses one "bytes=a-b" / "bytes=a-" / "bytes=-n" range against `size`.
// Returns kNone when the header should be ignored (bad syntax, several
// ranges), kUnsatisfiable for 416, kOk with [first, last] otherwise.
enum class RangeParse { kNone, kOk, kUnsatisfiable };

bool parse_u64(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

RangeParse parse_range(const std::string& header, uint64_t size, uint64_t* first, uint64_t* last) {
  std::string h = trim(header);
  if (h.size() < 6 || g_ascii_strncasecmp(h.c_str(), "bytes=", 6) != 0) return RangeParse::kNone;
  std::string spec = trim(h.substr(6));
  if (spec.find(',') != std::string::npos) return RangeParse::kNone;
  auto dash = spec.find('-');
  if (dash == std::string::npos) return RangeParse::kNone;
  std::string a = trim(spec.substr(0, dash));
  std::string b = trim(spec.substr(dash + 1));
  if (a.empty()) {
    uint64_t n;
    if (!parse_u64(b, &n)) return RangeParse::kNone;
    if (n == 0 || size == 0) return RangeParse::kUnsatisfiable;
    *first = n >= size ? 0 : size - n;
    *last = size - 1;
    return RangeParse::kOk;
  }
  uint64_t f;
  if (!parse_u64(a, &f)) return RangeParse::kNone;
  uint64_t l = UINT64_MAX;
  if (!b.empty()) {
    if (!parse_u64(b, &l)) return RangeParse::kNone;
    if (l < f) return RangeParse::kNone;
  }
  if (f >= size) return RangeParse::kUnsatisfiable;
  *first = f;
  *last = std::min(l, size - 1);
  return RangeParse::kOk;
}

std::string http_date(int64_t unix_seconds) {
  GDateTime* dt = g_date_time_new_from_unix_utc(unix_seconds);
  char* s = soup_date_time_to_string(dt, SOUP_DATE_HTTP);
  std::string out = s;
  g_free(s);
  g_date_time_unref(dt);
  return out;
}

}  // namespace

std::vector<uint8_t> make_pattern(size_t size, uint32_t seed) {
  std::vector<uint8_t> out(size);
  const uint64_t base = splitmix64(seed) * 0x100000001B3ull;
  uint64_t word = 0;
  for (size_t i = 0; i < size; ++i) {
    if (i % 8 == 0) word = splitmix64(base + i / 8);
    out[i] = static_cast<uint8_t>(word >> (8 * (i % 8)));
  }
  return out;
}

std::string sha256_hex(const void* data, size_t size) {
  GChecksum* c = g_checksum_new(G_CHECKSUM_SHA256);
  if (size) g_checksum_update(c, static_cast<const guchar*>(data), static_cast<gssize>(size));
  std::string out = g_checksum_get_string(c);
  g_checksum_free(c);
  return out;
}

std::string sha256_hex(const std::vector<uint8_t>& data) {
  return sha256_hex(data.data(), data.size());
}

void unset_proxy_env() {
  for (const char* name : {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy",
                           "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FTP_PROXY"}) {
    g_unsetenv(name);
  }
}

DelayFunc fixed_delay(std::chrono::milliseconds delay) {
  return [delay](uint64_t) { return delay; };
}

DelayFunc block_delay_schedule(uint64_t block_size,
                               std::vector<std::chrono::milliseconds> per_block,
                               std::chrono::milliseconds otherwise) {
  return [block_size, per_block = std::move(per_block), otherwise](uint64_t first_byte) {
    uint64_t i = block_size ? first_byte / block_size : 0;
    return i < per_block.size() ? per_block[i] : otherwise;
  };
}

std::optional<std::string> RequestRecord::header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------

struct Content {
  std::vector<uint8_t> owned;
  GMappedFile* mapped = nullptr;
  const uint8_t* data = nullptr;
  size_t size = 0;
  ~Content() {
    if (mapped) g_mapped_file_unref(mapped);
  }
};

struct FileEntry {
  std::shared_ptr<const Content> content;
  std::string content_type;
  std::string etag;                      // with quotes; generation 0
  int64_t mtime = 1704067200;            // 2024-01-01
  std::string auth_user, auth_password;  // empty: no auth
  bool need_auth = false;
};

struct PathCounters {
  uint64_t requests = 0;
  uint64_t body_responses = 0;
  uint64_t cuts = 0;
  uint64_t stalls = 0;
};

// One response in progress (server thread only).
struct Response {
  TestServer::Impl* impl = nullptr;
  SoupServerMessage* msg = nullptr;  // ref held
  uint64_t id = 0;
  std::shared_ptr<const Content> content;
  uint64_t file_offset = 0;  // first body byte in the file
  uint64_t body_len = 0;     // Content-Length we send (bytes to write)
  uint64_t appended = 0;     // body bytes handed to libsoup
  uint64_t written = 0;      // body bytes written to the socket
  bool has_body = false;
  bool headers_written = false;
  size_t chunk = 16 * 1024;
  uint64_t rate = 0;
  TestClock::time_point pace_base{};
  bool cut = false;
  uint64_t cut_at = 0;
  bool cut_when_headers = false;
  bool stall = false;
  uint64_t stall_at = 0;
  std::chrono::milliseconds stall_for{0};
  GSource* source = nullptr;
  std::vector<gulong> handlers;
  bool done = false;
};

struct TestServer::Impl {
  GMainContext* ctx = nullptr;
  GMainLoop* loop = nullptr;
  SoupServer* server = nullptr;
  std::thread thread;

  mutable std::mutex mu;
  std::map<std::string, FileEntry> files;
  std::map<std::string, std::pair<std::string, int>> redirects;
  // add_expiring_redirect, by `from`; expiring_targets maps a target path to
  // its `from`.
  struct ExpiringRedirect {
    std::string target;
    unsigned uses_per_token = 0;
    bool require_cookie = false;
    uint64_t next_token = 0;
    std::map<uint64_t, unsigned> uses;  // issued token -> requests served with it
  };
  std::map<std::string, ExpiringRedirect> expiring;
  std::map<std::string, std::string> expiring_targets;
  std::map<std::string, Behavior> behaviors;
  Behavior default_behavior;
  std::map<std::string, PathCounters> counters;
  std::map<uint64_t, RequestRecord> log;
  uint64_t next_id = 0;
  unsigned in_flight = 0;
  unsigned max_in_flight = 0;
  std::string base_url;

  // Server thread only.
  std::map<SoupServerMessage*, std::unique_ptr<Response>> responses;
  // Digest auth domains (require_digest_auth), with their credentials.
  struct DigestCredentials {
    std::string user, password;
  };
  std::vector<std::pair<SoupAuthDomain*, std::unique_ptr<DigestCredentials>>> digest_domains;
  bool stopping = false;

  // Serves `c` at `path` (takes mu): the ETag is the size and a hash of the
  // first MiB.
  void add_content(const std::string& path, std::shared_ptr<const Content> c,
                   const std::string& content_type) {
    std::string etag = "\"" + std::to_string(c->size) + "-" +
                       sha256_hex(c->data, std::min<size_t>(c->size, 1 << 20)).substr(0, 12) + "\"";
    std::lock_guard<std::mutex> lock(mu);
    FileEntry& e = files[path];
    e.content = std::move(c);
    e.content_type = content_type;
    e.etag = etag;
  }

  // --- record helpers (take mu) ----------------------------------------------
  template <typename F>
  void edit_record(uint64_t id, F&& f) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = log.find(id);
    if (it != log.end()) f(it->second);
  }

  // --- server thread -----------------------------------------------------------
  static void on_request(SoupServer*, SoupServerMessage* msg, const char* path, GHashTable*,
                         gpointer user_data) {
    static_cast<Impl*>(user_data)->handle(msg, path ? path : "/");
  }

  void handle(SoupServerMessage* msg, const std::string& path);
  void start_body(Response* r, std::chrono::milliseconds ttfb);
  void schedule(Response* r, std::chrono::milliseconds delay);
  void feed(Response* r);
  void do_cut(Response* r);
  void finish(Response* r, bool client_gone);

  static gboolean on_source(gpointer data) {
    auto* r = static_cast<Response*>(data);
    g_source_unref(r->source);
    r->source = nullptr;
    r->impl->feed(r);
    return G_SOURCE_REMOVE;
  }
  static void on_wrote_headers(SoupServerMessage*, gpointer data) {
    auto* r = static_cast<Response*>(data);
    r->headers_written = true;
    if (!r->has_body) {
      r->impl->edit_record(r->id,
                           [](RequestRecord& rec) { rec.first_byte_time = TestClock::now(); });
    }
    if (r->cut_when_headers) r->impl->schedule(r, std::chrono::milliseconds(0));
  }
  static void on_wrote_body_data(SoupServerMessage*, guint n, gpointer data) {
    auto* r = static_cast<Response*>(data);
    bool first = r->written == 0 && n > 0;
    r->written += n;
    auto now = TestClock::now();
    uint64_t written = r->written;
    r->impl->edit_record(r->id, [&](RequestRecord& rec) {
      if (first) rec.first_byte_time = now;
      rec.bytes_sent = written;
    });
  }
  static void on_wrote_chunk(SoupServerMessage*, gpointer data) {
    auto* r = static_cast<Response*>(data);
    if (r->appended < r->body_len || r->cut) r->impl->schedule_next(r);
  }
  static void on_finished(SoupServerMessage*, gpointer data) {
    auto* r = static_cast<Response*>(data);
    r->impl->finish(r, r->written < r->body_len);
  }
  static void on_disconnected(SoupServerMessage*, gpointer data) {
    auto* r = static_cast<Response*>(data);
    if (!r->done) r->impl->finish(r, r->written < r->body_len || !r->headers_written);
  }

  void schedule_next(Response* r) {
    std::chrono::milliseconds delay(0);
    if (r->rate) {
      auto due = r->pace_base + std::chrono::microseconds(r->appended * 1000000 / r->rate);
      auto now = TestClock::now();
      if (due > now) {
        delay = std::chrono::duration_cast<std::chrono::milliseconds>(due - now);
      }
    }
    schedule(r, delay);
  }

  static char* on_digest_auth(SoupAuthDomain* domain, SoupServerMessage*, const char* username,
                              gpointer data) {
    auto* cred = static_cast<DigestCredentials*>(data);
    if (!username || cred->user != username) return nullptr;
    return soup_auth_domain_digest_encode_password(username, soup_auth_domain_get_realm(domain),
                                                   cred->password.c_str());
  }

  void stop() {
    stopping = true;
    for (auto& [domain, cred] : digest_domains) {
      soup_server_remove_auth_domain(server, domain);
      g_object_unref(domain);
    }
    digest_domains.clear();
    soup_server_disconnect(server);
    while (!responses.empty()) finish(responses.begin()->second.get(), true);
    g_object_unref(server);
    server = nullptr;
    g_main_loop_quit(loop);
  }
};

void TestServer::Impl::handle(SoupServerMessage* msg, const std::string& path) {
  auto now = TestClock::now();
  const std::string method = soup_server_message_get_method(msg);
  SoupMessageHeaders* req = soup_server_message_get_request_headers(msg);
  SoupMessageHeaders* resp = soup_server_message_get_response_headers(msg);

  RequestRecord rec;
  rec.method = method;
  rec.path = path;
  rec.start = now;
  {
    SoupMessageHeadersIter iter;
    const char *name, *value;
    soup_message_headers_iter_init(&iter, req);
    while (soup_message_headers_iter_next(&iter, &name, &value)) {
      rec.headers.emplace_back(name, value);
    }
  }
  if (const char* range = soup_message_headers_get_one(req, "Range")) rec.range = range;
  if (const char* query = g_uri_get_query(soup_server_message_get_uri(msg))) rec.query = query;

  // Snapshot what this response needs under the lock.
  Behavior b;
  PathCounters c;
  std::optional<FileEntry> file;
  std::optional<std::pair<std::string, int>> redirect;
  std::optional<std::string> fresh_target;  // an expiring redirect's Location
  std::string gate_cookie;                  // its Set-Cookie, if any
  bool expired_target = false;              // an expiring redirect's target refuses
  {
    std::lock_guard<std::mutex> lock(mu);
    rec.id = next_id++;
    auto bi = behaviors.find(path);
    b = bi != behaviors.end() ? bi->second : default_behavior;
    PathCounters& pc = counters[path];
    c = pc;
    pc.requests++;
    auto fi = files.find(path);
    if (fi != files.end()) file = fi->second;
    auto ri = redirects.find(path);
    if (ri != redirects.end()) redirect = ri->second;
    auto ei = expiring.find(path);
    if (ei != expiring.end()) {
      const uint64_t token = ei->second.next_token++;
      ei->second.uses[token] = 0;
      fresh_target = ei->second.target + "?token=" + std::to_string(token);
      if (ei->second.require_cookie) gate_cookie = "gate=" + std::to_string(token) + "; Path=/";
    }
    auto ti = expiring_targets.find(path);
    if (ti != expiring_targets.end()) {
      ExpiringRedirect& e = expiring[ti->second];
      unsigned* uses = nullptr;
      unsigned long long token = 0;
      if (std::sscanf(rec.query.c_str(), "token=%llu", &token) == 1) {
        auto ui = e.uses.find(token);
        if (ui != e.uses.end()) uses = &ui->second;
      }
      bool gate_ok = !e.require_cookie;
      if (e.require_cookie) {
        // "gate=N" among the request's cookies, N issued.
        const char* header = soup_message_headers_get_one(req, "Cookie");
        const std::string cookies = "; " + std::string(header ? header : "");
        for (size_t at = cookies.find("; gate="); at != std::string::npos && !gate_ok;
             at = cookies.find("; gate=", at + 1)) {
          unsigned long long n = 0;
          gate_ok = std::sscanf(cookies.c_str() + at + 7, "%llu", &n) == 1 && e.uses.count(n);
        }
      }
      expired_target = !uses || *uses >= e.uses_per_token || !gate_ok;
      if (!expired_target) ++*uses;
    }
  }

  auto r = std::make_unique<Response>();
  r->impl = this;
  r->msg = static_cast<SoupServerMessage*>(g_object_ref(msg));
  r->id = rec.id;
  r->chunk = std::max<size_t>(1, b.chunk_bytes);
  r->rate = b.rate_bytes_per_sec;

  for (const auto& [k, v] : b.extra_response_headers) {
    soup_message_headers_append(resp, k.c_str(), v.c_str());
  }
  soup_message_headers_set_encoding(resp, SOUP_ENCODING_CONTENT_LENGTH);
  soup_message_body_set_accumulate(soup_server_message_get_response_body(msg), FALSE);

  int status = 0;
  uint64_t first_byte = 0;
  const bool is_head = method == "HEAD";
  const bool forced =
      b.status != 0 && (b.status_count < 0 || c.requests < static_cast<uint64_t>(b.status_count));

  if (method != "GET" && method != "HEAD") {
    status = 405;
    soup_message_headers_replace(resp, "Allow", "GET, HEAD");
  } else if (redirect) {
    std::string to = redirect->first;
    if (to.rfind("http", 0) != 0) to = base_url + to;
    status = redirect->second;
    soup_message_headers_replace(resp, "Location", to.c_str());
  } else if (fresh_target) {
    status = 302;
    soup_message_headers_replace(resp, "Location", (base_url + *fresh_target).c_str());
    if (!gate_cookie.empty()) soup_message_headers_append(resp, "Set-Cookie", gate_cookie.c_str());
  } else if (expired_target) {
    status = 403;
  } else if (forced) {
    status = b.status;
    if (b.retry_after_seconds >= 0) {
      soup_message_headers_replace(resp, "Retry-After",
                                   std::to_string(b.retry_after_seconds).c_str());
    }
    if (status == 401)
      soup_message_headers_replace(resp, "WWW-Authenticate", "Basic realm=\"test\"");
    if (status == 416 && file && file->content) {
      std::string cr = "bytes */" + std::to_string(file->content->size);
      soup_message_headers_replace(resp, "Content-Range", cr.c_str());
    }
  } else if (!file || (!file->content && !file->need_auth)) {
    status = 404;
  } else {
    bool authorized = true;
    if (file->need_auth) {
      std::string userpass = file->auth_user + ":" + file->auth_password;
      char* enc =
          g_base64_encode(reinterpret_cast<const guchar*>(userpass.data()), userpass.size());
      std::string expected = std::string("Basic ") + enc;
      g_free(enc);
      const char* got = soup_message_headers_get_one(req, "Authorization");
      authorized = got && trim(got) == expected;
    }
    if (!authorized) {
      status = 401;
      soup_message_headers_replace(resp, "WWW-Authenticate", "Basic realm=\"test\"");
    } else if (!file->content) {
      status = 404;
    } else {
      const uint64_t size = file->content->size;
      const bool changed =
          b.etag_change_after >= 0 && c.requests >= static_cast<uint64_t>(b.etag_change_after);
      std::string etag = file->etag;
      int64_t mtime = file->mtime;
      if (changed) {
        etag = etag.size() >= 2 ? etag.substr(0, etag.size() - 1) + "-changed\"" : "\"changed\"";
        mtime += 86400;
      }
      const std::string last_modified = http_date(mtime);
      const bool send_etag = !b.no_etag && !etag.empty() &&
                             (b.etag_only_every <= 1 || c.requests % b.etag_only_every == 0);
      if (send_etag) soup_message_headers_replace(resp, "ETag", etag.c_str());
      if (!b.no_last_modified) {
        soup_message_headers_replace(resp, "Last-Modified", last_modified.c_str());
      }
      soup_message_headers_replace(resp, "Accept-Ranges", b.accept_ranges_none ? "none" : "bytes");
      soup_message_headers_replace(resp, "Content-Type", file->content_type.c_str());

      auto validator_matches = [&](const std::string& v) {
        if (v == "*") return true;
        if (!b.no_etag && !etag.empty() && v == etag) return true;
        if (!b.no_last_modified && v == last_modified) return true;
        return false;
      };

      bool use_range = !rec.range.empty() && !b.ignore_range;
      const char* if_match = soup_message_headers_get_one(req, "If-Match");
      const char* if_range = soup_message_headers_get_one(req, "If-Range");
      if (if_match && !validator_matches(trim(if_match))) {
        status = 412;
      } else {
        if (use_range && if_range && !validator_matches(trim(if_range))) use_range = false;
        uint64_t first = 0, last = 0;
        RangeParse rp = use_range ? parse_range(rec.range, size, &first, &last) : RangeParse::kNone;
        if (rp == RangeParse::kUnsatisfiable) {
          status = 416;
          std::string cr = "bytes */" + std::to_string(size);
          if (!b.unknown_total) soup_message_headers_replace(resp, "Content-Range", cr.c_str());
        } else {
          uint64_t len;
          if (rp == RangeParse::kOk) {
            status = 206;
            if (b.max_range_bytes > 0 && last - first + 1 > b.max_range_bytes)
              last = first + b.max_range_bytes - 1;
            soup_message_headers_set_content_range(
                resp, static_cast<goffset>(first), static_cast<goffset>(last),
                b.unknown_total ? -1 : static_cast<goffset>(size));
            len = last - first + 1;
          } else {
            status = 200;
            first = 0;
            len = size;
          }
          int64_t body = static_cast<int64_t>(len) + b.body_length_delta;
          if (body < 0) body = 0;
          first_byte = first;
          r->content = file->content;
          r->file_offset = first;
          r->body_len = static_cast<uint64_t>(body);
        }
      }
    }
  }

  soup_server_message_set_status(msg, static_cast<guint>(status), nullptr);
  soup_message_headers_set_content_length(resp, static_cast<goffset>(r->body_len));
  if (is_head) {
    r->body_len = 0;
    r->content.reset();
  }
  r->has_body = r->body_len > 0;

  // Per-response faults that count body responses.
  if (r->has_body) {
    std::lock_guard<std::mutex> lock(mu);
    PathCounters& pc = counters[path];
    uint64_t k = pc.body_responses++;
    if (b.cut_every > 0 && k % b.cut_every == 0 &&
        (b.cut_count < 0 || pc.cuts < static_cast<uint64_t>(b.cut_count)) &&
        b.cut_after_bytes < r->body_len) {
      pc.cuts++;
      r->cut = true;
      r->cut_at = b.cut_after_bytes;
    }
    if (b.stall_duration.count() > 0 &&
        (b.stall_count < 0 || pc.stalls < static_cast<uint64_t>(b.stall_count)) &&
        b.stall_after_bytes < r->body_len) {
      pc.stalls++;
      r->stall = true;
      r->stall_at = b.stall_after_bytes;
      r->stall_for = b.stall_duration;
    }
  }
  // Into the log only once its answer is decided: a reader of requests()
  // never sees a record with the defaults (first_byte 0, status 0) of one
  // whose answer is still being made (a span for block 4 counted as a
  // request for block 0).
  rec.status = status;
  rec.first_byte = first_byte;
  rec.body_length = r->body_len;
  {
    std::lock_guard<std::mutex> lock(mu);
    in_flight++;
    max_in_flight = std::max(max_in_flight, in_flight);
    log[rec.id] = rec;
  }

  Response* rp = r.get();
  rp->handlers.push_back(
      g_signal_connect(msg, "wrote-headers", G_CALLBACK(&Impl::on_wrote_headers), rp));
  rp->handlers.push_back(
      g_signal_connect(msg, "wrote-body-data", G_CALLBACK(&Impl::on_wrote_body_data), rp));
  rp->handlers.push_back(
      g_signal_connect(msg, "wrote-chunk", G_CALLBACK(&Impl::on_wrote_chunk), rp));
  rp->handlers.push_back(g_signal_connect(msg, "finished", G_CALLBACK(&Impl::on_finished), rp));
  rp->handlers.push_back(
      g_signal_connect(msg, "disconnected", G_CALLBACK(&Impl::on_disconnected), rp));
  responses[msg] = std::move(r);

  std::chrono::milliseconds ttfb(0);
  if (b.first_byte_delay) ttfb = b.first_byte_delay(first_byte);
  start_body(rp, ttfb);
}

void TestServer::Impl::start_body(Response* r, std::chrono::milliseconds ttfb) {
  if (!r->has_body && ttfb.count() <= 0) return;  // answer right away
  soup_server_message_pause(r->msg);
  schedule(r, ttfb);
}

void TestServer::Impl::schedule(Response* r, std::chrono::milliseconds delay) {
  if (r->done || stopping) return;
  if (r->source) {
    g_source_destroy(r->source);
    g_source_unref(r->source);
  }
  r->source = delay.count() > 0 ? g_timeout_source_new(static_cast<guint>(delay.count()))
                                : g_idle_source_new();
  g_source_set_callback(r->source, &Impl::on_source, r, nullptr);
  g_source_attach(r->source, ctx);
}

void TestServer::Impl::feed(Response* r) {
  if (r->done) return;
  if (r->appended == 0 && r->pace_base == TestClock::time_point{}) r->pace_base = TestClock::now();
  if (!r->has_body) {
    soup_server_message_unpause(r->msg);
    return;
  }
  if (r->cut && r->appended == r->cut_at) {
    // Everything appended so far has been written (we only get here from
    // wrote-chunk, or at the start).
    if (r->cut_at > 0 || r->headers_written) {
      do_cut(r);
    } else {
      r->cut_when_headers = true;
      soup_server_message_unpause(r->msg);
    }
    return;
  }
  if (r->stall && r->appended == r->stall_at) {
    r->stall = false;
    r->pace_base += r->stall_for;
    schedule(r, r->stall_for);
    return;
  }
  uint64_t n = std::min<uint64_t>(r->chunk, r->body_len - r->appended);
  if (r->cut && r->cut_at > r->appended) n = std::min(n, r->cut_at - r->appended);
  if (r->stall && r->stall_at > r->appended) n = std::min(n, r->stall_at - r->appended);
  if (n == 0) return;

  auto* buf = static_cast<uint8_t*>(g_malloc(n));
  const uint64_t pos = r->file_offset + r->appended;
  const uint64_t size = r->content ? r->content->size : 0;
  uint64_t from_file = pos < size ? std::min<uint64_t>(n, size - pos) : 0;
  if (from_file) memcpy(buf, r->content->data + pos, from_file);
  if (from_file < n) memset(buf + from_file, 0, n - from_file);
  r->appended += n;
  soup_message_body_append_take(soup_server_message_get_response_body(r->msg), buf, n);
  soup_server_message_unpause(r->msg);
}

void TestServer::Impl::do_cut(Response* r) {
  SoupServerMessage* msg = static_cast<SoupServerMessage*>(g_object_ref(r->msg));
  for (gulong h : r->handlers) g_signal_handler_disconnect(msg, h);
  r->handlers.clear();
  edit_record(r->id, [](RequestRecord& rec) { rec.cut = true; });
  finish(r, false);  // r is gone after this
  GIOStream* stream = soup_server_message_steal_connection(msg);
  if (stream) {
    g_io_stream_close(stream, nullptr, nullptr);
    g_object_unref(stream);
  }
  g_object_unref(msg);
}

void TestServer::Impl::finish(Response* r, bool client_gone) {
  if (r->done) return;
  r->done = true;
  if (r->source) {
    g_source_destroy(r->source);
    g_source_unref(r->source);
    r->source = nullptr;
  }
  for (gulong h : r->handlers) g_signal_handler_disconnect(r->msg, h);
  r->handlers.clear();
  const bool complete = r->written >= r->body_len;
  {
    std::lock_guard<std::mutex> lock(mu);
    in_flight--;
    auto it = log.find(r->id);
    if (it != log.end()) {
      it->second.finished = true;
      it->second.end = TestClock::now();
      it->second.complete = complete && !it->second.cut;
      it->second.client_gone = client_gone && !complete && !it->second.cut;
      it->second.bytes_sent = r->written;
    }
  }
  SoupServerMessage* msg = r->msg;
  auto owned = std::move(responses[msg]);
  responses.erase(msg);
  g_object_unref(msg);
}

// ---------------------------------------------------------------------------

TestServer::TestServer() : impl_(std::make_shared<Impl>()) {
  Impl* impl = impl_.get();
  impl->ctx = g_main_context_new();
  impl->loop = g_main_loop_new(impl->ctx, FALSE);
  std::promise<std::pair<uint16_t, std::string>> started;
  auto ready = started.get_future();
  impl->thread = std::thread([impl, &started] {
    g_main_context_push_thread_default(impl->ctx);
    impl->server = soup_server_new("server-header", "prefetch-test-server", nullptr);
    soup_server_add_handler(impl->server, nullptr, &Impl::on_request, impl, nullptr);
    GError* error = nullptr;
    uint16_t port = 0;
    std::string err;
    if (soup_server_listen_local(impl->server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error)) {
      GSList* uris = soup_server_get_uris(impl->server);
      if (uris) port = static_cast<uint16_t>(g_uri_get_port(static_cast<GUri*>(uris->data)));
      g_slist_free_full(uris, reinterpret_cast<GDestroyNotify>(g_uri_unref));
    } else {
      err = error->message;
      g_error_free(error);
    }
    started.set_value({port, err});
    if (port) g_main_loop_run(impl->loop);
    if (impl->server) g_object_unref(impl->server);
    impl->server = nullptr;
    while (g_main_context_iteration(impl->ctx, FALSE)) {
    }
    g_main_context_pop_thread_default(impl->ctx);
  });
  auto [port, err] = ready.get();
  if (!port) {
    impl->thread.join();
    g_error("TestServer: cannot listen on 127.0.0.1: %s", err.c_str());
  }
  port_ = port;
  std::lock_guard<std::mutex> lock(impl->mu);
  impl->base_url = "http://127.0.0.1:" + std::to_string(port_);
}

TestServer::~TestServer() {
  Impl* impl = impl_.get();
  GSource* s = g_idle_source_new();
  g_source_set_callback(
      s,
      [](gpointer data) -> gboolean {
        static_cast<Impl*>(data)->stop();
        return G_SOURCE_REMOVE;
      },
      impl, nullptr);
  g_source_attach(s, impl->ctx);
  g_source_unref(s);
  impl->thread.join();
  g_main_loop_unref(impl->loop);
  g_main_context_unref(impl->ctx);
}

std::string TestServer::base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::string TestServer::url(const std::string& path) const { return base_url() + path; }

GMainContext* TestServer::context() const { return impl_->ctx; }

void TestServer::add_file(const std::string& path, std::vector<uint8_t> content,
                          const std::string& content_type) {
  auto c = std::make_shared<Content>();
  c->owned = std::move(content);
  c->data = c->owned.data();
  c->size = c->owned.size();
  impl_->add_content(path, std::move(c), content_type);
}

bool TestServer::add_file_from_disk(const std::string& path, const std::string& filename,
                                    const std::string& content_type) {
  GError* error = nullptr;
  GMappedFile* mapped = g_mapped_file_new(filename.c_str(), FALSE, &error);
  if (!mapped) {
    g_error_free(error);
    return false;
  }
  auto c = std::make_shared<Content>();
  c->mapped = mapped;
  c->data = reinterpret_cast<const uint8_t*>(g_mapped_file_get_contents(mapped));
  c->size = g_mapped_file_get_length(mapped);
  impl_->add_content(path, std::move(c), content_type);
  return true;
}

void TestServer::remove_file(const std::string& path) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->files.erase(path);
}

void TestServer::set_etag(const std::string& path, const std::string& etag) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->files.find(path);
  if (it != impl_->files.end()) it->second.etag = etag;
}

void TestServer::add_redirect(const std::string& from, const std::string& to, int status) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->redirects[from] = {to, status};
}

void TestServer::add_expiring_redirect(const std::string& from, const std::string& target_path,
                                       unsigned uses_per_token, bool require_cookie) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl::ExpiringRedirect& e = impl_->expiring[from];
  e.target = target_path;
  e.uses_per_token = uses_per_token;
  e.require_cookie = require_cookie;
  impl_->expiring_targets[target_path] = from;
}

void TestServer::expire_redirect_tokens(const std::string& from) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl::ExpiringRedirect& e = impl_->expiring[from];
  for (auto& [token, uses] : e.uses) uses = e.uses_per_token;
}

void TestServer::require_basic_auth(const std::string& path, const std::string& user,
                                    const std::string& password) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  FileEntry& e = impl_->files[path];
  e.need_auth = true;
  e.auth_user = user;
  e.auth_password = password;
}

void TestServer::require_digest_auth(const std::string& path, const std::string& user,
                                     const std::string& password) {
  struct Job {
    Impl* impl;
    std::string path, user, password;
    std::promise<void> done;
  };
  Job job{impl_.get(), path, user, password, {}};
  auto done = job.done.get_future();
  GSource* s = g_idle_source_new();
  g_source_set_callback(
      s,
      [](gpointer data) -> gboolean {
        auto* j = static_cast<Job*>(data);
        if (j->impl->server) {
          auto cred = std::make_unique<Impl::DigestCredentials>();
          cred->user = j->user;
          cred->password = j->password;
          SoupAuthDomain* domain = soup_auth_domain_digest_new("realm", "test", nullptr);
          soup_auth_domain_add_path(domain, j->path.c_str());
          soup_auth_domain_digest_set_auth_callback(domain, &Impl::on_digest_auth, cred.get(),
                                                    nullptr);
          soup_server_add_auth_domain(j->impl->server, domain);
          j->impl->digest_domains.emplace_back(domain, std::move(cred));
        }
        j->done.set_value();
        return G_SOURCE_REMOVE;
      },
      &job, nullptr);
  g_source_attach(s, impl_->ctx);
  g_source_unref(s);
  done.wait();
}

void TestServer::set_behavior(const std::string& path, Behavior behavior) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->behaviors[path] = std::move(behavior);
  impl_->counters.erase(path);
}

void TestServer::set_default_behavior(Behavior behavior) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->default_behavior = std::move(behavior);
}

void TestServer::update_behavior(const std::string& path,
                                 const std::function<void(Behavior&)>& edit) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->behaviors.find(path);
  if (it == impl_->behaviors.end()) {
    it = impl_->behaviors.emplace(path, impl_->default_behavior).first;
  }
  edit(it->second);
}

void TestServer::clear_behavior(const std::string& path) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->behaviors.erase(path);
  impl_->counters.erase(path);
}

void TestServer::reset_counters() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->counters.clear();
}

std::vector<RequestRecord> TestServer::requests() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<RequestRecord> out;
  out.reserve(impl_->log.size());
  for (const auto& [id, rec] : impl_->log) out.push_back(rec);
  return out;
}

std::vector<RequestRecord> TestServer::requests(const std::string& path) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<RequestRecord> out;
  for (const auto& [id, rec] : impl_->log) {
    if (rec.path == path) out.push_back(rec);
  }
  return out;
}

size_t TestServer::request_count() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->log.size();
}

unsigned TestServer::in_flight() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->in_flight;
}

unsigned TestServer::max_in_flight() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->max_in_flight;
}

void TestServer::reset_log() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (auto it = impl_->log.begin(); it != impl_->log.end();) {
    it = it->second.finished ? impl_->log.erase(it) : std::next(it);
  }
  impl_->max_in_flight = impl_->in_flight;
}

bool TestServer::wait_for(const std::function<bool()>& pred,
                          std::chrono::milliseconds timeout) const {
  auto deadline = TestClock::now() + timeout;
  while (!pred()) {
    if (TestClock::now() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

bool TestServer::wait_for_requests(size_t count, std::chrono::milliseconds timeout) const {
  return wait_for([&] { return request_count() >= count; }, timeout);
}

bool TestServer::wait_idle(std::chrono::milliseconds timeout) const {
  return wait_for([&] { return in_flight() == 0; }, timeout);
}

}  // namespace testing
}  // namespace prefetch
