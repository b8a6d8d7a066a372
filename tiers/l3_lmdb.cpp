// L3 on LMDB. How it works, and why:
//
// Layout. One LMDB environment (data.mdb + lock.mdb in cfg.path) with three named
// databases: kura.main (LMDB key -> record: header with checksum, recency
// stamp + value, see l3_format.hpp),
// kura.exp (expiry ms + stamp -> LMDB key, soonest first: the active expiry
// order) and kura.meta (format marker, estimated footprint, next stamp). All
// three change in the same write transaction, so they never disagree after a
// crash. A write costs one B-tree insert (two with an expiry).
//
// Write-behind with group commit. put()/erase() only touch `pending`, a hash
// map from key to the latest operation (put or delete) on it. get() looks there
// first, so a write is visible at once. The batch commits as ONE write
// transaction when it holds batch_max_writes operations or batch_max_bytes
// payload bytes, or when maybe_flush() finds it older than batch_max_ms. One
// transaction per batch amortizes LMDB's commit (page writes + meta page) over
// the whole batch. What a commit costs is mostly the pages it copies and writes,
// not the number of writes, so a node runs big batches (kura-node: up to 1M
// writes, an eighth of kura.l3.max-loss-window): repeated writes of a key
// coalesce in `pending`, and the batch is applied in LMDB key order (stamps
// still numbered in write order), so neighbouring updates share pages.
//
// Durability. A commit write()s its pages and then its meta page into the
// page cache; LMDB writes the meta page last, so a process killed mid-commit
// leaves the previous meta in place and the batch is all or nothing. A killed
// process loses nothing committed: the kernel owns those pages. A machine
// crash is another matter, and there the flags decide:
//   fsync_batches (default): MDB_NOMETASYNC. Each commit fdatasyncs its data
//     pages before returning, and the meta page reaches the disk with the next
//     commit's fdatasync (or sync()). The disk never holds a meta page whose
//     pages are missing, so the environment stays intact and loses at most the
//     last batch. Cost: one fdatasync per batch, not per write.
//   !fsync_batches: MDB_NOSYNC. No fsync until sync(). Faster, but ext4 and
//     most filesystems do not keep write order, and LMDB documents that a
//     machine crash can then corrupt the environment.
//   sync_mode: LMDB's full sync on every commit, and every write commits.
//
// Space. LMDB's map is a fixed address range; writing past it fails with
// MDB_MAP_FULL, and that failed transaction is aborted, so the batch simply
// stays pending. We then grow the map (doubling, up to map_size_max) and retry;
// if it cannot grow, the put that triggered the commit is rolled back out of
// the batch and refused with errc::out_of_space; every write accepted earlier
// stays pending and visible. The size budget (max_bytes) is enforced on an
// estimated footprint kept in kura.meta (pages in use react to deletes only when
// B-tree pages merge, so evicting "until pages drop" would over-evict). Over
// budget (the estimate may reach 2/3 of max_bytes: B-tree pages are about 2/3
// full), the least recently used entries are removed in the committing
// transaction (sampled, below) and handed to the eviction listener after the
// commit succeeded; expired ones are dropped instead. When the map is full: grow it, else forget
// touched reads, else commit the pending deletes alone first (they free
// space for the transaction after next) and retry.
//
// Recency. Every record carries a stamp: a sequence number that grows by one
// per write, so the least recently written or read entry has the smallest
// stamp. A write gets a new stamp as it commits. A read with touch=true of a
// committed entry only notes the key (`touched`, at most batch_max_writes
// keys, no I/O); the next commit gives those entries new stamps in the same
// transaction (the record's stamp field rewritten, and its kura.exp key). So
// reads cost no extra transaction, and without writes there is no eviction
// that the order could matter for. Records above touch_max_record bytes keep
// their place: rewriting a 64 MiB value to note a read is not cheap.
//
// Eviction is sampled, as Redis samples its keys (kura-l3 4 and earlier kept
// an exact order in a second B-tree, kura.seq, which cost a second insert
// and delete per write). A clock hand walks kura.main in key order (key
// order is unrelated to recency); for each victim it reads the headers of
// the next `sample_per_victim` records into a pool of the `pool_max` oldest
// candidates seen, and the oldest candidate goes. Expired records met on the
// way go first. A candidate whose record changed since it was sampled (a
// newer stamp) or is gone is skipped. When the environment holds at most
// sample_per_victim records every record is sampled: the order is exact. The
// pool lives in memory only; the hand starts at the first key after a
// restart.
//
// Opening. A file that does not start with LMDB's meta page magic is foreign; a
// meta page that LMDB's own checks accept but that points past the end of the
// file (a truncated copy) would make LMDB fault on the mmap, so we check that
// before LMDB maps it, and (verify_on_open) walk every tree with pread to
// check what LMDB would otherwise trust (l3_verify.hpp). An LMDB environment
// without kura.meta is another program's. Damage below the tree structure (a
// value, a key, a record header) fails the record checksum on read: the
// record reads as errc::corrupt, and a commit that meets it removes it rather
// than failing, so one bad record never blocks writes.
#include "tiers/l3_lmdb.hpp"

#include "tiers/l3_format.hpp"
#include "tiers/l3_verify.hpp"

#include <lmdb.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace kura {

namespace fmt = l3_format;

namespace {

// -- helpers ----------------------------------------------------------------------

MDB_val as_val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

std::string_view as_view(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

/// Maps an LMDB (or errno) return code to a kura error.
error lmdb_error(int rc, const std::string& what) {
  errc code = errc::io_error;
  switch (rc) {
  case MDB_MAP_FULL:
    code = errc::out_of_space;
    break;
  case MDB_CORRUPTED:
  case MDB_PAGE_NOTFOUND:
  case MDB_PANIC:
  case MDB_INVALID:
    code = errc::corrupt;
    break;
  case MDB_VERSION_MISMATCH:
  case MDB_INCOMPATIBLE:
    code = errc::foreign_file;
    break;
  default:
    break;
  }
  return error{code, what + ": " + mdb_strerror(rc)};
}

/// Owns a write (or read) transaction; aborts unless committed.
struct txn_guard {
  MDB_txn* txn = nullptr;
  ~txn_guard() {
    if (txn)
      mdb_txn_abort(txn);
  }
  int commit() {
    int rc = mdb_txn_commit(txn);
    txn = nullptr; // committed or freed by LMDB either way
    return rc;
  }
};

} // namespace

// -- impl -------------------------------------------------------------------------

struct l3_lmdb::impl {
  struct op {
    bool del = false;
    /// A put_view: the key and value are vkey and vvalue (bytes the batch
    /// does not own: `bufs` or put_view's caller keep them), e.key and
    /// e.value are empty.
    bool viewed = false;
    uint64_t order = 0; // when it was written: commits keep write order
    entry e;            // for puts; e.key is also set for deletes
    std::string_view vkey, vvalue;
    std::string_view key() const { return viewed ? vkey : std::string_view{e.key}; }
    std::string_view value() const { return viewed ? vvalue : std::string_view{e.value}; }
    size_t payload() const { return key().size() + value().size(); }
    /// The entry with its key and value (a copy).
    entry full() const {
      entry c = e;
      if (viewed) {
        c.key.assign(vkey);
        c.value.assign(vvalue);
      }
      return c;
    }
    /// e takes its own copies of the key and value (before e is changed).
    void own() {
      if (!viewed)
        return;
      e.key.assign(vkey);
      e.value.assign(vvalue);
      viewed = false;
      vkey = vvalue = {};
    }
    /// stats(): whether the key had a committed record, as seen at commit
    /// number known_at - 1 (0 = not looked up); valid until the next write
    /// transaction, so each pending key costs one lookup per commit window,
    /// not one per stats() call.
    mutable uint64_t known_at = 0;
    mutable bool known_committed = false;
  };

  l3_config cfg;
  const clock& clk;
  MDB_env* env = nullptr;
  MDB_dbi main = 0, exp = 0, meta = 0;
  MDB_txn* rtxn = nullptr; // reused read transaction (reset between uses)
  // get_committed_concurrent's own read transaction (one other thread), and
  // the lock that keeps it out of a map growth (mdb_env_set_mapsize wants no
  // transaction active in the process).
  MDB_txn* crtxn = nullptr;
  std::shared_mutex map_mu;
  uint32_t psize = 4096;
  size_t nodemax = 2038;
  uint64_t budget = 0; // max_bytes: on the bytes LMDB pages really use
  uint64_t cur_map = 0;
  uint64_t next_seq = 1;
  uint64_t est_bytes = 0; // committed estimated footprint (mirrors kura.meta)
  version max_ver;        // highest version held (mirrors kura.meta max_version)
  uint64_t log_mark = 0;  // write-ahead log batch applied (kura.meta wal_batch)

  std::unordered_map<std::string, op> pending;
  /// The bytes of the pending put_view ops (keep_buffers), kept until the
  /// batch is next empty.
  std::vector<std::string> bufs;
  std::unordered_set<std::string> touched; // read since the last commit
  static constexpr size_t touch_max_record = 64 * 1024;
  uint64_t pending_bytes = 0;
  uint64_t batch_start_ms = 0;
  uint64_t op_counter = 0;

  uint64_t n_commits = 0;
  mutable tier_stats st;

  // stats()'s live-entry count of the pending batch, kept as the batch grows
  // instead of walking it on every call (under load the batch holds up to a
  // loss window of writes, and the L3 actor publishes every 20 ms). Valid
  // while delta_ok and no commit happened since (n_commits == delta_commits);
  // otherwise stats() walks the whole batch once and starts over.
  mutable int64_t live_delta = 0;           ///< sum of live_change() of looked-up ops
  mutable std::vector<const op*> unchecked; ///< ops added since, not looked up yet
  mutable uint64_t delta_commits = 0;
  mutable bool delta_ok = false;
  /// The last commit's net change of the record count per key it applied
  /// (new puts minus deletes that found a record, over its keys): what
  /// quick_stats() assumes of the pending batch's keys, which it does not
  /// look up. Learnt by apply_one, which reads each key's record anyway.
  int64_t last_net = 1;
  uint64_t last_keys = 1;
  /// Pending puts with an expiry were added since the batch was last empty
  /// (sweep_expired walks the batch only then).
  bool pending_expiring = false;
  /// What `o` changes in the committed entry count once applied.
  static int64_t live_change(const op& o) {
    if (o.del)
      return o.known_committed ? -1 : 0;
    return o.known_committed ? 0 : 1;
  }
  /// The pending batch changed in a way add_pending does not track.
  void pending_changed() const noexcept { delta_ok = false; }
  /// The pending batch was emptied.
  void forget_pending() {
    bufs.clear();
    unchecked.clear();
    live_delta = 0;
    delta_ok = false;
    pending_expiring = false;
  }

  // Encryption at rest (nullptr: plaintext). The store secret's sealed copies
  // by key id, as kura.meta holds them ("secret.<id>").
  std::unique_ptr<fmt::sealing> sealer;
  std::map<uint32_t, std::string> sealed_secrets;
  const fmt::sealing* sp() const { return sealer.get(); }
  // The re-seal pass after a key rotation: the LMDB key to resume after.
  std::optional<std::string> reseal_after;
  uint64_t reseal_done = 0, reseal_total = 0, resealed = 0;

  impl(l3_config c, const clock& k) : cfg(std::move(c)), clk(k) {}

  ~impl() {
    drop_read_in(rtxn);
    drop_read_in(crtxn);
    if (env)
      mdb_env_close(env);
  }

  // -- footprint ------------------------------------------------------------------

