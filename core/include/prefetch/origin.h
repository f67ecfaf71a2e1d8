// Origin: where the bytes come from. One Fetch is one HTTP range request.
//
// Threading contract (the Prefetcher relies on it):
//  - start(), Fetch::cancel() and Fetch::resume() may be called from any
//    thread, with the caller's locks held: they only post work, they never
//    call the listener synchronously.
//  - The listener's callbacks for one fetch come serially from the origin's
//    own thread: on_sent at most once, then on_head at most once, then
//    write_area/on_data any number of times, then on_done exactly once.
//    Nothing follows on_done.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "prefetch/error.h"

namespace prefetch {

struct RangeRequest {
  uint64_t begin = 0;
  std::optional<uint64_t> end;         // exclusive; nullopt asks for the rest
  std::string validator;               // sent as If-Range when not empty (never a weak ETag)
  std::chrono::milliseconds delay{0};  // wait this long before sending (retry backoff)
  // Ask for the whole resource, with no Range (nor If-Range): a body in a
  // content coding (gzip) has no byte ranges of the resource to ask for.
  bool whole = false;
  // Send it on a connection of its own, never an idle one from the pool:
  // after an outage the pool's connections may be dead without knowing it
  // (no FIN, no RST), and a request sent on one waits out a whole timeout.
  bool fresh_connection = false;
  // A conditional request (the disk tier's revalidation): sent as
  // If-None-Match (a strong or weak ETag) or, without one, as
  // If-Modified-Since; an unchanged resource then answers 304, no body.
  std::string if_none_match;
  std::string if_modified_since;
};

// What an Icecast/SHOUTcast answer says about its stream (icy-* headers, as
// sent; empty if absent). `metaint` is set only for a positive icy-metaint:
// the body then carries a metadata block after every `metaint` bytes.
struct IcyInfo {
  std::optional<int> metaint;
  std::string name;          // icy-name: the station
  std::string genre;         // icy-genre
  std::string url;           // icy-url: the station's home page
  std::string content_type;  // the answer's Content-Type (media type only)
  bool empty() const { return !metaint && name.empty() && genre.empty() && url.empty(); }
};

// HTTP header fields in the order they were sent; a repeated field is
// repeated here.
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct ResponseHead {
  int status = 0;
  // From Content-Range (206) or 416's "bytes */total".
  bool has_range = false;
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive, as in the header
  std::optional<uint64_t> total;
  std::optional<uint64_t> content_length;
  // Validators, each compared only with its own kind; empty if absent.
  std::string etag;           // as sent, W/ included
  std::string last_modified;  // the HTTP date as sent
  std::string retry_after;    // raw Retry-After value, if any
  // Content-Encoding other than identity (libsoup decodes it): the body's
  // bytes are not the resource's, so content_length is left unset.
  std::string content_encoding;
  IcyInfo icy;
  // Answered over HTTP/2: libsoup before 3.6.3 reads such a body whether or
  // not we read it (a paused span would buffer without bound there).
  bool http2 = false;
  // Served from the disk tier (disk_origin.h), not the network: its timing
  // says nothing about the origin.
  bool from_disk = false;
  // What an application may want to see (souphttpsrc's `http-headers`).
  std::string uri;                  // where the answer came from, after redirects
  bool redirected = false;          // redirects were followed to get it
  bool redirect_permanent = false;  // ... and every one was permanent (301, 308)
  HttpHeaders request_headers;      // as sent (for the last hop)
  HttpHeaders response_headers;     // as received
};

// A request went out: its head was written to a connection.
struct SentInfo {
  // How long opening the connection that carries it took (TCP connect, a
  // proxy's tunnel, the TLS handshake): for a connection reused from the
  // pool, what opening it took then. nullopt if that is not known.
  std::optional<std::chrono::microseconds> setup;
  bool reused = false;  // the connection had carried a request before
};

class FetchListener {
 public:
  virtual ~FetchListener() = default;
  // The request went out (at most once, before on_head; a request that
  // fails before it is sent never gets it). The time from here to on_head
  // is the origin's own: the connection was ready.
  virtual void on_sent(const SentInfo& info) { (void)info; }
  // Headers arrived, whatever the status (the listener maps statuses to
  // errors). Return false to abandon the transfer (on_done follows with a
  // kCancelled error).
  virtual bool on_head(const ResponseHead& head) = 0;
  // Where the next body bytes go. A zero length pauses reading until
  // Fetch::resume().
  virtual uint8_t* write_area(size_t* length) = 0;
  // `n` bytes were written at the last write_area.
  virtual void on_data(size_t n) = 0;
  // Called between write_area and on_data: what keeps the memory of the
  // last area alive, from a listener that promises that what on_data says
  // was written there stays as it is while it is held (an area is only
  // ever appended to); empty from any other. Lets a copy of the body (the
  // disk cache's) be taken from the listener's memory instead of made.
  virtual std::shared_ptr<const void> area_keeper() { return nullptr; }
  // The transfer ended: nullptr at a clean end of body.
  virtual void on_done(const Error* error) = 0;
};

class Fetch {
 public:
  virtual ~Fetch() = default;
  virtual void cancel() = 0;
  virtual void resume() = 0;
};

class Origin {
 public:
  virtual ~Origin() = default;
  virtual std::shared_ptr<Fetch> start(const RangeRequest& request,
                                       std::shared_ptr<FetchListener> listener) = 0;
  // Runs `fn` later on the origin's thread (where its listeners are called),
  // never inside this call: for work that must not run on the caller's
  // thread (the host budget's callbacks). Dropped once the origin closed.
  virtual void post(std::function<void()> fn) = 0;
  // Whether its answers may come over HTTP/2 before any answer says so
  // (TLS, where ALPN may choose it): a stream there is read whether or not
  // we do, so a request to the end would have a flow-control window of
  // bytes buffered for it.
  virtual bool may_multiplex() const { return false; }
};

}  // namespace prefetch
