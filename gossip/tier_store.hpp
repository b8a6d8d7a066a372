// The replicated store over the real tiers: L3 (LMDB) and L4 (the archive),
// synchronously, for the cluster core (gossip::node) in one thread -- tests run
// kura-sim seeds on it, and an embedded single-threaded node can use it as is.
// (kura-node's tiers live in actors; its coordinator calls the same tier
// methods -- l3_lmdb::apply/get_versioned/collect/scan, archive::apply/
// held_version/scan_keys -- through them.)
//
// What it holds. L3 runs in cluster mode (l3_config::tombstones): deletes are
// tombstone records, expired entries become tombstones of their version, and
// every entry L3 demotes to L4 leaves a tombstone "floor" of its version
// behind. So L3 alone answers "what version do we hold" for every key, and the
// value of a demoted key is read from L4 when L4's copy has the floor's
// version. A newer write lands in L3 and removes L4's older copy (a key lives
// in one persistent tier).
//
// Digests and listing. An in-memory index (ring position, key) -> version,
// covering L3 and L4, is built at open by one pass over L3 (l3_lmdb::scan) and
// the L4 key iterator (archive::scan_keys), and kept up to date by apply() and
// erase(); it feeds the base class's incremental digests and the bucket
// listings, so neither a sync round nor a listing scans the tiers. A hash
// table beside it (gossip/position_index.hpp) finds a key's node in about one
// probe for get/version_of/apply/erase. Cost: about key bytes + 80 bytes of
// memory per key held for the map, plus 12-24 bytes for the table.
//
// get()/for_each() read the tiers (an entry is read when it is shipped);
// get() can keep what it read in a memory cache in front of them
// (set_read_cache; kura-node: its memory tier, --memory-bytes), and apply()
// puts every value it stores there too (write-through: a key written is read
// back from memory, not from L3).
//
// Background commits (kura-node: `background` at open). LMDB commits with
// their fdatasync must not run on the thread that serves clients. In this mode
// a worker thread owns the writes to L3 and L4: apply()/erase() decide
// last-writer-wins on the in-memory index, record the change in an in-memory
// overlay (what get() answers until the worker applied it to L3's pending
// batch), queue it and return; the worker applies queued changes in order,
// lets L3 group-commit (batch-max-writes / batch-max-age), runs L3's and L4's
// expiry sweeps once a second and commits everything on flush(). A reply may
// therefore go out once the write is applied in memory; what a kill -9 can
// lose is the queue plus L3's pending batch on that node (docs/cluster.md).
//
// Write-ahead log (kura-node: kura.l3.wal, a `log` at open; background mode
// only). apply() and erase() also append the change to tiers/wal (the lone
// node's L3 log: values and tombstones with their version and flags, erases
// with the version they remove), numbered by the change's sequence number,
// before they return. The log's writer thread writes it to its segment every
// few ms, so what a kill -9 can lose is what the log had not written yet
// (uncommitted()), not the queue and L3's batch, and L3 can commit in large
// batches (the lone node's batch-max-age and batch-max-writes). Every L3
// commit records the last change it holds (l3_lmdb::set_log_mark), and the
// worker retires the log's segments up to it. At open, the log's records
// after L3's mark are applied to L3 as the worker applies changes, L3 and L4
// are committed and the log emptied, and only then is the index built.
// Reads that miss the overlay take a lock the worker holds while it applies a
// chunk of writes or commits. The queue is bounded (`max_queue`): when the
// disk falls that far behind, apply() waits for room. apply() wakes the worker
// only when the queue reaches `wake_at` changes; tick() wakes it for what is
// queued below that (and the worker wakes on its own at least once a second),
// so a slow stream of writes costs no thread wake-up per write (session 23).
// Thread safety: the store is used by one owner thread; the worker is internal.
#pragma once

#include "archive/archive.hpp"
#include "archive/job_gate.hpp"
#include "gossip/position_index.hpp"
#include "gossip/store.hpp"
#include "tiers/clock.hpp"
#include "tiers/l3_lmdb.hpp"
#include "tiers/memory_cache.hpp"
#include "tiers/seal.hpp"
#include "tiers/wal.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