  /// The budget is on bytes really used (pages), but eviction works on the
  /// estimated footprint: pages react to deletes only when they merge, so
  /// evicting "until the page count drops" would evict most of the tier.
  /// B-tree leaves under random inserts and deletes are about two thirds full
  /// (measured: 1.36-1.45 page bytes per estimated byte), so the estimate may
  /// reach two thirds of the budget.
  ///
  /// With encryption at rest LMDB keys are keyed hashes: inserts land at
  /// random places and the eviction order (oldest first) deletes from random
  /// pages, which stay sparse until LMDB merges them below a quarter full.
  /// Measured on the conformance suite's eviction case: about 2.7 page bytes
  /// per estimated byte, so the estimate may reach only a third of the budget.
  l3_fit fit() const { return l3_fit{budget, sealer != nullptr, psize, nodemax}; }
  uint64_t est_limit() const { return fit().limit(); }
  uint64_t footprint(size_t lkey, size_t rec, bool has_exp) const {
    return fit().footprint(lkey, rec, has_exp);
  }
  /// What kura.seq cost per entry in formats 2-4 (taken off est_bytes when
  /// an upgrade drops it).
  static uint64_t seq_footprint(size_t lkey) { return 2 + 8 + 8 + lkey; }

  // -- read transaction -------------------------------------------------------------

  result<MDB_txn*> begin_read() { return begin_read_in(rtxn); }
  /// Renews the reused read transaction in `slot` (rtxn, or crtxn for the
  /// concurrent reader), beginning it the first time.
  result<MDB_txn*> begin_read_in(MDB_txn*& slot) {
    int rc = slot ? mdb_txn_renew(slot) : mdb_txn_begin(env, nullptr, MDB_RDONLY, &slot);
    if (rc != 0) {
      drop_read_in(slot);
      return lmdb_error(rc, "L3 cannot begin a read transaction in " + cfg.path);
    }
    return slot;
  }
  void end_read() { mdb_txn_reset(rtxn); }
  void drop_read() { drop_read_in(rtxn); }
  static void drop_read_in(MDB_txn*& slot) {
    if (slot) {
      mdb_txn_abort(slot);
      slot = nullptr;
    }
  }

  // -- committed state helpers (inside a write txn) ---------------------------------

  /// What remove_committed found.
  enum class rm {
    absent,          ///< no record under the key
    removed,         ///< record and index entry removed (`out` filled if asked)
    corrupt_removed, ///< an undecodable record was removed; its expiry index
                     ///< entry, if any, is left stale (the sweep skips it)
    stale,           ///< the record has another stamp than `want_seq`: kept
  };

  /// Removes the committed record under `lkey` and its expiry index entry.
  /// With `want_seq`, only if the record carries that stamp (an index entry
  /// or an eviction candidate pointing at it may be stale). `keep_main` leaves the kura.main
  /// record for the caller to overwrite. A corrupt record is removed rather
  /// than failing the transaction, so one bad record cannot block every
  /// later commit (a get() of it reports errc::corrupt until then).
  result<rm> remove_committed(MDB_txn* txn, const std::string& lkey, entry* out,
                              std::optional<uint64_t> want_seq = std::nullopt,
                              bool keep_main = false) {
    MDB_val k = as_val(lkey), v;
    int rc = mdb_get(txn, main, &k, &v);
    if (rc == MDB_NOTFOUND)
      return rm::absent;
    if (rc != 0)
      return lmdb_error(rc, "L3 read failed");
    std::string_view rec = as_view(v);
    fmt::header h;
    // a record that fails its checksum may carry a wrong stamp or expiry:
    // removed without touching the index (its stale entry is skipped)
    bool ok = fmt::decode_header(rec, h).ok() && fmt::checksum_ok(lkey, rec, h);
    if (ok && want_seq && h.seq != *want_seq)
      return rm::stale;
    if (ok && out) {
      auto e = fmt::decode_record(lkey, rec, sp());
      if (e)
        *out = std::move(*e);
      else
        ok = false;
    }
    if (!ok) {
      if (!keep_main && (rc = mdb_del(txn, main, &k, nullptr)) != 0)
        return lmdb_error(rc, "L3 cannot delete a corrupt record");
      return rm::corrupt_removed;
    }
    uint64_t fp = footprint(lkey.size(), rec.size(), h.expiry_ms != 0);
    if (h.expiry_ms != 0) {
      std::string ek = fmt::exp_key(h.expiry_ms, h.seq);
      MDB_val ekv = as_val(ek);
      rc = mdb_del(txn, exp, &ekv, nullptr);
      if (rc != 0 && rc != MDB_NOTFOUND)
        return lmdb_error(rc, "L3 cannot delete an expiry index entry");
    }
    if (!keep_main && (rc = mdb_del(txn, main, &k, nullptr)) != 0)
      return lmdb_error(rc, "L3 cannot delete a record");
    est_bytes = est_bytes > fp ? est_bytes - fp : 0;
    return rm::removed;
  }

  status insert_committed(MDB_txn* txn, const std::string& lkey, const entry& e,
                          std::optional<uint64_t> given_seq = std::nullopt) {
    uint64_t s = given_seq ? *given_seq : next_seq++;
    size_t rsz = fmt::record_size(e, sp());
    MDB_val k = as_val(lkey);
    MDB_val v{rsz, nullptr};
    int rc = mdb_put(txn, main, &k, &v, MDB_RESERVE);
    if (rc != 0)
      return lmdb_error(rc, "L3 cannot write a record of " + std::to_string(rsz) + " bytes");
    fmt::encode_record(e, lkey, s, static_cast<char*>(v.mv_data), sp());
    MDB_val lv = as_val(lkey);
    // A tombstone is neither evicted (the sampler skips it) nor expired: it is
    // kept out of kura.exp and leaves only through collect() or erase().
    if (e.expiry_ms != 0 && !e.is_tombstone()) {
      std::string ek = fmt::exp_key(e.expiry_ms, s);
      MDB_val ekv = as_val(ek);
      rc = mdb_put(txn, exp, &ekv, &lv, 0);
      if (rc != 0)
        return lmdb_error(rc, "L3 cannot write an expiry index entry");
    }
    est_bytes += footprint(lkey.size(), rsz, e.expiry_ms != 0);
    return {};
  }

  /// One operation of a key-ordered batch, through one cursor on kura.main:
  /// one B-tree search per key (LMDB starts it in the cursor's leaf when the
  /// key falls inside it, which key order makes likely), and an overwrite
  /// replaces the record where it is. The old record's expiry index entry
  /// goes with it; its checksum is checked only then (hashing every
  /// overwritten value to find an expiry that is not there would cost as
  /// much as writing it). A record whose header does not decode is replaced
  /// or removed like any other (a stale index entry it had is skipped later).
  status apply_one(MDB_txn* txn, MDB_cursor* cur, std::string_view lkey, const op& o,
                   uint64_t stamp, int64_t& net) {
    MDB_val k = as_val(lkey), v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    if (rc != 0 && rc != MDB_NOTFOUND)
      return lmdb_error(rc, "L3 read failed");
    bool found = rc == 0;
    if (found == o.del) // a new record, or a record deleted
      net += o.del ? -1 : 1;
    if (found) {
      std::string_view rec = as_view(v);
      fmt::header h;
      if (fmt::decode_header(rec, h).ok()) {
        bool exp_ok = h.expiry_ms != 0 && fmt::checksum_ok(lkey, rec, h);
        if (exp_ok) {
          std::string ek = fmt::exp_key(h.expiry_ms, h.seq);
          MDB_val ekv = as_val(ek);
          rc = mdb_del(txn, exp, &ekv, nullptr);
          if (rc != 0 && rc != MDB_NOTFOUND)
            return lmdb_error(rc, "L3 cannot delete an expiry index entry");
        }
        uint64_t fp = footprint(lkey.size(), rec.size(), exp_ok);
        est_bytes = est_bytes > fp ? est_bytes - fp : 0;
      }
      if (o.del) {
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
          return lmdb_error(rc, "L3 cannot delete a record");
        return {};
      }
    } else if (o.del) {
      return {};
    }
    const entry& e = o.e; // its key and value: o.key(), o.value() (a put_view reads in place)
    const std::string_view key = o.key(), value = o.value();
    size_t rsz = fmt::record_size(key.size(), value.size(), sp() != nullptr);
    MDB_val nk = as_val(lkey), nv{rsz, nullptr};
    rc = mdb_cursor_put(cur, &nk, &nv, MDB_RESERVE | (found ? unsigned{MDB_CURRENT} : 0u));
    if (rc != 0)
      return lmdb_error(rc, "L3 cannot write a record of " + std::to_string(rsz) + " bytes");
    fmt::encode_record(e, key, value, lkey, stamp, static_cast<char*>(nv.mv_data), sp());
    if (e.expiry_ms != 0 && !e.is_tombstone()) {
      std::string ek = fmt::exp_key(e.expiry_ms, stamp);
      MDB_val ekv = as_val(ek), lv = as_val(lkey);
      if ((rc = mdb_put(txn, exp, &ekv, &lv, 0)) != 0)
        return lmdb_error(rc, "L3 cannot write an expiry index entry");
    }
    est_bytes += footprint(lkey.size(), rsz, e.expiry_ms != 0 && !e.is_tombstone());
    return {};
  }

  status write_meta(MDB_txn* txn) {
    char b[8];
    fmt::put_le(b, est_bytes, 8);
    MDB_val k = as_val("est_bytes"), v{8, b};
    int rc = mdb_put(txn, meta, &k, &v, 0);
    if (rc != 0)
      return lmdb_error(rc, "L3 cannot write its meta record");
    char mv[12];
    fmt::put_le(mv, max_ver.hlc, 8);
    fmt::put_le(mv + 8, max_ver.node, 4);
    MDB_val mk = as_val("max_version"), mvv{12, mv};
    if ((rc = mdb_put(txn, meta, &mk, &mvv, 0)) != 0)
      return lmdb_error(rc, "L3 cannot write its meta record");
    char ns[8];
    fmt::put_le(ns, next_seq, 8);
    MDB_val nk = as_val("next_seq"), nv{8, ns};
    if ((rc = mdb_put(txn, meta, &nk, &nv, 0)) != 0)
      return lmdb_error(rc, "L3 cannot write its meta record");
    if (log_mark != 0) {
      char lm[8];
      fmt::put_le(lm, log_mark, 8);
      MDB_val lk = as_val("wal_batch"), lv{8, lm};
      if ((rc = mdb_put(txn, meta, &lk, &lv, 0)) != 0)
        return lmdb_error(rc, "L3 cannot write its meta record");
    }
    return {};
  }

  /// Gives the committed entry under `lkey` a new (youngest) stamp.
  status retouch(MDB_txn* txn, const std::string& lkey) {
    MDB_val k = as_val(lkey), v;
    int rc = mdb_get(txn, main, &k, &v);
    if (rc == MDB_NOTFOUND || (rc == 0 && v.mv_size > touch_max_record))
      return {};
    if (rc != 0)
      return lmdb_error(rc, "L3 read failed");
    std::string rec{as_view(v)}; // a copy: the put below may move the page
    fmt::header h;
    if (!fmt::decode_header(rec, h).ok() || !fmt::checksum_ok(lkey, rec, h))
      return {}; // corrupt: get() reports it; nothing to reorder
    uint64_t s = next_seq++;
    MDB_val lv = as_val(lkey);
    if (h.expiry_ms != 0) {
      std::string old_ek = fmt::exp_key(h.expiry_ms, h.seq), new_ek = fmt::exp_key(h.expiry_ms, s);
      MDB_val oek = as_val(old_ek), nek = as_val(new_ek);
      rc = mdb_del(txn, exp, &oek, nullptr);
      if (rc != 0 && rc != MDB_NOTFOUND)
        return lmdb_error(rc, "L3 cannot delete an expiry index entry");
      if ((rc = mdb_put(txn, exp, &nek, &lv, 0)) != 0)
        return lmdb_error(rc, "L3 cannot write an expiry index entry");
    }
    fmt::put_le(rec.data() + 24, s, 8);
    MDB_val nv = as_val(rec);
    if ((rc = mdb_put(txn, main, &k, &nv, 0)) != 0)
      return lmdb_error(rc, "L3 cannot rewrite a record");
    return {};
  }

