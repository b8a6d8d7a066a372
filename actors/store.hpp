// The storage half of kura's actor graph on one node:
//
//   RESP broker ─┐  (same multiplexer thread: direct calls into store_core)
//   store broker ┴─▶ store_core { keyspace: memory shards L1+L2 }
//                       │ write-behind batches (fire-and-forget, acked)
//                       │ lookups of memory misses (request/response)
//                       ▼
//                    L3 actor (detached thread, owns l3_lmdb)
//
// Why the memory shards are objects and not actors of their own: a CAF 0.17
// broker answers as fast as redis-server, but one actor hop per command
// halves throughput (CAF-0.17.md §5.3). All brokers run on the middleman's
// one multiplexer thread, so a keyspace touched only by brokers needs no lock
// and no hop: the RESP broker serves memory hits inline, and the store broker
// (a broker too, spawned with spawn_broker) serves the typed key/value API of
// embedding applications and the ops actor on the same thread. Each shard
// still owns its part of the keyspace by key hash (one W-TinyLFU per shard).
//
// Write-behind: store_core collects writes into a batch and sends it when the
// L3 actor has acknowledged the previous ones (at most two in flight): on an
// ack, when a read leaves 256+ ops pending, when the front end is backlogged,
// or at the store broker's tick (kura.expiry.sweep-interval, 100 ms). While
// L3 is busy the batch grows, which is the group commit. queue_depth() counts
// operations not yet applied by L3; above `write_behind_high_water` (or the byte
// mark) the RESP broker stops running commands until L3 catches up (CAF mailboxes are
// unbounded, so this is the back-pressure). The same happens while the oldest
// write not yet committed to LMDB is older than 3/8 of `max_loss_window_ms`:
// the L3 actor publishes the highest batch number it committed
// (committed_batch()), so the core knows the age of its oldest uncommitted write
// (the durability bound of docs/operations.md, "Durability"). With
// `sync_writes` the L3 actor commits and fsyncs each batch before its ack and
// the RESP broker holds a writer's replies until committed_batch() reaches the
// batch carrying its writes (write_ticket()).
// With the write-ahead log (attach_wal, tiers/wal.hpp; the default on a single
// node) every write is appended to the log first, on this thread; the log's own
// thread writes and fdatasyncs it. Then the loss window no longer depends on
// LMDB: the front end pauses only while the log's records wait too long to be
// written or the queued bytes exceed the mark, LMDB batches may be large, and
// kura.l3.sync replies wait for the log's fdatasync (durable_ticket()). The L3
// actor records the highest batch it committed in LMDB (l3_lmdb::log_mark),
// which lets the log drop its older segments and a restart skip them.
// A lookup first sends the pending
// batch, so the L3 actor (FIFO mailbox, one sending thread) always sees
// writes before later lookups.
// Thread safety: store_core is touched only on the multiplexer thread;
// l3_snapshot is safe for concurrent use.
#pragma once

#include "actors/keyspace.hpp"
#include "actors/messages.hpp"
#include "actors/model_keys.hpp"
#include "tiers/l3_lmdb.hpp"
#include "tiers/wal.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace kura::actors {

class lost_keys;

