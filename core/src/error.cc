#include "prefetch/error.h"

#include <cstddef>

namespace prefetch {

const char* to_string(ErrorKind kind) {
  static const char* const kNames[] = {"not-found",        "not-authorized", "open-read", "read",
                                       "resource-changed", "seek",           "cancelled"};
  const auto i = static_cast<size_t>(kind);
  return i < sizeof kNames / sizeof kNames[0] ? kNames[i] : "unknown";
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