namespace kura::gossip {

/// Sees the reads and writes of a tier_store (kura-node: the predictor's tap,
/// actors/predictor_cluster.hpp). Called on the store's owner thread, on the
/// hot path: an implementation does next to nothing per call (the
/// predictor's tap: a countdown, 1-in-N sampled events copied to a batch).
class access_tap {
public:
  virtual ~access_tap() = default;
  /// A read get() answered with a live value: `tier` 0 = the read cache's
  /// window (L1), 1 = its main region (L2), 2 = L3 (or a write not yet
  /// committed), 3 = L4 (predictor::access_tier's values); `size`: the value's bytes.
  virtual void on_read(std::string_view key, uint64_t now_ms, uint8_t tier, size_t size) = 0;
  /// A write apply() stored (a value, not a delete), as owner or replica;
  /// `ttl_ms` 0 = none.
  virtual void on_write(std::string_view key, uint64_t now_ms, uint64_t ttl_ms, size_t size) = 0;
};

class tier_store final : public replica_store {
public:
  /// Opens L3 (forced into cluster mode) and, when `l4` is given, the archive
  /// below it (L3's eviction victims go there), then builds the index.
  static result<std::unique_ptr<tier_store>> open(l3_config l3,
                                                  std::optional<archive::archive_config> l4,
                                                  const clock& clk,
                                                  uint64_t ring_seed = ring_config{}.seed);
  /// The same over an archive opened by the caller (kura-node: its settings);
  /// `l4` may be null. The store must be the archive's only user.
  /// `background`: commit on a worker thread (see the file comment).
  /// `never_archive`: keys L3's eviction drops instead of archiving
  /// (kura.security.sensitive-patterns); unset: every victim is archived.
  /// `log`: the write-ahead log's settings (needs `background`; see the file
  /// comment); its records are replayed first, `replayed` gets what the
  /// replay found.
  static result<std::unique_ptr<tier_store>>
  open(l3_config l3, std::shared_ptr<archive::archive> l4, const clock& clk,
       uint64_t ring_seed = ring_config{}.seed, bool background = false,
       std::function<bool(std::string_view)> never_archive = {},
       std::optional<wal_config> log = std::nullopt, wal_replay_stats* replayed = nullptr);
  ~tier_store() override;

  bool apply(const entry& e) override;
  /// The value goes back below its floor, into L4 (a floor without the
  /// archive is an expired value's: not restored).
  bool restore(const entry& e) override;
  std::optional<entry> get(std::string_view key) const override;
  /// A read cache hit is answered as a view of the cache's node (no copy).
  std::optional<entry_ref> get_ref(std::string_view key, entry& scratch) const override;
  /// From the in-memory index: no disk read, no lock.
  std::optional<version> version_of(std::string_view key) const override;
  /// From the index when it can tell (a tombstone, or a value not expired).
  bool holds_tombstone(std::string_view key) const override;
  /// "overlay=... l3=... l4=...": the record in each (version; a tombstone
  /// or a value). Takes the tiers' lock.
  std::string where(std::string_view key) const override;
  /// Removes the key from L3 and L4 (tombstone collection, handoff).
  bool erase(std::string_view key) override;
  size_t size() const override { return index_.size(); }
  void for_each(const visitor& f) const override;
  void for_each_in_buckets(uint16_t first, uint16_t last, const visitor& f) const override;
  void for_each_key_from(uint64_t from, const key_visitor& f) const override;
  /// From the index: no tier is read (values restored from the archive at
  /// open count their bytes as stored there, see build_index).
  void for_each_key_sized_from(uint64_t from, const sized_key_visitor& f) const override;

  /// Group commits that are due, bounded expiry sweeps (call on a timer).
  status tick(size_t sweep_budget = 256) override;
  /// Commits everything now.
  status flush() override;

  /// KURA.ERASE on a cluster node (node/cluster_erase.hpp): commits what is
  /// queued, then rewrites L3's data.mdb as a rebuilt copy, every archive
  /// segment that holds dead records (`erased` names the erased keys, whose
  /// dictionary training samples go; `retire_dictionaries`: every
  /// dictionary-compressed segment too) and the archive index, so that the
  /// bytes of removed records leave the files (docs/security.md). Runs on the
  /// owner's thread and holds the tiers while it runs. Returns the archive
  /// segments rewritten.
  result<uint64_t> rewrite_for_erase(const std::function<bool(std::string_view)>& erased,
                                     bool retire_dictionaries);
  /// Whether L4 holds `key` (any version).
  bool archived(std::string_view key) const;

  /// The archive's compactor runs beside this store (kura-node in cluster
  /// mode: the L4 actors' scheduled compaction, retention and expiry sweeps,
  /// `kura compact`): KURA.ERASE's rewrite and the re-seal take `gate` and
  /// abort the compactor's job first (archive/job_gate.hpp), and the worker
  /// leaves L4's expiry sweeps to the compactor. Owner thread, before use.
  void set_job_gate(std::shared_ptr<archive::job_gate> gate) { gate_ = std::move(gate); }

