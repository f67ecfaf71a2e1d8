#include "prefetch/disk_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <type_traits>
#include <utility>

namespace prefetch {

namespace {

constexpr int kSchemaVersion = 1;
constexpr int kBusyTimeoutMs = 5000;
constexpr uint64_t kDefaultMaxBytes = uint64_t{2} << 30;
constexpr size_t kOpenFiles = 16;  // data-file descriptors kept open at once

// last_used is a counter, not a clock: seconds would tie entries made in the
// same second, and the order is all eviction needs.
// AUTOINCREMENT: an id is never reused, so a stale row or descriptor can
// never reach a later entry's data.
const char kSchema[] = R"(
CREATE TABLE entries(id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE,
  final_url TEXT NOT NULL, size INTEGER NOT NULL, block_size INTEGER NOT NULL,
  etag TEXT NOT NULL, last_modified TEXT NOT NULL, fresh_until INTEGER NOT NULL,
  headers TEXT NOT NULL, last_used INTEGER NOT NULL, bytes_held INTEGER NOT NULL DEFAULT 0);
CREATE INDEX entries_by_use ON entries(last_used);
CREATE TABLE blocks(entry INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL, length INTEGER NOT NULL, checksum INTEGER NOT NULL,
  PRIMARY KEY(entry, idx)) WITHOUT ROWID;
PRAGMA user_version = 1;
)";

const char kNextUse[] = "(SELECT coalesce(max(last_used), 0) + 1 FROM entries)";

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
  ~Txn() {
    if (ok_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
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
  File(File&& other) noexcept : fd(std::exchange(other.fd, -1)) {}
  ~File() override {
    if (fd >= 0) ::close(fd);
  }
  int fd;
};

void set_error(std::string* error, std::string message) {
  if (error) *error = std::move(message);
}

std::string errno_text(int e) { return std::strerror(e); }

// mkdir -p, each directory it makes 0700 whatever the umask.
bool make_dirs(const std::string& dir, std::string* why) {
  for (size_t end = 1; end != std::string::npos;) {
    end = dir.find('/', end + 1);
    std::string part = dir.substr(0, end);
    if (::mkdir(part.c_str(), 0700) == 0) {
      ::chmod(part.c_str(), 0700);
      continue;
    }
    struct stat st;
    if (errno != EEXIST || ::stat(part.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      *why = part + ": " + errno_text(errno == EEXIST ? ENOTDIR : errno);
      return false;
    }
  }
  return true;
}

bool write_all(int fd, const uint8_t* p, size_t n, off_t at) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, at);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = EIO;
      return false;
    }
    p += w, n -= static_cast<size_t>(w), at += w;
  }
  return true;
}

// The bytes read: fewer than n at the end of the file or on an error.
size_t read_all(int fd, uint8_t* p, size_t n, off_t at) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, p + got, n - got, at + static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

// Gives a dropped block's space back; a file system without holes just
// keeps the bytes, which no row vouches for any more.
void punch(int fd, uint64_t at, uint64_t length) {
  ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(at),
              static_cast<off_t>(length));
}

int64_t checksum(const uint8_t* p, size_t n) { return static_cast<int64_t>(XXH3_64bits(p, n)); }

// The first column of a pragma's first row; nullopt on an error. The
// statement is done with on return, so it holds no read snapshot after.
std::optional<std::string> pragma(sqlite3* db, const char* sql) {
  Stmt q(db, sql);
  if (!q.row()) return std::nullopt;
  return q.text(0);
}

}  // namespace

class DiskStore::Impl {
 public:
  ~Impl() { sqlite3_close_v2(db); }

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
};

DiskStore::DiskStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DiskStore::~DiskStore() = default;

