// Cache freshness: what an answer's headers say about keeping it on disk
// and for how long (RFC 9111). A pure unit: headers and clocks in, a
// verdict out; the disk tier (disk_origin.h) acts on it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "prefetch/origin.h"

namespace prefetch {

struct CacheVerdict {
  // May be written at all: not `no-store`, a status that may be kept
  // (200, 206), and, for a request with credentials, marked cacheable for
  // that (public, private, must-revalidate or s-maxage).
  bool storable = false;
  // Until when (unix seconds) an entry may be used with no request; at or
  // before `response_time` when it must be revalidated on every use
  // (`no-cache`, `max-age=0`, an Expires in the past, or no lifetime and
  // no Last-Modified to make a heuristic one from).
  int64_t fresh_until = 0;
  // Validators: the strong ETag as sent (empty if absent or weak, W/...),
  // and Last-Modified as sent (empty if absent).
  std::string strong_etag;
  std::string last_modified;
};

// `headers`: the answer's header fields; `status` its code;
// `with_credentials`: the request carried user credentials (user-id,
// cookies, an Authorization header); `response_time`: when the answer came
// (unix seconds, the local clock).
//
// The freshness lifetime is, in order: Cache-Control max-age (s-maxage is
// for shared caches and ignored), Expires minus Date (Expires alone: minus
// the response time; an invalid Expires means already expired), or, only
// when neither is present, a heuristic 10 % of (Date - Last-Modified),
// at most one day. The entry's age at arrival (Age, or response time minus
// Date when positive) is taken off it. `immutable` does not change the
// lifetime (RFC 8246: it only says not to revalidate while fresh).
CacheVerdict cache_verdict(const HttpHeaders& headers, int status, bool with_credentials,
                           int64_t response_time);

// Parses an HTTP date (RFC 9110 IMF-fixdate, and the obsolete RFC 850 and
// asctime forms) to unix seconds; nullopt if it is none of them.
std::optional<int64_t> parse_http_date(const std::string& value);

}  // namespace prefetch
