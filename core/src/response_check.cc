#include "prefetch/response_check.h"

#include "prefetch/http_parse.h"

namespace prefetch {

namespace {

// A validator other than the one kept, of the same kind, means another
// version of the resource: splicing its bytes onto ours would corrupt the
// stream. A validator of one kind is never compared with one of the other,
// and a missing one says nothing (origins and CDNs drop headers).
std::optional<Error> validator_changed(const KnownResource& known, const ResponseHead& head) {
  const auto differs = [](const std::string& was, const std::string& now) {
    return !was.empty() && !now.empty() && was != now;
  };
  std::string detail;
  if (differs(known.etag, head.etag))
    detail = "ETag was " + known.etag + ", now " + head.etag;
  else if (differs(known.last_modified, head.last_modified))
    detail = "Last-Modified was " + known.last_modified + ", now " + head.last_modified;
  else
    return std::nullopt;
  Error e = make_error(ErrorKind::kResourceChanged, head.status,
                       "The resource changed on the server during the transfer");
  e.detail = detail;
  return e;
}

std::optional<Error> size_changed(const KnownResource& known, uint64_t total, int status) {
  if (!known.size || *known.size == total) return std::nullopt;
  Error e = make_error(ErrorKind::kResourceChanged, status,
                       "The resource changed size on the server during the transfer");
  e.detail = "size was " + std::to_string(*known.size) + ", now " + std::to_string(total);
  return e;
}

ResponseVerdict reject(Error e) {
  ResponseVerdict v;
  v.verdict = Verdict::kReject;
  v.error = std::move(e);
  return v;
}

ResponseVerdict fatal(Error e) {
  ResponseVerdict v = reject(std::move(e));
  v.verdict = Verdict::kFatal;
  return v;
}

// The validator and size a response teaches, where none were known.
void learn(const KnownResource& known, const ResponseHead& head, std::optional<uint64_t> total,
           ResponseVerdict* v) {
  if (known.etag.empty()) v->etag = head.etag;
  if (known.last_modified.empty()) v->last_modified = head.last_modified;
  if (total && !known.size) v->size = total;
}

}  // namespace

Error status_error(int status, bool opened) {
  const std::string what = "HTTP status " + std::to_string(status);
  if (status == 404 || status == 410)
    return make_error(ErrorKind::kNotFound, status, "Resource not found (" + what + ")");
  if (status == 401 || status == 403 || status == 407)
    return make_error(ErrorKind::kNotAuthorized, status, "Not authorized (" + what + ")");
  const bool transient = status >= 500 || status == 429 || status == 408;
  return make_error(opened ? ErrorKind::kRead : ErrorKind::kOpenRead, status,
                    "The origin answered with " + what, transient);
}

ResponseVerdict check_response(uint64_t asked_from, const KnownResource& known,
                               const ResponseHead& head, int64_t now_unix) {
  ResponseVerdict v;
  if (head.status == 206 && head.has_range) {
    if (head.first != asked_from) {
      Error e = make_error(ErrorKind::kRead, 206, "The origin sent a different range", true);
      e.detail =
          "asked from " + std::to_string(asked_from) + ", got from " + std::to_string(head.first);
      return reject(std::move(e));
    }
    if (auto e = validator_changed(known, head)) return fatal(std::move(*e));
    if (head.total) {
      if (auto e = size_changed(known, *head.total, head.status)) return fatal(std::move(*e));
    }
    learn(known, head, head.total, &v);
    v.verdict = Verdict::kAccept;
    return v;
  }
  if (head.status == 206)
    return reject(
        make_error(ErrorKind::kRead, 206, "The origin sent 206 without a valid range", true));
  if (head.status == 200) {
    // A whole body to a ranged request. Its validator differs from ours: the
    // origin's If-Range found the resource changed.
    if (auto e = validator_changed(known, head)) return fatal(std::move(*e));
    if (known.ranges_ok && !known.stream_mode)
      return reject(make_error(ErrorKind::kRead, 200, "The origin ignored a range request", true));
    // The first 200 switches to one stream and gives the size (or opens a
    // stream asked for whole); a stream restarted after a failure teaches
    // nothing new.
    const bool restarted = known.stream_mode && known.opened;
    learn(known, head, restarted ? std::nullopt : head.content_length, &v);
    v.verdict = Verdict::kStream;
    return v;
  }
  if (head.status == 416) {
    if (head.total && asked_from >= *head.total) {
      // A speculative request past the end: it tells the size.
      if (auto e = size_changed(known, *head.total, head.status)) return fatal(std::move(*e));
      learn(known, ResponseHead{}, head.total, &v);
      v.verdict = Verdict::kPastEnd;
      return v;
    }
    if (!head.total && !known.size && !known.stream_mode) {
      // No size anywhere (Content-Range ".../*"): nothing exists from here
      // on, so the size is at most where this request began.
      v.bound = asked_from;
      v.verdict = Verdict::kPastEnd;
      return v;
    }
    return reject(make_error(ErrorKind::kSeek, 416, "The origin cannot serve the range"));
  }
  Error e = status_error(head.status, known.opened);
  if (!head.retry_after.empty()) {
    if (auto ra = parse_retry_after(head.retry_after, now_unix)) e.retry_after = *ra;
  }
  return reject(std::move(e));
}

}  // namespace prefetch