  // -- key rotation (`kura rotate-key` on a cluster node, node/cluster_rotate.hpp) --

  /// Progress of the re-seal that rotate_keys() started.
  struct reseal_report {
    reseal_progress l3;              ///< L3 records visited / rewritten
    archive::compaction_progress l4; ///< archive segments re-sealed
    bool l4_started = false;         ///< the L4 pass runs after L3's
    bool done = false;               ///< both passes finished, old secrets dropped
  };
  /// From now on L3 and L4 seal new data with `keys`' active key (each tier
  /// must be open under a key `keys` holds: else bad_key, and that tier keeps
  /// its keyring), and a re-seal pass starts (restarts) over both tiers.
  /// Commits what is queued first. Runs on the owner's thread; holds the
  /// tiers while it runs.
  status rotate_keys(std::shared_ptr<const crypto::keyring> keys);
  /// One slice of the re-seal: up to `l3_records` L3 records rewritten in one
  /// transaction, or (once L3 is done) up to `l4_bytes` of archive segments
  /// compacted under the active key. When both are done, the store secrets'
  /// copies under older keys are dropped: those keys no longer open anything
  /// and may leave the key file. Holds the tiers for one slice, so reads and
  /// the worker's commits go on between slices. invalid_argument when no
  /// rotation was started.
  result<reseal_report> reseal_step(size_t l3_records, uint64_t l4_bytes);
  /// Whether a re-seal was started and is not done.
  bool resealing() const { return reseal_.has_value() && !reseal_->done; }

  /// The last I/O error met by apply/erase/get (they answer false/nullopt).
  /// With background commits, the worker's errors come out of tick()/flush().
  const std::optional<error>& last_error() const { return last_error_; }

  /// The tiers, for tests and tools (not while background commits run).
  l3_lmdb& l3() { return *l3_; }
  archive::archive* l4() { return l4_.get(); }

  /// kura.retention.max-age (0: none): every value read out of the store
  /// (get, for_each, listings) expires at most `ms` after its version's
  /// write time, so an entry written before the cap was set is never served
  /// once it is that old (node/cluster_security.hpp sweeps it out of the
  /// tiers). Owner thread, before use.
  void set_max_age(uint64_t ms) { max_age_ms_ = ms; }

  /// Keeps up to `bytes` (0: none) of the live entries get() read from the
  /// tiers in a memory cache in front of them: kura's memory tier (L1 + L2,
  /// W-TinyLFU, tiers/memory_cache.hpp), and every live value apply()
  /// stores (write-through). A cached entry is served only while its version
  /// is the one the index holds for the key, apply() replaces the key's cached
  /// copy and erase() drops it, so the cache never answers anything but what
  /// the tiers would (never an older version). Owner thread only.
  void set_read_cache(uint64_t bytes);
  /// Reads the cache answered, and reads that went to the overlay or tiers.
  uint64_t cache_hits() const { return cache_hits_; }
  uint64_t cache_misses() const { return cache_misses_; }
  /// Bytes the cache uses (0 without one).
  uint64_t cache_bytes() const;

  // -- the predictor (kura-node, actors/predictor_cluster.hpp) ---------------------

  /// Reports get()'s reads and apply()'s writes to `tap` (null: none).
  /// get() serves every read of this node's data: clients' reads here and
  /// those other nodes fetch (their clients' reads), and also the reads of
  /// anti-entropy repairs, hand-offs and range streams, which are rare next
  /// to them. Owner thread only; `tap` must outlive its installation.
  void set_tap(access_tap* tap) { tap_ = tap; }
  /// What prewarm() did with a key.
  enum class prewarm_outcome : uint8_t {
    loaded,   ///< read from L3/L4 (or the overlay) into the read cache
    resident, ///< the read cache holds it already
    absent,   ///< no live value here (never held, deleted, expired)
    refused,  ///< no read cache, or the cache did not take it (too big)
    failed    ///< the tiers' read failed (last_error())
  };
  /// Loads `key` into the read cache as a predicted read
  /// (memory_cache::put_predicted: into L2's probation when it has room,
  /// else like any new key); `bytes` gets key + value bytes when loaded. Not
  /// a client read: the tap does not see it. Owner thread only.
  prewarm_outcome prewarm(std::string_view key, uint64_t& bytes);
  /// Whether the read cache holds `key` (no side effects).
  bool cached(std::string_view key) const;
  /// Drops `key` from the read cache only (L3/L4 keep it, as after an
  /// eviction); true when the cache held it.
  bool drop_cached(std::string_view key);

