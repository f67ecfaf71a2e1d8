#include "soup_response.h"

#include <string>

#include "prefetch/http_parse.h"

namespace prefetch {

ResponseHead parse_response_head(SoupStatus status, SoupMessageHeaders* rh) {
  ResponseHead head;
  head.status = static_cast<int>(status);
  if (const char* cr = soup_message_headers_get_one(rh, "Content-Range")) {
    if (auto parsed = parse_content_range(cr)) {
      head.has_range = !parsed->unsatisfied;
      head.first = parsed->first;
      head.last = parsed->last;
      head.total = parsed->total;
    }
  }
  if (const char* cl = soup_message_headers_get_one(rh, "Content-Length"))
    head.content_length = parse_content_length(cl);
  if (const char* etag = soup_message_headers_get_one(rh, "ETag")) {
    if (auto tag = parse_etag(etag)) head.etag = std::string(*tag);
  }
  if (const char* lm = soup_message_headers_get_one(rh, "Last-Modified")) head.last_modified = lm;
  if (const char* ra = soup_message_headers_get_one(rh, "Retry-After")) head.retry_after = ra;
  return head;
}

}  // namespace prefetch