  // -- sampled eviction ------------------------------------------------------------

  /// An eviction candidate: a record as it was sampled.
  struct candidate {
    uint64_t rank = 0;  ///< its stamp; 0 when expired or undecodable: goes first
    uint64_t stamp = 0; ///< its stamp (0 when undecodable)
    std::string lkey;
  };
  static constexpr size_t sample_per_victim = 16;
  static constexpr size_t pool_max = 32;
  std::vector<candidate> pool; // ascending stamps, at most pool_max
  std::string hand;            // the sampler resumes after this LMDB key
  bool hand_set = false;       // false: from the first key

  /// Reads the headers of up to `n` records after the hand (wrapping around
  /// once) into the pool. Tombstones are never candidates.
  status sample(MDB_txn* txn, size_t n, uint64_t now_ms) {
    MDB_cursor* c = nullptr;
    int rc = mdb_cursor_open(txn, main, &c);
    if (rc != 0)
      return lmdb_error(rc, "L3 cannot open a cursor");
    MDB_val k = as_val(hand), v;
    rc = hand_set ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(c, &k, &v, MDB_FIRST);
    if (rc == 0 && hand_set && as_view(k) == hand)
      rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    bool wrapped = false;
    size_t seen = 0;
    while (seen < n) {
      if (rc == MDB_NOTFOUND && !wrapped) {
        wrapped = true;
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        continue;
      }
      if (rc != 0)
        break;
      ++seen;
      std::string_view lkey = as_view(k);
      hand.assign(lkey);
      hand_set = true;
      fmt::header h;
      candidate cand;
      if (fmt::decode_header(as_view(v), h).ok()) {
        if (h.flags & entry_flags::tombstone) {
          rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
          continue;
        }
        bool expired = h.expiry_ms != 0 && h.expiry_ms <= now_ms;
        cand.stamp = h.seq;
        cand.rank = expired ? 0 : h.seq;
      }
      // sampled again (the hand went round): the newer sample replaces it
      for (auto it = pool.begin(); it != pool.end(); ++it)
        if (it->lkey == lkey) {
          pool.erase(it);
          break;
        }
      if (pool.size() < pool_max || cand.rank < pool.back().rank) {
        auto at = std::upper_bound(pool.begin(), pool.end(), cand.rank,
                                   [](uint64_t r, const candidate& x) { return r < x.rank; });
        cand.lkey.assign(lkey);
        pool.insert(at, std::move(cand));
        if (pool.size() > pool_max)
          pool.pop_back();
      }
      rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND)
      return lmdb_error(rc, "L3 cannot walk its records to sample the eviction order");
    return {};
  }

  /// Evicts the (sampled) least recently used entries while over budget.
  status evict_over_budget(MDB_txn* txn, std::vector<entry>& evicted) {
    if (est_bytes <= est_limit())
      return {};
    uint64_t now_ms = clk.now_ms();
    while (est_bytes > est_limit()) {
      if (auto s = sample(txn, sample_per_victim, now_ms); !s)
        return s;
      if (pool.empty())
        break; // nothing evictable (tombstones only)
      candidate victim = std::move(pool.front());
      pool.erase(pool.begin());
      entry e;
      // only if the record still carries the sampled stamp (an undecodable
      // one goes whatever it carries)
      auto r = remove_committed(txn, victim.lkey, &e, victim.stamp);
      if (!r)
        return r.err();
      if (*r != rm::removed)
        continue; // changed since it was sampled, gone, or corrupt (removed)
      // an entry past its expiry is dropped, not demoted to L4 (in cluster
      // mode it leaves a tombstone of its version behind)
      if (e.expired(now_ms)) {
        ++evict_expired;
        if (cfg.tombstones)
          if (auto s = insert_committed(txn, victim.lkey, as_tombstone(std::move(e))); !s)
            return s;
        continue;
      }
      // In cluster mode the demoted entry leaves its version behind as a
      // tombstone floor: whatever happens to the copy below (expiry,
      // retention), an older version cannot come back.
      if (cfg.tombstones)
        if (auto s = insert_committed(txn, victim.lkey, as_tombstone(entry{e})); !s)
          return s;
      evicted.push_back(std::move(e)); // counted even without a listener
    }
    return {};
  }

  /// Pages a batch of writes must leave free in the map: a transaction of
  /// deletes copies pages too (the path to each record, the free list), so
  /// a map filled to the last page could not be emptied. Checked by
  /// allocating them (a reserved value in kura.meta) and freeing them in the
  /// same transaction: LMDB reuses them at once, nothing is written.
  static constexpr size_t headroom_pages = 6;
  status reserve_headroom(MDB_txn* txn) {
    MDB_val k = as_val("headroom"), v{headroom_pages * psize - 64, nullptr};
    int rc = mdb_put(txn, meta, &k, &v, MDB_RESERVE);
    // LMDB zeroes only the last page of a fresh multi-page block; the pages
    // freed here are reused by this transaction's other pages, whose unused
    // bytes would then carry heap garbage (keys in plaintext) into the file.
    if (rc == 0)
      std::memset(v.mv_data, 0, v.mv_size);
    if (rc == 0)
      rc = mdb_del(txn, meta, &k, nullptr);
    if (rc != 0)
      return lmdb_error(rc, "L3 cannot keep room for deletes");
    return {};
  }

  uint64_t evict_expired = 0; // expired entries the eviction pass dropped
  // When the tier below cannot take this commit's victims, the batch is
  // committed once more without evicting (L3 stays over budget for a while,
  // nothing is lost, writes are not held back).
  bool below_failed = false;
  bool keep_victims_once = false;

  /// Applies the pending batch in one write transaction. On success the
  /// batch is cleared and `evicted` holds the capacity victims. On failure
  /// nothing changed (the transaction was aborted) and the batch is intact.
  status commit_once(l3_lmdb& self, std::vector<entry>& evicted, bool& handed_down) {
    handed_down = false;
    uint64_t saved_seq = next_seq, saved_est = est_bytes;
    evict_expired = 0;
    auto fail = [&](status s) {
      next_seq = saved_seq;
      est_bytes = saved_est;
      evict_expired = 0;
      evicted.clear();
      return s;
    };
    txn_guard g;
    int rc = mdb_txn_begin(env, nullptr, 0, &g.txn);
    if (rc != 0)
      return fail(lmdb_error(rc, "L3 cannot begin a write transaction in " + cfg.path));
    // Stamps (the eviction order) follow the order of the puts, so they are
    // numbered in write order first; the records are then applied in LMDB
    // key order, where neighbouring updates share B-tree pages (fewer pages
    // touched and copied per commit than in random order).
    // lkey: the batch's key itself where it is the LMDB key (plaintext,
    // short), else `own` (built in place: the vector never grows, so views
    // of an item's own bytes stay valid)
    struct item {
      std::string_view lkey;
      std::string own;
      const op* o = nullptr;
      uint64_t s = 0;
    };
    std::vector<item> items;
    items.reserve(pending.size());
    for (auto& kv : pending) {
      auto& it = items.emplace_back();
      it.o = &kv.second;
      if (sp() == nullptr && !fmt::is_long_key(kv.first)) {
        it.lkey = kv.first;
      } else {
        it.own = fmt::lmdb_key(kv.first, sp());
        it.lkey = it.own;
      }
    }
    // Both sorts move small records, not the items (a string each), and the
    // key order compares integers first: sorting the items was ~30 % of the
    // L3 thread's instructions per SET (-P 16 -d 32).
    std::vector<uint32_t> at(items.size());
    {
      std::vector<std::pair<uint64_t, uint32_t>> by_order; // (write order, position)
      by_order.reserve(items.size());
      for (uint32_t i = 0; i < items.size(); ++i)
        by_order.emplace_back(items[i].o->order, i);
      std::sort(by_order.begin(), by_order.end()); // the orders are distinct
      for (const auto& [order, i] : by_order)
        if (!items[i].o->del)
          items[i].s = next_seq++;
      // key order: the first 16 bytes as two big-endian words (zero-padded,
      // which orders as the bytes do), the whole keys only when those tie
      struct by_key {
        uint64_t hi, lo;
        uint32_t i;
      };
      std::vector<by_key> keys(items.size());
      for (uint32_t i = 0; i < items.size(); ++i) {
        unsigned char b[16] = {};
        std::memcpy(b, items[i].lkey.data(), std::min<size_t>(16, items[i].lkey.size()));
        uint64_t hi = 0, lo = 0;
        for (int j = 0; j < 8; ++j) {
          hi = hi << 8 | b[j];
          lo = lo << 8 | b[8 + j];
        }
        keys[i] = by_key{hi, lo, i};
      }
      std::sort(keys.begin(), keys.end(), [&](const by_key& a, const by_key& b) {
        if (a.hi != b.hi)
          return a.hi < b.hi;
        if (a.lo != b.lo)
          return a.lo < b.lo;
        return items[a.i].lkey < items[b.i].lkey;
      });
      for (uint32_t i = 0; i < items.size(); ++i)
        at[i] = keys[i].i;
    }
    int64_t net = 0;
    {
      MDB_cursor* cur = nullptr;
      if ((rc = mdb_cursor_open(g.txn, main, &cur)) != 0)
        return fail(lmdb_error(rc, "L3 cannot open a cursor"));
      for (uint32_t i : at)
        if (auto s = apply_one(g.txn, cur, items[i].lkey, *items[i].o, items[i].s, net); !s) {
          mdb_cursor_close(cur);
          return fail(s);
        }
      mdb_cursor_close(cur);
    }
    for (const auto& key : touched)
      if (pending.count(key) == 0)
        if (auto s = retouch(g.txn, fmt::lmdb_key(key, sp())); !s)
          return fail(s);
    if (!keep_victims_once)
      if (auto s = evict_over_budget(g.txn, evicted); !s)
        return fail(s);
    if (std::any_of(items.begin(), items.end(), [](const item& it) { return !it.o->del; }))
      if (auto s = reserve_headroom(g.txn); !s)
        return fail(s);
    if (auto s = write_meta(g.txn); !s)
      return fail(s);
    // With a durability hook (the archive below), victims go down and are
    // committed there before their removal here becomes durable: a crash in
    // between leaves a copy in both tiers, never in neither. If the commit
    // below fails, this transaction is aborted and the victims stay here.
    if (self.on_evict_durable_ && !evicted.empty()) {
      for (const auto& e : evicted) {
        entry copy = e;
        self.notify_evicted(std::move(copy));
      }
      if (auto s = self.on_evict_durable_(); !s) {
        below_failed = true;
        return fail(status{s.code(), "L3 keeps its eviction victims: the tier below could not "
                                     "commit them: " +
                                         s.message()});
      }
      handed_down = true;
    }
    rc = g.commit();
    if (rc != 0)
      return fail(lmdb_error(rc, "L3 cannot commit a batch of " + std::to_string(pending.size()) +
                                     " writes"));
    ++n_commits;
    last_net = net;
    last_keys = items.size();
    return {};
  }

  /// Grows the map after MAP_FULL; false when it may not grow.
  bool grow_map() {
    if (cfg.map_size_max <= cur_map)
      return false;
    uint64_t want = std::min(cur_map * 2, cfg.map_size_max);
    drop_read(); // mdb_env_set_mapsize wants no transaction of ours open
    std::unique_lock<std::shared_mutex> g(map_mu); // nor the concurrent reader's
    drop_read_in(crtxn);
    if (mdb_env_set_mapsize(env, want) != 0)
      return false;
    MDB_envinfo info;
    mdb_env_info(env, &info);
    cur_map = info.me_mapsize;
    return true;
  }

