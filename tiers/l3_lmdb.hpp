// L3: every live entry in an LMDB environment, written behind with group commit.
//
// put() lands in an in-memory pending batch (visible to get() at once); the batch
// commits as one LMDB write transaction when it reaches `batch_max_writes` or
// when `maybe_flush(now)` sees it older than `batch_max_ms`. `sync_mode` commits
// (and fsyncs) on every put. After a process is killed, reopening shows every
// entry whose batch committed. When the data exceeds `max_bytes`, the entries
// least recently written or read are evicted (to the eviction listener: L4
// takes them).
// A corrupt or foreign file gives errc::corrupt / errc::foreign_file from open().
// The file stays a plain LMDB environment (mdb_stat can read it); its layout is
// in docs/formats.md, "L3 (LMDB)".
// Durability: every committed batch survives a killed process (LMDB commits
// reach the page cache); after a machine crash the environment is intact and
// holds all but at most the last batch (fsync_batches), everything sync()
// flushed, and every write in sync_mode. When the map is full a write is
// refused with errc::out_of_space and nothing already accepted is dropped.
// An environment may be open at most once per process (an LMDB rule), and by
// one kura process at a time: verify_on_open reads the file outside LMDB's
// locks (read-only tools such as mdb_stat may look at any time).
//
// Last-writer-wins (the replicated store's face; put/get/erase stay the plain
// tier interface of a single node). apply() stores an entry only if its version
// is newer than the record L3 holds for the key, tombstones included. A delete
// that must win over late copies is a tombstone record (apply() of an entry
// with entry_flags::tombstone): invisible to get()/for_each(), visible to
// get_versioned()/scan(), never evicted or expired, kept until collect() removes
// it (the tombstone collector calls it once every replica holds it).
// Version floors, i.e. what stops an older version from coming back:
//   - deletes: the tombstone record is the floor until collect();
//   - expiry: with `tombstones` set (cluster mode) an expired record -- lazily
//     on get, by sweep_expired or met by the eviction pass -- is rewritten as a
//     tombstone of the same version instead of being removed, so a late hint or
//     repair of an older version is refused; collect() removes it like a delete;
//   - eviction to L4: with `tombstones` set the demoted entry leaves a
//     tombstone of its version in L3 (key + 40-byte header, no value), so the
//     floor stays even after L4 expires or drops the value. A reader that finds
//     an L3 tombstone whose version equals L4's copy serves the L4 copy (the
//     replicated store over the real tiers, gossip/tier_store.hpp, does);
//     a real delete is always newer than any L4 copy;
//   - L4 retention: see archive/archive.hpp.
// max_version() is the highest version L3 ever held (a meta record written in
// every commit), so a restarted node seeds its HLC (tiers/hlc.hpp) from it.
// Thread safety: not thread-safe; owned by the L3 actor (a detached thread).
#pragma once

#include "tiers/clock.hpp"
#include "tiers/entry.hpp"
#include "tiers/seal.hpp"
#include "tiers/tier.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <utility>

struct MDB_txn; // lmdb.h

