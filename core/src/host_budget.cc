// HostBudget: slots per host, handed out by need (see host_budget.h). One
// lock over small maps; callbacks are collected under it and made after it
// is released.

#include "prefetch/host_budget.h"

#include <glib.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <tuple>
#include <utility>

namespace prefetch {

std::string host_key(const std::string& uri) {
  gchar* scheme = nullptr;
  gchar* host = nullptr;
  gint port = -1;
  if (!g_uri_split_network(uri.c_str(), G_URI_FLAGS_NONE, &scheme, &host, &port, nullptr))
    return "";
  std::string key;
  if (scheme && host && *host) {
    gchar* s = g_ascii_strdown(scheme, -1);
    gchar* h = g_ascii_strdown(host, -1);
    if (port < 0) port = g_str_equal(s, "https") ? 443 : g_str_equal(s, "http") ? 80 : -1;
    const bool ipv6 = std::strchr(h, ':') != nullptr;
    key = std::string(s) + "://" + (ipv6 ? "[" : "") + h + (ipv6 ? "]" : "");
    if (port >= 0) key += ":" + std::to_string(port);
    g_free(s);
    g_free(h);
  }
  g_free(scheme);
  g_free(host);
  return key;
}

struct HostBudget::Client {
  ClientId id = 0;
  Host* host = nullptr;
  unsigned limit = 0;
  Callbacks callbacks;
  Need need;
  unsigned held = 0;     // slots, granted ones included
  unsigned granted = 0;  // granted to queued asks, not yet taken
  unsigned wanted = 0;   // queued asks
  uint64_t seq = 0;      // place in line of its first queued ask
  bool removed = false;
  std::vector<std::thread::id> calling;  // threads in one of its callbacks now

  // Lower is needier: a waiting reader first, the earliest wait first, then
  // the order of asking.
  static auto rank(const Need& need, uint64_t seq) {
    return std::make_tuple(need ? 0 : 1, need.value_or(Clock::time_point()), seq);
  }
  auto rank() const { return rank(need, seq); }
};

struct HostBudget::Host {
  std::string key;
  std::vector<Client*> clients;
  unsigned in_use = 0;

  // The smallest non-zero limit of the clients; 0 if all are 0.
  unsigned limit() const {
    unsigned l = 0;
    for (const Client* c : clients)
      if (c->limit > 0 && (l == 0 || c->limit < l)) l = c->limit;
    return l;
  }
  bool full() const {
    const unsigned l = limit();
    return l > 0 && in_use >= l;
  }
  Client* neediest_queued() const {
    Client* best = nullptr;
    for (Client* c : clients)
      if (c->wanted > 0 && (!best || c->rank() < best->rank())) best = c;
    return best;
  }
};

struct HostBudget::Call {
  std::shared_ptr<Client> client;
  bool yield = false;  // else wake
};

HostBudget& HostBudget::process() {
  static HostBudget* budget = new HostBudget;  // never destroyed: used up to exit
  return *budget;
}

HostBudget::HostBudget() = default;
HostBudget::~HostBudget() = default;

HostBudget::ClientId HostBudget::add_client(const std::string& host, unsigned limit,
                                            Callbacks callbacks) {
  std::lock_guard<std::mutex> lock(mu_);
  auto c = std::make_shared<Client>();
  c->id = next_id_++;
  c->limit = limit;
  c->callbacks = std::move(callbacks);
  std::unique_ptr<Host>& h = hosts_[host];
  if (!h) {
    h = std::make_unique<Host>();
    h->key = host;
  }
  c->host = h.get();
  h->clients.push_back(c.get());
  clients_[c->id] = c;
  // A smaller limit takes nothing back; a client never raises the limit.
  return c->id;
}

void HostBudget::remove_client(ClientId id) {
  std::vector<Call> calls;
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = clients_.find(id);
    if (it == clients_.end()) return;
    std::shared_ptr<Client> c = it->second;
    clients_.erase(it);
    c->removed = true;
    Host* h = c->host;
    h->clients.erase(std::find(h->clients.begin(), h->clients.end(), c.get()));
    h->in_use -= c->held;
    c->held = c->granted = c->wanted = 0;
    if (h->clients.empty()) {
      const std::string key = h->key;
      hosts_.erase(key);
    } else {
      grant_locked(*h, calls);  // its slots, and the limit may have grown
    }
    // A callback of the client running on another thread ends first; one
    // on this thread is the caller itself.
    const auto self = std::this_thread::get_id();
    done_calling_.wait(lock, [&] {
      return std::all_of(c->calling.begin(), c->calling.end(),
                         [&](std::thread::id t) { return t == self; });
    });
  }
  run(calls);
}

HostBudget::Client* HostBudget::client_locked(ClientId id) const {
  auto it = clients_.find(id);
  return it == clients_.end() ? nullptr : it->second.get();
}

void HostBudget::change_client(ClientId id,
                               const std::function<void(Client&, std::vector<Call>&)>& change) {
  std::vector<Call> calls;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (Client* c = client_locked(id)) change(*c, calls);
  }
  run(calls);
}

