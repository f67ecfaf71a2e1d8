// What one block request looks like on the wire: the GET, its Range, If-Range
// and the options' headers, and the options that are set per message. Pure:
// builds the message, sends nothing.
#pragma once

#include <libsoup/soup.h>

#include "prefetch/origin.h"
#include "prefetch/soup_origin.h"

namespace prefetch {

// A new GET of `request`'s range of `uri` (a reference for the caller).
SoupMessage* new_range_message(GUri* uri, const RangeRequest& request, const HttpOptions& options);

}  // namespace prefetch