namespace kura {

struct l3_config {
  std::string path;               ///< directory of the LMDB environment
  uint64_t map_size = 8ull << 30; ///< LMDB map size (bytes of address space)
  /// Size budget on the bytes LMDB pages really use; 0 = map_size / 2 (room
  /// for copy-on-write). Enforced at each commit on the estimated footprint
  /// (payload, record header, index entries, node overhead, whole overflow
  /// pages), which may reach 2/3 of it: B-tree pages are about 2/3 full.
  uint64_t max_bytes = 0;
  size_t batch_max_writes = 256; ///< group commit: writes per batch
  uint64_t batch_max_ms = 5;     ///< group commit: max age of a batch
  bool sync_mode = false;        ///< commit + fsync every write
  limits lim;
  uint64_t batch_max_bytes = 64ull << 20; ///< group commit: payload bytes per batch
  /// On MAP_FULL the map grows by doubling up to this size; 0 = never grow.
  uint64_t map_size_max = 0;
  /// true: each batch commit fdatasyncs its data pages before the next meta
  /// page is written (MDB_NOMETASYNC), so a machine crash loses at most the
  /// last batch and never the environment's integrity. false: MDB_NOSYNC,
  /// faster, but LMDB warns that a machine crash between sync() calls can
  /// corrupt the environment (a killed process loses nothing either way).
  bool fsync_batches = true;
  /// Walk every B-tree page of data.mdb at open (pread, before LMDB maps it),
  /// so that damaged pages give errc::corrupt instead of crashing LMDB. Costs
  /// one read of the tree pages (about 0.1 s per 100 MB in the page cache).
  bool verify_on_open = true;
  /// Cluster mode: an expired record becomes a tombstone of its version (a
  /// version floor) instead of disappearing; collect() removes it. Off for a
  /// single node, where nothing older can arrive later.
  bool tombstones = false;
  /// Encryption at rest (kura.security.encryption-key-file): with a keyring,
  /// records are sealed with AES-256-GCM under its active key and LMDB keys
  /// are keyed hashes (docs/formats.md, "Sealed records"). An encrypted
  /// environment refuses to open without a key that sealed it (errc::bad_key);
  /// a non-empty plaintext one refuses to open with a key.
  std::shared_ptr<const crypto::keyring> keys;
};

/// Progress of the re-seal pass after a key rotation.
struct reseal_progress {
  uint64_t records_done = 0;  ///< records visited
  uint64_t records_total = 0; ///< records when the pass started
  uint64_t resealed = 0;      ///< records rewritten under the active key
  bool done = false;
};

/// How large an entry L3 can hold at all: the figures an open environment
/// sizes entries with, copied out (l3_lmdb::fit), so that the RESP front end
/// refuses at write time a write L3 would refuse later, when the client has
/// its +OK already. Plain value type.
struct l3_fit {
  uint64_t budget = 0; ///< max_bytes (map_size / 2 without it); 0 = no L3 known
  bool sealed = false; ///< encryption at rest (keyed-hash LMDB keys)
  uint32_t psize = 4096;
  size_t nodemax = 2038; ///< largest node that fits a page (bigger: overflow pages)

  /// Estimated bytes an entry occupies: its kura.main node (or an overflow
  /// node plus whole overflow pages) and its kura.exp node, each with LMDB's
  /// 8-byte node header and 2-byte slot.
  uint64_t footprint(size_t lkey, size_t rec, bool has_exp) const {
    uint64_t n = 8 + lkey + rec;
    uint64_t main_b =
        n > nodemax ? 2 + 8 + lkey + 8 + ((rec + 16 + psize - 1) / psize) * psize : 2 + n;
    uint64_t exp_b = has_exp ? 2 + 8 + 16 + lkey : 0;
    return main_b + exp_b;
  }
  /// What the estimated footprint may reach (l3_lmdb.cpp, "footprint"): two
  /// thirds of the budget, a third with sealing.
  uint64_t limit() const { return sealed ? budget / 3 : budget / 3 * 2; }
  /// ok, or errc::out_of_space (the sizes and kura.l3.max-bytes in the
  /// message) when an entry of `key` and `value_bytes` is larger than the
  /// whole budget allows, however empty L3 is.
  status check(std::string_view key, size_t value_bytes, bool has_exp) const;
};

class l3_lmdb final : public tier {
public:
  /// Opens (creating if needed) the environment at cfg.path.
  static result<std::unique_ptr<l3_lmdb>> open(l3_config cfg, const clock& clk);
  /// The sizing put() refuses entries by (fixed once open).
  l3_fit fit() const;
  ~l3_lmdb() override; // flushes the pending batch

  const char* name() const override { return "l3"; }
  /// Pending writes first, then LMDB. With `touch`, a hit makes the entry the
  /// most recently used at the next commit (eviction order = last write or
  /// touched read; records over 64 KiB keep their place on reads).
  result<std::optional<entry>> get(std::string_view key, uint64_t now_ms,
                                   bool touch = true) override;
  status put(entry e, uint64_t now_ms) override;
  /// put() of `meta` (its expiry, version and flags; its key and value are
  /// not read) with the key `key` and the value `value`, which the batch
  /// reads in place, without a copy: their bytes must stay where they are
  /// until the pending batch is next empty -- the caller hands the buffers
  /// that hold them to keep_buffers() after its last put_view (a commit
  /// inside put_view reads them from the caller's buffers).
  status put_view(const entry& meta, std::string_view key, std::string_view value, uint64_t now_ms);
  /// Keeps `bufs` (the memory put_view's views point into) until the pending
  /// batch is next empty (a commit or clear()); dropped at once when it is
  /// empty already. The strings must not be changed once handed over, and
  /// their bytes must be on the heap (a string is moved here: a short one
  /// held inside the string object itself would move; the store's 64 KiB
  /// chunks never are).
  void keep_buffers(std::vector<std::string>&& bufs);
  result<bool> erase(std::string_view key) override;
  size_t sweep_expired(uint64_t now_ms, size_t budget) override;
  status clear() override;
  /// bytes = LMDB pages in use (every tree + the two meta pages) x page size,
  /// plus the payload of pending writes; entries = records (committed ones
  /// adjusted by the pending writes and deletes; in cluster mode tombstone
  /// records count too);
  /// capacity_bytes = the size budget.
  tier_stats stats() const override;
  /// stats() without looking up any pending key: entries = committed
  /// records plus the pending batch's keys times the last commit's net
  /// change per key (new records less removed ones, over its keys), so an
  /// estimate between commits and exact when nothing is pending. Costs three
  /// mdb_stat calls, whatever the batch holds: for figures published often
  /// (INFO, metrics); DBSIZE calls stats().
  tier_stats quick_stats() const;
  /// Committed entries that carry an expiry (INFO keyspace's expires=).
  uint64_t expiring_entries() const;

