#include "prefetch/cache_freshness.h"

#include <algorithm>
#include <ctime>
#include <string_view>
#include <utility>
#include <vector>

// Dates are parsed by hand, not with libsoup: it keeps this unit free of GLib
// and lets it be strict about the three forms RFC 9110 allows.

namespace prefetch {

namespace {

// RFC 9111 1.2.2: a delta-seconds too large to represent counts as 2^31.
constexpr int64_t kMaxDelta = int64_t{1} << 31;
constexpr int64_t kHeuristicCap = 86400;

constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::string_view kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::string_view kLongDays[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                          "Friday", "Saturday", "Sunday"};

// ASCII only: header names and directives must not depend on the locale.
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

const std::string* first_field(const HttpHeaders& headers, std::string_view name) {
  for (const auto& [n, v] : headers)
    if (iequals(n, name)) return &v;
  return nullptr;
}

// delta-seconds: 1*DIGIT, clamped rather than rejected when huge.
std::optional<int64_t> parse_delta(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = std::min(v * 10 + (c - '0'), kMaxDelta);
  }
  return v;
}

struct Directive {
  std::string name;  // lower case
  std::string value;
  bool bad = false;  // an unterminated quote or junk after the value
};

// Adds the directives of one Cache-Control field. Quoted values are read as
// a whole, so a comma in a field list (private="a, b") does not split.
void parse_cache_control(std::string_view v, std::vector<Directive>* out) {
  size_t i = 0;
  const size_t n = v.size();
  while (i < n) {
    if (v[i] == ',' || is_ows(v[i])) {
      ++i;
      continue;
    }
    Directive d;
    while (i < n && v[i] != ',' && v[i] != '=' && !is_ows(v[i])) d.name += lower(v[i++]);
    while (i < n && is_ows(v[i])) ++i;
    if (i < n && v[i] == '=') {
      ++i;
      while (i < n && is_ows(v[i])) ++i;
      if (i < n && v[i] == '"') {
        ++i;
        while (i < n && v[i] != '"') {
          if (v[i] == '\\' && i + 1 < n) ++i;
          d.value += v[i++];
        }
        d.bad = i == n;  // no closing quote
        if (i < n) ++i;
      } else {
        while (i < n && v[i] != ',' && !is_ows(v[i])) d.value += v[i++];
      }
    }
    for (; i < n && v[i] != ','; ++i)
      if (!is_ows(v[i])) d.bad = true;
    if (!d.name.empty()) out->push_back(std::move(d));
  }
}

// Exactly `count` decimal digits at `pos`, or -1.
int digits(std::string_view s, size_t pos, size_t count) {
  if (pos + count > s.size()) return -1;
  int v = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

template <size_t N>
int index_of(const std::string_view (&names)[N], std::string_view s) {
  for (size_t i = 0; i < N; ++i)
    if (names[i] == s) return static_cast<int>(i);
  return -1;
}

// Days since 1970-01-01 of a proleptic Gregorian date, counted in 400-year
// eras that start on March 1st so the leap day falls at an era's year end.
int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// "HH:MM:SS" at `pos`; 60 seconds is a leap second.
std::optional<int64_t> time_of_day(std::string_view s, size_t pos) {
  if (pos + 8 > s.size() || s[pos + 2] != ':' || s[pos + 5] != ':') return std::nullopt;
  const int h = digits(s, pos, 2), m = digits(s, pos + 3, 2), sec = digits(s, pos + 6, 2);
  if (h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 60) return std::nullopt;
  return h * 3600 + m * 60 + sec;
}

std::optional<int64_t> to_unix(int year, int month_index, int day, std::optional<int64_t> tod) {
  static constexpr int kMonthDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (year < 0 || month_index < 0 || day < 1 || !tod) return std::nullopt;
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (day > kMonthDays[month_index] + (month_index == 1 && leap)) return std::nullopt;
  return days_from_civil(year, month_index + 1, day) * 86400 + *tod;
}

// RFC 9110 5.6.7: a two-digit year more than 50 years ahead of now is in the
// past century. The header gives no clock for it, so it is the system's.
int full_year(int yy) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  const int this_year = tm.tm_year + 1900;
  int y = this_year - this_year % 100 + yy;
  if (y > this_year + 50)
    y -= 100;
  else if (y <= this_year - 50)
    y += 100;
  return y;
}

}  // namespace

