// ByteBudget: the block memory of all the engines of a process, bounded by
// one budget and shared by need (32 streams in one process must not each
// hold a whole look-ahead and cache).
//
// Each engine registers as a client and reports the bytes of block buffers
// it keeps resident (its look-ahead, its cache, buffers downstream still
// holds, buffers kept for reuse). A client's fair share is the budget over
// the number of clients. What it may hold in all (its allowance) is its
// share, or more while the process as a whole is under the budget: a lone
// element keeps its full look-ahead and cache, 32 elements get a thirty-
// second each. An engine asks before it makes a block (may_grow); the block
// the reader needs now is made unasked (the reader must move, whatever
// downstream or the others hold), and the others' room leaves a block for
// each client's. Nothing else is made past the budget, even within a share
// (a client that took more than its share while others held less gives it
// back as its reader moves), so the sum stays within the budget plus, for
// each client, its reader's block and the one its reader just left while
// downstream still holds it.
// The cache lives within the client's share only, never on what others
// have not taken: it cannot be taken back from another engine's thread.
//
// The budget is the largest a client asked for, and at least
// kDefaultBytes: a client asks for what it was configured to hold (an
// explicit look-ahead of 128 blocks of 1 MiB asks for 128 MiB and more),
// so a configuration is never cut below itself by the default.
//
// Thread-safe: every member may be called from any thread (buffers come
// back from downstream's threads).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>

namespace prefetch {

class ByteBudget {
 public:
  using ClientId = uint64_t;
  static constexpr uint64_t kDefaultBytes = 32ull << 20;

  // The process's budget, shared by every engine of the process.
  static ByteBudget& process();

  ByteBudget() = default;
  ByteBudget(const ByteBudget&) = delete;
  ByteBudget& operator=(const ByteBudget&) = delete;

  // Registers a client asking for a budget of `bytes` (0: the default).
  ClientId add_client(uint64_t bytes = 0);
  // Unregisters; its bytes no longer count. Unknown ids are ignored.
  void remove_client(ClientId id);
  // The client's resident bytes changed by `delta`. Unknown ids are ignored.
  void add(ClientId id, int64_t delta);

  // May the client hold `more` bytes on top of what it holds? Never past
  // the budget; within that, yes within its share, or while the process
  // stays within the budget less a reserve of `reserve` bytes for each
  // client (the block its reader needs now, which it makes unasked).
  bool may_grow(ClientId id, uint64_t more, uint64_t reserve = 0) const;
  // Where a client stands, read at once (one lock): what it holds, its
  // share (budget / clients) and what it may hold in all now, its
  // allowance: max(share, budget - others' bytes).
  struct Standing {
    uint64_t held = 0;
    uint64_t share = 0;
    uint64_t allowance = 0;
  };
  Standing standing(ClientId id) const;
  uint64_t allowance(ClientId id) const { return standing(id).allowance; }
  uint64_t share() const;
  bool over_share(ClientId id) const;

  // ---- what it looks like now (tests, stats) ----
  uint64_t budget() const;  // bytes
  uint64_t held(ClientId id) const;
  uint64_t in_use() const;  // all clients' bytes
  size_t clients() const;

 private:
  struct Client {
    uint64_t asked = 0;
    uint64_t held = 0;
  };
  uint64_t budget_locked() const;
  uint64_t share_locked() const;
  uint64_t held_locked(ClientId id) const;  // 0 for an unknown client

  mutable std::mutex mu_;
  std::map<ClientId, Client> clients_;
  uint64_t in_use_ = 0;
  ClientId next_id_ = 1;
};

}  // namespace prefetch
