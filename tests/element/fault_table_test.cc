// The fault table: each origin fault, tried on
// souphttpsrc and on prefetchsrc, measured rather than written by hand.
//
// One row per fault. For each row both elements run `SRC location=... !
// appsink` against the same origin (the in-process TestServer with a
// scripted Behavior, the private nginx, or a bare URI), with the same
// properties where the row sets any, each under a hang guard. The outcome of
// each is one of
//   "bytes exact (N B)"                   EOS, every byte right (SHA-256)
//   "truncated at N of M B, no error"     EOS after a correct prefix
//   "wrong bytes (N B for M B)"           EOS, but the bytes are not the file's
//   "error DOMAIN/CODE"                   an ERROR on the bus
//   "hang (...)"                          neither within the guard
// plus its wall time. prefetchsrc's outcome is asserted (row.expect);
// souphttpsrc's is only recorded: it is the comparison.
//
// When the suite ends the markdown table (| fault | souphttpsrc | prefetchsrc |)
// goes to stdout and to $PREFETCH_FAULT_TABLE (default: fault-table.md in
// the build directory, out of git). A run filtered to some rows writes a
// table of those rows.
//
// Adding a row is one entry in rows() below: a name, the fault as the
// table shows it, the file size, a setup lambda that configures the origin
// and returns the URI, and what prefetchsrc must do.
#include <gst/gst.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "element_test_util.h"
#include "raw_origin.h"
#include "test_server.h"

