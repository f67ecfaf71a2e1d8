// DiskStore's insides, shared by the files that implement it:
// disk_store.cc (opening the store, and its entries), disk_store_blocks.cc
// (block bytes: read, write, pin) and disk_store_claims.cc (claims). It
// holds the SQLite statement and transaction wrappers, a data file's
// descriptor, and DiskStore::Impl: the connection and the open data files.
#pragma once

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "prefetch/disk_store.h"

namespace prefetch {

namespace disk_store_detail {

constexpr size_t kOpenFiles = 16;  // data-file descriptors kept open at once

// One statement: prepared, bound, stepped; any failure leaves ok() false.
class Stmt {
 public:
  template <typename... Args>
  Stmt(sqlite3* db, const std::string& sql, const Args&... args) {
    ok_ = sqlite3_prepare_v2(db, sql.c_str(), -1, &s_, nullptr) == SQLITE_OK;
    int i = 0;
    (bind(++i, args), ...);
    (void)i;
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Steps to the next row: false at the end or on an error.
  bool row() {
    if (!ok_) return false;
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    ok_ = rc == SQLITE_DONE;
    return false;
  }
  bool run() {
    while (row()) {
    }
    return ok_;
  }
  bool ok() const { return ok_; }
  int64_t i64(int col) { return sqlite3_column_int64(s_, col); }
  bool null(int col) { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::string text(int col) {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
    return p ? std::string(p, sqlite3_column_bytes(s_, col)) : std::string();
  }

 private:
  template <typename T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
  void bind(int i, T v) {
    ok_ = ok_ && sqlite3_bind_int64(s_, i, static_cast<int64_t>(v)) == SQLITE_OK;
  }
  void bind(int i, const std::string& v) {
    ok_ = ok_ && sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) ==
                     SQLITE_OK;
  }

  sqlite3_stmt* s_ = nullptr;
  bool ok_ = false;
};

// BEGIN IMMEDIATE takes the write lock up front, so a transaction never has
// to upgrade a stale read snapshot (which SQLITE_BUSY would fail at once);
// rolled back unless committed.
class Txn {
 public:
  explicit Txn(sqlite3* db) : db_(db) {
    ok_ = sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  ~Txn() { rollback(); }
  void rollback() {
    if (ok_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    ok_ = false;
  }
  bool ok() const { return ok_; }
  bool commit() {
    if (!ok_) return false;
    ok_ = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK;
    return !ok_;
  }

 private:
  sqlite3* db_;
  bool ok_;
};

// A data file's descriptor, closed with the last holder: a read running
// outside the lock keeps it even if the entry is dropped meanwhile, so the
// number cannot be reused for another file under it. Holding a flock, it
// is also a pin or an eviction's hold on its victim.
struct File : DiskStore::Pin {
  explicit File(int f) : fd(f) {}
  File(File&& other) noexcept
      : fd(std::exchange(other.fd, -1)),
        direct(std::exchange(other.direct, kUnknown)),
        direct_refused(other.direct_refused.load()) {}
  ~File() override {
    if (fd >= 0) ::close(fd);
    if (direct >= 0) ::close(direct);
  }
  static constexpr int kUnknown = -2;
  int fd;
  // The same file opened O_DIRECT for writes (disk_store_blocks.cc), once
  // asked for (under the store's mutex); -1 where the file system refuses
  // it, or direct_refused once a write there was (kept open meanwhile: a
  // write in another thread may be using it).
  int direct = kUnknown;
  std::atomic<bool> direct_refused{false};
};

inline void set_error(std::string* error, std::string message) {
  if (error) *error = std::move(message);
}

inline std::string errno_text(int e) { return std::strerror(e); }

}  // namespace disk_store_detail

using disk_store_detail::errno_text;
using disk_store_detail::File;
using disk_store_detail::kOpenFiles;
using disk_store_detail::set_error;
using disk_store_detail::Stmt;
using disk_store_detail::Txn;

class DiskStore::Impl {
 public:
  ~Impl() {
    sqlite3_close_v2(db);
    sqlite3_close_v2(checkpoint_db);
  }

  // After each commit (sqlite3_wal_hook): the pages in the WAL now.
  static int on_commit(void* self, sqlite3*, const char*, int pages) {
    static_cast<Impl*>(self)->wal_pages = pages;
    return SQLITE_OK;
  }