struct store_config {
  keyspace_config ks;
  uint64_t write_behind_high_water = 1000000;            ///< queued L3 ops before back-pressure
  uint64_t write_behind_high_water_bytes = 256ull << 20; ///< queued L3 bytes (keys + values)
  uint64_t max_batch_ops = 4096;                         ///< ops per write-behind message
  uint32_t sweep_interval_ms = 100;                      ///< active expiry period (memory and L3)
  size_t sweep_budget = 2000;                            ///< entries examined per sweep and shard
  uint32_t l3_timeout_ms = 30000;                        ///< bound on every request to L3
  /// kura.l3.max-loss-window: the front end pauses while the oldest write
  /// not yet committed to LMDB is older than 3/8 of it (0 = no time bound):
  /// with group commits at most 1/8 of it old, half of the window is left
  /// for the commit itself (its pages and fdatasync).
  uint64_t max_loss_window_ms = 1000;
  /// kura.l3.sync: L3 commits and fsyncs every write-behind batch before it
  /// acknowledges it, and the RESP front end holds a writer's replies until
  /// then (per-write durability). With a write-ahead log, the replies wait
  /// for the log's fdatasync instead and LMDB keeps its batches.
  bool sync_writes = false;
  /// kura.l3.verify-on-open=lazy: serve at once; the L3 actor reads every
  /// record once in the background (each record's checksum is checked, a
  /// damaged one is reported) and hands the keys to the presence filter,
  /// which answers "maybe" for every key until then.
  bool lazy_open = false;
  /// kura.security.hash-keys-in-models: keys reach the predictor as keyed
  /// hashes (actors/model_keys.hpp); null = plain keys.
  std::shared_ptr<model_keys> model_key_hashes;
};

/// The write-ahead log's settings for a node (kura.l3.*): `dir`, the fsync
/// period (half the loss window) and sync_each = kura.l3.sync.
wal_config node_wal_config(std::string dir, uint64_t max_loss_window_ms, bool sync_writes,
                           std::shared_ptr<const crypto::keyring> keys);

/// L3 figures published by the L3 actor for INFO, metrics and the CLI.
class l3_snapshot {
public:
  struct data {
    tier_stats stats;
    uint64_t pending = 0; ///< writes in LMDB's uncommitted batch
    uint64_t expires = 0; ///< committed entries with an expiry
    uint64_t applied = 0; ///< write-behind operations applied
    uint64_t errors = 0;  ///< failed L3 operations
    std::string last_error;
  };
  data get() const {
    std::lock_guard<std::mutex> g(mtx_);
    return d_;
  }
  void set(data d) {
    std::lock_guard<std::mutex> g(mtx_);
    d_ = std::move(d);
  }

private:
  mutable std::mutex mtx_;
  data d_;
};

using l4_lookup_atom = caf::atom_constant<caf::atom("l4_lookup")>;
/// The write-ahead log synced (to the store broker, from the log's thread).
using wal_synced_atom = caf::atom_constant<caf::atom("wal_synced")>;
/// The background pass of verify-on-open=lazy: (l3_scan_atom, after) to the
/// L3 actor for the next slice; (l3_scan_atom, keys, done) to the store
/// broker with the keys it found.
using l3_scan_atom = caf::atom_constant<caf::atom("l3_scan")>;
/// Key rotation (`kura rotate-key`, node/rotate_key.hpp): (l3_rotate_atom,
/// key_file, salt_file) -> "" or why not; L3 then re-seals in slices.
/// (l3_reseal_atom) -> (running, ok, error, active key id, records done,
/// records total, records re-sealed).
using l3_rotate_atom = caf::atom_constant<caf::atom("l3_rotate")>;
using l3_reseal_atom = caf::atom_constant<caf::atom("l3_reseal")>;

