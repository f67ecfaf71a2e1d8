// The SoupSession an origin's requests go through, made from HttpOptions:
// connection limits, timeout, user agent, proxy (the property or the
// environment's), TLS trust and interaction, a cookie jar, the HTTP log; and
// the per-message half of those settings (credentials, ssl-strict, cookies).
#pragma once

#include <libsoup/soup.h>

#include "prefetch/log.h"
#include "prefetch/soup_origin.h"

namespace prefetch {

// A new session, bound to the calling thread's thread-default context. `uri`
// (may be null) picks the environment's proxy variable by its scheme. `log`
// must outlive the session: the HTTP log prints to it.
SoupSession* make_session(const HttpOptions& options, GUri* uri, const Logger& log);

// Answers `msg`'s authentication with the options' credentials and, with
// ssl-strict off, accepts any certificate; keeps the `cookies` option's
// cookies in the Cookie header next to the session's cookie jar's.
// `options` must outlive `msg`.
void connect_credentials(SoupMessage* msg, const HttpOptions* options);

}  // namespace prefetch
