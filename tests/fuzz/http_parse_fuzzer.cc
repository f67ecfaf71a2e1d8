// libFuzzer target for every parser of origin input in prefetch/http_parse.h.
//
// The input is one header value. It is handed to every parser whole (so a seed
// written for one header also explores the others), and, when it holds line
// breaks, each line is handed to every parser again: a multi-line input tests
// several values per execution. Each accepted value is checked against the
// parser's contract; a violation aborts, which libFuzzer reports as a crash.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "prefetch/http_parse.h"

namespace {

using prefetch::ContentRange;

// abort() with the offending value: the crash report then says what broke.
#define FUZZ_CHECK(cond, value)                                                                  \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n  value: '%.*s'\n", __FILE__, __LINE__, \
                   #cond, static_cast<int>((value).size()), (value).data());                     \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// An independent decimal reader: 1..20 digits that fit in uint64_t.
bool reference_u64(std::string_view s, uint64_t* out) {
  if (!all_digits(s) || s.size() > 20) return false;
  unsigned __int128 v = 0;
  for (char c : s) v = v * 10 + static_cast<unsigned>(c - '0');
  if (v > UINT64_MAX) return false;
  *out = static_cast<uint64_t>(v);
  return true;
}

std::string format_content_range(const ContentRange& cr) {
  const std::string total = cr.total ? std::to_string(*cr.total) : "*";
  if (cr.unsatisfied) return "bytes */" + total;
  return "bytes " + std::to_string(cr.first) + "-" + std::to_string(cr.last) + "/" + total;
}

bool same(const ContentRange& a, const ContentRange& b) {
  return a.unsatisfied == b.unsatisfied && a.first == b.first && a.last == b.last &&
         a.total == b.total;
}

void check_content_range(std::string_view value) {
  const auto cr = prefetch::parse_content_range(value);
  if (!cr) return;
  if (cr->unsatisfied) {
    // "bytes */N": only the total is meaningful, and it must be there.
    FUZZ_CHECK(cr->total.has_value(), value);
    FUZZ_CHECK(cr->first == 0 && cr->last == 0, value);
  } else {
    FUZZ_CHECK(cr->first <= cr->last, value);
    if (cr->total) FUZZ_CHECK(cr->last < *cr->total, value);
  }
  // Only the unit, digits, '-', '/', '*' and optional whitespace are accepted.
  const std::string_view t = trim_ows(value);
  FUZZ_CHECK(t.size() >= 6, value);
  for (std::string_view::size_type i = 0; i < 6; ++i) {
    const char c = t[i];
    FUZZ_CHECK((c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c) == "bytes "[i], value);
  }
  for (std::string_view::size_type i = 6; i < t.size(); ++i) {
    const char c = t[i];
    FUZZ_CHECK((c >= '0' && c <= '9') || c == '-' || c == '/' || c == '*' || c == ' ' || c == '\t',
               value);
  }
  // Formatting the result and reading it again gives the same values.
  const std::string again = format_content_range(*cr);
  const auto reparsed = prefetch::parse_content_range(again);
  FUZZ_CHECK(reparsed.has_value(), again);
  FUZZ_CHECK(same(*cr, *reparsed), again);
}

void check_content_length(std::string_view value) {
  const auto len = prefetch::parse_content_length(value);
  uint64_t expected = 0;
  const bool valid = reference_u64(trim_ows(value), &expected);
  // Accepts exactly what the reference reader accepts, with the same value.
  FUZZ_CHECK(len.has_value() == valid, value);
  if (!len) return;
  FUZZ_CHECK(*len == expected, value);
  // Round trip through std::to_string.
  const std::string text = std::to_string(*len);
  const auto again = prefetch::parse_content_length(text);
  FUZZ_CHECK(again.has_value() && *again == *len, text);
  // The canonical text is the value without its leading zeros.
  std::string_view digits = trim_ows(value);
  while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
  FUZZ_CHECK(digits == text, value);
}

void check_retry_after(std::string_view value) {
  // Realistic clocks only: the caller passes g_get_real_time() / 1e6.
  static constexpr int64_t kNows[] = {0, 784111777 /* 1994-11-06 */, 1445412480 /* 2015 */,
                                      1767225600 /* 2026 */, 253402300799 /* 9999-12-31 */};
  constexpr int64_t kDayMs = 86400 * 1000;
  const std::string_view t = trim_ows(value);
  std::optional<std::chrono::milliseconds> previous;
  bool any = false;
  for (int64_t now : kNows) {
    const auto d = prefetch::parse_retry_after(value, now);
    if (!d) {
      // Whether a value parses does not depend on the clock.
      FUZZ_CHECK(!any, value);
      continue;
    }
    FUZZ_CHECK(now == kNows[0] || any, value);
    any = true;
    // Never negative, capped at a day, whole seconds.
    FUZZ_CHECK(d->count() >= 0 && d->count() <= kDayMs, value);
    FUZZ_CHECK(d->count() % 1000 == 0, value);
    uint64_t seconds = 0;
    if (reference_u64(t, &seconds)) {
      // delta-seconds: independent of the clock.
      const int64_t want = static_cast<int64_t>(seconds > 86400 ? 86400 : seconds) * 1000;
      FUZZ_CHECK(d->count() == want, value);
    } else {
      // An HTTP-date: a later clock never gives a longer wait.
      FUZZ_CHECK(!all_digits(t), value);  // overflowing delta-seconds are rejected
      FUZZ_CHECK(t.size() == 29 && t.substr(26) == "GMT", value);
      if (previous) FUZZ_CHECK(*d <= *previous, value);
    }
    previous = d;
  }
}

bool etag_char(unsigned char c) { return c != '"' && c >= 0x21 && c != 0x7f; }

void check_etag(std::string_view value) {
  const auto tag = prefetch::parse_etag(value);
  // Reference: optional "W/", then DQUOTE *etagc DQUOTE (RFC 9110 8.8.3).
  const std::string_view t = trim_ows(value);
  std::string_view opaque = t;
  if (opaque.size() >= 2 && opaque.substr(0, 2) == "W/") opaque.remove_prefix(2);
  bool valid = opaque.size() >= 2 && opaque.front() == '"' && opaque.back() == '"';
  for (std::string_view::size_type i = 1; valid && i + 1 < opaque.size(); ++i)
    valid = etag_char(static_cast<unsigned char>(opaque[i]));
  FUZZ_CHECK(tag.has_value() == valid, value);

  FUZZ_CHECK(prefetch::is_weak_etag(t) == (t.size() >= 2 && t[0] == 'W' && t[1] == '/'), value);
  if (!tag) return;
  // The tag is returned as sent, without surrounding whitespace, and points
  // into the input.
  FUZZ_CHECK(*tag == t, value);
  FUZZ_CHECK(
      tag->data() >= value.data() && tag->data() + tag->size() <= value.data() + value.size(),
      value);
  // A parsed tag parses again to itself and keeps its weakness.
  const auto again = prefetch::parse_etag(*tag);
  FUZZ_CHECK(again.has_value() && *again == *tag, *tag);
  FUZZ_CHECK(prefetch::is_weak_etag(*tag) == (tag->substr(0, 2) == "W/"), *tag);
}

void check_all(std::string_view value) {
  check_content_range(value);
  check_content_length(value);
  check_retry_after(value);
  check_etag(value);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // libFuzzer passes a heap buffer of exactly `size` bytes, not NUL-terminated:
  // ASan flags any read past the end of the value (the parsers take string_views).
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_all(input);
  if (input.find('\n') != std::string_view::npos) {
    std::string_view rest = input;
    while (!rest.empty()) {
      const auto nl = rest.find('\n');
      check_all(rest.substr(0, nl));
      if (nl == std::string_view::npos) break;
      rest.remove_prefix(nl + 1);
    }
  }
  return 0;
}
