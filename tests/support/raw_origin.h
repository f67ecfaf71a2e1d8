// RawOrigin: a scripted TCP origin for tests that need byte-level control of
// what an HTTP client receives (a status line that is not HTTP, a negative
// Content-Length, a header a megabyte long, bytes after the body on a kept
// connection...), which the SoupServer-based TestServer cannot send.
//
// It listens on `address`:0 (127.0.0.1 unless told; another loopback address
// such as 127.0.0.2 is another host for a client). Each accepted connection
// is served by its own thread: it reads a request head, parses the request
// line and headers (with the Range), logs the request, and hands it to the
// script, which writes whatever bytes it likes. The connection then reads the
// next request, unless the script asked to close it or the peer went away.
// The destructor ends every connection and joins every thread.
//
//   RawOrigin origin([](const RawRequest& req, RawConnection& c) {
//     c.write("SSH-2.0-OpenSSH_9.6\r\n");
//     c.close_after();
//   });
//   std::string uri = origin.url("/f.bin");
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace prefetch {
namespace testing {

struct RawRequest {
  size_t connection = 0;     // 0, 1, 2, ... in accept order
  size_t on_connection = 0;  // 0 for a connection's first request
  std::string method;
  std::string target;                                        // as sent ("/f.bin")
  std::string version;                                       // "HTTP/1.1"
  std::vector<std::pair<std::string, std::string>> headers;  // in order, values trimmed
  // "Range: bytes=first-last" (last absent for "first-"); has_range is false
  // without a Range header or with one of another form.
  bool has_range = false;
  uint64_t range_first = 0;
  std::optional<uint64_t> range_last;

  // The first value of header `name` (case-insensitive), if sent.
  std::optional<std::string> header(const std::string& name) const;
};

// One connection, as the script sees it while answering a request.
class RawConnection {
 public:
  explicit RawConnection(int fd) : fd_(fd) {}
  // Writes every byte (blocks while the peer does not read); false once the
  // peer is gone.
  bool write(const std::string& bytes) { return write(bytes.data(), bytes.size()); }
  bool write(const void* data, size_t size);
  // Closes the connection after this answer instead of reading another
  // request on it.
  void close_after() { close_ = true; }
  bool closing() const { return close_ || broken_; }

 private:
  int fd_;
  bool close_ = false;
  bool broken_ = false;
};

using RawScript = std::function<void(const RawRequest&, RawConnection&)>;

class RawOrigin {
 public:
  explicit RawOrigin(RawScript script, const std::string& address = "127.0.0.1");
  ~RawOrigin();
  RawOrigin(const RawOrigin&) = delete;
  RawOrigin& operator=(const RawOrigin&) = delete;

  bool listening() const { return port_ != 0; }
  uint16_t port() const { return port_; }
  const std::string& address() const { return address_; }
  // "http://address:port" + path.
  std::string url(const std::string& path) const;

  // Every complete request head received so far, in arrival order.
  std::vector<RawRequest> requests() const;
  size_t connections() const { return accepted_; }

 private:
  void accept_loop();
  void serve(int fd, size_t index);

  RawScript script_;
  std::string address_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> accepted_{0};
  mutable std::mutex mu_;
  std::vector<int> fds_;  // every accepted socket, closed by the destructor
  std::vector<std::thread> threads_;
  std::vector<RawRequest> log_;
  std::thread acceptor_;
};

}  // namespace testing
}  // namespace prefetch