  /// Commits the pending batch if it is older than batch_max_ms.
  status maybe_flush(uint64_t now_ms) override;
  /// Commits the pending batch now and fsyncs the environment.
  status sync();
  /// The tier interface's flush: same as sync().
  status flush() override { return sync(); }
  /// Writes not yet committed.
  size_t pending() const;
  /// Milliseconds until the pending batch is due (for the actor's timer);
  /// nullopt when nothing is pending.
  std::optional<uint64_t> flush_due_in(uint64_t now_ms) const;
  /// Calls f(entry&&) for each committed entry in key order (for scans/KEYS).
  /// Pending writes are committed first; expired entries are skipped; f
  /// returns false to stop.
  status for_each(const std::function<bool(const entry&)>& f);

  // -- last-writer-wins (replication) --

  /// Stores `e` (a value, or a tombstone when entry_flags::tombstone is set)
  /// if its version is newer than the record held for its key (tombstones
  /// included); returns whether it did. A tombstone's value and expiry are
  /// dropped. Limits and space are checked as in put().
  result<bool> apply(entry e, uint64_t now_ms);
  /// The record held for `key`, tombstones and expired entries included
  /// (pending writes first); nullopt when there is none. Counts no hit/miss.
  result<std::optional<entry>> get_versioned(std::string_view key);
  /// The committed record of `key` (never the pending batch), read with a
  /// read transaction of its own: ONE other thread may call this while the
  /// owner applies and commits, and it never waits for a commit (LMDB's
  /// readers do not wait for the writer); only a growth of the map, which
  /// remaps the file, waits for it and for it. The cluster store reads this
  /// way from the multiplexer thread while its worker writes (a commit held
  /// a shared lock for 1.5-2.7 s at 1 GB, bench/cluster-move).
  result<std::optional<entry>> get_committed_concurrent(std::string_view key);
  /// The version of get_versioned's record (tombstones included).
  result<std::optional<version>> held_version(std::string_view key) override;
  /// Removes the tombstone of `key` if its version is <= `upto` (tombstone
  /// collection); returns whether it did. A value record is never removed.
  result<bool> collect(std::string_view key, const version& upto);
  /// Up to `max` records (tombstones and expired entries included) with keys
  /// greater than `after`, in key order, to `f`. Pending writes are committed
  /// first. Returns the last key visited (resume from it), or nullopt when
  /// the end was reached. Bounded work per call: one read transaction, `max`
  /// records. Long keys (>= 480 bytes) are ordered by their stored LMDB key.
  result<std::optional<std::string>> scan(std::string_view after, size_t max,
                                          const std::function<void(const entry&)>& f);
  /// Listing without committing (KEYS, SCAN, RANDOMKEY: no fsync per call).
  /// Up to `max` records with keys after `after` (empty = from the start),
  /// in key order (the LMDB key: byte order, long keys by their stored key),
  /// committed ones seen through one read transaction merged with the
  /// pending batch, which is not committed. Live entries (no tombstone, not
  /// expired at `now_ms`) go to `f`; dead ones count towards `max` too, so
  /// the work per call is bounded. Returns the last key examined (resume
  /// after it), or nullopt when the end was reached.
  result<std::optional<std::string>> scan_live(std::string_view after, size_t max, uint64_t now_ms,
                                               const std::function<void(const entry&)>& f);
  /// One live key picked at random (RANDOMKEY), pending writes included,
  /// without committing: a random position between the first and the last
  /// key, then the next live record (wrapping around). Not uniform over keys
  /// (keys after a wide gap are likelier), but every live key can come out.
  /// `rnd` supplies random 64-bit numbers. nullopt when L3 holds no live key.
  result<std::optional<std::string>> random_key(uint64_t now_ms,
                                                const std::function<uint64_t()>& rnd);
  /// The first and the last committed LMDB key (long keys in their stored,
  /// hashed form); nullopt when nothing is committed.
  result<std::optional<std::pair<std::string, std::string>>> key_bounds();
  /// The highest version L3 ever held (committed or pending); persisted in
  /// kura.meta by every commit, so it is cheap at open.
  version max_version() const;
  /// The write-ahead log (tiers/wal.hpp): every operation of log batches up
  /// to `batch` is in this environment once the next commit is done (kept in
  /// kura.meta "wal_batch" by every commit), so a replay skips them.
  void set_log_mark(uint64_t batch);
  /// The mark as set (committed by the next commit; read back at open).
  uint64_t log_mark() const;

