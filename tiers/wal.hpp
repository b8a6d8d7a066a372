// The L3 write-ahead log: what makes an acknowledged write durable before LMDB
// has it (issue 10; docs/formats.md "L3 write-ahead log", docs/operations.md
// "Durability").
//
// The serving thread appends records (put, erase, clear) to an in-memory
// buffer under a mutex; a writer thread of the log's own writes the buffer
// to the active segment file every `write_interval_ms` (or at once when it
// holds 1 MiB, or on kick()), and a syncer thread fdatasyncs what was
// written every `sync_interval_ms` -- group commit, as redis-server's
// appendfsync everysec -- or after every write with `sync_each`
// (kura.l3.sync). The two never wait for each other: an fdatasync that takes
// seconds on a busy disk does not hold records in the process's buffer (the
// syncer works on a dup() of the segment's descriptor, outside the file
// mutex). A segment closed at rotation is fdatasynced by the syncer before
// anything written after it counts as synced, and so is the directory entry
// of a new segment. A write() that returned is in the page cache, which a
// killed process does not lose; an fdatasync that returned survives a
// machine crash. Every append names the write-behind
// batch that carries it to LMDB; once LMDB has committed a batch (retire()),
// closed segments holding only that batch and older ones are deleted, so the
// log holds what LMDB may not have yet. At start, replay() feeds every record
// of every segment, in order, to the caller (who applies them to LMDB, syncs
// it and calls remove_segments()); records are blind writes, so replaying a
// prefix LMDB already holds gives the same state. Each record carries a
// CRC-32C of its payload: a torn tail (a write cut by a crash) or a damaged
// record ends the replay of its segment, is reported in the stats and is
// never passed on as data. With a keyring the records are sealed
// (AES-256-GCM, tiers/seal.hpp), so no key or value is in the log in clear.
// Thread safety: append*, kick, retire, rotate, and the figures are safe to
// call from any one thread (the serving thread) while the log's threads run;
// replay() and remove_segments() run before open() (or after destruction).
#pragma once

#include "tiers/clock.hpp"
#include "tiers/entry.hpp"
#include "tiers/seal.hpp"
#include "tiers/status.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace kura {

struct wal_config {
  std::string dir;                      ///< directory of the segments (created if needed)
  uint64_t write_interval_ms = 10;      ///< buffer -> file period (bounds kill -9 loss)
  uint64_t sync_interval_ms = 500;      ///< fdatasync period (group commit)
  bool sync_each = false;               ///< fdatasync after every write (kura.l3.sync)
  uint64_t segment_bytes = 64ull << 20; ///< a segment is closed past this size
  /// Encryption at rest: records sealed under the active key.
  std::shared_ptr<const crypto::keyring> keys;
  /// The fdatasync of a segment's descriptor (null: ::fdatasync); returns 0
  /// or -1 with errno set. Tests inject a slow or failing disk here.
  std::function<int(int fd)> sync_fn;
};

/// One logged operation.
struct wal_record {
  enum kind_t : uint8_t { put = 1, erase = 2, clear = 3 };
  kind_t kind = put;
  uint64_t batch = 0; ///< the write-behind batch that carries it to LMDB
  entry e;            ///< put: the entry; erase: e.key and e.ver (append_erase's); clear: nothing
};

/// What replay() found.
struct wal_replay_stats {
  uint64_t segments = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;     ///< bytes of intact records
  uint64_t cut_bytes = 0; ///< bytes after a torn or damaged record, not replayed
  std::string cut_reason; ///< the first cut: segment, offset and why (empty: none)
  /// Puts the replay skipped: larger than the whole L3 budget (a smaller
  /// kura.l3.max-bytes than when they were written), and why the first was.
  /// Such a key keeps what L3 held before. (Filled by actors::recover_wal.)
  uint64_t skipped = 0;
  std::string skipped_reason;
};

/// CRC-32C (Castagnoli), hardware-assisted where the CPU has SSE 4.2.
uint32_t crc32c(std::string_view data, uint32_t crc = 0);