std::unique_ptr<DiskStore> DiskStore::open(const std::string& dir, uint64_t max_bytes,
                                           std::string* error) {
  auto fail = [&](const std::string& message) {
    set_error(error, message);
    return std::unique_ptr<DiskStore>();
  };
  if (dir.empty()) return fail("no cache directory given");
  std::string why;
  const std::string data = dir + "/data";
  if (!make_dirs(dir, &why) || !make_dirs(data, &why))
    return fail("cannot make the cache directory " + why);
  // Modes do not stop root, but a read-only file system does; either way,
  // better said now than at every write.
  if (::access(dir.c_str(), W_OK | X_OK) != 0 || ::access(data.c_str(), W_OK | X_OK) != 0)
    return fail("cannot write in the cache directory " + dir + ": " + errno_text(errno));

  // Made here rather than by SQLite so its mode is 0600 whatever the umask;
  // SQLite gives its -wal and -shm files the index's mode.
  const std::string index = dir + "/index.sqlite";
  int fd = ::open(index.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) ::fchmod(fd, 0600);
  if (fd < 0 && errno == EEXIST) fd = ::open(index.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail("cannot open the cache index " + index + ": " + errno_text(errno));
  ::close(fd);

  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  int rc = sqlite3_open_v2(index.c_str(), &impl->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  sqlite3* db = impl->db;
  if (rc != SQLITE_OK)
    return fail("cannot open the cache index " + index + ": " +
                (db ? impl->db_error() : sqlite3_errstr(rc)));
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  auto bad_index = [&] {
    return fail("the cache index " + index + " is not a valid one (" + impl->db_error() +
                "); remove it to start afresh");
  };
  // The first statement reads the file: garbage fails it with SQLITE_NOTADB.
  // Turning a new index to WAL takes it whole, and SQLite does not wait
  // for that lock as it does for others: a store opening beside another
  // (two players started at once) retries for as long as it would wait.
  for (int waited = 0; !pragma(db, "PRAGMA journal_mode = WAL") && waited < kBusyTimeoutMs;
       waited += 10) {
    const int code = sqlite3_errcode(db);
    if (code != SQLITE_BUSY && code != SQLITE_LOCKED) break;
    ::usleep(10 * 1000);
  }
  if (pragma(db, "PRAGMA journal_mode") != "wal" ||
      !Stmt(db, "PRAGMA synchronous = NORMAL").run() ||
      !Stmt(db, "PRAGMA foreign_keys = ON").run() || pragma(db, "PRAGMA quick_check") != "ok")
    return bad_index();
  // The index's own files stay small beside the blocks (the budget counts
  // blocks): a checkpoint every 64 pages, and the WAL cut back to 256 KiB
  // after one, instead of SQLite's 1000 pages and no limit.
  pragma(db, "PRAGMA wal_autocheckpoint = 64");
  pragma(db, "PRAGMA journal_size_limit = 262144");
  std::optional<std::string> version = pragma(db, "PRAGMA user_version");
  if (!version) return bad_index();
  if (std::strtoll(version->c_str(), nullptr, 10) > kSchemaVersion)
    return fail("the cache index " + index + " was made by a newer version");
  {
    // Another process may be making the schema too: look again holding the lock.
    Txn txn(db);
    if (!txn.ok() || !(version = pragma(db, "PRAGMA user_version"))) return bad_index();
    if (*version == "0" &&
        (sqlite3_exec(db, kSchema, nullptr, nullptr, nullptr) != SQLITE_OK || !txn.commit()))
      return fail("cannot set up the cache index " + index + ": " + impl->db_error());
  }
  // Claims came after the first index format; they need no migration (a
  // claim lives as long as its process).
  if (sqlite3_exec(db,
                   "CREATE TABLE IF NOT EXISTS claims(id INTEGER PRIMARY KEY, key TEXT NOT NULL, "
                   "owner TEXT NOT NULL, first INTEGER NOT NULL, end INTEGER NOT NULL)",
                   nullptr, nullptr, nullptr) != SQLITE_OK)
    return bad_index();
  {
    // Files with no row: a crash between the row's delete and the unlink.
    // Under the write lock, as a put makes its file before its row commits.
    Txn txn(db);
    std::set<std::string> live;
    Stmt ids(db, "SELECT id FROM entries");
    while (ids.row()) live.insert(std::to_string(ids.i64(0)));
    if (txn.ok() && ids.ok()) {
      if (DIR* d = ::opendir(data.c_str())) {
        while (dirent* e = ::readdir(d)) {
          std::string name = e->d_name;
          if (name != "." && name != ".." && !live.count(name))
            ::unlinkat(::dirfd(d), name.c_str(), 0);
        }
        ::closedir(d);
      }
    }
  }
  impl->max_bytes = max_bytes;
  if (max_bytes == 0) {
    // What the file system has free plus what the store holds now (its own
    // bytes are its to reuse), less a tenth of the file system for others.
    struct statvfs vfs;
    impl->max_bytes = kDefaultMaxBytes;
    if (::statvfs(dir.c_str(), &vfs) == 0) {
      uint64_t room = uint64_t{vfs.f_bavail} * vfs.f_frsize + impl->total();
      uint64_t spare = uint64_t{vfs.f_blocks} * vfs.f_frsize / 10;
      impl->max_bytes = std::min(kDefaultMaxBytes, room > spare ? room - spare : 0);
    }
  }
  return std::unique_ptr<DiskStore>(new DiskStore(std::move(impl)));
}

uint64_t DiskStore::max_bytes() const { return impl_->max_bytes; }

std::optional<Entry> DiskStore::find(const std::string& key) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->entry("key = ?2", 0, key);
}

std::optional<Entry> DiskStore::put(const EntryMeta& meta, std::string* error) {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.mu);
  auto fail = [&](const std::string& what) {
    set_error(error, what + ": " + s.db_error());
    return std::nullopt;
  };
  Txn txn(s.db);
  if (!txn.ok()) return fail("cannot update the cache index");
  std::optional<Entry> old = s.entry("key = ?2", 0, meta.key);
  if (old && old->meta.size == meta.size && old->meta.block_size == meta.block_size &&
      old->meta.etag == meta.etag && old->meta.last_modified == meta.last_modified) {
    if (!Stmt(s.db,
              std::string("UPDATE entries SET final_url = ?1, fresh_until = ?2, headers = ?3, "
                          "last_used = ") +
                  kNextUse + " WHERE id = ?4",
              meta.final_url, meta.fresh_until, meta.headers, old->id)
             .run() ||
        !txn.commit())
      return fail("cannot update the cache index");
    old->meta.final_url = meta.final_url;
    old->meta.fresh_until = meta.fresh_until;
    old->meta.headers = meta.headers;
    return old;
  }
  if (old && !s.exec("DELETE FROM entries WHERE id = ?1", old->id))
    return fail("cannot update the cache index");
  if (!Stmt(s.db,
            std::string("INSERT INTO entries(key, final_url, size, block_size, etag, "
                        "last_modified, fresh_until, headers, last_used) "
                        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ") +
                kNextUse + ")",
            meta.key, meta.final_url, meta.size, meta.block_size, meta.etag, meta.last_modified,
            meta.fresh_until, meta.headers)
           .run())
    return fail("cannot update the cache index");
  Entry e;
  e.id = sqlite3_last_insert_rowid(s.db);
  e.meta = meta;
  // Made before the row commits (a sweep holds the same lock), so a row
  // never lacks its file.
  const std::string path = s.path(e.id);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    set_error(error, "cannot make the cache file " + path + ": " + errno_text(errno));
    return std::nullopt;
  }
  ::fchmod(fd, 0600);
  s.files[e.id] = std::make_shared<File>(fd);
  if (!txn.commit()) {
    s.remove_file(e.id);
    return fail("cannot update the cache index");
  }
  if (old) s.remove_file(old->id);
  return e;
}

