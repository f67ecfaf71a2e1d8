#include "raw_origin.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace prefetch {
namespace testing {

namespace {

// A request head larger than this is not read: the connection is closed.
constexpr size_t kMaxHead = 64 * 1024;

std::string trim(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  const size_t end = s.find_last_not_of(" \t");
  return s.substr(begin, end - begin + 1);
}

std::optional<uint64_t> digits(const std::string& s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

// "bytes=a-b" or "bytes=a-" into `r`.
void parse_range(const std::string& value, RawRequest* r) {
  if (value.rfind("bytes=", 0) != 0) return;
  const std::string spec = value.substr(6);
  const size_t dash = spec.find('-');
  if (dash == std::string::npos || spec.find(',') != std::string::npos) return;
  auto first = digits(trim(spec.substr(0, dash)));
  const std::string last_text = trim(spec.substr(dash + 1));
  if (!first) return;
  if (!last_text.empty()) {
    auto last = digits(last_text);
    if (!last || *last < *first) return;
    r->range_last = last;
  }
  r->range_first = *first;
  r->has_range = true;
}

RawRequest parse_head(const std::string& head) {
  RawRequest r;
  size_t pos = head.find("\r\n");
  const std::string line = head.substr(0, pos);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 != std::string::npos) {
    r.method = line.substr(0, sp1);
    r.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    r.version = line.substr(sp2 + 1);
  }
  while (pos != std::string::npos) {
    const size_t start = pos + 2;
    pos = head.find("\r\n", start);
    const std::string field = head.substr(start, pos == std::string::npos ? pos : pos - start);
    const size_t colon = field.find(':');
    if (colon == std::string::npos) continue;
    r.headers.emplace_back(trim(field.substr(0, colon)), trim(field.substr(colon + 1)));
  }
  if (auto range = r.header("Range")) parse_range(*range, &r);
  return r;
}

}  // namespace

std::optional<std::string> RawRequest::header(const std::string& name) const {
  for (const auto& [n, v] : headers) {
    if (strcasecmp(n.c_str(), name.c_str()) == 0) return v;
  }
  return std::nullopt;
}

bool RawConnection::write(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  size_t sent = 0;
  while (!broken_ && sent < size) {
    const ssize_t n = send(fd_, p + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) broken_ = true;
    if (n > 0) sent += static_cast<size_t>(n);
  }
  return !broken_;
}

RawOrigin::RawOrigin(RawScript script, const std::string& address)
    : script_(std::move(script)), address_(address) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  if (listen_fd_ < 0 || inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1 ||
      bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 64) != 0) {
    ADD_FAILURE() << "RawOrigin cannot listen on " << address << ": " << std::strerror(errno);
    return;
  }
  socklen_t len = sizeof addr;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

RawOrigin::~RawOrigin() {
  stopping_ = true;
  // Wakes accept() (Linux), then every connection's recv() or send().
  if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
  for (int fd : fds_) close(fd);
}

std::string RawOrigin::url(const std::string& path) const {
  return "http://" + address_ + ":" + std::to_string(port_) + path;
}

std::vector<RawRequest> RawOrigin::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return log_;
}

void RawOrigin::accept_loop() {
  for (;;) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(fd);
    if (stopping_) {
      shutdown(fd, SHUT_RDWR);
      return;
    }
    const size_t index = accepted_++;
    threads_.emplace_back([this, fd, index] { serve(fd, index); });
  }
}

void RawOrigin::serve(int fd, size_t index) {
  std::string buffer;
  char chunk[4096];
  for (size_t on_connection = 0; !stopping_; ++on_connection) {
    size_t end;
    bool peer_gone = false;
    while ((end = buffer.find("\r\n\r\n")) == std::string::npos && buffer.size() <= kMaxHead) {
      const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        peer_gone = true;
        break;
      }
      buffer.append(chunk, static_cast<size_t>(n));
    }
    if (peer_gone || end == std::string::npos) break;
    RawRequest request = parse_head(buffer.substr(0, end));
    buffer.erase(0, end + 4);
    request.connection = index;
    request.on_connection = on_connection;
    {
      std::lock_guard<std::mutex> lock(mu_);
      log_.push_back(request);
    }
    RawConnection connection(fd);
    script_(request, connection);
    if (connection.closing()) break;
  }
  // Our side ends after the last answer; reading on until the peer closes
  // keeps unread request bytes from turning our FIN into a reset that could
  // discard the answer before the client read it. The destructor's shutdown
  // ends this wait if the peer keeps the connection.
  shutdown(fd, SHUT_WR);
  while (!stopping_) {
    const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    break;
  }
  shutdown(fd, SHUT_RDWR);
}

}  // namespace testing
}  // namespace prefetch