  /// Commits only the pending deletes, then one more small transaction. Why
  /// two: LMDB never reuses a page inside the transaction that freed it, and
  /// pages freed by transaction N become reusable from N+2 on (the last
  /// committed snapshot must stay intact). So when the map is full, deleting
  /// and inserting in one transaction cannot succeed, but deleting first can.
  status commit_deletes() {
    uint64_t saved_est = est_bytes;
    txn_guard g;
    int rc = mdb_txn_begin(env, nullptr, 0, &g.txn);
    if (rc != 0)
      return lmdb_error(rc, "L3 cannot begin a write transaction in " + cfg.path);
    size_t n = 0;
    for (auto& kv : pending) {
      if (!kv.second.del)
        continue;
      auto r = remove_committed(g.txn, fmt::lmdb_key(kv.first, sp()), nullptr);
      if (!r) {
        est_bytes = saved_est;
        return r.err();
      }
      ++n;
    }
    if (n == 0)
      return status{errc::not_found, "no pending deletes"};
    if (auto s = write_meta(g.txn); !s) {
      est_bytes = saved_est;
      return s;
    }
    if (rc = g.commit(); rc != 0) {
      est_bytes = saved_est;
      return lmdb_error(rc, "L3 cannot commit deletes");
    }
    ++n_commits;
    pending_changed();
    for (auto it = pending.begin(); it != pending.end();)
      if (it->second.del) {
        pending_bytes -= it->second.e.key.size();
        it = pending.erase(it);
      } else {
        ++it;
      }
    // the extra transaction that makes the freed pages reusable
    txn_guard g2;
    if (mdb_txn_begin(env, nullptr, 0, &g2.txn) == 0 && write_meta(g2.txn).ok() && g2.commit() == 0)
      ++n_commits;
    return {};
  }

  /// Commits the pending batch. On MAP_FULL: grow the map when allowed, else
  /// forget the touched reads, else commit the pending deletes first (they
  /// free space) and retry once.
  status commit(l3_lmdb& self) {
    if (pending.empty())
      return {};
    std::vector<entry> evicted;
    status s;
    bool reclaimed = false, handed_down = false, reclaimed_below = false;
    for (;;) {
      below_failed = false;
      s = commit_once(self, evicted, handed_down);
      keep_victims_once = false;
      if (!s.ok() && below_failed && !reclaimed_below) {
        reclaimed_below = true;
        keep_victims_once = true;
        continue;
      }
      if (s.ok() || s.code() != errc::out_of_space)
        break;
      if (grow_map())
        continue;
      if (!touched.empty()) { // recency is a hint: never worth a refused write
        touched.clear();
        continue;
      }
      if (reclaimed || !commit_deletes().ok())
        break;
      reclaimed = true;
      if (pending.empty()) {
        s = status{};
        break;
      }
    }
    if (!s) {
      if (s.code() == errc::out_of_space)
        return status{errc::out_of_space,
                      "L3 LMDB map is full (map size " + std::to_string(cur_map) + " bytes at " +
                          cfg.path + "; raise map_size or map_size_max, or lower max_bytes); " +
                          std::to_string(pending.size()) +
                          " pending writes kept in memory, nothing lost"};
      return s;
    }
    pending.clear();
    forget_pending();
    touched.clear();
    pending_bytes = 0;
    st.evictions += evicted.size();
    st.expirations += evict_expired;
    evict_expired = 0;
    if (!handed_down)
      for (auto& e : evicted)
        self.notify_evicted(std::move(e)); // a no-op without a listener
    return {};
  }

  /// Reads the committed record of `key`; nullopt when absent.
  result<std::optional<entry>> read_committed(std::string_view key) {
    auto t = begin_read();
    if (!t)
      return t.err();
    auto r = read_in(*t, key);
    end_read();
    return r;
  }

  /// `key`'s record as read transaction `t` sees it; nullopt when absent.
  result<std::optional<entry>> read_in(MDB_txn* t, std::string_view key) const {
    std::string lkey = fmt::lmdb_key(key, sp());
    MDB_val k = as_val(lkey), v;
    int rc = mdb_get(t, main, &k, &v);
    if (rc == MDB_NOTFOUND)
      return std::optional<entry>{};
    if (rc != 0)
      return lmdb_error(rc, "L3 read failed in " + cfg.path);
    auto e = fmt::decode_record(lkey, as_view(v), sp());
    if (!e)
      return error{errc::corrupt, e.err().message + " (in " + cfg.path + ")"};
    if (e->key != key) // 128-bit fingerprint collision of two long keys
      return std::optional<entry>{};
    return std::optional<entry>{std::move(*e)};
  }

  /// The version of `key`'s record as get_versioned() sees it (the pending
  /// batch first), without copying the record: nullopt when there is none,
  /// errc::corrupt where get_versioned() fails to decode it. An encrypted
  /// store reads the whole record (its seal is checked only by opening it).
  result<std::optional<version>> held_version_of(std::string_view key) {
    if (!pending.empty()) {
      auto it = pending.find(std::string{key});
      if (it != pending.end()) {
        if (it->second.del)
          return std::optional<version>{};
        return std::optional<version>{it->second.e.ver};
      }
    }
    if (sp() != nullptr) {
      auto r = read_committed(key);
      if (!r)
        return r.err();
      return *r ? std::optional<version>{(*r)->ver} : std::optional<version>{};
    }
    auto t = begin_read();
    if (!t)
      return t.err();
    auto r = version_in(*t, key);
    end_read();
    return r;
  }

  /// read_in()'s version of a plaintext store's record, checked as
  /// decode_record() checks it (header, checksum, key), with no copy.
  result<std::optional<version>> version_in(MDB_txn* t, std::string_view key) const {
    std::string own;
    std::string_view lkey = key;
    if (fmt::is_long_key(key)) {
      own = fmt::lmdb_key(key, nullptr);
      lkey = own;
    }
    MDB_val k = as_val(lkey), v;
    int rc = mdb_get(t, main, &k, &v);
    if (rc == MDB_NOTFOUND)
      return std::optional<version>{};
    if (rc != 0)
      return lmdb_error(rc, "L3 read failed in " + cfg.path);
    const std::string_view rec = as_view(v);
    fmt::header h;
    bool ok = fmt::decode_header(rec, h).ok() && fmt::checksum_ok(lkey, rec, h);
    result<std::string_view> full = ok ? fmt::record_key(lkey, rec, h) : std::string_view{};
    if (!ok || !full) // (a sealed record in a plaintext store too: record_key refuses it)
      return error{errc::corrupt, "L3 record of " + std::to_string(rec.size()) +
                                      " bytes does not decode (in " + cfg.path + ")"};
    if (*full != key) // 128-bit fingerprint collision of two long keys
      return std::optional<version>{};
    return std::optional<version>{version{h.hlc, h.node}};
  }

  /// `e` as the tombstone (version floor) it leaves when it expires or is
  /// deleted: same key and version, no value, no expiry.
  static entry as_tombstone(entry e) {
    e.value.clear();
    e.value.shrink_to_fit();
    e.expiry_ms = 0;
    e.flags = entry_flags::tombstone;
    return e;
  }

  /// What an expired pending put becomes: a delete, or in cluster mode a
  /// tombstone of its version. stats()'s live_delta follows when it counted
  /// `o` already (looked up in this commit window), as add_pending does.
  void expire_pending(op& o) {
    o.own();
    const bool known = o.known_at != 0 && o.known_at == n_commits + 1;
    if (known)
      live_delta -= live_change(o);
    pending_bytes -= o.e.value.size();
    if (cfg.tombstones) {
      o.e = as_tombstone(std::move(o.e));
    } else {
      o.e.value.clear();
      o.del = true;
    }
    if (known)
      live_delta += live_change(o);
  }

  /// Puts `o` into the batch (one hash lookup) and returns its slot; with
  /// `prev`, the operation it replaced is moved there (left empty when the
  /// key had none).
  std::unordered_map<std::string, op>::iterator add_pending(op o, uint64_t now_ms,
                                                            std::optional<op>* prev = nullptr) {
    if (!o.del && max_ver < o.e.ver)
      max_ver = o.e.ver;
    if (pending.empty())
      batch_start_ms = now_ms;
    o.order = ++op_counter;
    pending_bytes += o.payload();
    if (!o.del && o.e.expiry_ms != 0)
      pending_expiring = true;
    auto [it, inserted] = pending.try_emplace(std::string{o.key()});
    bool known = false;
    if (!inserted) {
      pending_bytes -= it->second.payload();
      o.known_at = it->second.known_at; // the same key: the same committed state
      o.known_committed = it->second.known_committed;
      known = o.known_at != 0 && o.known_at == n_commits + 1;
      if (known)
        live_delta -= live_change(it->second);
      if (prev)
        *prev = std::move(it->second);
    }
    it->second = std::move(o);
    if (inserted)
      unchecked.push_back(&it->second); // stays valid: node-based map, erases reset it
    else if (known)
      live_delta += live_change(it->second);
    return it;
  }

  /// Commits the pending batch, then opens a read transaction of its own
  /// (the caller's callback may call get(), which uses rtxn) and a cursor on
  /// kura.main, for the scans.
  status begin_scan(l3_lmdb& self, txn_guard& g, MDB_cursor*& c) {
    if (auto s = commit(self); !s)
      return s;
    int rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &g.txn);
    if (rc != 0)
      return lmdb_error(rc, "L3 cannot begin a read transaction in " + cfg.path);
    rc = mdb_cursor_open(g.txn, main, &c);
    if (rc != 0)
      return lmdb_error(rc, "L3 cannot open a cursor in " + cfg.path);
    return {};
  }

  /// put() and put_view() once checked: adds `o` to the batch and commits
  /// when the batch is full; on a failed commit `o` is taken back (the op it
  /// replaced restored) and the error returned.
  status put_op(l3_lmdb& self, op o, uint64_t now_ms) {
    // Keep what this put replaces (moved, not copied), so that a failed
    // commit can take it back.
    std::optional<op> prev;
    uint64_t prev_start = batch_start_ms;
    auto slot = add_pending(std::move(o), now_ms, &prev);
    if (batch_full()) {
      std::string key = slot->first; // the commit clears the batch on success
      if (auto s = commit(self); !s) {
        auto it = pending.find(key);
        pending_bytes -= it->second.payload();
        if (prev) {
          pending_bytes += prev->payload();
          it->second = std::move(*prev);
        } else {
          pending.erase(it);
        }
        pending_changed();
        batch_start_ms = prev_start;
        return s;
      }
    }
    ++st.puts;
    return {};
  }

  bool batch_full() const {
    return cfg.sync_mode || pending.size() >= cfg.batch_max_writes ||
           pending_bytes >= cfg.batch_max_bytes;
  }
};

// -- open -------------------------------------------------------------------------