class wal {
public:
  /// Opens the log in cfg.dir for appending: a new segment after any there.
  static result<std::unique_ptr<wal>> open(wal_config cfg, const clock& clk);
  /// Feeds every intact record of the segments in `cfg.dir` to `f`, oldest
  /// first; an error from `f` stops the replay and is returned. A sealed log
  /// needs the keyring that sealed it (errc::bad_key); a plaintext log is
  /// refused when a keyring is given (errc::corrupt).
  static result<wal_replay_stats> replay(const wal_config& cfg,
                                         const std::function<status(wal_record&&)>& f);
  /// Deletes every segment in `dir` (after a replay whose data is synced).
  static status remove_segments(const std::string& dir);
  /// Segment file names in `dir`, oldest first.
  static std::vector<std::string> segment_files(const std::string& dir);

  /// Writes and fdatasyncs what is buffered, then stops the writer thread.
  ~wal();
  wal(const wal&) = delete;
  wal& operator=(const wal&) = delete;

  // -- appending (serving thread) --

  /// Appends a record carried to LMDB by write-behind batch `batch`; returns
  /// its log sequence number (1, 2, ...).
  uint64_t append_put(const entry& e, uint64_t batch);
  /// The same for a value shared instead of copied (`meta.value` is unused):
  /// the log keeps `value` until its writer thread has written the record,
  /// and computes the record's checksum (or seals it) there, so a large put
  /// costs the serving thread no copy and no pass over its bytes.
  uint64_t append_put_shared(const entry& meta, shared_bytes value, uint64_t batch);
  /// `ver` (optional): the version the erase removes, kept in the record's
  /// version field (zero otherwise; the cluster store's erase needs it at
  /// replay). The format is unchanged: that field was always there, zero.
  uint64_t append_erase(std::string_view key, uint64_t batch, const version& ver = {});
  uint64_t append_clear(uint64_t batch);
  /// Wakes the writer thread now (sync mode: a client waits for its write).
  void kick();
  /// Calls `f` on the syncer thread after each fdatasync (set before appending).
  void set_on_synced(std::function<void()> f);
  /// LMDB committed every batch up to `batch`: closed segments that hold no
  /// later batch are deleted (by the writer thread).
  void retire(uint64_t batch);
  /// Writes the buffer, closes the active segment and starts a new one, then
  /// deletes the closed segments retire() allows -- synchronously (erasure:
  /// records of erased keys must leave the disk once LMDB has the erase).
  status rotate(uint64_t committed_batch);
  /// Writes and fdatasyncs everything appended so far (synchronously).
  status flush();
  /// Key rotation: later records are sealed with `keys`' active key, in a
  /// new segment; the older segments leave as LMDB commits (retire()).
  status set_keys(std::shared_ptr<const crypto::keyring> keys);

  // -- figures --

