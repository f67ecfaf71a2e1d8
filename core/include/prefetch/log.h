// Logging hook: the core never includes GStreamer, so the plugin routes these
// lines into its debug category (GST_DEBUG=prefetchsrc:5).
#pragma once

#include <functional>
#include <string>

namespace prefetch {

enum class LogLevel { kError = 1, kWarning = 2, kInfo = 4, kDebug = 5, kLog = 6 };

using LogFunc = std::function<void(LogLevel, const std::string&)>;

class Logger {
 public:
  Logger() = default;
  explicit Logger(LogFunc func, LogLevel threshold = LogLevel::kLog)
      : func_(std::move(func)), threshold_(threshold) {}
  bool enabled(LogLevel level) const { return func_ && level <= threshold_; }
  void operator()(LogLevel level, const char* format, ...) const
      __attribute__((format(printf, 3, 4)));

 private:
  LogFunc func_;
  LogLevel threshold_ = LogLevel::kLog;
};

}  // namespace prefetch
