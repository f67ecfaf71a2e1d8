// How many requests a TestServer had open at once, from its request log.
#pragma once

#include <algorithm>
#include <utility>
#include <vector>

#include "test_server.h"

namespace prefetch {
namespace testing {

struct RequestOverlap {
  // The most requests open at the same moment, counting only those whose
  // client stayed to the end.
  int most = 0;
  // Requests the client went away from (client_gone): one a client cancels
  // ends at the server only at its next write, so the server's own count
  // (max_in_flight) runs over by these.
  unsigned abandoned = 0;
};

// Call once the server is idle (every request has its end).
inline RequestOverlap request_overlap(const std::vector<RequestRecord>& log) {
  RequestOverlap out;
  std::vector<std::pair<TestClock::time_point, int>> edges;
  for (const auto& r : log) {
    if (r.client_gone) {
      ++out.abandoned;
      continue;
    }
    edges.push_back({r.start, 1});
    edges.push_back({*r.end, -1});
  }
  std::sort(edges.begin(), edges.end());
  int at_once = 0;
  for (const auto& e : edges) out.most = std::max(out.most, at_once += e.second);
  return out;
}

}  // namespace testing
}  // namespace prefetch