bool HostBudget::acquire(ClientId id, Need need) {
  bool got = false;
  change_client(id, [&](Client& c, std::vector<Call>& calls) {
    Host& h = *c.host;
    c.need = need;
    const uint64_t seq = c.wanted > 0 ? c.seq : next_seq_;
    const Client* ahead = h.neediest_queued();
    if (!h.full() && (!ahead || ahead == &c || Client::rank(need, seq) < ahead->rank())) {
      ++c.held;
      ++h.in_use;
      got = true;
    } else {
      if (c.wanted == 0) c.seq = next_seq_++;
      ++c.wanted;
      if (need) ask_yield_locked(h, c, calls);
    }
  });
  return got;
}

void HostBudget::set_need(ClientId id, Need need) {
  change_client(id, [&](Client& c, std::vector<Call>& calls) {
    const bool began_waiting = need && !c.need;
    c.need = need;
    if (began_waiting && c.wanted > 0) ask_yield_locked(*c.host, c, calls);
  });
}

unsigned HostBudget::take_granted(ClientId id) {
  std::lock_guard<std::mutex> lock(mu_);
  Client* c = client_locked(id);
  return c ? std::exchange(c->granted, 0u) : 0u;
}

unsigned HostBudget::withdraw(ClientId id) {
  std::lock_guard<std::mutex> lock(mu_);
  Client* c = client_locked(id);
  return c ? std::exchange(c->wanted, 0u) : 0u;
}

void HostBudget::release(ClientId id, unsigned n) {
  change_client(id, [&](Client& c, std::vector<Call>& calls) {
    n = std::min(n, c.held);
    c.held -= n;
    c.granted = std::min(c.granted, c.held);
    c.host->in_use -= n;
    grant_locked(*c.host, calls);
  });
}

// Free slots go to the neediest queued asks; a client that got one goes
// behind the others for its next ask.
void HostBudget::grant_locked(Host& h, std::vector<Call>& calls) {
  while (!h.full()) {
    Client* c = h.neediest_queued();
    if (!c) break;
    --c->wanted;
    ++c->held;
    ++c->granted;
    ++h.in_use;
    if (c->wanted > 0) c->seq = next_seq_++;
    const bool told = std::any_of(calls.begin(), calls.end(), [c](const Call& call) {
      return call.client.get() == c && !call.yield;
    });
    if (!told) calls.push_back({clients_.at(c->id), false});
  }
}

// `asker`'s reader waits and the host is full: ask the least needy holder
// (not waiting before waiting, then the most slots held, then the latest
// wait) that is less needy than the asker and holds more than its fair
// share (the limit over the clients that hold or want slots) to give a
// slot back. A client down to its share keeps it: 32 streams sharing 32
// slots would otherwise take each other's only connection in turn.
void HostBudget::ask_yield_locked(Host& h, const Client& asker, std::vector<Call>& calls) {
  if (!h.full()) return;
  unsigned active = 0;
  for (const Client* c : h.clients) active += c->held > 0 || c->wanted > 0 || c == &asker ? 1 : 0;
  const unsigned fair = std::max(1u, h.limit() / std::max(1u, active));
  Client* victim = nullptr;
  auto spare = [](const Client* c) {
    // Higher is a better victim.
    return std::make_tuple(c->need ? 0 : 1, c->held - c->granted,
                           c->need.value_or(Clock::time_point()));
  };
  for (Client* c : h.clients) {
    if (c == &asker || c->held <= c->granted + fair || !c->callbacks.yield) continue;
    const bool less_needy = !c->need || (asker.need && *c->need > *asker.need);
    if (!less_needy) continue;
    if (!victim || spare(c) > spare(victim)) victim = c;
  }
  if (victim) calls.push_back({clients_.at(victim->id), true});
}

// Makes the callbacks, one at a time, with the lock released around each:
// a removed client's are skipped, and remove_client() waits for one that
// is running.
void HostBudget::run(const std::vector<Call>& calls) {
  const auto self = std::this_thread::get_id();
  for (const Call& call : calls) {
    Client& c = *call.client;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (c.removed) continue;
      c.calling.push_back(self);
    }
    const std::function<void()>& fn = call.yield ? c.callbacks.yield : c.callbacks.wake;
    if (fn) fn();
    {
      std::lock_guard<std::mutex> lock(mu_);
      c.calling.erase(std::find(c.calling.begin(), c.calling.end(), self));
    }
    done_calling_.notify_all();
  }
}

unsigned HostBudget::limit(const std::string& host) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hosts_.find(host);
  return it == hosts_.end() ? 0 : it->second->limit();
}

unsigned HostBudget::in_use(const std::string& host) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hosts_.find(host);
  return it == hosts_.end() ? 0 : it->second->in_use;
}

unsigned HostBudget::held(ClientId id) const {
  std::lock_guard<std::mutex> lock(mu_);
  const Client* c = client_locked(id);
  return c ? c->held : 0;
}

unsigned HostBudget::queued(ClientId id) const {
  std::lock_guard<std::mutex> lock(mu_);
  const Client* c = client_locked(id);
  return c ? c->wanted : 0;
}

}  // namespace prefetch
