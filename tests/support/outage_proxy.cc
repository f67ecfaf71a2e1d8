#include "outage_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace prefetch {
namespace testing {

namespace {

constexpr size_t kBuffer = 64 * 1024;  // per direction: what a read may take

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

// One direction of a connection: bytes read from `from`, not yet written to `to`.
struct Pipe {
  int from = -1, to = -1;
  std::string pending;
  bool eof = false;  // `from` ended: once `pending` is written, the flow closes
};

// A client connection and its connection to the target.
struct Flow {
  int client = -1, upstream = -1;
  Pipe up, down;      // client -> target, target -> client
  bool dead = false;  // open during an outage: never passes a byte again
  bool closed = false;
  void close_all() {
    if (client >= 0) ::close(client);
    if (upstream >= 0) ::close(upstream);
    client = upstream = -1;
    closed = true;
  }
};

// Moves what it can along `p`; false once the flow should close.
bool pump(Pipe& p, short revents_from, short revents_to) {
  if (!p.pending.empty() && (revents_to & (POLLOUT | POLLERR | POLLHUP))) {
    const ssize_t n = ::send(p.to, p.pending.data(), p.pending.size(), MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
    if (n > 0) p.pending.erase(0, static_cast<size_t>(n));
  }
  if (p.pending.empty() && !p.eof && (revents_from & (POLLIN | POLLHUP | POLLERR))) {
    char buf[kBuffer];
    const ssize_t n = ::recv(p.from, buf, sizeof buf, 0);
    if (n == 0) p.eof = true;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
    if (n > 0) p.pending.assign(buf, static_cast<size_t>(n));
  }
  return !(p.eof && p.pending.empty());
}

}  // namespace

OutageProxy::OutageProxy(uint16_t target_port) : target_port_(target_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = loopback(0);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 64) != 0 || ::pipe(wake_) != 0)
    throw std::runtime_error("OutageProxy: cannot listen on 127.0.0.1");
  socklen_t len = sizeof a;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  set_nonblocking(listen_fd_);
  set_nonblocking(wake_[0]);
  thread_ = std::thread([this] { run(); });
}

OutageProxy::~OutageProxy() {
  stop_ = true;
  wake();
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void OutageProxy::set_down(bool down) {
  down_ = down;
  wake();
}

void OutageProxy::wake() {
  const char c = 0;
  (void)!::write(wake_[1], &c, 1);
}

void OutageProxy::run() {
  std::vector<std::unique_ptr<Flow>> flows;
  while (!stop_) {
    const bool down = down_;
    if (down)
      for (auto& f : flows) f->dead = true;  // in the outage: gone for good
    std::vector<pollfd> fds{{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    std::vector<Flow*> polled;
    for (auto& f : flows) {
      if (f->dead || f->closed) continue;
      polled.push_back(f.get());
      const short c = f->up.pending.empty() && !f->up.eof ? POLLIN : 0;
      const short u = f->down.pending.empty() && !f->down.eof ? POLLIN : 0;
      fds.push_back(
          {f->client, static_cast<short>(c | (f->down.pending.empty() ? 0 : POLLOUT)), 0});
      fds.push_back(
          {f->upstream, static_cast<short>(u | (f->up.pending.empty() ? 0 : POLLOUT)), 0});
    }
    if (::poll(fds.data(), fds.size(), 1000) < 0) continue;
    if (fds[0].revents) {
      char buf[64];
      while (::read(wake_[0], buf, sizeof buf) > 0) {
      }
    }
    if (fds[1].revents & POLLIN) {
      for (;;) {
        const int c = ::accept(listen_fd_, nullptr, nullptr);
        if (c < 0) break;
        ++accepted_;
        auto f = std::make_unique<Flow>();
        f->client = c;
        set_nonblocking(c);
        if (down_) {
          f->dead = true;  // accepted, never answered
        } else {
          f->upstream = ::socket(AF_INET, SOCK_STREAM, 0);
          sockaddr_in t = loopback(target_port_);
          if (::connect(f->upstream, reinterpret_cast<sockaddr*>(&t), sizeof t) != 0) {
            f->close_all();
            continue;
          }
          set_nonblocking(f->upstream);
          f->up.from = f->down.to = f->client;
          f->up.to = f->down.from = f->upstream;
        }
        flows.push_back(std::move(f));
      }
    }
    for (size_t i = 0; i < polled.size(); ++i) {
      Flow* f = polled[i];
      if (down_) break;  // the outage began while polling: nothing passes
      const short rc = fds[2 + 2 * i].revents, ru = fds[3 + 2 * i].revents;
      if (!pump(f->up, rc, ru) || !pump(f->down, ru, rc)) f->close_all();
    }
    flows.erase(std::remove_if(flows.begin(), flows.end(), [](const auto& f) { return f->closed; }),
                flows.end());
  }
  for (auto& f : flows) f->close_all();
}

}  // namespace testing
}  // namespace prefetch
