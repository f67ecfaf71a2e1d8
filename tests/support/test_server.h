// TestServer: an in-process HTTP/1.1 origin for tests, on 127.0.0.1 and a
// free port. A SoupServer runs on its own thread with its own GMainContext
// (started in the constructor, stopped and joined in the destructor).
//
// It serves in-memory files with correct Range semantics (206 + Content-Range,
// 416 with "bytes */size", 200 without Range, HEAD), ETag, Last-Modified,
// Accept-Ranges, If-Range (a stale validator gets the full 200) and If-Match
// (a stale validator gets 412). Per-path Behavior (delays, rate caps, faults)
// may be changed at any time from any thread; each response takes a snapshot
// of it when its request arrives. Nothing ever blocks the server's thread:
// delays and pacing are GSources on its context.
//
//   prefetch::testing::TestServer server;
//   server.add_file("/a.bin", prefetch::testing::make_pattern(1 << 20, 7));
//   prefetch::testing::Behavior b;
//   b.first_byte_delay = prefetch::testing::fixed_delay(std::chrono::milliseconds(50));
//   b.rate_bytes_per_sec = 256 * 1024;
//   server.set_behavior("/a.bin", b);
//   ... fetch server.url("/a.bin") ...
//   EXPECT_LE(server.max_in_flight(), 4u);
#pragma once

#include <glib.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace prefetch {
namespace testing {

using TestClock = std::chrono::steady_clock;

// Deterministic pseudo-random bytes: the same (size, seed) always gives the
// same bytes, and a prefix of a longer pattern equals the shorter pattern.
std::vector<uint8_t> make_pattern(size_t size, uint32_t seed = 1);

// Lower-case hex SHA-256 (GChecksum).
std::string sha256_hex(const void* data, size_t size);
std::string sha256_hex(const std::vector<uint8_t>& data);

// Unsets http_proxy, https_proxy, all_proxy, no_proxy (both cases) so that
// clients talk to 127.0.0.1 directly. Call at the start of a test (or in main).
void unset_proxy_env();

// Time to first byte of a response, as a function of the first byte it
// serves (the Range's first byte; 0 for a 200).
using DelayFunc = std::function<std::chrono::milliseconds(uint64_t first_byte)>;

// The same delay for every response.
DelayFunc fixed_delay(std::chrono::milliseconds delay);
// Block i (first_byte / block_size) waits per_block[i]; blocks past the end
// of the list wait `otherwise`.
DelayFunc block_delay_schedule(uint64_t block_size,
                               std::vector<std::chrono::milliseconds> per_block,
                               std::chrono::milliseconds otherwise = {});

// How the server answers requests for a path. Every field is optional; the
// default serves the file correctly and at full speed.
//
// Counters ("the first N requests", "every Mth response") count the path's
// requests since its Behavior was last set (set_behavior / reset_counters).
struct Behavior {
  // --- timing -------------------------------------------------------------
  // Time to first byte (after the request arrived); none if empty.
  DelayFunc first_byte_delay;
  // Per-response body rate cap in bytes per second; 0 = unlimited.
  uint64_t rate_bytes_per_sec = 0;
  // Body bytes written per step (and per rate-paced tick).
  size_t chunk_bytes = 16 * 1024;
  // Stall: after `stall_after_bytes` body bytes, send nothing for
  // `stall_duration`, then continue. Applies to the first `stall_count`
  // body responses (-1 = all). Disabled while stall_duration is 0.
  uint64_t stall_after_bytes = 0;
  std::chrono::milliseconds stall_duration{0};
  int stall_count = -1;

  // --- status faults --------------------------------------------------------
  // Answer with this status (and an empty body) instead of the file;
  // 0 = serve normally. Applies to the first `status_count` requests (-1 =
  // every request), then the path is served normally.
  int status = 0;
  int status_count = -1;
  // Sent as "Retry-After: <seconds>" with the forced status; -1 = no header.
  int retry_after_seconds = -1;

  // --- range faults ---------------------------------------------------------
  // Answer every request with 200 and the whole body, whatever the Range.
  bool ignore_range = false;
  // Send "Accept-Ranges: none" instead of "bytes" (Range still honoured
  // unless ignore_range is set too).
  bool accept_ranges_none = false;
  // The body is this many bytes longer (> 0) or shorter (< 0) than the
  // Content-Range says: Content-Length and the bytes sent follow the body
  // (extra bytes continue the file, then zeros), Content-Range stays right.
  int64_t body_length_delta = 0;
  // A 206 carries at most this many bytes (RFC 9110 lets a server send a
  // subset of the range asked); its Content-Range names the subset. 0 = all.
  uint64_t max_range_bytes = 0;
  // Content-Range says "first-last/*" (the size is not told), and a 416
  // carries no Content-Range.
  bool unknown_total = false;

  // --- connection faults ----------------------------------------------------
  // Cut the connection (close the socket) after `cut_after_bytes` body
  // bytes of every `cut_every`-th body response: responses k = 0, M, 2M, ...
  // since the Behavior was set (M = 1 cuts all of them). 0 = never. At most
  // `cut_count` responses are cut (-1 = no limit).
  unsigned cut_every = 0;
  uint64_t cut_after_bytes = 0;
  int cut_count = -1;

  // --- validators -----------------------------------------------------------
  // From the (N+1)-th request on (N = etag_change_after), the path's ETag and
  // Last-Modified are different (as if the file had been replaced with
  // identical bytes). -1 = never.
  int etag_change_after = -1;
  // Do not send an ETag / Last-Modified at all.
  bool no_etag = false;
  bool no_last_modified = false;
  // Send the ETag only on every N-th response: responses k = 0, N, 2N, ...
  // since the Behavior was set (N >= 2); the others carry Last-Modified
  // alone. The file is unchanged, so If-Range / If-Match with the ETag still
  // match on every request. 0 (or 1) = the ETag on every response.
  unsigned etag_only_every = 0;

