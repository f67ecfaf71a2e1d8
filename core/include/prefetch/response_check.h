// Response check: what one response head means for the transfer, given the
// range that was asked and what earlier responses established. It owns the
// HTTP rules that keep bytes right (docs/design.md, "HTTP rules") and the mapping of HTTP
// statuses to errors. Validators are compared like with like (ETag with
// ETag, Last-Modified with Last-Modified); a missing one is no change.
// Pure: no I/O, no locks; the engine applies the verdict.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "prefetch/error.h"
#include "prefetch/origin.h"

namespace prefetch {

// What earlier responses established about the resource.
struct KnownResource {
  std::optional<uint64_t> size;
  std::string etag;           // the first ETag seen
  std::string last_modified;  // the first Last-Modified seen
  bool opened = false;        // a good response arrived
  bool ranges_ok = false;     // a 206 arrived
  bool stream_mode = false;   // the origin ignores Range: one sequential stream
};

enum class Verdict {
  kAccept,   // a 206 for the range asked: its body fills the blocks
  kStream,   // a 200: the origin ignores Range; the body is the whole resource
  kPastEnd,  // a 416 for a range past the end: ends the request, gives the
             // size, or (no size known or given) an upper bound of it
  kReject,   // this request fails with `error` (retried if transient)
  kFatal,    // the transfer fails with `error` (the resource changed)
};

struct ResponseVerdict {
  Verdict verdict = Verdict::kReject;
  std::optional<uint64_t> size;   // the size to learn, where it was unknown
  std::optional<uint64_t> bound;  // kPastEnd without a size: the size is at most this
  std::string etag;               // validators to keep, where none of their kind was
  std::string last_modified;
  std::optional<Error> error;  // kReject and kFatal
};

// `asked_from`: the first byte the request asked for. `now_unix`: the time
// a Retry-After date is relative to.
ResponseVerdict check_response(uint64_t asked_from, const KnownResource& known,
                               const ResponseHead& head, int64_t now_unix);

// The error for a status that is neither success nor a range answer. Before
// the first good response (`opened` false), failures are failures to open.
Error status_error(int status, bool opened);

}  // namespace prefetch
