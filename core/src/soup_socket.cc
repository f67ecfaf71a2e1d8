// The plain-TCP socket under each of the session's connections: filed by the
// hub when the connection is made (SoupHub::on_network_event; any origin of
// the hub may get the connection next), handed to the fetch whose body comes
// over it (a wait for more body is then a wait on the socket alone,
// soup_body.cc), and its receive buffer raised to hold the body.

#include <sys/socket.h>

#include <algorithm>

#include "soup_origin_impl.h"

namespace prefetch {

// The socket under the fetch's body, if its connection is plain TCP.
void SoupOrigin::Impl::find_socket(const std::shared_ptr<SoupFetch>& f) {
  GSocket* socket = hub_->socket(soup_message_get_connection_id(f->msg));
  if (!socket) return;
  f->socket = G_SOCKET(g_object_ref(socket));
  if (f->request.end) make_room(f->socket, *f->request.end - f->request.begin);
}

namespace {

// The most a socket's receive buffer may be set to (net.core.rmem_max), or
// 0 if unknown.
int max_receive_buffer() {
  static const int max = [] {
    gchar* text = nullptr;
    int value = 0;
    if (g_file_get_contents("/proc/sys/net/core/rmem_max", &text, nullptr, nullptr)) {
      value = static_cast<int>(g_ascii_strtoll(text, nullptr, 10));
      g_free(text);
    }
    return value;
  }();
  return max;
}

}  // namespace

// Lets the socket hold a whole body of `bytes` (up to 4 MiB), so that the
// origin can send it without waiting for our reads. Linux sizes a receive
// buffer by how much the reader takes per round trip; on a short round trip
// (loopback, LAN) with a reader as quick as ours it stays small: the sender
// then waits for each window update, our reads come ~64 KiB at a time, and
// our thread even runs the sender's transmissions when its ACKs open the
// window (perf: a third of the I/O thread in softirq TCP). Only ever raised,
// and only where the kernel grants it in full (at most rmem_max): a set size
// ends the kernel's own tuning, which must not be traded for less.
void SoupOrigin::Impl::make_room(GSocket* socket, uint64_t bytes) {
  const int want = static_cast<int>(std::min<uint64_t>(bytes, 4u << 20));
  if (want > max_receive_buffer()) return;
  const int fd = g_socket_get_fd(socket);
  int have = 0;
  socklen_t len = sizeof have;
  // The kernel reports (and allocates) twice the size asked for.
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &have, &len) != 0 || have / 2 >= want) return;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
}

}  // namespace prefetch
