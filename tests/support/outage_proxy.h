// OutageProxy: a TCP proxy on 127.0.0.1 and a free port, in front of a
// local port, that can play a network outage the way one looks from an
// application: while it is down nothing passes on any connection (no FIN, no
// RST: the peers see silence), connections opened meanwhile are accepted
// and never answered, and every connection that was open during the outage
// stays dead after it (its flow is gone, as behind a NAT that forgot it).
// Connections opened after the outage work again.
//
//   prefetch::testing::OutageProxy proxy(server.port());
//   ... fetch from "http://127.0.0.1:" + std::to_string(proxy.port()) + "/f" ...
//   proxy.set_down(true);   // the outage begins
//   proxy.set_down(false);  // and ends
//
// One thread polls every socket (non-blocking, a bounded buffer per
// direction, so a reader that stops reading holds its sender back as TCP
// would); the destructor closes everything and joins it.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>

namespace prefetch {
namespace testing {

class OutageProxy {
 public:
  explicit OutageProxy(uint16_t target_port);
  ~OutageProxy();
  OutageProxy(const OutageProxy&) = delete;
  OutageProxy& operator=(const OutageProxy&) = delete;

  uint16_t port() const { return port_; }
  void set_down(bool down);
  // Connections accepted so far (each client connection counts once).
  unsigned accepted() const { return accepted_; }

 private:
  void run();
  void wake();

  uint16_t target_port_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::atomic<bool> down_{false};
  std::atomic<bool> stop_{false};
  std::atomic<unsigned> accepted_{0};
  std::thread thread_;
};

}  // namespace testing
}  // namespace prefetch
