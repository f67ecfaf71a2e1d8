// libsoup's and GIO's errors as the core's: what kind, a message for people,
// and whether another try may help. Pure: no I/O.
#pragma once

#include <glib.h>

#include "prefetch/error.h"

namespace prefetch {

// Maps a GError from libsoup / GIO to our error.
Error gerror_to_error(const GError* err);

// What a fetch ends with when we (not the origin) stopped it.
Error cancelled_error();

}  // namespace prefetch
