// Stream mode: the origin ignores Range (a 200 to a ranged request), or the
// resource is read whole (Config::whole, for compress). One sequential
// request fills the blocks, skipping to the reader; it pauses where the
// look-ahead ends and restarts at the reader when it ends early or the
// reader goes back before it.

#include <algorithm>
#include <cinttypes>

#include "engine.h"

namespace prefetch {

void Prefetcher::Impl::launch_stream(uint64_t from, std::chrono::milliseconds delay,
                                     unsigned attempts) {
  stream = std::make_shared<Request>(this, plan.index_of(from), from, RequestKind::kStream);
  stream->attempts = attempts;
  stream->range.begin = from;
  stream->range.delay = delay;
  stream->range.whole = cfg.whole;  // from 0 then: enter_stream_mode skips to `from`
  ++in_flight;
  ++counts.requests_started;
  log(LogLevel::kDebug, "stream requested from byte %" PRIu64, from);
  send(stream);
}

void Prefetcher::Impl::pump_stream() {
  if (!stream) {
    // The stream ended early or the reader went back before it: restart at
    // the reader's block (the origin sends from 0; we skip ahead).
    if (!plan.exists(read_block) || store.find(read_block)) return;
    launch_stream(plan.range(read_block).begin, std::chrono::milliseconds(0));
    return;
  }
  if (stream->state == RequestState::kPaused &&
      plan.index_of(stream->pos) < read_block + lookahead) {
    stream->state = RequestState::kReceiving;
    stream->fetch->resume();
  }
}

// A 200 to a ranged request: from now on one sequential stream (this
// request) fills the blocks, skipping to the reader.
void Prefetcher::Impl::enter_stream_mode(Request& r, std::optional<uint64_t> size) {
  if (!known.stream_mode) {
    log(LogLevel::kWarning,
        "the origin ignores Range requests: falling back to one sequential stream");
    known.stream_mode = true;
    // Keep only this request, as the stream; drop every block and request.
    store.for_each([&](Block& b) {
      if (b.request.get() != &r) cancel_request(b.request);
    });
    store.drop_outside(0, 0, [](Block&) {});
    for (Request* s : std::vector<Request*>(live))
      if (s != &r) cancel_request(s->shared_from_this());
    live.erase(std::remove(live.begin(), live.end(), &r), live.end());  // a stream, not a span
    if (stream.get() != &r) cancel_request(stream);
    stream = r.shared_from_this();
    known.opened = true;
    if (size) set_size(*size);
  } else if (!known.opened) {
    // Asked for whole (Config::whole): the stream was this request all along.
    log(LogLevel::kInfo, "reading the resource whole, as one stream");
    known.opened = true;
    if (size) set_size(*size);
  }
  r.kind = RequestKind::kStream;
  r.state = RequestState::kReceiving;
  r.pos = 0;  // a 200 sends the whole resource
  r.block = 0;
  cv.notify_all();
}

// Stream mode. Skips what the reader no longer wants and what is held
// already; pauses when the next block is past the look-ahead.
uint8_t* Prefetcher::Impl::stream_area(Request& r, size_t* length) {
  const auto& size = plan.size();
  const uint64_t idx = plan.index_of(r.pos);
  uint64_t want_from = plan.range(read_block).begin;
  if (const Block* held = store.find(idx))
    want_from = std::max(want_from, held->range.begin + held->filled);
  if ((size && r.pos >= *size) || r.pos < want_from) {
    // Past the end (a lie, cut) or before the reader: discard.
    r.into_scratch = true;
    *length = size && r.pos >= *size ? sizeof r.scratch
                                     : std::min<uint64_t>(sizeof r.scratch, want_from - r.pos);
    return r.scratch;
  }
  if (idx >= read_block + lookahead) {
    r.state = RequestState::kPaused;  // the budget is full: pump_stream() resumes us
    return nullptr;
  }
  Block* b = store.find(idx);
  if (!b) {
    b = &store.insert(idx, plan.range(idx));
  }
  r.block = idx;  // the block does not own the stream: dropping it must not cancel it
  *length = b->range.end - r.pos;
  r.area_owner = b->buffer;
  return b->buffer->data() + (r.pos - b->range.begin);
}

}  // namespace prefetch
