#include "prefetch/http_parse.h"

#include <glib.h>

#include <cctype>
#include <limits>

namespace prefetch {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Whole string must be decimal digits; rejects overflow.
std::optional<uint64_t> parse_u64(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

}  // namespace

std::optional<ContentRange> parse_content_range(std::string_view value) {
  value = trim(value);
  constexpr std::string_view kUnit = "bytes ";
  if (value.size() < kUnit.size() || g_ascii_strncasecmp(value.data(), "bytes ", 6) != 0)
    return std::nullopt;
  value = trim(value.substr(kUnit.size()));
  const size_t slash = value.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string_view span = value.substr(0, slash);
  std::string_view total = value.substr(slash + 1);

  ContentRange out;
  if (total != "*") {
    out.total = parse_u64(total);
    if (!out.total) return std::nullopt;
  }
  if (span == "*") {
    if (!out.total) return std::nullopt;  // "*/*" says nothing
    out.unsatisfied = true;
    return out;
  }
  const size_t dash = span.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto first = parse_u64(span.substr(0, dash));
  auto last = parse_u64(span.substr(dash + 1));
  if (!first || !last || *last < *first) return std::nullopt;
  if (out.total && *last >= *out.total) return std::nullopt;
  out.first = *first;
  out.last = *last;
  return out;
}

std::optional<uint64_t> parse_content_length(std::string_view value) {
  return parse_u64(trim(value));
}

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           int64_t now_unix) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  if (auto seconds = parse_u64(value)) {
    // Clamp absurd values to a day; the retry policy caps waits further.
    const uint64_t s = *seconds > 86400 ? 86400 : *seconds;
    return std::chrono::milliseconds(s * 1000);
  }
  // An HTTP-date. GDateTime parses ISO 8601 only, so parse IMF-fixdate by hand:
  // "Sun, 06 Nov 1994 08:49:37 GMT".
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (value.size() != 29 || value[3] != ',' || value.substr(26) != "GMT") return std::nullopt;
  auto num = [&](size_t pos, size_t len) { return parse_u64(value.substr(pos, len)); };
  auto day = num(5, 2), year = num(12, 4), hour = num(17, 2), min = num(20, 2), sec = num(23, 2);
  static const char* const kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  bool day_name = false;
  for (const char* d : kDays) day_name |= value.substr(0, 3) == d;
  if (!day_name || value[4] != ' ' || value[7] != ' ' || value[11] != ' ' || value[25] != ' ')
    return std::nullopt;
  int month = 0;
  for (int m = 0; m < 12; ++m)
    if (value.substr(8, 3) == kMonths[m]) month = m + 1;
  if (!day || !year || !hour || !min || !sec || !month || value[16] != ' ' || value[19] != ':' ||
      value[22] != ':')
    return std::nullopt;
  GDateTime* when = g_date_time_new_utc(static_cast<int>(*year), month, static_cast<int>(*day),
                                        static_cast<int>(*hour), static_cast<int>(*min),
                                        static_cast<double>(*sec));
  if (!when) return std::nullopt;
  const int64_t at = g_date_time_to_unix(when);
  g_date_time_unref(when);
  const int64_t delta = at > now_unix ? at - now_unix : 0;
  return std::chrono::milliseconds((delta > 86400 ? 86400 : delta) * 1000);
}

std::optional<std::string_view> parse_etag(std::string_view value) {
  value = trim(value);
  std::string_view tag = value;
  if (is_weak_etag(tag)) tag.remove_prefix(2);
  if (tag.size() < 2 || tag.front() != '"' || tag.back() != '"') return std::nullopt;
  for (char c : tag.substr(1, tag.size() - 2))
    if (c == '"' || static_cast<unsigned char>(c) < 0x21 || c == 0x7f) return std::nullopt;
  return value;
}

bool is_weak_etag(std::string_view tag) {
  return tag.size() >= 2 && tag[0] == 'W' && tag[1] == '/';
}

}  // namespace prefetch
