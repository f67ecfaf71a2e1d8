#include "prefetch/error.h"

namespace prefetch {

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kNotFound:
      return "not-found";
    case ErrorKind::kNotAuthorized:
      return "not-authorized";
    case ErrorKind::kOpenRead:
      return "open-read";
    case ErrorKind::kRead:
      return "read";
    case ErrorKind::kResourceChanged:
      return "resource-changed";
    case ErrorKind::kSeek:
      return "seek";
    case ErrorKind::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

Error make_error(ErrorKind kind, int http_status, std::string message, bool transient) {
  Error e;
  e.kind = kind;
  e.http_status = http_status;
  e.message = std::move(message);
  e.transient = transient;
  return e;
}

}  // namespace prefetch