  std::string path(int64_t id) const { return dir + "/data/" + std::to_string(id); }
  std::string db_error() const { return sqlite3_errmsg(db); }

  // The entry's data file, opened once and kept; nullptr (errno set) if gone.
  std::shared_ptr<File> file(int64_t id) {
    auto it = files.find(id);
    if (it != files.end()) return it->second;
    int fd = ::open(path(id).c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return nullptr;
    if (files.size() >= kOpenFiles) files.erase(files.begin());
    return files[id] = std::make_shared<File>(fd);
  }

  // After the rows are gone (committed): a crash before this leaves an
  // orphan file, which the next open sweeps.
  void remove_file(int64_t id) {
    files.erase(id);
    ::unlink(path(id).c_str());
  }

  template <typename... Args>
  bool exec(const char* sql, const Args&... args) {
    return Stmt(db, sql, args...).run();
  }
  template <typename... Args>
  bool any(const char* sql, const Args&... args) {
    return Stmt(db, sql, args...).row();
  }

  // Whether entry `id` has a row for block `index`.
  bool holds(int64_t id, uint64_t index) {
    return any("SELECT 1 FROM blocks WHERE entry = ?1 AND idx = ?2", id, index);
  }

  uint64_t total() {
    Stmt q(db, "SELECT total(bytes_held) FROM entries");
    return q.row() ? static_cast<uint64_t>(q.i64(0)) : 0;
  }

  std::optional<Entry> entry(const char* where, int64_t id, const std::string& key) {
    Stmt q(db,
           std::string("SELECT id, key, final_url, size, block_size, etag, last_modified, "
                       "fresh_until, headers, bytes_held, "
                       "(SELECT count(*) FROM blocks WHERE entry = entries.id) "
                       "FROM entries WHERE ") +
               where,
           id, key);
    if (!q.row()) return std::nullopt;
    Entry e;
    e.id = q.i64(0);
    e.meta.key = q.text(1);
    e.meta.final_url = q.text(2);
    e.meta.size = static_cast<uint64_t>(q.i64(3));
    e.meta.block_size = static_cast<uint64_t>(q.i64(4));
    e.meta.etag = q.text(5);
    e.meta.last_modified = q.text(6);
    e.meta.fresh_until = q.i64(7);
    e.meta.headers = q.text(8);
    e.bytes_held = static_cast<uint64_t>(q.i64(9));
    e.blocks_held = static_cast<uint64_t>(q.i64(10));
    return e;
  }

  // Inside a transaction: drops entries other than `keep` from least recently
  // used on until `length` more bytes fit. Each victim stays locked (a fresh
  // descriptor, so a pin anywhere, this process included, refuses it) until
  // its file is gone. False if every unpinned entry would not make room.
  bool make_room(int64_t keep, uint64_t length, std::vector<std::pair<int64_t, File>>* victims) {
    uint64_t held = total();
    if (held + length <= max_bytes) return true;
    std::vector<std::pair<int64_t, uint64_t>> lru;
    Stmt q(db,
           "SELECT id, bytes_held FROM entries WHERE id != ?1 AND bytes_held > 0 "
           "ORDER BY last_used, id",
           keep);
    while (q.row()) lru.emplace_back(q.i64(0), static_cast<uint64_t>(q.i64(1)));
    for (size_t i = 0; i < lru.size() && held + length > max_bytes; ++i) {
      auto [id, bytes] = lru[i];
      File lock(::open(path(id).c_str(), O_RDONLY | O_CLOEXEC));  // none if the file is gone
      if (lock.fd >= 0 && ::flock(lock.fd, LOCK_EX | LOCK_NB) != 0) continue;
      if (!exec("DELETE FROM entries WHERE id = ?1", id)) return false;
      victims->emplace_back(id, std::move(lock));
      held -= std::min(held, bytes);
    }
    return held + length <= max_bytes;
  }

  std::string dir;
  uint64_t max_bytes = 0;
  sqlite3* db = nullptr;
  std::mutex mu;  // the connection, `files`
  std::map<int64_t, std::shared_ptr<File>> files;
  std::atomic<int> wal_pages{0};
  std::mutex checkpoint_mu;  // checkpoint_db
  sqlite3* checkpoint_db = nullptr;
};

}  // namespace prefetch