l3_lmdb::l3_lmdb(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

result<std::unique_ptr<l3_lmdb>> l3_lmdb::open(l3_config cfg, const clock& clk) {
  if (cfg.path.empty())
    return error{errc::invalid_argument, "L3 path is empty"};
  if (cfg.batch_max_writes == 0)
    return error{errc::invalid_argument, "L3 batch_max_writes must be at least 1"};
  if (cfg.map_size < (64u << 10))
    return error{errc::invalid_argument, "L3 map_size of " + std::to_string(cfg.map_size) +
                                             " bytes is below the 64 KiB minimum"};
  struct stat sb {};
  if (::stat(cfg.path.c_str(), &sb) != 0) {
    if (errno != ENOENT)
      return error{errc::io_error,
                   "cannot stat L3 directory " + cfg.path + ": " + std::strerror(errno)};
    if (::mkdir(cfg.path.c_str(), 0755) != 0)
      return error{errc::io_error,
                   "cannot create L3 directory " + cfg.path + ": " + std::strerror(errno)};
  } else if (!S_ISDIR(sb.st_mode)) {
    return error{errc::invalid_argument, "L3 path " + cfg.path + " exists and is not a directory"};
  }
  std::string data_file = cfg.path + "/data.mdb";
  if (::stat(data_file.c_str(), &sb) == 0) {
    if (!S_ISREG(sb.st_mode))
      return error{errc::foreign_file, data_file + " is not a regular file"};
    if (sb.st_size > 0) {
      auto m = l3_verify::read_meta(data_file);
      if (!m)
        return m.err();
      if (cfg.verify_on_open)
        if (auto s = l3_verify::verify_trees(data_file, *m); !s)
          return s.err();
    }
  }

  auto p = std::make_unique<impl>(cfg, clk);
  bool upgrade = false; // a kura-l3 2 or 3 environment, rewritten as kura-l3 4 below
  bool from_v2 = false; // kura-l3 2: max_version is computed by a scan
  int rc = mdb_env_create(&p->env);
  if (rc != 0)
    return lmdb_error(rc, "cannot create an LMDB environment handle");
  mdb_env_set_maxdbs(p->env, 8);
  rc = mdb_env_set_mapsize(p->env, cfg.map_size);
  if (rc != 0)
    return lmdb_error(rc, "L3 cannot set map size " + std::to_string(cfg.map_size));
  // MDB_NOTLS: read transactions are not tied to a thread-local slot (CAF may
  // move... and we keep a read txn alongside write txns in one thread).
  // MDB_NORDAHEAD: random point reads; readahead only evicts useful pages.
  unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
  if (!cfg.sync_mode)
    flags |= cfg.fsync_batches ? unsigned{MDB_NOMETASYNC} : unsigned{MDB_NOSYNC};
  rc = mdb_env_open(p->env, cfg.path.c_str(), flags, 0644);
  if (rc != 0) {
    auto e = lmdb_error(rc, "cannot open L3 environment " + cfg.path);
    if (rc == EACCES || rc == EPERM || rc == EROFS)
      e.message += " (is the directory writable?)";
    return e;
  }
  int maxkey = mdb_env_get_maxkeysize(p->env);
  if (maxkey < static_cast<int>(fmt::lkey_long_size))
    return error{errc::invalid_argument, "this LMDB build allows keys of " +
                                             std::to_string(maxkey) + " bytes; L3 needs " +
                                             std::to_string(fmt::lkey_long_size)};
  MDB_envinfo info;
  MDB_stat est;
  mdb_env_info(p->env, &info);
  mdb_env_stat(p->env, &est);
  p->psize = est.ms_psize;
  p->nodemax = (((p->psize - 16) / 2) & ~size_t{1}) - 2;
  p->cur_map = info.me_mapsize;
  p->budget = cfg.max_bytes != 0 ? cfg.max_bytes : cfg.map_size / 2;

  // Meta and databases, in one write transaction.
  txn_guard g;
  rc = mdb_txn_begin(p->env, nullptr, 0, &g.txn);
  if (rc != 0)
    return lmdb_error(rc, "L3 cannot begin a transaction in " + cfg.path);
  rc = mdb_dbi_open(g.txn, "kura.meta", 0, &p->meta);
  bool fresh = false;
  if (rc == MDB_NOTFOUND) {
    MDB_dbi unnamed;
    rc = mdb_dbi_open(g.txn, nullptr, 0, &unnamed);
    if (rc != 0)
      return lmdb_error(rc, "L3 cannot read " + cfg.path);
    MDB_stat ms;
    mdb_stat(g.txn, unnamed, &ms);
    if (ms.ms_entries != 0)
      return error{errc::foreign_file, cfg.path + " holds an LMDB environment of another program"
                                                  " (it has no kura.meta database)"};
    fresh = true;
    rc = mdb_dbi_open(g.txn, "kura.meta", MDB_CREATE, &p->meta);
  }
  if (rc == MDB_INCOMPATIBLE)
    return error{errc::foreign_file, cfg.path + " holds an LMDB environment of another program"
                                                " (kura.meta is not a database)"};
  if (rc != 0)
    return lmdb_error(rc, "L3 cannot open kura.meta in " + cfg.path);
  if (fresh) {
    MDB_val k = as_val("format"), v = as_val(fmt::meta_format);
    rc = mdb_put(g.txn, p->meta, &k, &v, 0);
    if (rc != 0)
      return lmdb_error(rc, "L3 cannot initialize " + cfg.path);
  } else {
    MDB_val k = as_val("format"), v;
    rc = mdb_get(g.txn, p->meta, &k, &v);
    // The previous layouts are subsets of this one: upgrade them in place.
    from_v2 = rc == 0 && as_view(v) == fmt::meta_format_v2;
    upgrade = from_v2 ||
              (rc == 0 && (as_view(v) == fmt::meta_format_v3 || as_view(v) == fmt::meta_format_v4));
    if (!upgrade && (rc != 0 || as_view(v) != fmt::meta_format)) {
      std::string got = rc == 0 ? std::string{as_view(v).substr(0, 40)} : std::string{};
      // Another kura version names itself "kura-l3 N": foreign. A damaged or
      // missing marker beside kura's own databases is corruption.
      MDB_dbi probe;
      bool kura_dbs = mdb_dbi_open(g.txn, "kura.main", 0, &probe) == 0;
      bool other_version = got.rfind("kura-l3 ", 0) == 0;
      return error{kura_dbs && !other_version ? errc::corrupt : errc::foreign_file,
                   cfg.path + " is not a kura L3 environment of this version (format " +
                       (rc == 0 ? "\"" + got + "\"" : "missing") + ", expected \"" +
                       std::string{fmt::meta_format} + "\")"};
    }
    k = as_val("est_bytes");
    rc = mdb_get(g.txn, p->meta, &k, &v);
    if (rc == 0 && v.mv_size == 8)
      p->est_bytes = fmt::get_le(static_cast<const char*>(v.mv_data), 8);
    k = as_val("wal_batch");
    if (mdb_get(g.txn, p->meta, &k, &v) == 0 && v.mv_size == 8)
      p->log_mark = fmt::get_le(static_cast<const char*>(v.mv_data), 8);
    k = as_val("max_version");
    rc = mdb_get(g.txn, p->meta, &k, &v);
    if (rc == 0 && v.mv_size == 12) {
      auto* mv = static_cast<const char*>(v.mv_data);
      p->max_ver = version{fmt::get_le(mv, 8), static_cast<uint32_t>(fmt::get_le(mv + 8, 4))};
    } else if (!from_v2) {
      return error{errc::corrupt, cfg.path + " lacks its max_version meta record"};
    }
    k = as_val("next_seq");
    rc = mdb_get(g.txn, p->meta, &k, &v);
    if (rc == 0 && v.mv_size == 8)
      p->next_seq = fmt::get_le(static_cast<const char*>(v.mv_data), 8);
    else if (!upgrade) // formats 2-4 take it from kura.seq below
      return error{errc::corrupt, cfg.path + " lacks its next_seq meta record"};
  }
  // Encryption at rest: the store secret's sealed copies ("secret.<id>").
  {
    MDB_cursor* c = nullptr;
    if ((rc = mdb_cursor_open(g.txn, p->meta, &c)) != 0)
      return lmdb_error(rc, "L3 cannot open a cursor in " + cfg.path);
    std::string prefix = "secret.";
    MDB_val k = as_val(prefix), v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
      std::string_view name = as_view(k);
      if (name.substr(0, prefix.size()) != prefix)
        break;
      std::string digits{name.substr(prefix.size())};
      if (digits.empty() || digits.size() > 10 ||
          digits.find_first_not_of("0123456789") != std::string::npos) {
        mdb_cursor_close(c);
        return error{errc::corrupt, cfg.path + " has a bad meta record " + std::string{name}};
      }
      p->sealed_secrets[static_cast<uint32_t>(std::stoull(digits))] = std::string{as_view(v)};
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND)
      return lmdb_error(rc, "L3 cannot read kura.meta in " + cfg.path);
  }
  bool write_secret = false;
  if (cfg.keys) {
    if (!p->sealed_secrets.empty()) {
      auto sec = crypto::open_secret(*cfg.keys, p->sealed_secrets, "L3 " + cfg.path);
      if (!sec)
        return sec.err();
      p->sealer = std::make_unique<fmt::sealing>(fmt::sealing{cfg.keys, std::move(*sec)});
      write_secret = p->sealed_secrets.count(cfg.keys->active()) == 0;
    } else {
      // Plaintext records cannot be mixed with sealed ones (their LMDB keys
      // are the keys themselves): only an empty environment is adopted.
      if (!fresh) {
        MDB_dbi probe;
        MDB_stat ms{};
        if (mdb_dbi_open(g.txn, "kura.main", 0, &probe) == 0 && mdb_stat(g.txn, probe, &ms) == 0 &&
            ms.ms_entries != 0)
          return error{errc::bad_key,
                       "L3 " + cfg.path + " holds " + std::to_string(ms.ms_entries) +
                           " unencrypted records; encryption at rest cannot be turned on over "
                           "them (start with an empty L3 directory, see docs/security.md)"};
      }
      p->sealer = std::make_unique<fmt::sealing>(
          fmt::sealing{cfg.keys, crypto::store_secret{crypto::random_bytes(crypto::key_bytes)}});
      write_secret = true;
    }
  } else if (!p->sealed_secrets.empty()) {
    return error{errc::bad_key, "L3 " + cfg.path +
                                    " is encrypted; set kura.security.encryption-key-file to "
                                    "the key file it was written with"};
  }
  if (write_secret) {
    std::string name = "secret." + std::to_string(cfg.keys->active());
    std::string blob = crypto::seal_secret(*cfg.keys, p->sealer->secret);
    MDB_val k = as_val(name), v = as_val(blob);
    if ((rc = mdb_put(g.txn, p->meta, &k, &v, 0)) != 0)
      return lmdb_error(rc, "L3 cannot write its sealed secret in " + cfg.path);
    p->sealed_secrets[cfg.keys->active()] = blob;
  }
  unsigned dflags = fresh ? MDB_CREATE : 0;
  const char* names[] = {"kura.main", "kura.exp"};
  MDB_dbi* dbis[] = {&p->main, &p->exp};
  for (int i = 0; i < 2; ++i) {
    rc = mdb_dbi_open(g.txn, names[i], dflags, dbis[i]);
    if (rc == MDB_NOTFOUND)
      return error{errc::corrupt, cfg.path + " lacks its " + names[i] + " database"};
    if (rc != 0)
      return lmdb_error(rc, std::string{"L3 cannot open "} + names[i] + " in " + cfg.path);
  }
  // Structural sanity: the trees cannot hold more pages than are in use.
  uint64_t pages = 0;
  for (MDB_dbi d : {p->main, p->exp, p->meta}) {
    MDB_stat ms;
    rc = mdb_stat(g.txn, d, &ms);
    if (rc != 0)
      return lmdb_error(rc, "L3 cannot stat " + cfg.path);
    pages += ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages;
  }
  if (pages > info.me_last_pgno + 1)
    return error{errc::corrupt, cfg.path + " is corrupt: its databases claim " +
                                    std::to_string(pages) + " pages, the file has " +
                                    std::to_string(info.me_last_pgno + 1)};
  if (upgrade) {
    // Formats 2-4 kept the eviction order in kura.seq (sequence -> LMDB key):
    // its last key seeds next_seq, its footprint leaves est_bytes, and the
    // database is deleted in this transaction (kura-l3 5 samples the stamps
    // the records carry instead).
    MDB_dbi seq = 0;
    rc = mdb_dbi_open(g.txn, "kura.seq", 0, &seq);
    if (rc == MDB_NOTFOUND)
      return error{errc::corrupt, cfg.path + " lacks its kura.seq database"};
    if (rc != 0)
      return lmdb_error(rc, "L3 cannot open kura.seq in " + cfg.path);
    MDB_cursor* c = nullptr;
    if ((rc = mdb_cursor_open(g.txn, seq, &c)) != 0)
      return lmdb_error(rc, "L3 cannot open a cursor in " + cfg.path);
    uint64_t seq_bytes = 0;
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
      seq_bytes += impl::seq_footprint(v.mv_size);
      if (k.mv_size == 8)
        p->next_seq = std::max(p->next_seq, fmt::get_be64(static_cast<const char*>(k.mv_data)) + 1);
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
      return lmdb_error(rc, "L3 cannot read the sequence index in " + cfg.path);
    p->est_bytes = p->est_bytes > seq_bytes ? p->est_bytes - seq_bytes : 0;
    if ((rc = mdb_drop(g.txn, seq, 1)) != 0)
      return lmdb_error(rc, "L3 cannot drop kura.seq in " + cfg.path + " to upgrade it");
  }
  if (from_v2) {
    // kura-l3 2 kept no max_version: compute it once from the records.
    MDB_cursor* c = nullptr;
    rc = mdb_cursor_open(g.txn, p->main, &c);
    if (rc != 0)
      return lmdb_error(rc, "L3 cannot open a cursor in " + cfg.path);
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
      fmt::header h;
      if (fmt::decode_header(as_view(v), h).ok() && p->max_ver < version{h.hlc, h.node})
        p->max_ver = version{h.hlc, h.node};
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
      return lmdb_error(rc, "L3 cannot scan " + cfg.path + " to upgrade it");
  }
  if (upgrade) {
    MDB_val fk = as_val("format"), fv = as_val(fmt::meta_format);
    if ((rc = mdb_put(g.txn, p->meta, &fk, &fv, 0)) != 0)
      return lmdb_error(rc, "L3 cannot upgrade the format marker of " + cfg.path);
  }
  if (fresh || upgrade)
    if (auto s = p->write_meta(g.txn); !s)
      return s.err();
  rc = g.commit();
  if (rc != 0)
    return lmdb_error(rc, "L3 cannot commit its setup in " + cfg.path);
  if ((fresh || upgrade || write_secret) && !cfg.sync_mode)
    mdb_env_sync(p->env, 1); // the format marker is on disk before any data
  return std::unique_ptr<l3_lmdb>(new l3_lmdb(std::move(p)));
}

