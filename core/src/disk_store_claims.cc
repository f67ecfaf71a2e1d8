// DiskStore's claims: which blocks of a resource an element is fetching
// now, so that others sharing the directory wait for them instead.

#include <signal.h>
#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "disk_store_impl.h"

namespace prefetch {

namespace {

// Whether the process that made a claim still runs: "<pid>/...".
bool owner_alive(const std::string& owner) {
  const long pid = std::strtol(owner.c_str(), nullptr, 10);
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

}  // namespace

int64_t DiskStore::claim(const std::string& key, const std::string& owner, uint64_t first,
                         uint64_t end, uint64_t* claimed_end) {
  const auto as_row = [](uint64_t v) {  // an open end is stored as the largest int64
    return v > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(v);
  };
  std::lock_guard<std::mutex> lock(impl_->mu);
  Txn txn(impl_->db);
  if (!txn.ok()) return -1;
  std::vector<std::string> dead;
  {
    Stmt q(impl_->db,
           "SELECT owner, first, end FROM claims WHERE key = ?1 AND owner != ?2 AND end > ?3 "
           "AND first < ?4",
           key, owner, as_row(first), as_row(end));
    while (q.row()) {
      const std::string other = q.text(0);
      if (!owner_alive(other)) {
        dead.push_back(other);
        continue;
      }
      const uint64_t from = static_cast<uint64_t>(q.i64(1));
      if (from <= first) return 0;  // the first block is another's
      end = std::min(end, from);
    }
  }
  for (const std::string& d : dead) impl_->exec("DELETE FROM claims WHERE owner = ?1", d);
  if (!impl_->exec("INSERT INTO claims(key, owner, first, end) VALUES(?1, ?2, ?3, ?4)", key, owner,
                   as_row(first), as_row(end)))
    return -1;
  const int64_t id = sqlite3_last_insert_rowid(impl_->db);
  if (!txn.commit()) return -1;
  if (claimed_end) *claimed_end = end;
  return id;
}

void DiskStore::release(int64_t claim) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->exec("DELETE FROM claims WHERE id = ?1", claim);
}

void DiskStore::announce(const std::string& key, const std::string& owner) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->exec("INSERT INTO claims(key, owner, first, end) VALUES(?1, ?2, 0, 0)", key, owner);
}

void DiskStore::release_all(const std::string& owner) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->exec("DELETE FROM claims WHERE owner = ?1", owner);
}

std::vector<DiskStore::Claim> DiskStore::claims(const std::string& key, const std::string& owner) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<Claim> out;
  std::vector<std::string> dead;
  {
    Stmt q(impl_->db, "SELECT owner, first, end FROM claims WHERE key = ?1 AND owner != ?2", key,
           owner);
    while (q.row()) {
      Claim c{q.text(0), static_cast<uint64_t>(q.i64(1)), static_cast<uint64_t>(q.i64(2))};
      if (owner_alive(c.owner))
        out.push_back(std::move(c));
      else
        dead.push_back(c.owner);
    }
  }
  for (const std::string& d : dead) impl_->exec("DELETE FROM claims WHERE owner = ?1", d);
  return out;
}

}  // namespace prefetch
