// What the core takes from a response's head: status, Content-Range,
// Content-Length, the validators (ETag and Last-Modified), Retry-After,
// Content-Encoding and the icy-* headers of an Icecast answer; and, for
// applications, where the answer came from and all its headers.
// Pure: reads headers, no I/O.
#pragma once

#include <libsoup/soup.h>

#include "prefetch/origin.h"

namespace prefetch {

ResponseHead parse_response_head(SoupStatus status, SoupMessageHeaders* headers);

// Before sending `msg`: notes on it each redirect libsoup follows (its
// "restarted" signal), for describe_answer().
void watch_redirects(SoupMessage* msg);
// Once `msg` has its answer: where it came from, the redirects followed to
// get it and every request and response header, into `head`.
void describe_answer(SoupMessage* msg, ResponseHead* head);

}  // namespace prefetch