/// The tier below L3 (L4, actors/archive_actors.hpp), as the L3 actor sees
/// it. Every call runs on the L3 actor's thread.
class l3_below {
public:
  virtual ~l3_below() = default;
  /// Answers (l4_lookup_atom, l3_found so_far, keys) with l3_found.
  virtual caf::actor reader() const = 0;
  /// After each L3 step: commits what L3 evicted into L4.
  virtual void settle() = 0;
  /// L3 stored `key` at `ver` (not committed yet): an archived copy not
  /// newer than it is superseded, and dropped by l3_committed() -- not
  /// before, or a kill -9 ahead of L3's commit would lose the key entirely
  /// (tiers/superseded.hpp).
  virtual void written(std::string_view key, const kura::version& ver) = 0;
  /// L3 has nothing pending: drops the archived copies that the writes
  /// reported to written() superseded.
  virtual void l3_committed() = 0;
  /// Archived copies waiting for l3_committed().
  virtual size_t superseded_waiting() const = 0;
  /// True while `key`'s archived copy waits for l3_committed(): a lookup
  /// that missed in L3 (the new record expired or went) must not read it.
  virtual bool superseded(std::string_view key) const = 0;
  virtual void erase(std::string_view key) = 0;
  virtual void clear() = 0;
  /// Live entries below L3 (added to DBSIZE).
  virtual uint64_t entries() const = 0;
  /// One archived key, as the L4 key iterator gives it.
  struct key_info {
    std::string key;
    kura::version ver; ///< the archived version (its write time: retention)
    uint64_t expiry_ms = 0;
    uint8_t flags = 0;
  };
  /// The L4 key iterator (archive::scan_keys): up to `max` keys after `after`
  /// (empty = from the start) in L4's index order (byte order for keys up to
  /// 400 bytes, then the longer ones by hash), expired ones included, to `f`.
  /// Returns the key to resume after, or nullopt at the end.
  virtual result<std::optional<std::string>>
  scan_keys(std::string_view after, size_t max, const std::function<void(const key_info&)>& f) = 0;
};

/// Keyspace plus the write-behind sender. See the file comment.
class store_core final : public l3_port {
public:
  store_core(store_config cfg, const kura::clock& clk, bool with_l3);
  ~store_core() override;

  keyspace& ks() noexcept { return ks_; }
  const store_config& config() const noexcept { return cfg_; }
  bool has_l3() const noexcept { return with_l3_; }

  // -- l3_port ---------------------------------------------------------------------
  /// Copies the key and value into the pending batch's chunks (l3_op::packed).
  void write(const entry& e) override;
  uint64_t write_shared(const entry& meta, shared_bytes value) override;
  void erase(std::string_view key) override;
  void clear() override;

  /// Writes go to this write-ahead log first (set before serving): they are
  /// durable once it has them, and LMDB is applied behind it (the file
  /// comment's loss-window pause then applies to the log, not to LMDB).
  void attach_wal(std::unique_ptr<wal> log);
  /// Batch numbers start after `base` (the log's records carry them, and
  /// L3 keeps the highest one it committed: l3_lmdb::log_mark).
  void set_batch_base(uint64_t base) {
    batch_seq_ = base;
    committed_->store(base, std::memory_order_release);
  }
  wal* log() const noexcept { return wal_.get(); }
  /// kura.l3.sync: the ticket a writer's replies wait for, and how far
  /// durability has come (the log's fdatasync, or LMDB's commits without one).
  uint64_t durable_ticket() const noexcept { return wal_ ? wal_->appended() : write_ticket(); }
  uint64_t durable_done() const noexcept { return wal_ ? wal_->synced() : committed_batch(); }
  /// A writer waits for durable_ticket(): hand everything on now.
  void request_durable() {
    flush_writes(false);
    if (wal_)
      wal_->kick();
  }
  /// The log's writer thread synced: wake a waiting front end (store broker).
  void on_wal_synced();
  /// Erasure: starts a new log segment so that, once L3 has committed what
  /// was sent so far, every older segment can be deleted (rotate_wal_done).
  status rotate_wal();