std::optional<int64_t> parse_http_date(const std::string& value) {
  const std::string_view s = trim(value);
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
  if (s.size() == 29 && index_of(kDays, s.substr(0, 3)) >= 0 && s.substr(3, 2) == ", " &&
      s[7] == ' ' && s[11] == ' ' && s[16] == ' ' && s.substr(25) == " GMT")
    return to_unix(digits(s, 12, 4), index_of(kMonths, s.substr(8, 3)), digits(s, 5, 2),
                   time_of_day(s, 17));
  // asctime: "Sun Nov  6 08:49:37 1994" (the day may also be two digits)
  if (s.size() == 24 && index_of(kDays, s.substr(0, 3)) >= 0 && s[3] == ' ' && s[7] == ' ' &&
      s[10] == ' ' && s[19] == ' ') {
    const int day = s[8] == ' ' ? digits(s, 9, 1) : digits(s, 8, 2);
    return to_unix(digits(s, 20, 4), index_of(kMonths, s.substr(4, 3)), day, time_of_day(s, 11));
  }
  // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
  const size_t comma = s.find(", ");
  if (comma == std::string_view::npos || index_of(kLongDays, s.substr(0, comma)) < 0)
    return std::nullopt;
  const std::string_view r = s.substr(comma + 2);
  if (r.size() != 22 || r[2] != '-' || r[6] != '-' || r[9] != ' ' || r.substr(18) != " GMT")
    return std::nullopt;
  const int yy = digits(r, 7, 2);
  if (yy < 0) return std::nullopt;
  return to_unix(full_year(yy), index_of(kMonths, r.substr(3, 3)), digits(r, 0, 2),
                 time_of_day(r, 10));
}

CacheVerdict cache_verdict(const HttpHeaders& headers, int status, bool with_credentials,
                           int64_t response_time) {
  std::vector<Directive> cc;
  for (const auto& [name, value] : headers)
    if (iequals(name, "Cache-Control")) parse_cache_control(value, &cc);
  auto find = [&cc](std::string_view name) -> const Directive* {
    for (const Directive& d : cc)
      if (d.name == name) return &d;
    return nullptr;
  };

  CacheVerdict v;
  v.storable = (status == 200 || status == 206) && !find("no-store") &&
               (!with_credentials || find("public") || find("private") || find("must-revalidate") ||
                find("s-maxage"));

  const std::string* date_field = first_field(headers, "Date");
  const std::optional<int64_t> date = date_field ? parse_http_date(*date_field) : std::nullopt;
  const int64_t date_value = date.value_or(response_time);
  const std::string* expires = first_field(headers, "Expires");
  const std::string* last_modified = first_field(headers, "Last-Modified");

  int64_t lifetime = 0;
  if (find("no-cache")) {
    // Kept at 0: with or without a field list, every use must revalidate.
  } else if (const Directive* max_age = find("max-age")) {
    // Only the first max-age counts (RFC 9111 4.2.1); one that is not an
    // integer makes the answer stale rather than falling back to Expires.
    lifetime = max_age->bad ? 0 : parse_delta(max_age->value).value_or(0);
  } else if (expires) {
    const std::optional<int64_t> e = parse_http_date(*expires);
    lifetime = e ? std::max<int64_t>(0, *e - date_value) : 0;
  } else if (last_modified) {
    if (const std::optional<int64_t> lm = parse_http_date(*last_modified))
      lifetime = std::clamp<int64_t>((date_value - *lm) / 10, 0, kHeuristicCap);
  }

  int64_t age = std::max<int64_t>(0, response_time - date_value);
  if (const std::string* age_field = first_field(headers, "Age"))
    age = std::max(age, parse_delta(trim(*age_field)).value_or(0));
  v.fresh_until = response_time + lifetime - age;

  if (const std::string* etag = first_field(headers, "ETag")) {
    const std::string_view e = trim(*etag);
    // A lower-case w/ is malformed; a doubtful validator is not used as a
    // strong one (it would make If-Range splice two versions).
    if (e.substr(0, 2) != "W/" && e.substr(0, 2) != "w/") v.strong_etag = std::string(e);
  }
  if (last_modified) v.last_modified = std::string(trim(*last_modified));
  return v;
}

}  // namespace prefetch
