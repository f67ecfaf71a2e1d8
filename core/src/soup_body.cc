// Reading a response body on the I/O thread: into the listener's areas, by
// the pollable read loop (or read_async where the stream cannot poll), with
// waits for more on the socket or the stream, and the stall timer that times
// out the socket waits.

#include <glib-unix.h>

#include <algorithm>
#include <string>
#include <vector>

#include "soup_error.h"
#include "soup_origin_impl.h"

namespace prefetch {

void SoupOrigin::Impl::read_next(const std::shared_ptr<SoupFetch>& f) {
  if (f->done) return;
  if (f->pollable) return read_pollable(f);
  size_t length = 0;
  uint8_t* area = next_area(f, &length);
  if (length > 0) read_async(f, area, length);
}

// The listener's next area. With none (length 0) the fetch has ended, if
// cancelled, or is paused until resume().
uint8_t* SoupOrigin::Impl::next_area(const std::shared_ptr<SoupFetch>& f, size_t* length) {
  uint8_t* area = f->listener->write_area(length);
  if (*length > 0) return area;
  if (g_cancellable_is_cancelled(f->cancellable)) {
    Error e = cancelled_error();
    finish(f, &e);
  } else {
    f->paused = true;
    f->clock_running = false;  // a wait of ours, not the origin's (read_async has no stop_waiting)
  }
  return nullptr;
}

void SoupOrigin::Impl::read_async(const std::shared_ptr<SoupFetch>& f, uint8_t* area,
                                  size_t length) {
  f->reading = true;
  start_clock(f);
  auto* ref = new std::shared_ptr<SoupFetch>(f);
  g_input_stream_read_async(
      f->stream, area, length, G_PRIORITY_DEFAULT, f->cancellable,
      [](GObject* source, GAsyncResult* res, gpointer data) {
        std::shared_ptr<SoupFetch> f = std::move(*static_cast<std::shared_ptr<SoupFetch>*>(data));
        delete static_cast<std::shared_ptr<SoupFetch>*>(data);
        f->reading = false;
        GError* err = nullptr;
        const gssize n = g_input_stream_read_finish(G_INPUT_STREAM(source), res, &err);
        if (f->done) {
          if (err) g_error_free(err);
          return;
        }
        Impl* o = f->origin_;
        if (n < 0) {
          Error e = gerror_to_error(err);
          g_error_free(err);
          return o->finish(f, &e);
        }
        if (n == 0) return o->finish(f, nullptr);
        o->count_bytes(f, static_cast<size_t>(n));
        f->listener->on_data(static_cast<size_t>(n));
        o->read_next(f);
      },
      ref);
}

namespace {

// Bytes one pass of read_pollable() takes from a stream before it lets the
// other sources of the context run (other fetches, cancellations).
constexpr size_t kPollableBudget = 1 << 20;

}  // namespace

// Reads whatever the stream holds without waiting, into the listener's area,
// and reports it with one on_data per area filled or per pass: one lock of
// the engine and one wake-up of the reader per batch of socket reads, not
// per read. Then waits for more with a source (no GTask per read). A pass
// ends as soon as the socket is empty, so no byte waits for a later one.
void SoupOrigin::Impl::read_pollable(const std::shared_ptr<SoupFetch>& f) {
  auto* in = G_POLLABLE_INPUT_STREAM(f->stream);
  size_t budget = kPollableBudget;
  bool past_budget = false;
  while (!f->done) {
    size_t length = 0;
    uint8_t* area = next_area(f, &length);
    if (length == 0) return stop_waiting(f);  // ended or paused
    size_t got = 0;
    bool eof = false;
    GError* err = nullptr;
    do {  // at least one read per area: a full block's next read finds the end of the body
      const gssize n = g_pollable_input_stream_read_nonblocking(in, area + got, length - got,
                                                                f->cancellable, &err);
      if (n < 0) break;
      if (n == 0) {
        eof = true;
        break;
      }
      got += static_cast<size_t>(n);
    } while (got < length && got < budget);
    budget -= std::min(budget, got);
    if (got > 0) {
      count_bytes(f, got);
      f->listener->on_data(got);
    }
    if (err) {
      if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        g_error_free(err);
        return wait_readable(f);
      }
      Error e = gerror_to_error(err);
      g_error_free(err);
      return finish(f, &e);
    }
    if (eof) return finish(f, nullptr);
    // The budget is spent: let other sources run, then go on from a posted
    // call (not a wait for readiness: libsoup may hold bytes it read ahead
    // while the socket is quiet). Not when an area was just filled, though:
    // one more read may find the end of the body, and a fetch that ends here
    // keeps its connection for the next request (a cancel before that read,
    // when the reader is done with the block, would make libsoup close it).
    if (budget == 0 && (got < length || past_budget)) {
      return post([this, f] {
        if (!f->done && !f->paused) read_pollable(f);
      });
    }
    past_budget = budget == 0;
  }
}