  /// Sends the pending batch if L3 has credit (or always with `force`).
  void flush_writes(bool force);
  /// L3 applied `ops` operations (`bytes` of keys and values) of an earlier batch.
  void on_ack(uint64_t ops, uint64_t bytes);
  /// Operations in the batch not yet sent to L3.
  size_t pending_ops() const noexcept { return pending_.ops.size(); }
  /// Operations handed to the port but not yet applied by L3.
  uint64_t queue_depth() const noexcept { return queued_ + in_flight_ops_; }
  /// True while the RESP front end should stop running commands: too many
  /// operations or bytes queued, or the oldest write not yet committed is
  /// older than 3/8 of max_loss_window_ms.
  bool backlogged() noexcept {
    return queue_depth() > cfg_.write_behind_high_water ||
           queue_bytes() > cfg_.write_behind_high_water_bytes || too_old();
  }
  /// Age (ms) of the oldest write handed to the port that L3 has not
  /// committed yet; 0 when there is none.
  uint64_t uncommitted_age_ms() noexcept;
  /// When (mono ns) that write was handed over; 0 when there is none.
  uint64_t uncommitted_since_ns() noexcept;
  /// Store broker's tick: logs "L3 durability lag" when an acknowledged
  /// write has waited more than half of max_loss_window_ms for the disk
  /// (the log's write(), or without the log the LMDB commit) -- the window
  /// does not hold then -- and "lag over" when it no longer has.
  void watch_durability();
  /// Operations handed to the port since start (writes, erases, clears).
  uint64_t writes() const noexcept { return writes_; }
  /// The batch number that will carry the writes handed over so far: once
  /// committed_batch() reaches it, they are durable.
  uint64_t write_ticket() const noexcept {
    return pending_.ops.empty() ? batch_seq_ : batch_seq_ + 1;
  }
  /// The highest batch number L3 committed (published by the L3 actor).
  uint64_t committed_batch() const noexcept { return committed_->load(std::memory_order_acquire); }
  /// Asks for a (wake_atom) message to `who` with every ack (sync mode: the
  /// front end releases replies whose writes were committed).
  void wake_on_ack(caf::actor who) { ack_waiter_ = std::move(who); }
  /// Shared with the L3 actor: the highest batch number committed to LMDB.
  std::shared_ptr<std::atomic<uint64_t>> committed_ = std::make_shared<std::atomic<uint64_t>>(0);
  /// Bytes (keys + values) handed to the port but not yet applied by L3.
  uint64_t queue_bytes() const noexcept {
    return queued_bytes_ + in_flight_bytes_ + (wal_ ? wal_->unwritten_bytes() : 0);
  }

  /// Asks for a (wake_atom) message to `who` once the queue is below the
  /// high-water marks again (sent from the ack that drains it).
  void wake_when_drained(caf::actor who) {
    waiter_ = std::move(who);
    wake_ = true;
  }

  /// Handles, set by spawn_store.
  caf::actor l3;
  caf::actor broker;
  /// The predictor's tap and actor, installed by the store broker on
  /// (predictor_attach_atom, actor, sample_one_in) (actors/predictor.hpp);
  /// null while prewarm is off.
  std::unique_ptr<predictor_tap> tap;
  caf::actor predictor;
  std::shared_ptr<l3_snapshot> l3_stats = std::make_shared<l3_snapshot>();
  /// Active expiry (the sweeps of memory and L3); DEBUG SET-ACTIVE-EXPIRE 0
  /// turns it off, leaving expiry lazy (on read), as in Redis.
  std::shared_ptr<std::atomic<bool>> active_expire = std::make_shared<std::atomic<bool>>(true);
  /// Called (on the multiplexer thread) after the store broker changed a key
  /// (nullptr: every key, a flush): the RESP broker's client tracking hears
  /// of writes made through the key/value API (ops port, CLI, embedding).
  std::function<void(const std::string* key)> external_change;
  /// Keys L3 (without L4) or L4 lost for good (actors/lost_keys.hpp): the
  /// RESP broker invalidates them for tracking clients. Null: not reported.
  std::shared_ptr<lost_keys> lost;
  void changed(const std::string* key) {
    if (external_change)
      external_change(key);
  }

private:
  store_config cfg_;
  bool with_l3_;
  keyspace ks_;
  l3_batch pending_;
  uint64_t queued_ = 0;
  uint64_t in_flight_batches_ = 0;
  uint64_t in_flight_ops_ = 0;
  caf::actor waiter_;
  bool wake_ = false;
  uint64_t queued_bytes_ = 0;
  uint64_t in_flight_bytes_ = 0;
  uint64_t batch_seq_ = 0;
  uint64_t writes_ = 0;
  caf::actor ack_waiter_;
  /// When the first op of pending_ was handed over (mono ns; 0 = empty), and
  /// (batch number, first op's time) of every batch sent but not known to be
  /// committed, oldest first.
  uint64_t pending_first_ns_ = 0;
  std::deque<std::pair<uint64_t, uint64_t>> uncommitted_;
  std::unique_ptr<wal> wal_;
  bool lagging_ = false;
  uint64_t lag_started_ns_ = 0;
  bool too_old() noexcept;
  void note_op();
};

