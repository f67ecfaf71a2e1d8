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
#include <utility>

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

// Writes n bytes at `at`: the page-aligned part past the page cache where
// the file system allows it (disk_store.h), the rest through it.
bool write_block_bytes(File& file, const uint8_t* p, size_t n, off_t at) {
  const bool aligned = reinterpret_cast<uintptr_t>(p) % kDiskPage == 0 && at % kDiskPage == 0;
  const size_t head = aligned ? n / kDiskPage * kDiskPage : 0;
  if (head > 0 && file.direct >= 0 && !file.direct_refused.load()) {
    if (write_all(file.direct, p, head, at)) {
      p += head, n -= head, at += static_cast<off_t>(head);
    } else if (errno == EINVAL) {
      file.direct_refused = true;  // refused after all: through the page cache from now on
    } else {
      return false;
    }
  }
  return write_all(file.fd, p, n, at);
}

// Gives a dropped block's space back; a file system without holes just
// keeps the bytes, which no row vouches for any more.
void punch(int fd, uint64_t at, uint64_t length) {
  ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(at),
              static_cast<off_t>(length));
}

int64_t checksum(const uint8_t* p, size_t n) { return static_cast<int64_t>(XXH3_64bits(p, n)); }

}  // namespace

void DiskStore::read_ahead(int64_t id, uint64_t offset, uint64_t length) {
  std::shared_ptr<File> file;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    file = impl_->file(id);
  }
  if (file)
    ::posix_fadvise(file->fd, static_cast<off_t>(offset), static_cast<off_t>(length),
                    POSIX_FADV_WILLNEED);
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
  auto failed = [&](const std::string& message) {
    set_error(error, message);
    return BlockWrite::kFailed;
  };
  // The bytes are written outside the lock and the transaction (a write to
  // the disk takes milliseconds, and a claim or a read in another thread or
  // process would wait them out), before the row: until the row is in, no
  // one reads them, and the budget counts them only then (one block per
  // writer over it at most).
  std::shared_ptr<File> file;
  uint64_t at = 0;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    Stmt q(s.db, "SELECT size, block_size FROM entries WHERE id = ?1", id);
    if (!q.row()) {
      s.files.erase(id);
      return q.ok() ? BlockWrite::kGone : failed("cannot read the cache index: " + s.db_error());
    }
    const uint64_t size = static_cast<uint64_t>(q.i64(0)), block = static_cast<uint64_t>(q.i64(1));
    if (block == 0 || index >= (size + block - 1) / block ||
        length != std::min(block, size - index * block))
      return failed("block " + std::to_string(index) + " of " + std::to_string(length) +
                    " bytes does not fit the resource");
    at = index * block;
    if (s.holds(id, index)) return BlockWrite::kHeld;
    file = s.file(id);
    if (!file) {
      if (errno != ENOENT) return failed("cannot open the cache file: " + errno_text(errno));
      // A row without its file is no use to anyone: drop it.
      s.exec("DELETE FROM entries WHERE id = ?1", id);
      return BlockWrite::kGone;
    }
    if (file->direct == File::kUnknown)
      file->direct = ::open(s.path(id).c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
  }
  // Gives back what was written for no row (mutex held, no transaction
  // open): unless another writer's row vouches for the same bytes.
  auto punch_unless_held = [&] {
    if (!s.holds(id, index)) punch(file->fd, at, length);
  };
  if (!write_block_bytes(*file, data, length, static_cast<off_t>(at))) {
    int e = errno;
    std::lock_guard<std::mutex> lock(s.mu);
    punch_unless_held();  // whatever part made it in
    return failed("cannot write the cache file " + s.path(id) + ": " + errno_text(e));
  }
  const int64_t sum = checksum(data, length);

  std::lock_guard<std::mutex> lock(s.mu);
  // Victims stay locked until their files are gone (after the commit), or
  // until the rollback has put their rows back.
  std::vector<std::pair<int64_t, File>> victims;
  // The transaction's write lock keeps the budget checked and the row
  // inserted atomic across processes too.
  Txn txn(s.db);
  if (!txn.ok()) {
    std::string message = "cannot update the cache index: " + s.db_error();
    punch_unless_held();
    return failed(message);
  }
  if (!s.any("SELECT 1 FROM entries WHERE id = ?1", id)) return BlockWrite::kGone;
  if (s.holds(id, index))
    return BlockWrite::kHeld;  // another writer's row vouches for the same bytes
  if (!s.make_room(id, length, &victims)) {
    txn.rollback();  // the victims' rows back
    punch_unless_held();
    return BlockWrite::kNoRoom;
  }
  if (!s.exec("INSERT INTO blocks(entry, idx, length, checksum) VALUES(?1, ?2, ?3, ?4)", id, index,
              length, sum) ||
      !s.exec("UPDATE entries SET bytes_held = bytes_held + ?1 WHERE id = ?2", length, id) ||
      !txn.commit()) {
    std::string message = "cannot update the cache index: " + s.db_error();
    txn.rollback();
    punch_unless_held();  // no row will ever vouch for these bytes
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
