#include "soup_error.h"

#include <gio/gio.h>
#include <libsoup/soup.h>

#include <string>

namespace prefetch {

Error gerror_to_error(const GError* err) {
  Error e;
  e.message = err->message ? err->message : "unknown error";
  e.detail = std::string(g_quark_to_string(err->domain)) + " " + std::to_string(err->code);
  if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    e.kind = ErrorKind::kCancelled;
    return e;
  }
  if (err->domain == G_TLS_ERROR) {
    e.kind = ErrorKind::kOpenRead;
    e.message = "TLS certificate or handshake problem: " + e.message;
    return e;
  }
  if (err->domain == G_RESOLVER_ERROR) {
    e.kind = ErrorKind::kOpenRead;
    e.transient = true;
    e.message = "Could not resolve the host: " + e.message;
    return e;
  }
  if (err->domain == SOUP_SESSION_ERROR) {
    const bool redirect = err->code == SOUP_SESSION_ERROR_TOO_MANY_REDIRECTS ||
                          err->code == SOUP_SESSION_ERROR_REDIRECT_NO_LOCATION ||
                          err->code == SOUP_SESSION_ERROR_REDIRECT_BAD_URI;
    e.kind = redirect ? ErrorKind::kOpenRead : ErrorKind::kRead;
    e.transient = !redirect;
    return e;
  }
  if (err->domain == G_IO_ERROR) {
    switch (err->code) {
      case G_IO_ERROR_CONNECTION_REFUSED:
      case G_IO_ERROR_HOST_UNREACHABLE:
      case G_IO_ERROR_NETWORK_UNREACHABLE:
      case G_IO_ERROR_HOST_NOT_FOUND:
        e.kind = ErrorKind::kOpenRead;
        e.transient = true;
        e.message = "Could not connect to the origin: " + e.message;
        return e;
      case G_IO_ERROR_TIMED_OUT:
        e.kind = ErrorKind::kRead;
        e.transient = true;
        e.message = "No data from the origin within the timeout: " + e.message;
        return e;
      default:
        break;
    }
  }
  // Resets, broken pipes, truncated bodies: worth another try.
  e.kind = ErrorKind::kRead;
  e.transient = true;
  return e;
}

Error cancelled_error() {
  Error e;
  e.kind = ErrorKind::kCancelled;
  e.message = "cancelled";
  return e;
}

}  // namespace prefetch