  bool background() const { return worker_.joinable(); }
  /// Changes queued for the worker or in the overlay (background mode).
  size_t unapplied() const {
    std::lock_guard<std::mutex> lk(q_mu_);
    return static_cast<size_t>(next_seq_ - std::min(applied_seq_, next_seq_));
  }
  /// Changes not committed to LMDB yet: unapplied() plus the writes in L3's
  /// batch (background mode; the worker publishes the latter after each
  /// round). 0: everything is in LMDB. Without the write-ahead log, what a
  /// kill -9 could still lose here.
  size_t uncommitted() const { return unapplied() + l3_pending_.load(); }
  /// With the write-ahead log, what a kill -9 could still lose here: its
  /// records not yet written to its file (0 without the log).
  size_t unwritten() const {
    return wal_
               ? static_cast<size_t>(wal_->appended() - std::min(wal_->written(), wal_->appended()))
               : 0;
  }
  /// The write-ahead log (null: none).
  const wal* log() const { return wal_.get(); }
  /// Worker statistics (background mode): LMDB batches committed by it and
  /// the time it spent applying and committing.
  struct worker_stats {
    uint64_t applied = 0, rounds = 0, busy_us = 0;
  };
  worker_stats stats_of_worker() const;
  /// What this node holds, per tier (INFO cluster, /metrics): keys in the
  /// index (values and tombstones), the memory read cache, L3 and L4
  /// (entries and bytes, as their stats() count them); with `kinds` also
  /// the tombstones and the values with an expiry (a walk of the index).
  /// Owner thread; takes the tiers' lock (waits for a commit in progress).
  struct holdings {
    uint64_t keys = 0, tombstones = 0, expires = 0;
    tier_stats memory, l3, l4;
    tier_stats memory_l1, memory_l2; ///< the memory tier's window (L1) and main region (L2)
    bool has_l4 = false;
  };
  holdings report_holdings(bool kinds) const;
  /// Bound on queued changes before apply() waits (background mode).
  static constexpr size_t max_queue = 65'536;
  /// Queued changes at which apply() wakes the worker (below it, tick() does).
  static constexpr size_t wake_at = 256;

private:
  tier_store(std::unique_ptr<l3_lmdb> l3, std::shared_ptr<archive::archive> l4, const clock& clk,
             uint64_t ring_seed, std::function<bool(std::string_view)> never_archive);
  status build_index();
  /// Applies the log's records after L3's mark (open, before build_index),
  /// commits L3 and L4, empties the log and opens it for appending.
  status recover_log(const wal_config& cfg, wal_replay_stats* replayed);
  /// Closes the log's active segment and deletes every segment whose changes
  /// L3 committed, now (owner thread, after a flush).
  status rotate_log();
  /// `tier` (when given) gets where the entry came from: 2 = L3 or the
  /// overlay, 3 = L4 (access_tap::on_read).
  std::optional<entry> read(std::string_view key, const version& want,
                            uint8_t* tier = nullptr) const;
  /// concurrent: read L3's committed records without tiers_mu_ (the owner
  /// thread while the worker runs, for keys the overlay does not hold).
  std::optional<entry> read_tiers(std::string_view key, const version& want, bool concurrent,
                                  uint8_t* tier = nullptr) const;
  bool apply_tiers(const entry& e, bool known);
  /// Erases the archive copies that writes superseded (apply_tiers), once
  /// L3 committed those writes: at once when nothing is pending in L3, else
  /// after committing L3 when `commit_l3` or the list is long. Tiers held.
  void drop_superseded(bool commit_l3);
  static constexpr size_t max_superseded = 4096;
  /// (key, the version that superseded its archive copy), tiers held.
  std::vector<std::pair<std::string, version>> l4_superseded_;
  /// L3's erase now (in its batch); the archive's copies up to `upto` once
  /// L3 committed it (drop_superseded).
  bool erase_tiers(std::string_view key, const version& upto);
  // background mode
  struct change {
    entry e; ///< for an erase: the key only
    bool erase = false;
    bool known = false;   ///< the key was in the index before (L4 may hold an older copy)
    bool restore = false; ///< the value of L3's floor, into L4 (restore())
    uint64_t seq = 0;
  };
  void start_worker();
  void run_worker();
  void enqueue(change c);

