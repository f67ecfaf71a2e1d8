// Parsers for what an origin sends: pure functions, no I/O, fuzzed in
// tests/fuzz. Every one rejects rather than guesses.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace prefetch {

struct ContentRange {
  bool unsatisfied = false;  // "bytes */total" (416)
  uint64_t first = 0;
  uint64_t last = 0;              // inclusive
  std::optional<uint64_t> total;  // nullopt for "*"
};

// "bytes 0-499/1234", "bytes 0-499/*", "bytes */1234".
std::optional<ContentRange> parse_content_range(std::string_view value);

// A decimal Content-Length without sign or junk.
std::optional<uint64_t> parse_content_length(std::string_view value);

// Retry-After as delta-seconds or an HTTP-date (relative to `now_unix`).
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           int64_t now_unix);

// A strong or weak entity tag: "xyz" or W/"xyz". Returns the tag as sent.
std::optional<std::string_view> parse_etag(std::string_view value);

// True if `tag` is a weak entity tag (W/"...").
bool is_weak_etag(std::string_view tag);

}  // namespace prefetch