status l3_fit::check(std::string_view key, size_t value_bytes, bool has_exp) const {
  if (budget == 0)
    return {};
  size_t lkey = sealed ? fmt::sealed_lkey_size : std::min(key.size(), fmt::lkey_long_size);
  uint64_t fp = footprint(lkey, fmt::record_size(key.size(), value_bytes, sealed), has_exp);
  if (fp <= limit())
    return {};
  // the estimate may reach limit() (2/3 or 1/3) of the budget: the budget it needs
  uint64_t needs = sealed ? fp * 3 : fp * 3 / 2;
  return status{errc::out_of_space, "value of " + std::to_string(value_bytes) +
                                        " bytes is too large for L3: it needs about " +
                                        std::to_string(needs) +
                                        " bytes, more than the whole L3 budget of " +
                                        std::to_string(budget) + " bytes (kura.l3.max-bytes)"};
}

l3_fit l3_lmdb::fit() const {
  return impl_->fit();
}

l3_lmdb::~l3_lmdb() {
  if (!impl_)
    return;
  if (auto s = impl_->commit(*this); !s)
    std::fprintf(stderr, "kura l3: %zu pending writes lost at close: %s\n", impl_->pending.size(),
                 s.message().c_str());
  else if (!impl_->cfg.sync_mode)
    mdb_env_sync(impl_->env, 1);
}

// -- tier interface ------------------------------------------------------------------

result<std::optional<entry>> l3_lmdb::get(std::string_view key, uint64_t now_ms, bool touch) {
  auto& m = *impl_;
  if (key.size() > m.cfg.lim.max_key_bytes) {
    ++m.st.misses;
    return std::optional<entry>{};
  }
  if (!m.pending.empty()) {
    auto it = m.pending.find(std::string{key});
    if (it != m.pending.end()) {
      auto& o = it->second;
      if (o.del || o.e.is_tombstone()) {
        ++m.st.misses;
        return std::optional<entry>{};
      }
      if (o.e.expired(now_ms)) {
        m.expire_pending(o);
        ++m.st.expirations;
        ++m.st.misses;
        return std::optional<entry>{};
      }
      ++m.st.hits;
      return std::optional<entry>{o.full()};
    }
  }
  auto r = m.read_committed(key);
  if (!r)
    return r;
  if (!*r || (*r)->is_tombstone()) {
    ++m.st.misses;
    return std::optional<entry>{};
  }
  if ((*r)->expired(now_ms)) {
    impl::op o;
    if (m.cfg.tombstones) {
      o.e = impl::as_tombstone(std::move(**r));
    } else {
      o.del = true;
      o.e.key = std::string{key};
    }
    m.add_pending(std::move(o), now_ms);
    ++m.st.expirations;
    ++m.st.misses;
    return std::optional<entry>{};
  }
  if (touch && m.touched.size() < m.cfg.batch_max_writes)
    m.touched.emplace(key);
  ++m.st.hits;
  return r;
}

status l3_lmdb::put(entry e, uint64_t now_ms) {
  auto& m = *impl_;
  if (auto s = m.cfg.lim.check(e); !s)
    return s;
  if (auto s = m.fit().check(e.key, e.value.size(), e.expiry_ms != 0); !s)
    return s;
  impl::op o;
  o.e = std::move(e);
  return m.put_op(*this, std::move(o), now_ms);
}

status l3_lmdb::put_view(const entry& meta, std::string_view key, std::string_view value,
                         uint64_t now_ms) {
  auto& m = *impl_;
  if (auto s = m.cfg.lim.check(key, value.size()); !s)
    return s;
  if (auto s = m.fit().check(key, value.size(), meta.expiry_ms != 0); !s)
    return s;
  impl::op o;
  o.e.expiry_ms = meta.expiry_ms;
  o.e.ver = meta.ver;
  o.e.flags = meta.flags;
  o.viewed = true;
  o.vkey = key;
  o.vvalue = value;
  return m.put_op(*this, std::move(o), now_ms);
}

void l3_lmdb::keep_buffers(std::vector<std::string>&& bufs) {
  auto& m = *impl_;
  if (m.pending.empty())
    return; // nothing points into them any more
  for (auto& b : bufs)
    m.bufs.push_back(std::move(b)); // (a string's heap bytes stay where they are)
  bufs.clear();
}

result<bool> l3_lmdb::erase(std::string_view key) {
  auto& m = *impl_;
  if (key.size() > m.cfg.lim.max_key_bytes)
    return false;
  uint64_t now = m.clk.now_ms();
  bool existed = false;
  auto it = m.pending.find(std::string{key});
  if (it != m.pending.end()) {
    existed = !it->second.del && !it->second.e.is_tombstone() && !it->second.e.expired(now);
  } else {
    auto r = m.read_committed(key);
    if (!r)
      return r.err();
    if (!*r)
      return false; // nothing to delete anywhere
    existed = !(*r)->is_tombstone() && !(*r)->expired(now);
  }
  impl::op o;
  o.del = true;
  o.e.key = std::string{key};
  m.add_pending(std::move(o), now);
  if (existed)
    ++m.st.erases;
  if (m.batch_full())
    if (auto s = m.commit(*this); !s && s.code() != errc::out_of_space)
      return s.err();
  // On out_of_space the delete stays pending and visible (a later commit,
  // deletes first, frees the space): refusing a delete for lack of space
  // would make a full map impossible to empty.
  return existed;
}

size_t l3_lmdb::sweep_expired(uint64_t now_ms, size_t budget) {
  auto& m = *impl_;
  if (budget == 0)
    return 0;
  // Expired pending puts become pending deletes (cheap, no I/O).
  size_t removed = 0;
  if (m.pending_expiring)
    for (auto& [k, o] : m.pending)
      if (!o.del && !o.e.is_tombstone() && o.e.expired(now_ms) && removed < budget) {
        m.expire_pending(o);
        ++removed;
      }
  // kura.exp is ordered by expiry, so the expired entries are always at its
  // front: each call resumes at the first one left, and stops at the first
  // entry that has not expired yet (bounded work, no full scan).
  {
    MDB_txn* t = nullptr;
    if (mdb_txn_begin(m.env, nullptr, MDB_RDONLY, &t) != 0)
      return removed;
    MDB_cursor* c = nullptr;
    MDB_val k, v;
    bool any = mdb_cursor_open(t, m.exp, &c) == 0 && mdb_cursor_get(c, &k, &v, MDB_FIRST) == 0 &&
               k.mv_size == 16 && fmt::get_be64(static_cast<const char*>(k.mv_data)) <= now_ms;
    if (c)
      mdb_cursor_close(c);
    mdb_txn_abort(t);
    if (!any) {
      m.st.expirations += removed;
      return removed;
    }
  }
  uint64_t saved_est = m.est_bytes;
  txn_guard g;
  if (mdb_txn_begin(m.env, nullptr, 0, &g.txn) != 0)
    return removed;
  MDB_cursor* c = nullptr;
  if (mdb_cursor_open(g.txn, m.exp, &c) != 0)
    return removed;
  size_t swept = 0;
  bool ok = true;
  while (removed + swept < budget) {
    MDB_val k, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    if (rc != 0 || k.mv_size != 16)
      break;
    uint64_t exp = fmt::get_be64(static_cast<const char*>(k.mv_data));
    if (exp > now_ms)
      break;
    std::string ekey{as_view(k)};
    std::string lkey{as_view(v)};
    uint64_t eseq = fmt::get_be64(ekey.data() + 8);
    // Remove the record only when it is the one this index entry describes
    // (same sequence); otherwise the index entry is stale and goes alone.
    entry gone;
    auto r = m.remove_committed(g.txn, lkey, m.cfg.tombstones ? &gone : nullptr, eseq);
    if (!r) {
      ok = false;
      break;
    }
    if (*r == impl::rm::removed) {
      ++swept; // remove_committed dropped this kura.exp entry too
      if (m.cfg.tombstones &&
          !m.insert_committed(g.txn, lkey, impl::as_tombstone(std::move(gone)))) {
        ok = false;
        break;
      }
    } else {
      MDB_val ek = as_val(ekey);
      if (mdb_del(g.txn, m.exp, &ek, nullptr) != 0) {
        ok = false;
        break;
      }
    }
  }
  mdb_cursor_close(c);
  if (!ok || !m.write_meta(g.txn).ok() || g.commit() != 0) {
    m.est_bytes = saved_est;
    m.st.expirations += removed;
    return removed;
  }
  ++m.n_commits;
  removed += swept;
  m.st.expirations += removed;
  return removed;
}

status l3_lmdb::clear() {
  auto& m = *impl_;
  m.pending.clear();
  m.forget_pending();
  m.touched.clear();
  m.pending_bytes = 0;
  m.pool.clear();
  m.hand_set = false;
  txn_guard g;
  int rc = mdb_txn_begin(m.env, nullptr, 0, &g.txn);
  if (rc != 0)
    return lmdb_error(rc, "L3 cannot begin a transaction in " + m.cfg.path);
  for (MDB_dbi d : {m.main, m.exp}) {
    rc = mdb_drop(g.txn, d, 0);
    if (rc != 0)
      return lmdb_error(rc, "L3 cannot clear " + m.cfg.path);
  }
  uint64_t saved = m.est_bytes;
  m.est_bytes = 0;
  if (auto s = m.write_meta(g.txn); !s) {
    m.est_bytes = saved;
    return s;
  }
  rc = g.commit();
  if (rc != 0) {
    m.est_bytes = saved;
    return lmdb_error(rc, "L3 cannot commit clear of " + m.cfg.path);
  }
  ++m.n_commits;
  return {};
}