void DiskStore::refresh(int64_t id, int64_t fresh_until) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->exec("UPDATE entries SET fresh_until = ?1 WHERE id = ?2", fresh_until, id);
}

void DiskStore::drop(int64_t id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->exec("DELETE FROM entries WHERE id = ?1", id)) impl_->remove_file(id);
}

void DiskStore::touch(int64_t id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Stmt(impl_->db, std::string("UPDATE entries SET last_used = ") + kNextUse + " WHERE id = ?1", id)
      .run();
}

bool DiskStore::held(int64_t id, uint64_t index) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->any("SELECT 1 FROM blocks WHERE entry = ?1 AND idx = ?2", id, index);
}

std::vector<uint64_t> DiskStore::held_blocks(int64_t id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<uint64_t> out;
  Stmt q(impl_->db, "SELECT idx FROM blocks WHERE entry = ?1 ORDER BY idx", id);
  while (q.row()) out.push_back(static_cast<uint64_t>(q.i64(0)));
  return out;
}

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
  if (!txn.ok()) return 0;
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
    return 0;
  const int64_t id = sqlite3_last_insert_rowid(impl_->db);
  if (!txn.commit()) return 0;
  if (claimed_end) *claimed_end = end;
  return id;
}

void DiskStore::release(int64_t claim) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->exec("DELETE FROM claims WHERE id = ?1", claim);
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

uint64_t DiskStore::bytes_held() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->total();
}