/// What spawn_store started.
struct store_handles {
  std::shared_ptr<store_core> core;
  caf::actor broker; ///< serves the key/value API (kv_*_atom messages)
  caf::actor l3;     ///< invalid when L3 is off
};

/// Spawns the L3 actor (when `l3db` is given) and the store broker in `sys`
/// (which must have loaded io::middleman). Loads every key L3 holds into the
/// presence filter first. Stop it with `stop_store`.
/// With `below` (L4), L3 misses are delegated to below->reader() and erases
/// and clears reach L4 too.
/// Start-up recovery: replays the log in `cfg.dir` into `db` (puts, erases
/// and clears, reaching `below` as write-behind does), syncs LMDB, deletes
/// the replayed segments and opens the log for appending. `replayed` gets
/// what the replay found (a torn tail is reported there, never applied).
result<std::unique_ptr<wal>> recover_wal(l3_lmdb& db, l3_below* below, const wal_config& cfg,
                                         const kura::clock& clk, wal_replay_stats* replayed);

/// With `log` (recover_wal), writes go to the write-ahead log first.
store_handles spawn_store(caf::actor_system& sys, store_config cfg, std::shared_ptr<l3_lmdb> l3db,
                          const kura::clock& clk, std::shared_ptr<l3_below> below = nullptr,
                          std::unique_ptr<wal> log = nullptr);

/// Sends pending writes to L3, waits until L3 committed and synced them, then
/// stops the store broker and the L3 actor. Call from a non-actor thread.
void stop_store(caf::actor_system& sys, const store_handles& h);

/// Promotes what a lookup returned and ends it (call after running the command).
void finish_lookup(store_core& core, staged_entries& staged, uint64_t seq);

/// How a lookup ended.
enum class lookup_outcome : uint8_t {
  ok,     ///< `staged` holds L3's answer for every key (entry or nullopt)
  retry,  ///< a key was written meanwhile: plan the command again
  failed, ///< L3 failed or timed out
};

/// Sends a lookup for `keys` from `self` to L3 and later calls
/// `then(staged_entries&, uint64_t seq, lookup_outcome)` on self's thread.
/// After `ok`, run the command with the overlay set, then call
/// finish_lookup(core, staged, seq); after `retry` and `failed` the lookup is
/// already finished.
template <class Self, class F>
void lookup_l3(Self* self, store_core& core, std::vector<std::string> keys, F then) {
  core.flush_writes(true);
  auto seq = core.ks().begin_lookup();
  auto* c = &core;
  auto keep = std::make_shared<std::vector<std::string>>(keys);
  self->request(core.l3, std::chrono::milliseconds(core.config().l3_timeout_ms),
                l3_lookup{seq, std::move(keys)})
      .then(
          [c, seq, keep, then](l3_found& found) mutable {
            staged_entries staged;
            bool retry = false;
            for (auto& k : *keep) {
              staged.emplace(k, std::nullopt);
              retry = retry || c->ks().touched_after(k, seq);
            }
            for (auto& w : found.entries) {
              auto e = std::move(w).to_entry();
              staged[e.key] = std::move(e);
            }
            if (retry) {
              finish_lookup(*c, staged, seq);
              staged.clear();
              then(staged, seq, lookup_outcome::retry);
              return;
            }
            then(staged, seq, lookup_outcome::ok);
          },
          [c, seq, then](caf::error&) mutable {
            staged_entries staged;
            c->ks().end_lookup();
            then(staged, seq, lookup_outcome::failed);
          });
}

} // namespace kura::actors
