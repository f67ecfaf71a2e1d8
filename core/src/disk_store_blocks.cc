// DiskStore's block bytes: a block read and checked against its row, written
// (evicting least recently used entries to make room), and an entry pinned.

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string>

#include "disk_store_impl.h"

namespace prefetch {

namespace {

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

}  // namespace

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