  // --- misc -------------------------------------------------------------------
  // Added to every response of the path.
  std::vector<std::pair<std::string, std::string>> extra_response_headers;
};

// One request as the server saw it.
struct RequestRecord {
  uint64_t id = 0;  // 0, 1, 2, ... in arrival order
  std::string method;
  std::string path;
  std::string query;                                         // without '?'; "" if none
  std::string range;                                         // the Range header as sent; "" if none
  std::vector<std::pair<std::string, std::string>> headers;  // all request headers
  int status = 0;
  uint64_t first_byte = 0;        // first body byte served (Range start; 0 for 200)
  uint64_t body_length = 0;       // body bytes the response was meant to carry
  uint64_t bytes_sent = 0;        // body bytes actually written to the socket
  TestClock::time_point start{};  // request arrived (handler ran)
  std::optional<TestClock::time_point> first_byte_time;  // first body byte written
  std::optional<TestClock::time_point> end;              // finished, or connection gone / cut
  bool finished = false;                                 // the response ended (fully or not)
  bool complete = false;                                 // every body byte was written
  bool cut = false;                                      // we cut the connection (Behavior::cut_*)
  bool client_gone = false;  // the client went away before the body was written

  // Case-insensitive header lookup; nullopt if absent.
  std::optional<std::string> header(const std::string& name) const;
};

class TestServer {
 public:
  TestServer();   // listens on 127.0.0.1:0 and starts the server thread
  ~TestServer();  // stops the server, joins the thread
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  uint16_t port() const { return port_; }
  // "http://127.0.0.1:<port>"
  std::string base_url() const;
  // base_url() + path (path starts with '/').
  std::string url(const std::string& path) const;

  // --- content (thread-safe, any time) ---------------------------------------
  void add_file(const std::string& path, std::vector<uint8_t> content,
                const std::string& content_type = "application/octet-stream");
  // Loads a file from disk (mapped read-only). False if it cannot be read.
  bool add_file_from_disk(const std::string& path, const std::string& filename,
                          const std::string& content_type = "application/octet-stream");
  void remove_file(const std::string& path);
  // Replace the ETag (give it with its quotes, e.g. "\"v2\"" or "W/\"x\"").
  void set_etag(const std::string& path, const std::string& etag);
  // Requests for `from` get `status` (301/302/303/307/308) with
  // Location: url(to) (or `to` itself when it starts with "http").
  void add_redirect(const std::string& from, const std::string& to, int status = 302);
  // A presigned-URL origin: every request for `from` gets a 302 to
  // target_path + "?token=N" with a fresh N each time. A token is good for
  // `uses_per_token` requests of target_path; later ones (and unknown or
  // missing tokens) get 403 with an empty body, as an expired presigned URL
  // does. With `require_cookie`, each 302 also sets the cookie "gate=N"
  // (Path=/) and the target answers 403 to a request without a "gate"
  // cookie of an issued N (a cookie-gated chain). The request log records
  // the 302s under `from` and the target's answers (403s included) under
  // target_path, with the query in RequestRecord::query.
  void add_expiring_redirect(const std::string& from, const std::string& target_path,
                             unsigned uses_per_token, bool require_cookie = false);
  // Every token issued so far for `from` expires now.
  void expire_redirect_tokens(const std::string& from);
  // Requests for `path` need "Authorization: Basic ..." with these
  // credentials; otherwise 401 with WWW-Authenticate: Basic realm="test".
  void require_basic_auth(const std::string& path, const std::string& user,
                          const std::string& password);
  // Requests for `path` need HTTP Digest authentication (RFC 2617, via
  // libsoup's SoupAuthDomainDigest, realm "test") with these credentials.
  // libsoup answers unauthenticated requests itself with 401 and a Digest
  // challenge before the path's handler runs, so those 401s are not in the
  // request log and never count as in flight; authenticated requests are
  // served (and logged) as usual. Blocks until the server thread has
  // installed the auth domain.
  void require_digest_auth(const std::string& path, const std::string& user,
                           const std::string& password);

  // --- behaviour (thread-safe, any time; affects responses that start later)
  // Sets the Behavior of `path` and resets its counters.
  void set_behavior(const std::string& path, Behavior behavior);
  // The Behavior of every path without one of its own.
  void set_default_behavior(Behavior behavior);
  // Edits the Behavior of `path` in place (counters kept).
  void update_behavior(const std::string& path, const std::function<void(Behavior&)>& edit);
  void clear_behavior(const std::string& path);
  void reset_counters();

  // --- request log (thread-safe snapshots) -----------------------------------
  std::vector<RequestRecord> requests() const;
  std::vector<RequestRecord> requests(const std::string& path) const;
  size_t request_count() const;
  // Responses in flight (request arrived, response not finished) now, and
  // the most at once since construction / reset_log().
  unsigned in_flight() const;
  unsigned max_in_flight() const;
  // Clears the log and max_in_flight (in_flight stays exact).
  void reset_log();

  // Waits (polling the log; a hang guard, not a timing assertion) until
  // `pred` is true; returns its last value.
  bool wait_for(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  bool wait_for_requests(size_t count,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  // Until no response is in flight.
  bool wait_idle(std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  // The server thread's context (to run something there in a test).
  GMainContext* context() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
  uint16_t port_ = 0;
};

}  // namespace testing
}  // namespace prefetch