// One-shot source: fires when the stream is readable, its socket times out
// (the session's `timeout`: the next read then fails with TIMED_OUT) or the
// fetch is cancelled (the next read fails with CANCELLED). While it waits
// the fetch counts as reading, so cancel_fetch leaves the ending to it.
// One source per wait, as GIO's own read_async does: a source kept attached
// across waits stops firing on TLS streams (glib-networking sets its
// readiness when the source is made).
void SoupOrigin::Impl::wait_readable(const std::shared_ptr<SoupFetch>& f) {
  f->reading = true;
  if (f->source) return;  // already waiting
  start_clock(f);
  if (f->socket && !g_socket_is_closed(f->socket)) {
    // Every layer above the socket has handed out what it buffered (the
    // read that would block went through them), so the socket's readiness
    // is the stream's. One plain fd source, kept from one wait to the next
    // and never blocked while it dispatches (blocking takes the fd out of
    // the context and puts it back, each time waking the context; the
    // callback never iterates the context, so it cannot recurse anyway).
    // The cancellation is ours to watch here.
    f->on_socket = true;
    f->source = g_unix_fd_source_new(g_socket_get_fd(f->socket),
                                     static_cast<GIOCondition>(G_IO_IN | G_IO_HUP | G_IO_ERR));
    g_source_set_can_recurse(f->source, TRUE);
    GUnixFDSourceFunc ready = [](gint, GIOCondition, gpointer data) -> gboolean {
      std::shared_ptr<SoupFetch> f = *static_cast<std::shared_ptr<SoupFetch>*>(data);
      GSource* self = f->source;
      if (!f->done) f->origin_->read_pollable(f);
      // Still waiting with this source: keep it. Otherwise it was destroyed.
      return f->source == self && self ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
    };
    g_source_set_callback(
        f->source, G_SOURCE_FUNC(ready), new std::shared_ptr<SoupFetch>(f),
        [](gpointer data) { delete static_cast<std::shared_ptr<SoupFetch>*>(data); });
    g_source_attach(f->source, hub_->context());
    return;
  }
  f->source =
      g_pollable_input_stream_create_source(G_POLLABLE_INPUT_STREAM(f->stream), f->cancellable);
  g_source_set_priority(f->source, G_PRIORITY_DEFAULT);
  GPollableSourceFunc ready = [](GObject*, gpointer data) -> gboolean {
    std::shared_ptr<SoupFetch> f = *static_cast<std::shared_ptr<SoupFetch>*>(data);
    f->reading = false;
    g_clear_pointer(&f->source, g_source_unref);  // GLib holds it while dispatching
    if (!f->done) f->origin_->read_pollable(f);
    return G_SOURCE_REMOVE;
  };
  g_source_set_callback(
      f->source, G_SOURCE_FUNC(ready), new std::shared_ptr<SoupFetch>(f),
      [](gpointer data) { delete static_cast<std::shared_ptr<SoupFetch>*>(data); });
  g_source_attach(f->source, hub_->context());
}