BlockRead DiskStore::read(int64_t id, uint64_t index, uint8_t* out, size_t length) {
  Impl& s = *impl_;
  std::shared_ptr<File> file;
  int64_t sum = 0;
  uint64_t at = 0;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    Stmt q(s.db,
           "SELECT e.block_size, b.length, b.checksum FROM entries e "
           "LEFT JOIN blocks b ON b.entry = e.id AND b.idx = ?2 WHERE e.id = ?1",
           id, index);
    if (!q.row()) {
      s.files.erase(id);  // gone, perhaps evicted by another process
      return BlockRead::kMissing;
    }
    // A length other than the row's is the caller's mistake, not damage.
    if (q.null(1) || static_cast<uint64_t>(q.i64(1)) != length) return BlockRead::kMissing;
    at = index * static_cast<uint64_t>(q.i64(0));
    sum = q.i64(2);
    file = s.file(id);
    if (!file) return BlockRead::kMissing;
  }
  // The bytes are read outside the lock: they are the slow part.
  if (read_all(file->fd, out, length, static_cast<off_t>(at)) == length &&
      checksum(out, length) == sum)
    return BlockRead::kOk;

  std::lock_guard<std::mutex> lock(s.mu);
  // The hole is punched holding the write lock, so no writer can put the
  // block back in between and lose it to the hole.
  Txn txn(s.db);
  if (txn.ok() && s.exec("DELETE FROM blocks WHERE entry = ?1 AND idx = ?2 AND checksum = ?3", id,
                         index, sum)) {
    if (sqlite3_changes(s.db) == 1) {
      s.exec("UPDATE entries SET bytes_held = max(0, bytes_held - ?1) WHERE id = ?2", length, id);
      punch(file->fd, at, length);
    }
    txn.commit();
  }
  return BlockRead::kDamaged;
}

BlockWrite DiskStore::write(int64_t id, uint64_t index, const uint8_t* data, size_t length,
                            std::string* error) {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.mu);
  auto failed = [&](const std::string& message) {
    set_error(error, message);
    return BlockWrite::kFailed;
  };
  // Victims stay locked until their files are gone (after the commit), or
  // until the rollback has put their rows back.
  std::vector<std::pair<int64_t, File>> victims;
  // The data is written inside the transaction: its write lock keeps the
  // budget checked and the row inserted atomic across processes too.
  Txn txn(s.db);
  if (!txn.ok()) return failed("cannot update the cache index: " + s.db_error());
  uint64_t size = 0, block = 0;
  {
    Stmt q(s.db, "SELECT size, block_size FROM entries WHERE id = ?1", id);
    if (!q.row()) {
      s.files.erase(id);
      return q.ok() ? BlockWrite::kGone : failed("cannot read the cache index: " + s.db_error());
    }
    size = static_cast<uint64_t>(q.i64(0));
    block = static_cast<uint64_t>(q.i64(1));
  }
  if (block == 0 || index >= (size + block - 1) / block ||
      length != std::min(block, size - index * block))
    return failed("block " + std::to_string(index) + " of " + std::to_string(length) +
                  " bytes does not fit the resource");
  const uint64_t at = index * block;
  if (s.any("SELECT 1 FROM blocks WHERE entry = ?1 AND idx = ?2", id, index))
    return BlockWrite::kHeld;

  if (!s.make_room(id, length, &victims)) return BlockWrite::kNoRoom;

  std::shared_ptr<File> file = s.file(id);
  if (!file) {
    if (errno != ENOENT) return failed("cannot open the cache file: " + errno_text(errno));
    // A row without its file is no use to anyone: drop it.
    s.exec("DELETE FROM entries WHERE id = ?1", id);
    txn.commit();
    return BlockWrite::kGone;
  }
  if (!write_all(file->fd, data, length, static_cast<off_t>(at))) {
    int e = errno;
    punch(file->fd, at, length);  // whatever part made it in
    return failed("cannot write the cache file " + s.path(id) + ": " + errno_text(e));
  }
  // The row exists only once its bytes do.
  if (!s.exec("INSERT OR IGNORE INTO blocks(entry, idx, length, checksum) VALUES(?1, ?2, ?3, ?4)",
              id, index, length, checksum(data, length)) ||
      (sqlite3_changes(s.db) == 1 &&
       !s.exec("UPDATE entries SET bytes_held = bytes_held + ?1 WHERE id = ?2", length, id)) ||
      !txn.commit()) {
    std::string message = "cannot update the cache index: " + s.db_error();
    punch(file->fd, at, length);  // no row will ever vouch for these bytes
    return failed(message);
  }
  // Rows first, then files.
  for (auto& victim : victims) s.remove_file(victim.first);
  return BlockWrite::kWritten;
}

std::unique_ptr<DiskStore::Pin> DiskStore::pin(int64_t id) {
  auto pin = std::make_unique<File>(::open(impl_->path(id).c_str(), O_RDONLY | O_CLOEXEC));
  if (pin->fd < 0) return nullptr;
  // Outside the mutex: an eviction holds its exclusive lock only for a moment.
  int rc;
  while ((rc = ::flock(pin->fd, LOCK_SH)) != 0 && errno == EINTR) {
  }
  // An eviction that won the race has deleted the row before it let go.
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (rc != 0 || !impl_->any("SELECT 1 FROM entries WHERE id = ?1", id)) return nullptr;
  return pin;
}

}  // namespace prefetch
