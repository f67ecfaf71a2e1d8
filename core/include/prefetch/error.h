// Typed errors of the core. Only the plugin turns them into GStreamer errors.
#pragma once

#include <chrono>
#include <string>

namespace prefetch {

enum class ErrorKind {
  kNotFound,         // 404, 410
  kNotAuthorized,    // 401, 403, 407
  kOpenRead,         // could not reach the origin (refused, DNS, bad URI, TLS)
  kRead,             // the transfer failed after it started, or the origin lied
  kResourceChanged,  // the validator (ETag / Last-Modified) changed between requests
  kSeek,             // a range the origin cannot serve (416 inside the known size)
  kCancelled,        // cancelled by us (seek, stop); never reported to the user
};

struct Error {
  ErrorKind kind = ErrorKind::kRead;
  int http_status = 0;                        // 0 when no HTTP status was received
  std::string message;                        // for people
  std::string detail;                         // for the debug log
  bool transient = false;                     // worth a retry
  std::chrono::milliseconds retry_after{-1};  // from Retry-After, -1 if absent
  // A stall: the request brought less than the low-speed floor (nothing, or
  // a trickle) for the timeout (soup_origin.h).
  bool stalled = false;
};

const char* to_string(ErrorKind kind);

Error make_error(ErrorKind kind, int http_status, std::string message, bool transient = false);

}  // namespace prefetch