// The fetch pauses (or ends): no more waiting for the stream.
void SoupOrigin::Impl::stop_waiting(const std::shared_ptr<SoupFetch>& f) {
  f->reading = false;
  f->on_socket = false;
  f->clock_running = false;  // paused: a wait of ours, not the origin's
  if (!f->source) return;
  g_source_destroy(f->source);
  g_clear_pointer(&f->source, g_source_unref);
}

// The fetch waits for body bytes: its low-speed clock runs (from now, if it
// was stopped), and the timer that checks the clocks with it.
void SoupOrigin::Impl::start_clock(const std::shared_ptr<SoupFetch>& f) {
  if (f->clock_running) return;
  f->clock_running = true;
  f->paid_until = f->slow_since = g_get_monotonic_time();
  f->slow_bytes = 0;
  if (opts_.timeout_seconds == 0 || stall_timer_) return;
  stall_timer_ = g_timeout_source_new(250);
  g_source_set_callback(
      stall_timer_,
      [](gpointer data) -> gboolean {
        static_cast<Impl*>(data)->check_stalls();
        return G_SOURCE_CONTINUE;
      },
      this, nullptr);
  g_source_attach(stall_timer_, hub_->context());
}

// `n` body bytes came: they pay for n / kLowSpeedFloor seconds of the wait.
void SoupOrigin::Impl::count_bytes(const std::shared_ptr<SoupFetch>& f, size_t n) {
  const gint64 now = g_get_monotonic_time();
  if (!f->clock_running) return;
  const gint64 pays = static_cast<gint64>(n * G_USEC_PER_SEC / kLowSpeedFloor);
  f->paid_until = std::min(now, f->paid_until + pays);
  if (f->paid_until == now) {
    f->slow_since = now;
    f->slow_bytes = 0;
  } else {
    f->slow_bytes += n;
  }
}

// Fails the body waits whose bytes lag their clock by the timeout: nothing
// came for that long, or a trickle far below the floor (curl's low-speed
// limit). Stops when no clock runs.
void SoupOrigin::Impl::check_stalls() {
  const gint64 now = g_get_monotonic_time();
  const gint64 limit = static_cast<gint64>(opts_.timeout_seconds) * G_USEC_PER_SEC;
  std::vector<std::shared_ptr<SoupFetch>> stalled;
  bool waiting = false;
  for (const auto& f : active_) {
    if (!f->clock_running || f->done) continue;
    waiting = true;
    if (now - f->paid_until >= limit) stalled.push_back(f);
  }
  for (const auto& f : stalled) {
    const double secs = static_cast<double>(now - f->slow_since) / G_USEC_PER_SEC;
    char what[160];
    if (f->slow_bytes == 0)
      g_snprintf(what, sizeof what, "No data from the origin for %.1f s", secs);
    else
      g_snprintf(what, sizeof what,
                 "The origin is too slow: %" G_GUINT64_FORMAT
                 " bytes in %.1f s (a request must bring at least %u bytes a second)",
                 static_cast<guint64>(f->slow_bytes), secs, static_cast<unsigned>(kLowSpeedFloor));
    Error e = make_error(ErrorKind::kRead, 0, what, true);
    e.detail = std::string(g_quark_to_string(G_IO_ERROR)) + " " +
               std::to_string(G_IO_ERROR_TIMED_OUT) + " (low-speed limit)";
    e.stalled = true;
    // Cancelled first, so that libsoup drops the rest of the body at once.
    g_cancellable_cancel(f->cancellable);
    finish(f, &e);
  }
  if (!waiting && stall_timer_) {
    g_source_destroy(stall_timer_);
    g_clear_pointer(&stall_timer_, g_source_unref);
  }
}

}  // namespace prefetch
