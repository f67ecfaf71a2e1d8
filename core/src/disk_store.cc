// DiskStore: opening the store and its entries. Block bytes are in
// disk_store_blocks.cc, claims in disk_store_claims.cc.

#include "prefetch/disk_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <utility>

#include "disk_store_impl.h"

namespace prefetch {

namespace {

constexpr int kSchemaVersion = 1;
constexpr int kBusyTimeoutMs = 5000;
constexpr uint64_t kDefaultMaxBytes = uint64_t{2} << 30;
constexpr int kCheckpointPages = 64;

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

// The first column of a pragma's first row; nullopt on an error. The
// statement is done with on return, so it holds no read snapshot after.
std::optional<std::string> pragma(sqlite3* db, const char* sql) {
  Stmt q(db, sql);
  if (!q.row()) return std::nullopt;
  return q.text(0);
}

}  // namespace

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
  const bool created = fd >= 0;
  if (created) ::fchmod(fd, 0600);
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
  // A new, empty index has nothing to lose: turning it to WAL need not wait
  // for the disk (three syncs, tens of ms before a play's first request).
  if (created) pragma(db, "PRAGMA synchronous = OFF");
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
  // blocks): a checkpoint every kCheckpointPages, and the WAL cut back to
  // 256 KiB after one, instead of SQLite's 1000 pages and no limit. Not in
  // the commit that passes the mark, which would hold the store's lock for
  // its syncs: checkpoint() does it, on a connection of its own.
  sqlite3_wal_hook(db, &Impl::on_commit, impl.get());
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

void DiskStore::checkpoint() {
  Impl& s = *impl_;
  if (s.wal_pages.load() < kCheckpointPages) return;
  std::lock_guard<std::mutex> lock(s.checkpoint_mu);
  if (!s.checkpoint_db) {
    if (sqlite3_open_v2((s.dir + "/index.sqlite").c_str(), &s.checkpoint_db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
      sqlite3_close_v2(std::exchange(s.checkpoint_db, nullptr));
      return;
    }
    sqlite3_busy_timeout(s.checkpoint_db, kBusyTimeoutMs);
    pragma(s.checkpoint_db, "PRAGMA journal_size_limit = 262144");
  }
  int log = 0, done = 0;
  if (sqlite3_wal_checkpoint_v2(s.checkpoint_db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done) ==
          SQLITE_OK &&
      done == log)
    s.wal_pages = 0;
}

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

uint64_t DiskStore::bytes_held() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->total();
}

}  // namespace prefetch
