// What the core takes from a response's head: status, Content-Range,
// Content-Length, the validator (ETag, else Last-Modified), Retry-After,
// Content-Encoding and the icy-* headers of an Icecast answer.
// Pure: reads headers, no I/O.
#pragma once

#include <libsoup/soup.h>

#include "prefetch/origin.h"

namespace prefetch {

ResponseHead parse_response_head(SoupStatus status, SoupMessageHeaders* headers);

}  // namespace prefetch