  std::unique_ptr<l3_lmdb> l3_;
  std::shared_ptr<archive::archive> l4_;
  const clock& clk_;
  std::function<bool(std::string_view)> never_archive_;
  uint64_t max_age_ms_ = 0;
  std::optional<reseal_report> reseal_;     ///< the running (or last) re-seal
  bool l4_reseal_job_ = false;              ///< L4's re-seal job is the archive's running job
  std::shared_ptr<archive::job_gate> gate_; ///< shared with the L4 compactor (set_job_gate)
  /// Takes the gate (when there is one); the archive's other driver is
  /// between steps while it is held.
  std::unique_lock<std::mutex> hold_gate() const {
    return gate_ ? std::unique_lock<std::mutex>(gate_->mu) : std::unique_lock<std::mutex>();
  }
  /// With the gate held: aborts the other driver's job (it sees `why`).
  void preempt_jobs(const char* why);
  /// reseal_step with the gate and the tiers held.
  result<reseal_report> reseal_slice(size_t l3_records, uint64_t l4_bytes);
  /// Lowers a value's expiry to its write time + max_age_ms_.
  template <class E> // entry, entry_ref
  void cap_age(E& e) const {
    if (max_age_ms_ == 0 || e.is_tombstone())
      return;
    uint64_t cap = e.ver.ms() + max_age_ms_;
    if (e.expiry_ms == 0 || e.expiry_ms > cap)
      e.expiry_ms = cap;
  }
  /// get()'s two halves: the read cache's answer when it holds version
  /// `want` (counted, tapped), and the tiers' read after a miss (cached,
  /// counted, tapped).
  std::optional<entry_ref> cache_hit(std::string_view key, const version& want, uint64_t now) const;
  std::optional<entry> read_missed(std::string_view key, const version& want, uint64_t now) const;
  struct meta {
    version ver;
    uint8_t flags = 0;
    uint32_t value_bytes = 0; ///< (capped at 4 GiB - 1; fits the padding)
    uint64_t expiry_ms = 0;
  };
  static meta meta_of(const entry& e) {
    return meta{e.ver, e.flags, clamp_bytes(e.is_tombstone() ? 0 : e.value.size()),
                e.is_tombstone() ? 0 : e.expiry_ms};
  }
  static uint32_t clamp_bytes(uint64_t n) {
    return static_cast<uint32_t>(std::min<uint64_t>(n, UINT32_MAX));
  }
  /// (ring position, key) order; transparent, so that a lookup by
  /// (position, string_view) does not copy the key into a std::string (an
  /// allocation per lookup for keys longer than 15 bytes, several per
  /// replicated write).
  struct index_less {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      if (a.first != b.first)
        return a.first < b.first;
      return std::string_view(a.second) < std::string_view(b.second);
    }
  };
  using index_map = std::map<std::pair<uint64_t, std::string>, meta, index_less>;
  index_map index_;
  /// key -> its node of index_ in about one probe (gossip/position_index.hpp):
  /// every get, version_of, apply and erase looks up here; index_'s order
  /// serves the digests and range listings.
  position_index<index_map> by_key_{index_};
  index_map::iterator find_key(std::string_view key) const {
    return by_key_.find(position(key), key);
  }
  mutable std::optional<error> last_error_;
  // The read cache (set_read_cache), owner thread only.
  mutable std::unique_ptr<memory_cache> cache_;
  mutable uint64_t cache_hits_ = 0, cache_misses_ = 0;
  access_tap* tap_ = nullptr; ///< set_tap, owner thread only

  // Background mode. overlay_ and next_seq_ belong to the owner thread.
  struct shadow {
    entry e;
    bool erased = false;
    uint64_t seq = 0;
  };
  std::unordered_map<std::string, shadow> overlay_;
  uint64_t next_seq_ = 0;
  mutable std::mutex tiers_mu_; ///< l3_ and l4_ while the worker runs
  mutable std::mutex q_mu_;     ///< everything below
  std::condition_variable q_cv_, room_cv_, done_cv_;
  std::vector<change> queue_;
  uint64_t applied_seq_ = 0;
  /// Changes up to here are committed in L3 (and L4): the owner reads the
  /// tiers without the worker's lock only for keys whose last change is
  /// committed, so the overlay keeps every change until then.
  uint64_t committed_seq_ = 0;
  /// committed_seq_ at tick()'s last walk of the overlay (owner thread): the
  /// overlay is walked only when the worker committed more since.
  uint64_t overlay_dropped_seq_ = 0;
  std::atomic<size_t> l3_pending_{0}; ///< L3's uncommitted batch, after the worker's last round
  uint64_t flush_req_ = 0, flush_done_ = 0;
  bool stop_ = false;
  std::optional<error> worker_error_;
  worker_stats wstats_;
  std::thread worker_;
  std::unique_ptr<wal> wal_; ///< write-ahead log (appends: owner thread; retire: worker)
  std::string wal_dir_;
};

} // namespace kura::gossip
