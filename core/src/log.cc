#include "prefetch/log.h"

#include <cstdarg>
#include <cstdio>

namespace prefetch {

void Logger::operator()(LogLevel level, const char* format, ...) const {
  if (!enabled(level)) return;
  char line[512];
  va_list args;
  va_start(args, format);
  vsnprintf(line, sizeof line, format, args);
  va_end(args);
  func_(level, line);
}

}  // namespace prefetch
