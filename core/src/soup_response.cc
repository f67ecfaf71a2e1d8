#include "soup_response.h"

#include <string>

#include "prefetch/http_parse.h"

namespace prefetch {

namespace {

// The icy-* headers of an Icecast/SHOUTcast answer (iradio-mode).
void parse_icy(SoupMessageHeaders* rh, IcyInfo* icy) {
  if (const char* mi = soup_message_headers_get_one(rh, "icy-metaint")) {
    char* end = nullptr;
    const gint64 n = g_ascii_strtoll(mi, &end, 10);
    if (end != mi && n > 0 && n <= G_MAXINT) icy->metaint = static_cast<int>(n);
  }
  if (const char* v = soup_message_headers_get_one(rh, "icy-name")) icy->name = v;
  if (const char* v = soup_message_headers_get_one(rh, "icy-genre")) icy->genre = v;
  if (const char* v = soup_message_headers_get_one(rh, "icy-url")) icy->url = v;
  if (const char* v = soup_message_headers_get_content_type(rh, nullptr)) icy->content_type = v;
}

}  // namespace

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
  // libsoup decodes a content coding but leaves the headers as sent: the
  // Content-Length is then the encoded length, not the length we read.
  if (const char* ce = soup_message_headers_get_one(rh, "Content-Encoding")) {
    std::string coding = ce;
    if (!coding.empty() && g_ascii_strcasecmp(coding.c_str(), "identity") != 0) {
      head.content_encoding = coding;
      head.content_length.reset();
    }
  }
  parse_icy(rh, &head.icy);
  return head;
}

namespace {

// The redirects a message followed, as flags in its object data.
constexpr char kRedirectsKey[] = "prefetch-redirects";
constexpr guint kRedirected = 1;  // at least one
constexpr guint kTemporary = 2;   // at least one that is not permanent

void on_restarted(SoupMessage* msg, gpointer) {
  // libsoup restarts a message for a redirect (its URI already the target,
  // its status still the redirect's) and for authentication.
  const guint status = soup_message_get_status(msg);
  if (!SOUP_STATUS_IS_REDIRECTION(status)) return;
  const bool permanent =
      status == SOUP_STATUS_MOVED_PERMANENTLY || status == SOUP_STATUS_PERMANENT_REDIRECT;
  guint flags = GPOINTER_TO_UINT(g_object_get_data(G_OBJECT(msg), kRedirectsKey));
  flags |= kRedirected | (permanent ? 0 : kTemporary);
  g_object_set_data(G_OBJECT(msg), kRedirectsKey, GUINT_TO_POINTER(flags));
}

void collect_headers(SoupMessageHeaders* headers, HttpHeaders* out) {
  out->clear();
  soup_message_headers_foreach(
      headers,
      [](const char* name, const char* value, gpointer data) {
        static_cast<HttpHeaders*>(data)->emplace_back(name, value);
      },
      out);
}

}  // namespace

void watch_redirects(SoupMessage* msg) {
  g_signal_connect(msg, "restarted", G_CALLBACK(on_restarted), nullptr);
}

void describe_answer(SoupMessage* msg, ResponseHead* head) {
  char* uri = g_uri_to_string_partial(soup_message_get_uri(msg), G_URI_HIDE_PASSWORD);
  head->uri = uri ? uri : "";
  g_free(uri);
  const guint flags = GPOINTER_TO_UINT(g_object_get_data(G_OBJECT(msg), kRedirectsKey));
  head->redirected = (flags & kRedirected) != 0;
  head->redirect_permanent = head->redirected && !(flags & kTemporary);
  collect_headers(soup_message_get_request_headers(msg), &head->request_headers);
  collect_headers(soup_message_get_response_headers(msg), &head->response_headers);
}

}  // namespace prefetch