  uint64_t appended() const noexcept { return appended_.load(std::memory_order_acquire); }
  /// Records written to the file (a killed process keeps them).
  uint64_t written() const noexcept { return written_.load(std::memory_order_acquire); }
  /// Records fdatasynced (a machine crash keeps them).
  uint64_t synced() const noexcept { return synced_.load(std::memory_order_acquire); }
  /// Bytes appended but not yet written to the file.
  uint64_t unwritten_bytes() const noexcept {
    return unwritten_.load(std::memory_order_relaxed) + carried_.load(std::memory_order_relaxed);
  }
  /// Age (ms) of the oldest record not yet written; 0 when there is none.
  uint64_t unwritten_age_ms() const noexcept;
  /// When (clock mono_ns) the oldest record not yet written was appended; 0: none.
  uint64_t unwritten_since_ns() const noexcept;
  /// Segments on disk and their bytes.
  uint64_t segments() const;
  uint64_t disk_bytes() const;
  uint64_t syncs() const noexcept { return syncs_.load(std::memory_order_relaxed); }
  /// The last write or fdatasync error (ok when none).
  status last_error() const;

private:
  wal(wal_config cfg, const clock& clk);
  struct segment {
    uint64_t id = 0;
    std::string path;
    uint64_t bytes = 0;
    uint64_t max_batch = 0;
  };
  uint64_t append(wal_record::kind_t kind, const entry* e, std::string_view key, uint64_t batch,
                  const version& ver = {});
  /// A put record whose value is shared (append_put_shared): it goes in
  /// front of the buffer's byte `at` and is encoded by the writer thread.
  struct deferred {
    size_t at = 0;
    std::string fixed_key; ///< the plain fixed fields and the key
    shared_bytes value;
    std::shared_ptr<const crypto::keyring> keys; ///< the keys at append time (null: plain)
  };
  /// Records taken from the buffer, not yet written.
  struct chunk_t {
    std::string bytes;
    std::vector<deferred> large;
    uint64_t large_bytes = 0;
    bool empty() const noexcept { return bytes.empty() && large.empty(); }
    uint64_t size() const noexcept { return bytes.size() + large_bytes; }
    void clear() {
      bytes.clear();
      large.clear();
      large_bytes = 0;
    }
  };
  /// Bytes in the buffer, shared values included (mtx_ held).
  uint64_t buffered() const noexcept { return buf_.size() + buf_large_bytes_; }
  /// Bookkeeping after a record was appended (mtx_ held by `lk`, released).
  uint64_t appended_record(std::unique_lock<std::mutex>& lk, bool was_empty, uint64_t before,
                           uint64_t batch);
  /// The writer thread: buffer -> file, never waiting for an fdatasync.
  void run();
  /// The syncer thread: fdatasyncs what the writer wrote, deletes retired segments.
  void run_syncer();
  /// Asks the syncer for a pass now.
  void request_sync();
  /// Writes `chunk` (file mutex held); rotates first when the segment is full.
  status write_chunk(const chunk_t& chunk, uint64_t max_batch);
  /// Writes one deferred record (file mutex held).
  status write_deferred(const deferred& d);
  /// Starts a new segment; the old descriptor goes to the syncer (file mutex held).
  status open_segment();
  /// fdatasyncs every record written so far (closed segments, the new
  /// segments' directory entries, the active segment) and publishes synced_;
  /// takes the file mutex only to look, never while waiting for the disk.
  status sync_pass();
  int sync_fd(int fd) const;
  /// Deletes the closed segments retire() allows (takes the file mutex to look).
  void delete_retired();
  /// Moves the buffer into `chunk` (both mutexes held).
  void take(chunk_t& chunk, uint64_t& max_batch, uint64_t& last_lsn);
  /// Writes the buffer and what an earlier failed write kept (file mutex
  /// held; `held`: the buffer's too).
  status write_buffer(std::unique_lock<std::mutex>* held = nullptr);
  void note(const status& st); // file mutex held
  void note_unlocked(const status& st);

  wal_config cfg_;
  const clock& clk_;
  // the buffer (mtx_)
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::string buf_;
  std::vector<deferred> buf_large_;
  uint64_t buf_large_bytes_ = 0;
  uint64_t buf_max_batch_ = 0;
  uint64_t buf_last_lsn_ = 0;
  uint64_t lsn_ = 0;
  bool kicked_ = false;
  bool stop_ = false;
  std::condition_variable sync_cv_; ///< wakes the syncer (with mtx_)
  bool sync_wanted_ = false;
  bool sync_stop_ = false;
  std::atomic<uint64_t> first_unwritten_ns_{0}; ///< oldest record in buf_ (0: none)
  std::atomic<uint64_t> writing_since_ns_{0};   ///< oldest record taken, not yet written
  std::function<void()> on_synced_;
  // the files (file_mtx_)
  mutable std::mutex file_mtx_;
  int fd_ = -1;
  segment active_;
  std::vector<segment> closed_;
  uint64_t next_id_ = 1;
  uint64_t unsynced_lsn_ = 0; ///< highest lsn written (synced or not)
  chunk_t carry_;             ///< taken from the buffer, not written yet (a write failed)
  uint64_t carry_max_batch_ = 0;
  uint64_t carry_last_lsn_ = 0;
  std::vector<std::pair<int, std::string>> unsynced_fds_; ///< closed segments to fdatasync
  bool dir_dirty_ = false; ///< a new segment's name is not fsynced in the directory yet
  status error_;
  // one sync pass at a time (the syncer, flush()); taken before file_mtx_
  std::mutex sync_mtx_;
  // published figures
  std::atomic<uint64_t> appended_{0};
  std::atomic<uint64_t> written_{0};
  std::atomic<uint64_t> synced_{0};
  std::atomic<uint64_t> unwritten_{0};
  std::atomic<uint64_t> carried_{0}; ///< bytes of carry_
  std::atomic<uint64_t> retired_{0};
  std::atomic<uint64_t> syncs_{0};
  std::thread writer_;
  std::thread syncer_;
};

} // namespace kura
