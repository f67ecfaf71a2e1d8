// Rate meter: bytes per second over the last half second or more. Header
// only; no locks (the engine's lock guards it).
#pragma once

#include <chrono>
#include <cstdint>

namespace prefetch {

class RateMeter {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RateMeter(Clock::time_point now = Clock::now()) : since_(now) {}

  // `n` bytes arrived at `now`. A window of at least half a second closes
  // before they count, and its rate becomes the one reported.
  void add(uint64_t n, Clock::time_point now) {
    const double secs = std::chrono::duration<double>(now - since_).count();
    if (secs >= kWindowSeconds) {
      rate_ = static_cast<double>(bytes_) / secs;
      since_ = now;
      bytes_ = 0;
    }
    bytes_ += n;
  }

  // The rate at `now`: the open window's once it spans half a second (so a
  // stall shows at once), else the last closed window's.
  double rate(Clock::time_point now) const {
    const double secs = std::chrono::duration<double>(now - since_).count();
    return secs >= kWindowSeconds ? static_cast<double>(bytes_) / secs : rate_;
  }

 private:
  static constexpr double kWindowSeconds = 0.5;
  Clock::time_point since_;
  uint64_t bytes_ = 0;
  double rate_ = 0;
};

}  // namespace prefetch