uint64_t l3_lmdb::expiring_entries() const {
  auto& m = *impl_;
  uint64_t n = 0;
  MDB_txn* t = nullptr;
  if (mdb_txn_begin(m.env, nullptr, MDB_RDONLY, &t) == 0) {
    MDB_stat ms;
    if (mdb_stat(t, m.exp, &ms) == 0)
      n = ms.ms_entries;
    mdb_txn_abort(t);
  }
  return n;
}

/// stats()'s figures from `t`: LMDB's pages and committed records, the
/// counters, the pending payload; `pending_delta` adjusts the record count
/// by the pending batch.
tier_stats l3_lmdb::committed_stats(const std::function<int64_t(MDB_txn*)>& pending_delta) const {
  auto& m = *impl_;
  tier_stats s = m.st;
  s.capacity_bytes = m.budget;
  MDB_txn* t = nullptr;
  if (mdb_txn_begin(m.env, nullptr, MDB_RDONLY, &t) == 0) {
    // Pages of every tree (the unnamed main DB holds the named DBs' records)
    // plus the two meta pages. Free pages kept for reuse are not counted.
    uint64_t pages = 2;
    MDB_stat ms;
    if (mdb_env_stat(m.env, &ms) == 0)
      pages += ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages;
    for (MDB_dbi d : {m.main, m.exp, m.meta}) {
      if (mdb_stat(t, d, &ms) == 0)
        pages += ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages;
      if (d == m.main)
        s.entries = ms.ms_entries;
    }
    int64_t n = static_cast<int64_t>(s.entries) + (m.pending.empty() ? 0 : pending_delta(t));
    s.entries = n > 0 ? static_cast<uint64_t>(n) : 0;
    mdb_txn_abort(t);
    s.bytes = pages * m.psize;
  }
  s.bytes += m.pending_bytes;
  return s;
}

tier_stats l3_lmdb::stats() const {
  auto& m = *impl_;
  return committed_stats([&m](MDB_txn* t) {
    // Live entries now: committed ones, adjusted by the pending batch. Each
    // pending key is looked up once per commit window (the ops added since
    // the last call, or all of them after a commit or an untracked change).
    auto look = [&](std::string_view key, const impl::op& o) {
      if (o.known_at != m.n_commits + 1) {
        std::string lkey = fmt::lmdb_key(key, m.sp());
        MDB_val k = as_val(lkey), v;
        o.known_committed = mdb_get(t, m.main, &k, &v) == 0;
        o.known_at = m.n_commits + 1;
      }
      m.live_delta += impl::live_change(o);
    };
    if (!m.delta_ok || m.delta_commits != m.n_commits) {
      m.live_delta = 0;
      for (auto& [key, o] : m.pending)
        look(key, o);
      m.delta_ok = true;
      m.delta_commits = m.n_commits;
    } else {
      for (const impl::op* o : m.unchecked)
        if (o->known_at != m.n_commits + 1) // not seen yet (a replaced op may be)
          look(o->key(), *o);
    }
    m.unchecked.clear();
    return m.live_delta;
  });
}

tier_stats l3_lmdb::quick_stats() const {
  auto& m = *impl_;
  return committed_stats([&m](MDB_txn*) {
    // the pending keys change the count as the last commit's keys did
    auto keys = static_cast<int64_t>(m.pending.size());
    return keys * m.last_net / static_cast<int64_t>(std::max<uint64_t>(m.last_keys, 1));
  });
}

// -- batching ---------------------------------------------------------------------

status l3_lmdb::maybe_flush(uint64_t now_ms) {
  auto& m = *impl_;
  if (m.pending.empty() || now_ms < m.batch_start_ms + m.cfg.batch_max_ms)
    return {};
  return m.commit(*this);
}

status l3_lmdb::sync() {
  auto& m = *impl_;
  if (auto s = m.commit(*this); !s)
    return s;
  int rc = mdb_env_sync(m.env, 1);
  if (rc != 0)
    return lmdb_error(rc, "L3 fsync of " + m.cfg.path + " failed");
  return {};
}

size_t l3_lmdb::pending() const {
  return impl_->pending.size();
}

std::optional<uint64_t> l3_lmdb::flush_due_in(uint64_t now_ms) const {
  auto& m = *impl_;
  if (m.pending.empty())
    return std::nullopt;
  uint64_t due = m.batch_start_ms + m.cfg.batch_max_ms;
  return due > now_ms ? due - now_ms : 0;
}

status l3_lmdb::for_each(const std::function<bool(const entry&)>& f) {
  auto& m = *impl_;
  uint64_t now = m.clk.now_ms();
  txn_guard g;
  MDB_cursor* c = nullptr;
  if (auto s = m.begin_scan(*this, g, c); !s)
    return s;
  status out;
  int rc;
  MDB_val k, v;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    auto e = fmt::decode_record(as_view(k), as_view(v), m.sp());
    if (!e) {
      out = error{errc::corrupt, e.err().message + " (in " + m.cfg.path + ")"};
      break;
    }
    if (e->is_tombstone() || e->expired(now))
      continue;
    if (!f(*e))
      break;
  }
  if (rc != 0 && rc != MDB_NOTFOUND && out.ok())
    out = lmdb_error(rc, "L3 scan of " + m.cfg.path + " failed");
  mdb_cursor_close(c);
  return out;
}

// -- last-writer-wins -------------------------------------------------------------------

result<std::optional<entry>> l3_lmdb::get_versioned(std::string_view key) {
  auto& m = *impl_;
  if (key.size() > m.cfg.lim.max_key_bytes)
    return std::optional<entry>{};
  if (!m.pending.empty()) {
    auto it = m.pending.find(std::string{key});
    if (it != m.pending.end()) {
      if (it->second.del)
        return std::optional<entry>{};
      return std::optional<entry>{it->second.full()};
    }
  }
  return m.read_committed(key);
}

result<std::optional<entry>> l3_lmdb::get_committed_concurrent(std::string_view key) {
  auto& m = *impl_;
  if (key.size() > m.cfg.lim.max_key_bytes)
    return std::optional<entry>{};
  std::shared_lock<std::shared_mutex> g(m.map_mu);
  auto t = m.begin_read_in(m.crtxn);
  if (!t)
    return t.err();
  auto r = m.read_in(*t, key);
  mdb_txn_reset(*t);
  return r;
}

result<std::optional<version>> l3_lmdb::held_version(std::string_view key) {
  auto& m = *impl_;
  if (key.size() > m.cfg.lim.max_key_bytes)
    return std::optional<version>{};
  return m.held_version_of(key);
}

result<bool> l3_lmdb::apply(entry e, uint64_t now_ms) {
  auto& m = *impl_;
  if (auto s = m.cfg.lim.check(e); !s)
    return s.err();
  // only the held version: no copy of the record read back
  auto cur = m.held_version_of(e.key);
  if (!cur) {
    // An unreadable (corrupt) record holds no version worth keeping.
    if (cur.err().code != errc::corrupt)
      return cur.err();
  } else if (*cur && !(**cur < e.ver)) {
    return false;
  }
  if (e.is_tombstone())
    e = impl::as_tombstone(std::move(e));
  else if (m.cfg.tombstones && e.expired(now_ms))
    e = impl::as_tombstone(std::move(e)); // already expired: only its floor
  if (auto s = put(std::move(e), now_ms); !s)
    return s.err();
  return true;
}

result<bool> l3_lmdb::collect(std::string_view key, const version& upto) {
  auto& m = *impl_;
  auto cur = get_versioned(key);
  if (!cur)
    return cur.err();
  if (!*cur || !(*cur)->is_tombstone() || upto < (*cur)->ver)
    return false;
  impl::op o;
  o.del = true;
  o.e.key = std::string{key};
  m.add_pending(std::move(o), m.clk.now_ms());
  if (m.batch_full())
    if (auto s = m.commit(*this); !s && s.code() != errc::out_of_space)
      return s.err();
  return true;
}

result<std::optional<std::string>> l3_lmdb::scan(std::string_view after, size_t max,
                                                 const std::function<void(const entry&)>& f) {
  auto& m = *impl_;
  txn_guard g;
  MDB_cursor* c = nullptr;
  if (auto s = m.begin_scan(*this, g, c); !s)
    return s.err();
  int rc;
  std::string from = fmt::lmdb_key(after, m.sp());
  MDB_val k = as_val(from), v;
  rc = after.empty() ? mdb_cursor_get(c, &k, &v, MDB_FIRST)
                     : mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
  if (rc == 0 && !after.empty() && as_view(k) == from)
    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
  std::optional<std::string> last;
  size_t n = 0;
  error failed{};
  bool bad = false;
  for (; rc == 0 && n < max; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT), ++n) {
    auto e = fmt::decode_record(as_view(k), as_view(v), m.sp());
    if (!e) {
      failed = error{errc::corrupt, e.err().message + " (in " + m.cfg.path + ")"};
      bad = true;
      break;
    }
    last = e->key;
    f(*e);
  }
  mdb_cursor_close(c);
  if (bad)
    return failed;
  if (rc != 0 && rc != MDB_NOTFOUND)
    return lmdb_error(rc, "L3 scan of " + m.cfg.path + " failed");
  if (rc == MDB_NOTFOUND)
    return std::optional<std::string>{};
  return last ? last : std::optional<std::string>{std::string{after}};
}

// -- encryption at rest -------------------------------------------------------------------

bool l3_lmdb::encrypted() const {
  return impl_->sealer != nullptr;
}

std::vector<uint32_t> l3_lmdb::key_ids() const {
  std::vector<uint32_t> out;
  for (auto& kv : impl_->sealed_secrets)
    out.push_back(kv.first);
  return out;
}

std::string l3_lmdb::order_key(std::string_view key) const {
  return fmt::lmdb_key(key, impl_->sp());
}

status l3_lmdb::rotate_keys(std::shared_ptr<const crypto::keyring> keys) {
  auto& m = *impl_;
  if (!m.sealer)
    return status{errc::invalid_argument,
                  "L3 " + m.cfg.path + " is not encrypted (no key file at start)"};
  if (!keys)
    return status{errc::invalid_argument, "no keyring"};
  // The new keyring must open what is here: same secret through a held key.
  auto sec = crypto::open_secret(*keys, m.sealed_secrets, "L3 " + m.cfg.path);
  if (!sec)
    return sec.err();
  if (sec->secret != m.sealer->secret.secret)
    return status{errc::bad_key, "L3 " + m.cfg.path + ": the new key file opens another secret"};
  // Everything pending is sealed under the old key at commit: commit it now,
  // then switch (the re-seal pass rewrites it like any other record).
  if (auto st = m.commit(*this); !st)
    return st;
  std::string name = "secret." + std::to_string(keys->active());
  std::string blob = crypto::seal_secret(*keys, *sec);
  txn_guard g;
  int rc = mdb_txn_begin(m.env, nullptr, 0, &g.txn);
  if (rc != 0)
    return lmdb_error(rc, "L3 cannot begin a write transaction in " + m.cfg.path);
  MDB_val k = as_val(name), v = as_val(blob);
  if ((rc = mdb_put(g.txn, m.meta, &k, &v, 0)) != 0)
    return lmdb_error(rc, "L3 cannot write its sealed secret in " + m.cfg.path);
  if ((rc = g.commit()) != 0)
    return lmdb_error(rc, "L3 cannot commit its sealed secret in " + m.cfg.path);
  ++m.n_commits;
  if (!m.cfg.sync_mode)
    mdb_env_sync(m.env, 1);
  m.sealed_secrets[keys->active()] = std::move(blob);
  m.sealer->kr = std::move(keys);
  m.reseal_after.reset();
  return {};
}

