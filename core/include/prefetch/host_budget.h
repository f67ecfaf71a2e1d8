// HostBudget: the connections a process may have open to one host at once
// (max-host-connections), handed out as slots to the engines that read from
// that host, by need.
//
// A host is scheme + host + port (host_key()). Each engine registers as a
// client of its host with its limit and two callbacks, asks for a slot before
// it opens a connection and gives the slot back when the connection's
// transfer ends. The host's limit is the smallest non-zero limit of its
// registered clients (0 for all of them: no limit), so the strictest element
// is obeyed; when that client leaves, the limit grows again. A limit that
// drops below what is held takes nothing back: no new slot is handed out
// until the host is under it again. libsoup's own per-host cap on the shared
// session (512, soup_session.h) is far above any useful limit: the budget is
// what binds.
//
// Need: a client says, with each ask, since when its reader has been waiting
// for bytes (nullopt: it is not waiting, the slot would fetch ahead). A free
// slot goes to the neediest queued client: one whose reader waits before one
// whose reader does not, an earlier wait before a later one; among equals, in
// the order they asked, and a client that got a slot goes behind the others
// for its next one (round robin). A slot is granted at once only if it is
// free and nobody queued is at least as needy.
//
// Not starving each other: a client whose reader waits, queued while the host
// is full, makes the budget ask one less needy holder that holds more than
// its fair share (the limit over the clients holding or wanting slots; not
// waiting, or waiting since later; the one holding the most slots) to give
// a slot back:
// its `yield` callback. The client should then end the transfer it needs
// least (the one farthest ahead of its reader) and release() its slot; it
// may ignore the ask when every slot it holds is needed at once.
//
// Callbacks (`wake`, `yield`) are called from the thread that released a slot
// or asked for one, with no lock of the budget held; they must only post work
// (to the engine's own thread or under its own lock, never waiting for
// anything): they may run while the caller of release()/acquire() holds its
// own locks. After remove_client() returns, no callback of that client runs
// or will run (it waits for one running on another thread).
//
// Thread-safe: every member may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace prefetch {

// "scheme://host:port" of an http(s) URI, lower case, the scheme's default
// port filled in; "" if `uri` has no host.
std::string host_key(const std::string& uri);

class HostBudget {
 public:
  using Clock = std::chrono::steady_clock;
  // Since when the client's reader has been waiting; nullopt: not waiting.
  using Need = std::optional<Clock::time_point>;
  using ClientId = uint64_t;

  struct Callbacks {
    // Slots were granted to this client's queued asks: take_granted() says
    // how many. Posts work only.
    std::function<void()> wake;
    // A needier client waits for a slot: release one that can be spared.
    // Posts work only. May be empty (the client is never asked).
    std::function<void()> yield;
  };

  // The process's budget, shared by every engine of the process.
  static HostBudget& process();

  HostBudget();
  ~HostBudget();
  HostBudget(const HostBudget&) = delete;
  HostBudget& operator=(const HostBudget&) = delete;

  // Registers a client of `host` (host_key()) with its limit (0: none).
  ClientId add_client(const std::string& host, unsigned limit, Callbacks callbacks);
  // Unregisters: drops the client's queued asks and releases every slot it
  // holds (granted ones not yet taken included), which may wake others.
  // Unknown ids are ignored.
  void remove_client(ClientId id);

  // Asks for one slot, with the client's need now (which also re-orders the
  // asks it has queued). True: the slot is the client's now. False: the ask
  // is queued; `wake` follows when it is granted.
  bool acquire(ClientId id, Need need);
  // The client's need changed (its reader began or stopped waiting): its
  // queued asks move accordingly.
  void set_need(ClientId id, Need need);
  // Slots granted to queued asks since the last call; they are the
  // client's (to use or release).
  unsigned take_granted(ClientId id);
  // Drops the client's queued asks (not its slots). Returns how many.
  unsigned withdraw(ClientId id);
  // Gives back `n` slots the client holds.
  void release(ClientId id, unsigned n = 1);

  // ---- what it looks like now (tests, stats) ----
  unsigned limit(const std::string& host) const;   // 0: none
  unsigned in_use(const std::string& host) const;  // slots held by its clients
  unsigned held(ClientId id) const;                // granted ones included
  unsigned queued(ClientId id) const;

 private:
  struct Client;
  struct Host;
  struct Call;  // a callback to make once the lock is released

  Client* client_locked(ClientId id) const;  // nullptr for an unknown client
  // Runs `change` on the client under the lock (nothing for an unknown
  // one), then the callbacks it queued, with no lock held.
  void change_client(ClientId id, const std::function<void(Client&, std::vector<Call>&)>& change);
  void grant_locked(Host& host, std::vector<Call>& calls);
  void ask_yield_locked(Host& host, const Client& asker, std::vector<Call>& calls);
  void run(const std::vector<Call>& calls);

  mutable std::mutex mu_;
  std::condition_variable done_calling_;  // a callback returned
  std::map<ClientId, std::shared_ptr<Client>> clients_;
  std::map<std::string, std::unique_ptr<Host>> hosts_;
  ClientId next_id_ = 1;
  uint64_t next_seq_ = 1;
};

}  // namespace prefetch
