// Disk store: blocks of resources kept on disk, shared by every element and
// process that opens the same directory.
//
// Layout: `DIR/index.sqlite` (SQLite in WAL mode: entries and their
// blocks, each with an XXH3-64 checksum of its bytes) and one sparse data
// file per entry, `DIR/data/<entry id>`, with block i at i x block_size.
// The directory is made 0700, its files 0600.
//
// Blocks are written past the page cache (O_DIRECT) where the file system
// allows it and the bytes are page-aligned in memory and in the file: a
// buffered write costs the CPU about five times as much (the copy into the
// page cache, then its writeback), which a play from a fast origin pays
// for in pace. The rest (a last, short block; a file system without it)
// is written through the page cache.
//
// Bytes stay right without an fsync per block: a block's data is written
// first and its row (with the checksum of what was written) after it; a
// read checks the checksum, and a block that does not match (a torn write,
// power lost, a flipped byte, a truncated file) is dropped and reported
// missing, so it is fetched again.
//
// Bounded: the blocks held (not the sparse files' lengths) stay within
// `max_bytes`; a write that would pass it first evicts the least recently
// used entries that no one has pinned (pin(): a shared flock on the data
// file, gone with its process). Thread-safe; every method may block on
// the disk, so none is for the streaming or the I/O thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace prefetch {
// The alignment a direct write needs, in memory and in the file.
constexpr size_t kDiskPage = 4096;
}  // namespace prefetch

namespace prefetch {

// What identifies a resource's bytes and says how long they stay fresh.
struct EntryMeta {
  std::string key;        // the resource: its location without credentials
  std::string final_url;  // where the answer came from, after redirects
  uint64_t size = 0;      // the resource's length in bytes
  uint64_t block_size = 0;
  std::string etag;           // strong ETag as sent, or empty
  std::string last_modified;  // as sent, or empty
  int64_t fresh_until = 0;    // unix seconds (cache_freshness.h)
  std::string headers;        // the first answer's header fields, "Name: value\n" each
};

struct Entry {
  int64_t id = 0;  // never reused: a replaced entry gets a new id and data file
  EntryMeta meta;
  uint64_t blocks_held = 0;
  uint64_t bytes_held = 0;
  uint64_t block_count() const {
    return meta.block_size ? (meta.size + meta.block_size - 1) / meta.block_size : 0;
  }
  bool complete() const { return blocks_held == block_count(); }
};

enum class BlockRead { kOk, kMissing, kDamaged };
enum class BlockWrite { kWritten, kHeld, kNoRoom, kGone, kFailed };

class DiskStore {
 public:
  // Opens the store in `dir`, making it (and the index) if needed.
  // `max_bytes` 0: the default, 2 GiB or what leaves 10 % of the file
  // system free (counting what the store holds), whichever is smaller.
  // nullptr with `error` set (a message for people) when the directory
  // cannot be made or written, or the index is not a valid one.
  static std::unique_ptr<DiskStore> open(const std::string& dir, uint64_t max_bytes,
                                         std::string* error);
  ~DiskStore();
  DiskStore(const DiskStore&) = delete;
  DiskStore& operator=(const DiskStore&) = delete;

  uint64_t max_bytes() const;

  // The entry for `key`, if any.
  std::optional<Entry> find(const std::string& key);
  // Makes the entry for `meta.key`, or returns the one there if its size,
  // block size and validators (etag, last_modified) are meta's (its
  // freshness and headers then become meta's). An entry there with other
  // ones is dropped first, whoever uses it: new validators mean new data.
  std::optional<Entry> put(const EntryMeta& meta, std::string* error = nullptr);
  // Sets an entry's freshness (after a revalidation).
  void refresh(int64_t id, int64_t fresh_until);
  // Drops an entry with its blocks and data file.
  void drop(int64_t id);
  // Marks an entry used now (least recently used goes first).
  void touch(int64_t id);

  // Whether block `index` of entry `id` is held (its row is there; its bytes
  // are checked only when read).
  bool held(int64_t id, uint64_t index);
  // The indices held of entry `id`, ascending.
  std::vector<uint64_t> held_blocks(int64_t id);
  // Reads block `index` (`length` bytes: block_size, or what is left of the
  // resource for the last block) into `out` and checks it. kDamaged: it
  // did not match its checksum (or the file was short); it is dropped.
  BlockRead read(int64_t id, uint64_t index, uint8_t* out, size_t length);
  // Asks the kernel to start reading bytes [offset, offset + length) of
  // entry `id`'s file now, for the reads to come: blocks are written past
  // the page cache, so a replay reads the disk, and a read at a time would
  // leave it idle while the block is served.
  void read_ahead(int64_t id, uint64_t offset, uint64_t length);
  // Writes block `index`: data first, then its row. kHeld: it already was;
  // kNoRoom: the budget has no room even after evicting every unpinned
  // entry; kGone: the entry was dropped meanwhile; kFailed: the disk
  // refused (full, read-only, I/O error; `error` says which).
  BlockWrite write(int64_t id, uint64_t index, const uint8_t* data, size_t length,
                   std::string* error = nullptr);

  // Keeps entry `id` from eviction while the returned pin lives (a shared
  // flock on its data file: other processes see it, and it goes if the
  // process dies). nullptr if the entry is gone.
  class Pin {
   public:
    virtual ~Pin() = default;
  };
  std::unique_ptr<Pin> pin(int64_t id);

  // The bytes of every block held, all entries.
  uint64_t bytes_held();

  // Claims: which blocks of a resource (its key: there may be no entry
  // yet) an element is fetching from the network now, so that another one,
  // in this process or another, waits for them to be written instead of
  // fetching them too. `owner` names the element: "<pid>/<anything>"; a
  // claim goes when released, or when its process is gone.
  struct Claim {
    std::string owner;
    uint64_t first = 0;  // blocks [first, end)
    uint64_t end = 0;
  };
  // Claims blocks [first, end) of `key` for `owner`, unless another live
  // owner claims `first`: then nothing (0). The claim stops short of the
  // next block another owner claims; `*claimed_end` says where it ends.
  // Check and claim are one transaction: of two owners asking at once, one
  // gets the block. -1: the index could not say or record it (a full disk,
  // a lock held past the busy timeout).
  int64_t claim(const std::string& key, const std::string& owner, uint64_t first, uint64_t end,
                uint64_t* claimed_end);
  void release(int64_t claim);
  void release_all(const std::string& owner);
  // Says that `owner` plays `key` (a claim of no block, which claims()
  // lists and claim() never meets), until release_all() or its process ends.
  void announce(const std::string& key, const std::string& owner);

  // Moves the index's log (its WAL) into it once the log has grown past a
  // few hundred KiB; cheap otherwise. Commits never do it themselves (it
  // syncs the disk, and they hold the store's lock): whoever writes calls
  // this after, outside it.
  void checkpoint();
  // The live claims on `key` of owners other than `owner`.
  std::vector<Claim> claims(const std::string& key, const std::string& owner);

  class Impl;

 private:
  explicit DiskStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace prefetch