result<reseal_progress> l3_lmdb::reseal_step(size_t budget) {
  auto& m = *impl_;
  if (!m.sealer)
    return error{errc::invalid_argument,
                 "L3 " + m.cfg.path + " is not encrypted (no key file at start)"};
  if (auto st = m.commit(*this); !st)
    return st.err();
  uint32_t active = m.sealer->kr->active();
  txn_guard g;
  int rc = mdb_txn_begin(m.env, nullptr, 0, &g.txn);
  if (rc != 0)
    return lmdb_error(rc, "L3 cannot begin a write transaction in " + m.cfg.path);
  if (!m.reseal_after) {
    MDB_stat ms{};
    mdb_stat(g.txn, m.main, &ms);
    m.reseal_after = std::string{};
    m.reseal_done = 0;
    m.reseal_total = ms.ms_entries;
    m.resealed = 0;
  }
  MDB_cursor* c = nullptr;
  if ((rc = mdb_cursor_open(g.txn, m.main, &c)) != 0)
    return lmdb_error(rc, "L3 cannot open a cursor in " + m.cfg.path);
  std::string from = *m.reseal_after;
  MDB_val k = as_val(from), v;
  rc = from.empty() ? mdb_cursor_get(c, &k, &v, MDB_FIRST)
                    : mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
  if (rc == 0 && !from.empty() && as_view(k) == from)
    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
  std::vector<std::pair<std::string, std::string>> rewrite;
  size_t n = 0;
  for (; rc == 0 && n < std::max<size_t>(budget, 1); rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    ++n;
    std::string_view lkey = as_view(k), rec = as_view(v);
    m.reseal_after = std::string{lkey};
    fmt::header h;
    if (!fmt::decode_header(rec, h).ok() || !(h.rflags & fmt::rflag_sealed) ||
        crypto::keyring::key_id_of(rec.substr(fmt::header_size)) == active)
      continue;
    auto e = fmt::decode_record(lkey, rec, m.sp());
    if (!e)
      continue; // unreadable: get() reports it, the next write replaces it
    std::string out(fmt::record_size(*e, m.sp()), '\0');
    fmt::encode_record(*e, lkey, h.seq, out.data(), m.sp());
    rewrite.emplace_back(std::string{lkey}, std::move(out));
  }
  bool end = rc == MDB_NOTFOUND;
  mdb_cursor_close(c);
  if (rc != 0 && rc != MDB_NOTFOUND)
    return lmdb_error(rc, "L3 re-seal scan of " + m.cfg.path + " failed");
  for (auto& [lk, rec] : rewrite) {
    MDB_val kk = as_val(lk), vv = as_val(rec);
    if ((rc = mdb_put(g.txn, m.main, &kk, &vv, 0)) != 0)
      return lmdb_error(rc, "L3 cannot rewrite a record in " + m.cfg.path);
  }
  std::vector<uint32_t> dropped;
  if (end) {
    // Every record is now sealed with the active key: the secret's copies
    // under other keys go, so those keys are no longer needed.
    for (auto& kv : m.sealed_secrets) {
      if (kv.first == active)
        continue;
      std::string name = "secret." + std::to_string(kv.first);
      MDB_val kk = as_val(name);
      rc = mdb_del(g.txn, m.meta, &kk, nullptr);
      if (rc != 0 && rc != MDB_NOTFOUND)
        return lmdb_error(rc, "L3 cannot drop an old sealed secret in " + m.cfg.path);
      dropped.push_back(kv.first);
    }
  }
  if ((rc = g.commit()) != 0)
    return lmdb_error(rc, "L3 cannot commit a re-seal step in " + m.cfg.path);
  ++m.n_commits;
  for (auto id : dropped)
    m.sealed_secrets.erase(id);
  m.reseal_done += n;
  m.resealed += rewrite.size();
  reseal_progress p;
  p.records_done = m.reseal_done;
  p.records_total = std::max(m.reseal_total, m.reseal_done);
  p.resealed = m.resealed;
  p.done = end;
  if (end) {
    m.reseal_after.reset();
    if (!m.cfg.sync_mode)
      mdb_env_sync(m.env, 1);
  }
  return p;
}

result<std::optional<std::string>> l3_lmdb::scan_live(std::string_view after, size_t max,
                                                      uint64_t now_ms,
                                                      const std::function<void(const entry&)>& f) {
  auto& m = *impl_;
  std::string from = after.empty() ? std::string{} : fmt::lmdb_key(after, m.sp());
  // the pending batch after `from`, in LMDB key order (a batch is small)
  std::vector<std::pair<std::string, const impl::op*>> pend;
  for (auto& [key, o] : m.pending) {
    auto lk = fmt::lmdb_key(key, m.sp());
    if (from.empty() || lk > from)
      pend.emplace_back(std::move(lk), &o);
  }
  std::sort(pend.begin(), pend.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  txn_guard g;
  int rc = mdb_txn_begin(m.env, nullptr, MDB_RDONLY, &g.txn);
  if (rc != 0)
    return lmdb_error(rc, "L3 cannot begin a read transaction in " + m.cfg.path);
  MDB_cursor* c = nullptr;
  rc = mdb_cursor_open(g.txn, m.main, &c);
  if (rc != 0)
    return lmdb_error(rc, "L3 cannot open a cursor in " + m.cfg.path);
  MDB_val k = as_val(from), v;
  rc = from.empty() ? mdb_cursor_get(c, &k, &v, MDB_FIRST)
                    : mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
  if (rc == 0 && !from.empty() && as_view(k) == from)
    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
  size_t pi = 0, n = 0;
  std::optional<std::string> last;
  std::optional<error> failed;
  auto live = [&](const entry& e) { return !e.is_tombstone() && !e.expired(now_ms); };
  while (n < max && (rc == 0 || pi < pend.size())) {
    bool committed_first = rc == 0 && (pi == pend.size() || as_view(k) < pend[pi].first);
    if (committed_first) {
      auto e = fmt::decode_record(as_view(k), as_view(v), m.sp());
      if (!e) {
        failed = error{errc::corrupt, e.err().message + " (in " + m.cfg.path + ")"};
        break;
      }
      last = e->key;
      if (live(*e))
        f(*e);
      rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    } else {
      if (rc == 0 && as_view(k) == pend[pi].first) // the pending op replaces it
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
      auto& o = *pend[pi].second;
      last = std::string{o.key()};
      if (!o.del && live(o.e))
        f(o.viewed ? o.full() : o.e);
      ++pi;
    }
    ++n;
  }
  mdb_cursor_close(c);
  if (failed)
    return *failed;
  if (rc != 0 && rc != MDB_NOTFOUND)
    return lmdb_error(rc, "L3 scan of " + m.cfg.path + " failed");
  if (rc == MDB_NOTFOUND && pi == pend.size())
    return std::optional<std::string>{};
  return last ? last : std::optional<std::string>{std::string{after}};
}

result<std::optional<std::pair<std::string, std::string>>> l3_lmdb::key_bounds() {
  auto& m = *impl_;
  using bounds = std::optional<std::pair<std::string, std::string>>;
  txn_guard g;
  int rc = mdb_txn_begin(m.env, nullptr, MDB_RDONLY, &g.txn);
  if (rc != 0)
    return lmdb_error(rc, "L3 cannot begin a read transaction in " + m.cfg.path);
  MDB_cursor* c = nullptr;
  if ((rc = mdb_cursor_open(g.txn, m.main, &c)) != 0)
    return lmdb_error(rc, "L3 cannot open a cursor in " + m.cfg.path);
  MDB_val k, v;
  std::string first, last;
  if ((rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0) {
    first.assign(as_view(k));
    if ((rc = mdb_cursor_get(c, &k, &v, MDB_LAST)) == 0)
      last.assign(as_view(k));
  }
  mdb_cursor_close(c);
  if (rc == MDB_NOTFOUND)
    return bounds{};
  if (rc != 0)
    return lmdb_error(rc, "L3 scan of " + m.cfg.path + " failed");
  return bounds{std::make_pair(std::move(first), std::move(last))};
}

std::string random_position(const std::string& first, const std::string& last,
                            const std::function<uint64_t()>& rnd) {
  // the first byte where they differ lies between theirs (one more choice:
  // before the first key, the empty string); the bytes after it within the
  // range of bytes the two keys use there (digits for "user:1000" ..
  // "user:1099")
  size_t p = 0;
  while (p < first.size() && p < last.size() && first[p] == last[p])
    ++p;
  std::string target = first.substr(0, p);
  unsigned lo = p < first.size() ? static_cast<uint8_t>(first[p]) : 0u;
  unsigned hi = p < last.size() ? static_cast<uint8_t>(last[p]) : lo; // one key: lo
  if (hi < lo)
    hi = lo;
  uint64_t pick = rnd() % (hi - lo + 2);
  if (pick == 0)
    return {};
  target.push_back(static_cast<char>(lo + pick - 1));
  unsigned tlo = 255, thi = 0;
  for (auto* k : {&first, &last})
    for (size_t i = p + 1; i < k->size(); ++i) {
      tlo = std::min<unsigned>(tlo, static_cast<uint8_t>((*k)[i]));
      thi = std::max<unsigned>(thi, static_cast<uint8_t>((*k)[i]));
    }
  if (tlo > thi)
    tlo = 0, thi = 255;
  for (int i = 0; i < 8; ++i)
    target.push_back(static_cast<char>(tlo + rnd() % (thi - tlo + 1)));
  if (fmt::is_long_key(target))
    target.resize(fmt::lkey_long_size - 1); // stays a raw LMDB key
  return target;
}

result<std::optional<std::string>> l3_lmdb::random_key(uint64_t now_ms,
                                                       const std::function<uint64_t()>& rnd) {
  auto& m = *impl_;
  auto st = stats();
  uint64_t puts = 0;
  for (auto& [key, o] : m.pending)
    if (!o.del && !o.e.is_tombstone() && !o.e.expired(now_ms))
      ++puts;
  if (puts > 0 && (st.entries == 0 || rnd() % (st.entries + puts) < puts)) {
    uint64_t pick = rnd() % puts;
    for (auto& [key, o] : m.pending)
      if (!o.del && !o.e.is_tombstone() && !o.e.expired(now_ms) && pick-- == 0)
        return std::optional<std::string>{key};
  }
  auto b = key_bounds();
  if (!b)
    return b.err();
  if (!*b)
    return std::optional<std::string>{};
  std::string target = random_position((*b)->first, (*b)->second, rnd);
  // the next live key at or after `target`, wrapping around once; a bounded
  // walk (a long run of dead records ends it empty-handed)
  std::optional<std::string> found;
  std::string pos = target;
  bool wrapped = false;
  for (int round = 0; round < 4 && !found; ++round) {
    auto r = scan_live(pos, 64, now_ms, [&](const entry& e) {
      if (!found)
        found = e.key;
    });
    if (!r)
      return r.err();
    if (found)
      break;
    if (!*r) {
      if (wrapped)
        break;
      wrapped = true;
      pos.clear();
    } else {
      pos = **r;
    }
  }
  return found;
}

version l3_lmdb::max_version() const {
  return impl_->max_ver;
}

void l3_lmdb::set_log_mark(uint64_t batch) {
  impl_->log_mark = std::max(impl_->log_mark, batch);
}

uint64_t l3_lmdb::log_mark() const {
  return impl_->log_mark;
}

uint64_t l3_lmdb::commits() const {
  return impl_->n_commits;
}
uint64_t l3_lmdb::map_size() const {
  return impl_->cur_map;
}
uint64_t l3_lmdb::budget_bytes_used() const {
  return impl_->est_bytes;
}

// -- erasure support (the erase code itself is tiers/l3_erase.cpp) --------------------

l3_config l3_lmdb::current_config() const {
  l3_config c = impl_->cfg;
  if (impl_->sealer)
    c.keys = impl_->sealer->kr;
  return c;
}

const clock& l3_lmdb::clock_source() const {
  return impl_->clk;
}

void l3_lmdb::close_environment() {
  l3_lmdb closing(std::move(impl_)); // commits, syncs and closes
}

} // namespace kura