  // -- encryption at rest --

  /// Whether records are sealed (a keyring was configured).
  bool encrypted() const;
  /// Key rotation: from now on new records are sealed with `keys`' active key.
  /// `keys` must open this environment (it holds a key that sealed it), else
  /// errc::bad_key and nothing changes. Restarts the re-seal pass.
  status rotate_keys(std::shared_ptr<const crypto::keyring> keys);
  /// Rewrites up to `budget` records sealed with another key under the active
  /// key (one write transaction; sequences and indexes are kept). Call until
  /// done; then the store secret's copies under other keys are dropped, and
  /// those keys are no longer needed to open the environment.
  result<reseal_progress> reseal_step(size_t budget);
  /// Key ids this environment still holds sealed data or secrets under.
  std::vector<uint32_t> key_ids() const;
  /// The bytes for_each() and scan() order keys by: the key itself (long keys
  /// hashed), or with encryption its keyed hash. A listing that resumes after
  /// key A skips exactly the keys whose order_key is <= order_key(A).
  std::string order_key(std::string_view key) const;

  // -- erasure (KURA.ERASE; tiers/l3_erase.cpp) --

  /// Removes every record whose key satisfies `match` (tombstones and expired
  /// records included) and commits; returns how many records it removed.
  /// Bounded memory: the keys are collected in slices of a scan.
  result<uint64_t> erase_where(const std::function<bool(std::string_view)>& match);
  /// Removes the records of `keys` (tombstones included) and commits;
  /// returns how many of them L3 held.
  result<uint64_t> erase_keys(const std::vector<std::string>& keys);
  /// Rewrites data.mdb as a rebuilt copy (every record inserted afresh, page
  /// gaps zeroed; tiers/l3_erase.cpp explains why a compacting copy is not
  /// enough) and reopens it, so that the bytes of removed records leave the
  /// file. Commits and syncs first; costs one pass over the environment. The
  /// copy is verified before it replaces the file; on error the old file
  /// stays in use.
  status compact_rewrite();
  /// The configuration the environment runs with (the active keyring
  /// included, after a key rotation).
  l3_config current_config() const;
  /// The clock given at open.
  const clock& clock_source() const;

private:
  /// stats() and quick_stats(): the committed figures, the record count
  /// adjusted by `pending_delta` (called only with a pending batch).
  tier_stats committed_stats(const std::function<int64_t(MDB_txn*)>& pending_delta) const;
  /// Commits, syncs and closes the environment (compact_rewrite reopens it).
  void close_environment();

public:
  // -- introspection (tests, metrics) --

  /// LMDB write transactions committed since open (batches, sweeps, clears).
  uint64_t commits() const;
  /// Current LMDB map size (grows on MAP_FULL up to map_size_max).
  uint64_t map_size() const;
  /// Estimated footprint the size budget is enforced on (kept <= 2/3 of it).
  uint64_t budget_bytes_used() const;

private:
  struct impl;
  explicit l3_lmdb(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// A random string between `first` and `last` (or the empty string, "before
/// the first key") for a seek that picks a random key (RANDOMKEY): random in
/// the first byte where they differ, then random within the range of bytes
/// they use after it. Always shorter than l3_format::lkey_long_size.
std::string random_position(const std::string& first, const std::string& last,
                            const std::function<uint64_t()>& rnd);

} // namespace kura
