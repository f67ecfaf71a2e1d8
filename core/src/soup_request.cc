#include "soup_request.h"

#include <string>

#include "prefetch/http_parse.h"

namespace prefetch {

namespace {

void add_header(SoupMessageHeaders* h, const std::string& name, const std::string& value) {
  soup_message_headers_replace(h, name.c_str(), value.c_str());
}

}  // namespace

SoupMessage* new_range_message(GUri* uri, const RangeRequest& r, const HttpOptions& opts) {
  SoupMessage* msg = soup_message_new_from_uri("GET", uri);
  SoupMessageHeaders* h = soup_message_get_request_headers(msg);
  if (r.whole) {
    // The whole resource: no Range, so no If-Range either.
  } else if (r.end) {
    soup_message_headers_set_range(h, static_cast<goffset>(r.begin),
                                   static_cast<goffset>(*r.end - 1));
  } else {
    soup_message_headers_set_range(h, static_cast<goffset>(r.begin), -1);
  }
  // If-Range makes a changed resource answer 200 (which the engine detects)
  // instead of splicing new bytes into old. Weak tags are not allowed there.
  if (!r.whole && !r.validator.empty() && !is_weak_etag(r.validator))
    add_header(h, "If-Range", r.validator);
  if (!r.if_none_match.empty())
    add_header(h, "If-None-Match", r.if_none_match);
  else if (!r.if_modified_since.empty())
    add_header(h, "If-Modified-Since", r.if_modified_since);
  // As souphttpsrc's iradio-mode: an Icecast server then sends icy-metaint
  // and interleaves its metadata; any other server ignores the header.
  if (opts.iradio_mode) add_header(h, "icy-metadata", "1");
  for (const auto& [name, value] : opts.extra_headers)
    soup_message_headers_append(h, name.c_str(), value.c_str());
  if (!opts.cookies.empty()) {
    std::string cookie;
    for (const auto& c : opts.cookies) cookie += (cookie.empty() ? "" : "; ") + c;
    add_header(h, "Cookie", cookie);
  }
  if (!opts.keep_alive) add_header(h, "Connection", "close");
  // Byte offsets must be the file's: ask for the identity encoding, unless
  // compress is on (then the engine reads the body as one stream, r.whole,
  // and libsoup's content decoder hands us the decoded bytes).
  add_header(h, "Accept-Encoding", opts.compress ? "gzip, deflate" : "identity");
  if (!opts.automatic_redirect) soup_message_add_flags(msg, SOUP_MESSAGE_NO_REDIRECT);
  if (r.fresh_connection) soup_message_add_flags(msg, SOUP_MESSAGE_NEW_CONNECTION);
#if SOUP_CHECK_VERSION(3, 4, 0)
  if (opts.force_http1) soup_message_set_force_http1(msg, TRUE);
#endif
  return msg;
}

}  // namespace prefetch