namespace prefetch {
namespace element_test {
namespace {

using prefetch::testing::RawConnection;
using prefetch::testing::RawOrigin;
using prefetch::testing::RawRequest;
using prefetch::testing::RawScript;
using prefetch::testing::RequestRecord;

constexpr size_t kMiB = 1024 * 1024;
// The hang guard of one element's run; a row runs two, plus nginx.
constexpr std::chrono::milliseconds kRunGuard = 30s;
constexpr std::chrono::seconds kRowDeadline = 100s;
// The path every TestServer row serves.
constexpr const char* kPath = "/f.bin";

// What prefetchsrc must do on a row.
struct Expect {
  bool exact = true;  // EOS with exactly the file's bytes
  GQuark domain = 0;  // else an ERROR of domain/code
  gint code = 0;
  // An ERROR row: at least this many bytes (a correct prefix) come first.
  uint64_t min_bytes = 0;
};
Expect exact_bytes() { return Expect{}; }
Expect fails_with(GQuark domain, gint code) { return Expect{false, domain, code}; }
Expect fails_after(uint64_t bytes, GQuark domain, gint code) {
  return Expect{false, domain, code, bytes};
}

using RawOrigins = std::vector<std::unique_ptr<RawOrigin>>;

// What a row's setup may use.
struct Origin {
  TestServer& server;  // serves the row's file at kPath (pattern(size))
  // Starts the private nginx (serving five.bin, NginxFixture::kNginxFileSize
  // bytes) and returns its https:// URL for `path`; "" if nginx is missing.
  std::function<std::string(const std::string& path)> nginx_https;
  // The row's scripted raw origins (raw_origin.h), made afresh by each
  // setup (the previous element's are gone by then).
  RawOrigins& raw;
};

// A new raw origin of the row on `address` (a second loopback address is
// another host).
RawOrigin& add_raw(Origin& o, RawScript script, const std::string& address = "127.0.0.1") {
  o.raw.push_back(std::make_unique<RawOrigin>(std::move(script), address));
  return *o.raw.back();
}

struct Row {
  const char* name;   // the gtest name: letters, digits, '_'
  const char* fault;  // the table's first column
  size_t size;        // bytes of the file the row serves
  // Configures the origin, returns the URI both elements get.
  std::function<std::string(Origin&)> setup;
  Expect expect;
  // Set on both elements (on souphttpsrc only where it has the property).
  std::vector<std::pair<std::string, std::string>> props = {};
  // The URI is also given to gst_uri_handler_set_uri of a fresh element of
  // each kind, and the table says whether it was refused there. prefetchsrc
  // must refuse it.
  bool bad_uri = false;
  // Proof from the server's log of prefetchsrc's run that the fault
  // happened ("" if it did, else what is missing), so an exact-bytes row
  // cannot pass because the origin behaved; none = not checked.
  std::function<std::string(const std::vector<RequestRecord>&)> exercised = {};
  // The same for a row on raw origins, from their request logs (in the
  // order the setup made them); it may also check what must not have
  // happened there (credentials sent to another host).
  std::function<std::string(const RawOrigins&)> raw_exercised = {};
};

// `row` with its `exercised` check.
Row checked(Row row, std::function<std::string(const std::vector<RequestRecord>&)> check) {
  row.exercised = std::move(check);
  return row;
}

// A check: at least `n` logged requests satisfy `pred`.
std::function<std::string(const std::vector<RequestRecord>&)> at_least(
    size_t n, const char* what, std::function<bool(const RequestRecord&)> pred) {
  return [=](const std::vector<RequestRecord>& log) {
    size_t seen = 0;
    for (const auto& r : log) seen += pred(r) ? 1 : 0;
    if (seen >= n) return std::string();
    return "the fault was not exercised: " + std::to_string(seen) + " " + what +
           ", expected >= " + std::to_string(n);
  };
}

// Requests of two (default, 1 MiB) blocks, for rows whose fault needs several
// requests of the file: with automatic spans a loopback origin gives the whole
// file to the first request. souphttpsrc has no such property.
const std::pair<std::string, std::string> kTwoBlockRequests = {"max-request-size", "2097152"};

// Sets `b` on the row's path and returns its URL.
std::function<std::string(Origin&)> serve(Behavior b) {
  return [b](Origin& o) {
    o.server.set_behavior(kPath, b);
    return o.server.url(kPath);
  };
}

// serve() of the Behavior that `edit` makes of the default one.
std::function<std::string(Origin&)> serve_with(const std::function<void(Behavior&)>& edit) {
  Behavior b;
  edit(b);
  return serve(b);
}

// --- raw origins: answers byte by byte ---------------------------------------------

// 2^62: a total no origin holds.
constexpr uint64_t kAbsurdTotal = 4611686018427387904ull;

// The bytes [first, last] of a file of `size` that an answer to `r` carries:
// the Range's (its end cut to the file), or (no Range) the whole file.
struct Span {
  uint64_t first = 0;
  uint64_t last = 0;
  bool past_end = false;  // the Range starts at or after the end
  uint64_t length() const { return last - first + 1; }
};
Span span_of(const RawRequest& r, uint64_t size) {
  Span s;
  s.first = r.has_range ? r.range_first : 0;
  s.last = r.range_last && *r.range_last < size ? *r.range_last : size - 1;
  s.past_end = s.first >= size;
  return s;
}

std::string content_range(uint64_t first, uint64_t last, uint64_t total) {
  return "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
         std::to_string(total);
}

// Writes a head (lines without the blank line) and a body.
void write_answer(RawConnection& c, const std::string& lines, const std::vector<uint8_t>& data,
                  const Span& s) {
  if (!c.write(lines + "\r\n")) return;
  c.write(data.data() + s.first, s.length());
}

std::string range_head(const char* status_line, const std::string& range,
                       const std::string& length) {
  return std::string(status_line) + "\r\nContent-Type: application/octet-stream\r\n" +
         "Content-Range: " + range + "\r\nContent-Length: " + length + "\r\n";
}

// A 416 for a range that starts past a file of `total` bytes.
void write_416(RawConnection& c, uint64_t total) {
  c.write("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */" + std::to_string(total) +
          "\r\nContent-Length: 0\r\n\r\n");
}

// The head of a 206 for a span, as a row's script may change it.
struct Head {
  std::string status_line = "HTTP/1.1 206 Partial Content";
  std::string range;   // Content-Range
  std::string length;  // Content-Length
  std::string extra;   // more header lines, each ending in CRLF
};

// Answers `r` with the span's bytes of `data` under the head `edit` makes of
// a good origin's 206 (a request without Range as if it asked for bytes=0-);
// a 416 (and false) for a range past the end.
bool write_edited_206(const RawRequest& r, RawConnection& c, const std::vector<uint8_t>& data,
                      const std::function<void(Head&, const Span&)>& edit) {
  const Span s = span_of(r, data.size());
  if (s.past_end) {
    write_416(c, data.size());
    return false;
  }
  Head h;
  h.range = content_range(s.first, s.last, data.size());
  h.length = std::to_string(s.length());
  edit(h, s);
  write_answer(c, range_head(h.status_line.c_str(), h.range, h.length) + h.extra, data, s);
  return true;
}

// A 206 for the span of `r` in `data`, the way a good origin sends it, with
// `extra` header lines (each ending in CRLF) and `tail` bytes after the body.
void write_206(const RawRequest& r, RawConnection& c, const std::vector<uint8_t>& data,
               const std::string& extra = "", const std::string& tail = "") {
  if (write_edited_206(r, c, data, [&](Head& h, const Span&) { h.extra = extra; }) && !tail.empty())
    c.write(tail);
}

// A check over the requests of all the row's raw origins: at least `n`
// satisfy `pred`.
std::function<std::string(const RawOrigins&)> raw_at_least(
    size_t n, const char* what, std::function<bool(const RawRequest&)> pred) {
  return [=](const RawOrigins& origins) {
    size_t seen = 0;
    for (const auto& o : origins) {
      for (const auto& r : o->requests()) seen += pred(r) ? 1 : 0;
    }
    if (seen >= n) return std::string();
    return "the fault was not exercised: " + std::to_string(seen) + " " + what +
           ", expected >= " + std::to_string(n);
  };
}

// Every request's answer is faulty: one request proves the fault happened.
std::function<std::string(const RawOrigins&)> raw_answered() {
  return raw_at_least(1, "requests answered", [](const RawRequest&) { return true; });
}

Row raw_checked(Row row, std::function<std::string(const RawOrigins&)> check) {
  row.raw_exercised = std::move(check);
  return row;
}

// A setup that serves `script(request, connection, data)` on one raw origin
// at kPath, with the row's file.
using FileScript =
    std::function<void(const RawRequest&, RawConnection&, const std::vector<uint8_t>& data)>;
std::function<std::string(Origin&)> serve_raw(size_t size, FileScript script) {
  return [size, script](Origin& o) {
    const std::vector<uint8_t>* data = &pattern(size);
    RawOrigin& raw =
        add_raw(o, [data, script](const RawRequest& r, RawConnection& c) { script(r, c, *data); });
    return raw.url(kPath);
  };
}

// serve_raw() of good 206s with `extra` header lines (each ending in CRLF)
// and `tail` bytes after each body.
std::function<std::string(Origin&)> serve_raw_206(size_t size, const std::string& extra,
                                                  const std::string& tail = "") {
  return serve_raw(
      size, [extra, tail](const RawRequest& r, RawConnection& c, const std::vector<uint8_t>& d) {
        write_206(r, c, d, extra, tail);
      });
}

// `n` header lines "X-Line-I: I", each ending in CRLF.
std::string numbered_header_lines(int n) {
  std::string lines;
  for (int i = 0; i < n; ++i)
    lines += "X-Line-" + std::to_string(i) + ": " + std::to_string(i) + "\r\n";
  return lines;
}

// "Basic base64(user:pw)".
std::string basic(const std::string& user, const std::string& pw) {
  const std::string plain = user + ":" + pw;
  gchar* b64 = g_base64_encode(reinterpret_cast<const guchar*>(plain.data()), plain.size());
  std::string out = std::string("Basic ") + b64;
  g_free(b64);
  return out;
}

// The rows, in table order. A new row is one entry here.
//
// The setup runs once before each element, so Behavior counters start at
// zero for both; it must be safe to call twice.
std::vector<Row> make_rows() {
  std::vector<Row> rows;
  const GQuark res = GST_RESOURCE_ERROR;

  rows.push_back({"NotFound", "404 Not Found", 1 * kMiB,
                  [](Origin& o) { return o.server.url("/missing.bin"); },
                  fails_with(res, GST_RESOURCE_ERROR_NOT_FOUND)});
  rows.push_back({"Gone", "410 Gone", 1 * kMiB, serve(status_behavior(410, -1)),
                  fails_with(res, GST_RESOURCE_ERROR_NOT_FOUND)});
  rows.push_back({"Unauthorized", "401, no credentials given", 1 * kMiB,
                  [](Origin& o) {
                    o.server.require_basic_auth(kPath, "alice", "wonder");
                    return o.server.url(kPath);
                  },
                  fails_with(res, GST_RESOURCE_ERROR_NOT_AUTHORIZED)});
  rows.push_back(
      {"ConnectionRefused",
       "connection refused (retries=1)",
       1 * kMiB,
       [](Origin&) { return "http://127.0.0.1:" + std::to_string(unused_port()) + kPath; },
       fails_with(res, GST_RESOURCE_ERROR_OPEN_READ),
       {{"retries", "1"}}});
  rows.push_back({"BadUriNoHost",
                  "bad URI: no host (`http:///f.bin`)",
                  1 * kMiB,
                  [](Origin&) { return std::string("http:///f.bin"); },
                  fails_with(res, GST_RESOURCE_ERROR_OPEN_READ),
                  {},
                  /*bad_uri=*/true});
  rows.push_back(
      {"BadUriScheme",
       "bad URI: wrong scheme (`ftp://` to the HTTP origin's port)",
       1 * kMiB,
       [](Origin& o) { return "ftp://127.0.0.1:" + std::to_string(o.server.port()) + kPath; },
       fails_with(res, GST_RESOURCE_ERROR_OPEN_READ),
       {},
       /*bad_uri=*/true});
  rows.push_back({"TlsUntrusted", "TLS: certificate from an unknown CA (nginx, ssl-strict default)",
                  NginxFixture::kNginxFileSize,
                  [](Origin& o) { return o.nginx_https("/five.bin"); },
                  fails_with(res, GST_RESOURCE_ERROR_OPEN_READ)});
  rows.push_back(checked({"RangeIgnored", "origin ignores Range (200 to every request)", 8 * kMiB,
                          serve_with([](Behavior& b) { b.ignore_range = true; }), exact_bytes()},
                         at_least(1, "200s to a ranged request", [](const RequestRecord& r) {
                           return r.status == 200 && !r.range.empty();
                         })));
  rows.push_back(
      checked({"CutMidBody", "connection dropped mid-body (every 2nd response, 3 times)", 8 * kMiB,
               serve_with([](Behavior& b) {
                 b.cut_every = 2;
                 b.cut_after_bytes = 100000;
                 b.cut_count = 3;
               }),
               exact_bytes()},
              at_least(1, "cut responses", [](const RequestRecord& r) { return r.cut; })));
  rows.push_back({"StallLongerThanTimeout",
                  "4 s stall mid-body, timeout=1, then recovery",
                  8 * kMiB,
                  serve_with([](Behavior& b) {
                    b.stall_after_bytes = 100000;
                    b.stall_duration = 4s;
                    b.stall_count = 1;
                  }),
                  exact_bytes(),
                  {{"timeout", "1"}}});
  // 1 B/s, each answer closed after 30 s: bytes that trickle in are not
  // progress. Every attempt is a stall (under 512 B/s for the timeout);
  // after `retries` of them, a READ error that says the origin is too slow.
  rows.push_back(checked({"Trickle",
                          "1 B/s trickle, each answer closed after 30 s, timeout=3 retries=1",
                          8 * kMiB,
                          serve_with([](Behavior& b) {
                            b.rate_bytes_per_sec = 1;
                            b.chunk_bytes = 1;
                            b.cut_every = 1;
                            b.cut_after_bytes = 30;
                          }),
                          fails_with(GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ),
                          {{"timeout", "3"}, {"retries", "1"}}},
                         at_least(2, "trickled answers (1-30 bytes)", [](const RequestRecord& r) {
                           return r.bytes_sent > 0 && r.bytes_sent <= 30;
                         })));
  // The TestServer's "new version" has the same bytes under a new ETag and
  // Last-Modified, so a splice is invisible in the bytes: the outcome says
  // whether the element noticed. The cut makes souphttpsrc ask again too.
  rows.push_back({"FileChanged",
                  "file replaced after the 1st request, connection cut in it (new ETag, "
                  "same bytes: a splice is invisible in the bytes)",
                  8 * kMiB, serve_with([](Behavior& b) {
                    b.etag_change_after = 1;
                    b.cut_every = 1;
                    b.cut_count = 1;
                    b.cut_after_bytes = 500000;
                  }),
                  fails_with(res, GST_RESOURCE_ERROR_READ)});
  rows.push_back(
      checked({"BodyLonger",
               "body 1000 B longer than its range / Content-Length says (max-request-size=2 MiB)",
               8 * kMiB,
               serve_with([](Behavior& b) { b.body_length_delta = 1000; }),
               exact_bytes(),
               {kTwoBlockRequests}},
              at_least(1, "206s with a body longer than their range", [](const RequestRecord& r) {
                uint64_t a = 0, b = 0;
                return r.status == 206 &&
                       std::sscanf(r.range.c_str(), "bytes=%" SCNu64 "-%" SCNu64, &a, &b) == 2 &&
                       r.body_length > b - a + 1;
              })));
  rows.push_back({"BodyShorter",
                  "body 1000 B shorter than its range, every answer (Content-Length "
                  "follows the body)",
                  8 * kMiB, serve_with([](Behavior& b) { b.body_length_delta = -1000; }),
                  fails_with(res, GST_RESOURCE_ERROR_READ)});
  // A short 206: at most 300000 B of the range asked for.
  const auto short_206s = at_least(2, "short 206s", [](const RequestRecord& r) {
    return r.status == 206 && r.body_length == 300000;
  });
  rows.push_back(
      checked({"Short206KnownTotal", "short 206 (at most 300000 B), total known", 8 * kMiB,
               serve_with([](Behavior& b) { b.max_range_bytes = 300000; }), exact_bytes()},
              short_206s));
  rows.push_back(checked(
      {"Short206UnknownTotal", "short 206 (at most 300000 B), total unknown (`bytes a-b/*`)",
       8 * kMiB, serve_with([](Behavior& b) {
         b.max_range_bytes = 300000;
         b.unknown_total = true;
       }),
       exact_bytes()},
      short_206s));
  rows.push_back(checked({"EtagOnSomeAnswers",
                          "ETag on every 2nd answer only, Last-Modified on all, file unchanged "
                          "(max-request-size=2 MiB)",
                          8 * kMiB,
                          serve_with([](Behavior& b) { b.etag_only_every = 2; }),
                          exact_bytes(),
                          {kTwoBlockRequests}},
                         at_least(2, "answers (every 2nd without an ETag)",
                                  [](const RequestRecord& r) { return r.status == 206; })));
  // A presigned URL: location answers 302 to a target whose token is good
  // for 3 requests, then 403 (souphttpsrc, on one connection, uses it once).
  rows.push_back(checked({"PresignedRedirectExpires",
                          "presigned redirect: the target's token expires after 3 uses (403), "
                          "location gives a fresh one (max-request-size=2 MiB)",
                          8 * kMiB,
                          [](Origin& o) {
                            o.server.add_expiring_redirect("/signed", kPath, 3);
                            return o.server.url("/signed");
                          },
                          exact_bytes(),
                          {kTwoBlockRequests}},
                         at_least(1, "expired tokens answered 403",
                                  [](const RequestRecord& r) { return r.status == 403; })));
  rows.push_back(
      checked({"Transient503", "503 three times, then OK", 8 * kMiB, serve(status_behavior(503, 3)),
               exact_bytes()},
              at_least(3, "503s", [](const RequestRecord& r) { return r.status == 503; })));
  rows.push_back(
      checked({"TooManyRequests429", "429 with Retry-After: 1, then OK", 8 * kMiB,
               serve(status_behavior(429, 1, 1)), exact_bytes()},
              at_least(1, "429s", [](const RequestRecord& r) { return r.status == 429; })));

  // --- a hostile origin (raw origins: every byte of the answer scripted) ---
  const size_t kRawSize = 8 * kMiB;
  rows.push_back(raw_checked(
      {"StatusLineNotHttp",
       "status line is not HTTP (`HELLO 200 OK`, otherwise a good 206), every answer", kRawSize,
       serve_raw(kRawSize,
                 [](const RawRequest& r, RawConnection& c, const std::vector<uint8_t>& d) {
                   write_edited_206(r, c, d,
                                    [](Head& h, const Span&) { h.status_line = "HELLO 200 OK"; });
                 }),
       fails_with(res, GST_RESOURCE_ERROR_OPEN_READ)},
      raw_answered()));
  rows.push_back(raw_checked(
      {"NegativeContentLength",
       "`Content-Length: -1` on a good 206, connection kept open, every answer "
       "(max-request-size=2 MiB)",
       kRawSize,
       serve_raw(kRawSize,
                 [](const RawRequest& r, RawConnection& c, const std::vector<uint8_t>& d) {
                   write_edited_206(r, c, d, [](Head& h, const Span&) { h.length = "-1"; });
                 }),
       // The Content-Range frames the body: exactly its bytes are read, and
       // the connection, whose framing is lost, is never used again.
       exact_bytes(),
       {kTwoBlockRequests}},
      [](const RawOrigins& origins) -> std::string {
        size_t requests = 0, reused = 0;
        for (const auto& r : origins.at(0)->requests()) {
          ++requests;
          reused += r.on_connection > 0 ? 1 : 0;
        }
        if (reused > 0)
          return std::to_string(reused) + " requests went on a connection with no framing";
        if (requests < 2) return "the fault was not exercised: fewer than 2 answers";
        return "";
      }));
  rows.push_back(raw_checked(
      {"AbsurdTotal",
       "absurd total: every 206 says `/4611686018427387904` (2^62) for an 8 MiB file, 416 "
       "(`*/2^62`) past its end",
       kRawSize,
       serve_raw(kRawSize,
                 [](const RawRequest& r, RawConnection& c, const std::vector<uint8_t>& d) {
                   const Span s = span_of(r, d.size());
                   if (s.past_end) {
                     return (void)c.write(
                         "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */" +
                         std::to_string(kAbsurdTotal) + "\r\nContent-Length: 0\r\n\r\n");
                   }
                   write_answer(c,
                                range_head("HTTP/1.1 206 Partial Content",
                                           content_range(s.first, s.last, kAbsurdTotal),
                                           std::to_string(s.length())),
                                d, s);
                 }),
       // The origin's 8 MiB come first, all of them (the 416 past them fails
       // a request ahead of the reader: the error waits for the reader),
       // then the 416 ends it (a range the origin cannot serve inside the
       // size it gave: SEEK).
       fails_after(kRawSize, res, GST_RESOURCE_ERROR_SEEK)},
      raw_answered()));
  rows.push_back(raw_checked(
      {"BackwardsContentRange",
       "backwards Content-Range (`bytes last-first/size`, last < first), every answer", kRawSize,
       serve_raw(kRawSize,
                 [](const RawRequest& r, RawConnection& c, const std::vector<uint8_t>& d) {
                   write_edited_206(r, c, d, [&d](Head& h, const Span& s) {
                     h.range = content_range(s.last, s.first, d.size());
                   });
                 }),
       fails_with(res, GST_RESOURCE_ERROR_OPEN_READ)},
      raw_at_least(1, "ranges answered backwards", [](const RawRequest& r) {
        return !r.range_last || *r.range_last > r.range_first;
      })));
  rows.push_back(raw_checked(
      {"WrongStartContentRange",
       "206 starting 1000 B after the asked offset (its bytes right for that range), every "
       "answer",
       kRawSize,
       serve_raw(kRawSize,
                 [](const RawRequest& r, RawConnection& c, const std::vector<uint8_t>& d) {
                   Span s = span_of(r, d.size());
                   if (s.first + 1000 > s.last) return write_416(c, d.size());
                   s.first += 1000;
                   write_answer(c,
                                range_head("HTTP/1.1 206 Partial Content",
                                           content_range(s.first, s.last, d.size()),
                                           std::to_string(s.length())),
                                d, s);
                 }),
       fails_with(res, GST_RESOURCE_ERROR_OPEN_READ)},
      raw_at_least(1, "ranges answered from elsewhere", [](const RawRequest& r) {
        return !r.range_last || *r.range_last >= r.range_first + 1000;
      })));
  rows.push_back(raw_checked(
      {"HeaderLine1MiB", "a 1 MiB header line (`X-Padding: aaa...`) in every answer", kRawSize,
       serve_raw_206(kRawSize, "X-Padding: " + std::string(kMiB, 'a') + "\r\n"),
       fails_with(res, GST_RESOURCE_ERROR_OPEN_READ)},
      raw_answered()));
  rows.push_back(raw_checked({"HeaderLines20000", "20,000 header lines in every answer", kRawSize,
                              serve_raw_206(kRawSize, numbered_header_lines(20000)),
                              fails_with(res, GST_RESOURCE_ERROR_OPEN_READ)},
                             raw_answered()));
  rows.push_back(
      raw_checked({"NulInHeader", "a NUL byte in a header value (`X-Note: a<NUL>b`), every answer",
                   kRawSize, serve_raw_206(kRawSize, std::string("X-Note: a\0b\r\n", 13)),
                   fails_with(res, GST_RESOURCE_ERROR_OPEN_READ)},
                  raw_answered()));
  rows.push_back(
      raw_checked({"GarbageAfterBody",
                   "garbage after the body (`GARBAGE...`, connection kept open), every answer "
                   "(max-request-size=2 MiB)",
                   kRawSize,
                   serve_raw_206(kRawSize, "", "GARBAGE AFTER THE BODY\r\n\r\n"),
                   exact_bytes(),
                   {kTwoBlockRequests}},
                  // Every answer has the garbage: a 2nd request went out after it. (Measured:
                  // without the garbage this origin's connections are reused; with it
                  // libsoup drops each one, so the garbage is never read as an answer.)
                  raw_at_least(2, "requests", [](const RawRequest&) { return true; })));
  rows.push_back(raw_checked(
      {"BogusChunked", "chunked body with a bad chunk-size line (`zz`), every answer", kRawSize,
       serve_raw(kRawSize,
                 [](const RawRequest& r, RawConnection& c, const std::vector<uint8_t>& d) {
                   const Span s = span_of(r, d.size());
                   if (s.past_end) return write_416(c, d.size());
                   c.write("HTTP/1.1 206 Partial Content\r\nContent-Range: " +
                           content_range(s.first, s.last, d.size()) +
                           "\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
                   c.write(d.data() + s.first, std::min<uint64_t>(s.length(), 4096));
                   c.close_after();
                 }),
       fails_with(res, GST_RESOURCE_ERROR_READ)},
      raw_answered()));
  {
    // The first answer says the file's size, every later one 1 MiB more
    // (the bytes stay the file's, pattern's prefix property).
    rows.push_back(raw_checked(
        {"TotalChanges",
         "total changes: the 1st 206 says `/8 MiB`, later ones `/9 MiB` (max-request-size=2 MiB)",
         kRawSize,
         [](Origin& o) {
           const std::vector<uint8_t>* data = &pattern(kRawSize);
           auto answers = std::make_shared<std::atomic<int>>(0);
           return add_raw(o,
                          [data, answers](const RawRequest& r, RawConnection& c) {
                            const uint64_t total = (*answers)++ == 0 ? kRawSize : kRawSize + kMiB;
                            const Span s = span_of(r, data->size());
                            if (s.past_end) return write_416(c, total);
                            write_answer(c,
                                         range_head("HTTP/1.1 206 Partial Content",
                                                    content_range(s.first, s.last, total),
                                                    std::to_string(s.length())),
                                         *data, s);
                          })
               .url(kPath);
         },
         fails_with(res, GST_RESOURCE_ERROR_READ),
         {kTwoBlockRequests}},
        raw_at_least(2, "answers (all but the 1st with the new total)",
                     [](const RawRequest&) { return true; })));
  }
  rows.push_back(
      raw_checked({"RedirectLoop", "redirect loop (`/f.bin` 302 to `/g.bin`, 302 back)", kRawSize,
                   [](Origin& o) {
                     return add_raw(o,
                                    [](const RawRequest& r, RawConnection& c) {
                                      const char* to = r.target == kPath ? "/g.bin" : kPath;
                                      c.write(std::string("HTTP/1.1 302 Found\r\nLocation: ") + to +
                                              "\r\nContent-Length: 0\r\n\r\n");
                                    })
                         .url(kPath);
                   },
                   fails_with(res, GST_RESOURCE_ERROR_OPEN_READ)},
                  raw_at_least(3, "redirects", [](const RawRequest&) { return true; })));
  rows.push_back(
      raw_checked({"RedirectToFile", "redirect to `file:///etc/passwd`", kRawSize,
                   [](Origin& o) {
                     return add_raw(o,
                                    [](const RawRequest&, RawConnection& c) {
                                      c.write(
                                          "HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\n"
                                          "Content-Length: 0\r\n\r\n");
                                    })
                         .url(kPath);
                   },
                   fails_after(0, res, GST_RESOURCE_ERROR_OPEN_READ)},
                  raw_answered()));
  {
    // 127.0.0.1 asks for the credentials, then redirects to 127.0.0.2 (another
    // host), which asks too and serves the file to whoever sends them.
    const std::string auth = basic("alice", "wonder");
    auto challenge = [](RawConnection& c, const char* realm) {
      c.write(std::string("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"") + realm +
              "\"\r\nContent-Length: 0\r\n\r\n");
    };
    rows.push_back(raw_checked(
        {"RedirectOtherHostCredentials",
         "user-id/user-pw for 127.0.0.1, which redirects (after auth) to 127.0.0.2: the "
         "credentials must not go there",
         kRawSize,
         [auth, challenge](Origin& o) {
           const std::vector<uint8_t>* data = &pattern(kRawSize);
           RawOrigin& other = add_raw(
               o,
               [auth, challenge, data](const RawRequest& r, RawConnection& c) {
                 if (r.header("Authorization") != auth) return challenge(c, "other");
                 write_206(r, c, *data);
               },
               "127.0.0.2");
           const std::string target = other.url(kPath);
           return add_raw(o,
                          [auth, challenge, target](const RawRequest& r, RawConnection& c) {
                            if (r.header("Authorization") != auth) return challenge(c, "first");
                            c.write("HTTP/1.1 302 Found\r\nLocation: " + target +
                                    "\r\nContent-Length: 0\r\n\r\n");
                          })
               .url(kPath);
         },
         fails_after(0, res, GST_RESOURCE_ERROR_NOT_AUTHORIZED),
         {{"user-id", "alice"}, {"user-pw", "wonder"}}},
        [](const RawOrigins& origins) -> std::string {
          if (origins.size() != 2) return "expected two raw origins";
          size_t first_auth = 0, other_requests = 0, other_auth = 0;
          for (const auto& r : origins[1]->requests())
            first_auth += r.header("Authorization") ? 1 : 0;
          for (const auto& r : origins[0]->requests()) {
            ++other_requests;
            other_auth += r.header("Authorization") ? 1 : 0;
          }
          if (other_auth > 0)
            return "credentials leaked: " + std::to_string(other_auth) +
                   " requests to 127.0.0.2 carried Authorization";
          if (first_auth == 0) return "the fault was not exercised: 127.0.0.1 got no credentials";
          if (other_requests == 0)
            return "the fault was not exercised: the redirect to 127.0.0.2 was not followed";
          return "";
        }));
  }
  return rows;
}

const std::vector<Row>& rows() {
  static const std::vector<Row> all = make_rows();
  return all;
}

// --- outcomes --------------------------------------------------------------------

// "RESOURCE/NOT_FOUND" for the GStreamer core domains, "domain/code" otherwise.
std::string error_name(const GError* e) {
  struct Domain {
    GQuark quark;
    const char* name;
    GType type;
    const char* prefix;
  };
  const Domain domains[] = {
      {GST_RESOURCE_ERROR, "RESOURCE", GST_TYPE_RESOURCE_ERROR, "GST_RESOURCE_ERROR_"},
      {GST_STREAM_ERROR, "STREAM", GST_TYPE_STREAM_ERROR, "GST_STREAM_ERROR_"},
      {GST_CORE_ERROR, "CORE", GST_TYPE_CORE_ERROR, "GST_CORE_ERROR_"},
      {GST_LIBRARY_ERROR, "LIBRARY", GST_TYPE_LIBRARY_ERROR, "GST_LIBRARY_ERROR_"},
      {GST_URI_ERROR, "URI", GST_TYPE_URI_ERROR, "GST_URI_ERROR_"},
  };
  for (const auto& d : domains) {
    if (e->domain != d.quark) continue;
    std::string code = std::to_string(e->code);
    GEnumClass* klass = static_cast<GEnumClass*>(g_type_class_ref(d.type));
    if (GEnumValue* v = g_enum_get_value(klass, e->code)) {
      code = v->value_name;
      if (code.rfind(d.prefix, 0) == 0) code = code.substr(std::string(d.prefix).size());
    }
    g_type_class_unref(klass);
    return std::string(d.name) + "/" + code;
  }
  return std::string(g_quark_to_string(e->domain)) + "/" + std::to_string(e->code);
}

std::string seconds(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f s", ms.count() / 1000.0);
  return buf;
}

// One element's run of one row.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

struct ElementRun {
  bool ran = false;
  std::string outcome;  // as the table shows it, without the time
  std::chrono::milliseconds took{0};
  std::unique_ptr<TransferResult> result;
};

std::string classify(const TransferResult& r, const std::vector<uint8_t>& data) {
  const uint64_t m = data.size();
  std::ostringstream out;
  if (r.timed_out) {
    out << "hang: no EOS or error in " << kRunGuard.count() / 1000 << " s (" << r.bytes
        << " B came)";
  } else if (r.error) {
    out << "error " << error_name(r.error.get());
    if (r.bytes > 0) out << " after " << r.bytes << " of " << m << " B";
  } else if (r.bytes == m && r.sha256 == sha256_hex(data)) {
    out << "bytes exact (" << m << " B)";
  } else if (r.bytes < m && r.sha256 == sha256_hex(data.data(), r.bytes)) {
    out << "truncated at " << r.bytes << " of " << m << " B, no error";
  } else {
    out << "wrong bytes (" << r.bytes << " B for " << m << " B)";
  }
  return out.str();
}

// What the URI handler of a fresh `factory` says to `uri`.
std::string set_uri_verdict(const char* factory, const std::string& uri) {
  GstPtr<GstElement> element(gst_element_factory_make(factory, nullptr));
  if (!element) return "";
  gst_object_ref_sink(element.get());
  GError* e = nullptr;
  const bool ok = gst_uri_handler_set_uri(GST_URI_HANDLER(element.get()), uri.c_str(), &e);
  std::string verdict = ok ? "set_uri accepts it" : "set_uri refuses it";
  if (e) verdict += " (" + error_name(e) + ")";
  g_clear_error(&e);
  return verdict;
}

// --- the table ---------------------------------------------------------------------

struct RowResult {
  std::string soup;
  std::string ours;
};

std::map<size_t, RowResult>& results() {
  static std::map<size_t, RowResult> all;
  return all;
}

std::string cell(const ElementRun& run, const std::string& extra) {
  if (!run.ran) return extra.empty() ? "not run" : extra;
  std::string s = run.outcome + ", " + seconds(run.took);
  if (!extra.empty()) s += "; " + extra;
  return s;
}

std::string table_markdown() {
  std::ostringstream out;
  out << "| fault | souphttpsrc | prefetchsrc |\n|---|---|---|\n";
  for (const auto& [index, r] : results()) {
    out << "| " << rows()[index].fault << " | " << r.soup << " | " << r.ours << " |\n";
  }
  return out.str();
}

std::string table_path() {
  if (const char* env = std::getenv("PREFETCH_FAULT_TABLE")) return env;
  return PREFETCH_FAULT_TABLE;
}

// --- the test ------------------------------------------------------------------------

class FaultTableTest : public NginxFixture, public ::testing::WithParamInterface<size_t> {
 protected:
  static void TearDownTestSuite() {
    if (results().empty()) return;
    const std::string md = table_markdown();
    std::cout << "\n" << md << std::endl;
    const std::string path = table_path();
    std::ofstream file(path);
    file << md;
    if (file) {
      std::cout << "[ table    ] written to " << path << std::endl;
    } else {
      std::cout << "[ table    ] could not write " << path << std::endl;
    }
  }

  void SetUp() override {
    NginxFixture::SetUp();
    set_deadline(kRowDeadline);
  }

  // Runs `factory` on `uri` with the row's properties; a run that could not
  // start (no such element) has ran == false.
  ElementRun run_element(const char* factory, const Row& row, const std::string& uri,
                         const std::vector<uint8_t>& data) {
    ElementRun r;
    GstElement* src = gst_element_factory_make(factory, nullptr);
    if (!src) return r;
    g_object_set(src, "location", uri.c_str(), nullptr);
    for (const auto& [name, value] : row.props) {
      if (g_object_class_find_property(G_OBJECT_GET_CLASS(src), name.c_str())) {
        gst_util_set_object_arg(G_OBJECT(src), name.c_str(), value.c_str());
      }
    }
    auto start = Clock::now();
    r.result = run_transfer(src, kRunGuard);
    r.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    r.outcome = classify(*r.result, data);
    r.ran = true;
    // Let abandoned responses (cuts, stalls, cancels) end before the next
    // element starts, so its request counts begin at zero.
    server_.wait_idle(10s);
    return r;
  }

  TestServer server_;
};

TEST_P(FaultTableTest, Row) {
  const size_t index = GetParam();
  const Row& row = rows()[index];
  const std::vector<uint8_t>& data = pattern(row.size);
  server_.add_file(kPath, data);

  bool nginx_missing = false;
  RawOrigins raw;
  Origin origin{server_,
                [&](const std::string& path) {
                  if (!nginx_installed()) {
                    nginx_missing = true;
                    return std::string();
                  }
                  if (!started_) start_nginx();
                  return https(path);
                },
                raw};

  RowResult& out = results()[index];
  // Each element meets the origin in the same state: its Behavior (and so
  // its counters) set afresh by the row's setup.
  const std::string soup_uri = row.setup(origin);
  if (nginx_missing) {
    out.soup = out.ours = "skipped: nginx is not installed";
    GTEST_SKIP() << "nginx is not installed (tests/run installs it)";
  }
  ASSERT_FALSE(HasFatalFailure());
  // souphttpsrc is the comparison, not under test: under a sanitizer its
  // own leaks (libgstsoup's shared session, freed on a thread that is gone)
  // would fail the run, so the column is filled by the plain build only.
  ElementRun soup;
  std::string soup_extra = "not run under a sanitizer";
  if (!kSanitized) {
    soup = run_element("souphttpsrc", row, soup_uri, data);
    soup_extra = soup.ran ? "" : "souphttpsrc is not installed";
    if (row.bad_uri && soup.ran) soup_extra = set_uri_verdict("souphttpsrc", soup_uri);
  }
  out.soup = cell(soup, soup_extra);

  server_.reset_log();
  raw.clear();  // ends (and joins) souphttpsrc's raw origins: the logs start empty
  const std::string uri = row.setup(origin);
  ElementRun ours = run_element("prefetchsrc", row, uri, data);
  ASSERT_TRUE(ours.ran) << "no prefetchsrc factory";
  std::string ours_extra;
  if (row.bad_uri) ours_extra = set_uri_verdict("prefetchsrc", uri);
  out.ours = cell(ours, ours_extra);
  std::cout << "[ row      ] " << row.fault << "\n             souphttpsrc: " << out.soup
            << "\n             prefetchsrc: " << out.ours << std::endl;

  const std::string not_exercised = row.exercised ? row.exercised(server_.requests(kPath)) : "";
  const TransferResult& r = *ours.result;
  EXPECT_EQ(not_exercised, "");
  if (row.raw_exercised) {
    EXPECT_EQ(row.raw_exercised(raw), "");
  }
  if (row.bad_uri) {
    EXPECT_EQ(ours_extra.rfind("set_uri refuses it", 0), 0u)
        << "prefetchsrc's URI handler took " << uri;
  }
  if (row.expect.exact) {
    expect_exact_transfer(r, data);
  } else {
    expect_transfer_error(r, row.expect.domain, row.expect.code, kRunGuard);
    // Never a wrong byte: what came before the error is the file's.
    EXPECT_LE(r.bytes, data.size());
    if (r.bytes <= data.size()) {
      EXPECT_EQ(r.sha256, sha256_hex(data.data(), r.bytes));
    }
    EXPECT_GE(r.bytes, row.expect.min_bytes) << "bytes the origin had were not delivered";
  }
}

std::string row_name(const ::testing::TestParamInfo<size_t>& info) {
  return rows()[info.param].name;
}

std::vector<size_t> row_indexes() {
  std::vector<size_t> v;
  for (size_t i = 0; i < rows().size(); ++i) v.push_back(i);
  return v;
}

INSTANTIATE_TEST_SUITE_P(FaultTable, FaultTableTest, ::testing::ValuesIn(row_indexes()), row_name);

}  // namespace
}  // namespace element_test
}  // namespace prefetch
