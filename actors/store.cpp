#include "actors/store.hpp"
#include "actors/erase_tiers.hpp"
#include "actors/retention.hpp"

#include "actors/predictor.hpp"
#include "tiers/l3_format.hpp"
#include "tiers/superseded.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <random>

namespace kura::actors {

// -- store_core ----------------------------------------------------------------------

store_core::store_core(store_config cfg, const kura::clock& clk, bool with_l3)
    : cfg_(cfg), with_l3_(with_l3), ks_(cfg.ks, clk, with_l3 ? this : nullptr) {}

store_core::~store_core() = default;

void store_core::note_op() {
  ++queued_;
  ++writes_;
  if (pending_first_ns_ == 0)
    pending_first_ns_ = std::max<uint64_t>(1, ks_.clock().mono_ns());
}

uint64_t store_core::uncommitted_since_ns() noexcept {
  uint64_t committed = committed_batch();
  while (!uncommitted_.empty() && uncommitted_.front().first <= committed)
    uncommitted_.pop_front();
  return !uncommitted_.empty() ? uncommitted_.front().second : pending_first_ns_;
}

uint64_t store_core::uncommitted_age_ms() noexcept {
  uint64_t first = uncommitted_since_ns();
  if (first == 0)
    return 0;
  uint64_t now = ks_.clock().mono_ns();
  return now > first ? (now - first) / 1000000 : 0;
}

bool store_core::too_old() noexcept {
  if (cfg_.max_loss_window_ms == 0)
    return false;
  // With the log, a write is safe once the log's thread wrote it: only a
  // stalled log (a disk that does not take writes) pauses the front end.
  if (wal_)
    return wal_->unwritten_age_ms() * 8 > cfg_.max_loss_window_ms * 3;
  if (pending_first_ns_ == 0 && uncommitted_.empty())
    return false;
  return uncommitted_age_ms() * 8 > cfg_.max_loss_window_ms * 3;
}

void store_core::watch_durability() {
  uint64_t window_ms = cfg_.max_loss_window_ms;
  if (window_ms == 0 || !l3)
    return;
  // the oldest acknowledged write a kill -9 would lose: not yet written to
  // the log, or (without the log) not yet committed to LMDB
  uint64_t since = wal_ ? wal_->unwritten_since_ns() : uncommitted_since_ns();
  uint64_t now = ks_.clock().mono_ns();
  uint64_t age_ms = since != 0 && now > since ? (now - since) / 1000000 : 0;
  if (!lagging_ && age_ms * 2 > window_ms) {
    lagging_ = true;
    lag_started_ns_ = now;
    std::fprintf(stderr,
                 "kura-node: L3 durability lag: an acknowledged write has waited %llu ms for %s "
                 "(since monotonic %llu ms); kura.l3.max-loss-window (%llu ms) does not hold "
                 "while the disk does not keep up\n",
                 static_cast<unsigned long long>(age_ms),
                 wal_ ? "the write-ahead log's write()" : "the LMDB commit",
                 static_cast<unsigned long long>(since / 1000000),
                 static_cast<unsigned long long>(window_ms));
  } else if (lagging_ && age_ms * 2 <= window_ms) {
    lagging_ = false;
    std::fprintf(stderr, "kura-node: L3 durability lag over after %llu ms\n",
                 static_cast<unsigned long long>((now - lag_started_ns_) / 1000000));
  }
}

void store_core::attach_wal(std::unique_ptr<wal> log) {
  wal_ = std::move(log);
}

void store_core::on_wal_synced() {
  if (ack_waiter_)
    caf::anon_send(ack_waiter_, wake_atom::value);
}

status store_core::rotate_wal() {
  if (!wal_)
    return {};
  return wal_->rotate(committed_batch());
}

namespace {

/// Bytes of one chunk of a batch's packed keys and values: below glibc's
/// mmap threshold (128 KiB), so a chunk is heap memory, not a mapping.
constexpr size_t packed_chunk_bytes = 64 * 1024;
/// Values up to this size are packed (l3_op::packed); larger ones travel as
/// strings of their own. 4 KiB: at -d 1024 packing cut the serving thread's
/// instructions per SET by 11 % and the L3 thread's by 1.4 % against the
/// 256-byte bound, once the L3 thread read the chunks in place
/// (bench/RESULTS.md persist25); a chunk's unused tail stays under 1/16.
constexpr size_t packed_value_max = 4096;

/// A packed op's key and value (l3_op::packed): views into the batch's
/// chunks; false when the op points outside them.
bool packed_views(const l3_batch& b, const l3_op& op, std::string_view& key,
                  std::string_view& value) {
  if (op.packed_chunk >= b.chunks.size())
    return false;
  const auto& c = b.chunks[op.packed_chunk];
  const size_t n = static_cast<size_t>(op.packed_key) + op.packed_value;
  if (op.packed_off > c.size() || n > c.size() - op.packed_off)
    return false;
  key = std::string_view{c.data() + op.packed_off, op.packed_key};
  value = std::string_view{c.data() + op.packed_off + op.packed_key, op.packed_value};
  return true;
}

} // namespace

void store_core::write(const entry& e) {
  if (wal_)
    wal_->append_put(e, batch_seq_ + 1); // the batch that will carry it
  queued_bytes_ += e.key.size() + e.value.size();
  if (e.value.size() > packed_value_max) {
    // the op takes copies of a value this large (its own string)
    pending_.ops.emplace_back(l3_op::put, wire_entry::from(e));
    note_op();
    if (pending_.ops.size() >= cfg_.max_batch_ops)
      flush_writes(false);
    return;
  }
  // A small value: the key and value go into the batch's chunks, one copy
  // and no allocation per write on this thread; the L3 thread's LMDB batch
  // reads them in place (l3_lmdb::put_view) and keeps the chunks until it
  // commits.
  const size_t need = e.key.size() + e.value.size();
  auto& chunks = pending_.chunks;
  if (chunks.empty() || chunks.back().capacity() - chunks.back().size() < need) {
    chunks.emplace_back();
    chunks.back().reserve(std::max(packed_chunk_bytes, need));
  }
  auto& c = chunks.back();
  auto& op = pending_.ops.emplace_back();
  op.kind = l3_op::put;
  op.packed = true;
  op.packed_chunk = static_cast<uint32_t>(chunks.size() - 1);
  op.packed_off = static_cast<uint32_t>(c.size());
  op.packed_key = static_cast<uint32_t>(e.key.size());
  op.packed_value = static_cast<uint32_t>(e.value.size());
  op.e.expiry_ms = e.expiry_ms;
  op.e.hlc = e.ver.hlc;
  op.e.node = e.ver.node;
  op.e.flags = e.flags;
  c.append(e.key).append(e.value);
  note_op();
  if (pending_.ops.size() >= cfg_.max_batch_ops)
    flush_writes(false);
}

uint64_t store_core::write_shared(const entry& meta, shared_bytes value) {
  uint64_t batch = batch_seq_ + 1; // the batch that will carry it
  if (wal_)
    wal_->append_put_shared(meta, value, batch);
  l3_op op;
  op.kind = l3_op::put;
  op.e = wire_entry::from(meta);
  queued_bytes_ += meta.key.size() + value.size();
  op.shared_value = std::move(value);
  pending_.ops.push_back(std::move(op));
  note_op();
  // sent at once: the L3 thread copies it into LMDB, and the keyspace holds
  // the buffer until that batch is acknowledged
  flush_writes(false);
  return batch;
}

void store_core::erase(std::string_view key) {
  if (wal_)
    wal_->append_erase(key, batch_seq_ + 1);
  l3_op op;
  op.kind = l3_op::erase;
  op.e.key.assign(key.data(), key.size());
  pending_.ops.push_back(std::move(op));
  note_op();
  queued_bytes_ += key.size();
}

void store_core::clear() {
  if (wal_)
    wal_->append_clear(batch_seq_ + 1);
  l3_op op;
  op.kind = l3_op::clear;
  pending_.ops.push_back(std::move(op));
  note_op();
  flush_writes(true);
}

void store_core::flush_writes(bool force) {
  // Without the store broker (not initialised yet) acks would go nowhere and
  // the credit would be lost: keep the batch until the broker exists.
  if (pending_.ops.empty() || !l3 || !broker)
    return;
  if (!force && in_flight_batches_ >= 2)
    return;
  pending_.seq = ++batch_seq_;
  auto n = pending_.ops.size();
  in_flight_ops_ += n;
  queued_ -= n;
  in_flight_bytes_ += queued_bytes_;
  queued_bytes_ = 0;
  ++in_flight_batches_;
  uncommitted_.emplace_back(pending_.seq, pending_first_ns_);
  pending_first_ns_ = 0;
  caf::send_as(broker, l3, std::move(pending_));
  pending_ = l3_batch{};
  // the next batch is likely as big: room for it at once, not a dozen
  // reallocations (each moving every op so far) on the serving thread
  pending_.ops.reserve(std::min<size_t>(n, cfg_.max_batch_ops));
}

void store_core::on_ack(uint64_t ops, uint64_t bytes) {
  in_flight_ops_ -= std::min(in_flight_ops_, ops);
  in_flight_bytes_ -= std::min(in_flight_bytes_, bytes);
  if (in_flight_batches_ > 0)
    --in_flight_batches_;
  // batches are acknowledged in the order they were sent
  ks_.release_large(batch_seq_ - in_flight_batches_);
  if (wal_) // segments LMDB has committed leave the disk
    wal_->retire(committed_batch());
  flush_writes(false);
  if (wake_ && !backlogged() && waiter_) {
    wake_ = false;
    caf::anon_send(waiter_, wake_atom::value);
  } else if (ack_waiter_) {
    caf::anon_send(ack_waiter_, wake_atom::value);
  }
}

void finish_lookup(store_core& core, staged_entries& staged, uint64_t seq) {
  for (auto& kv : staged) {
    if (!kv.second)
      continue;
    if ((kv.second->flags & from_archive_flag) != 0) {
      // An L4 hit goes back to L3 too when L3 has room (below half its
      // budget; L3 then drops the archived copy), unless the key changed
      // while the lookup was in flight. Without room it stays archived and
      // memory holds a copy.
      kv.second->flags &= static_cast<uint8_t>(~from_archive_flag);
      auto l3 = core.l3_stats->get().stats;
      bool room = l3.capacity_bytes == 0 || l3.bytes < l3.capacity_bytes / 2;
      if (room && !core.ks().stale(seq) && !core.ks().touched_after(kv.first, seq) &&
          !kv.second->expired(core.ks().clock().now_ms()))
        core.write(*kv.second);
    }
    core.ks().promote(std::move(*kv.second), seq);
  }
  core.ks().end_lookup();
}

// -- the L3 actor ----------------------------------------------------------------------

namespace {

struct l3_state {
  std::shared_ptr<l3_lmdb> db;
  std::shared_ptr<l3_snapshot> snap;
  std::shared_ptr<l3_below> below; ///< L4, or null
  std::shared_ptr<std::atomic<bool>> active_expire;
  const kura::clock* clk = nullptr;
  uint64_t applied = 0;
  uint64_t errors = 0;
  std::string last_error;
  uint32_t sweep_ms = 100;
  size_t sweep_budget = 2000;
  std::mt19937_64 rng{0x6b757261};
  // key rotation: the re-seal pass (l3_rotate_atom / l3_reseal_atom)
  bool reseal_running = false;
  bool reseal_ok = true;
  std::string reseal_error;
  uint32_t active_key = 0;
  reseal_progress reseal;
  retention_sweep retention{0}; ///< kura.retention.max-age (actors/retention.hpp)
  static inline const char* name = "kura.l3";

  void note(const status& st) {
    if (st.ok())
      return;
    ++errors;
    if (last_error != st.message()) {
      last_error = st.message();
      std::cerr << "kura-node: L3 error: " << last_error << std::endl;
    }
  }
  /// The highest write-behind batch applied, and the store core's view of
  /// what is committed (store_core::committed_batch()).
  uint64_t applied_batch = 0;
  std::shared_ptr<std::atomic<uint64_t>> committed;
  bool sync_writes = false;
  uint64_t last_publish_ns = 0;
  /// Key rotation reaches the write-ahead log (new records sealed with the
  /// new key); empty without a log.
  std::function<void(std::shared_ptr<const crypto::keyring>)> rekey_log;
  uint64_t scan_slices = 0; ///< verify-on-open=lazy: slices read so far
  /// Publishes the committed batch number: everything applied once nothing
  /// is pending. A commit that fails (disk or map full; the error is in INFO
  /// and the log) keeps the writes in memory, nothing lost, and publishes
  /// too: the loss window cannot be held then, and clients are not paused
  /// for it.
  void mark_committed(bool failed) {
    if (committed && (failed || db->pending() == 0))
      committed->store(applied_batch, std::memory_order_release);
  }
  /// After an L3 step: commits what L3 evicted into L4, and once L3 has
  /// nothing pending drops the archive copies its writes superseded (with a
  /// long list, L3 commits and syncs first: one extra commit per that many
  /// superseding writes).
  void settle_below() {
    if (!below)
      return;
    below->settle();
    if (below->superseded_waiting() == 0)
      return;
    if (db->pending() != 0) {
      if (below->superseded_waiting() < superseded_copies::max_waiting)
        return;
      auto st = db->sync();
      note(st);
      mark_committed(!st.ok());
      if (!st.ok())
        return;
      below->settle(); // the commit may have evicted into L4
    }
    below->l3_committed();
  }
  void publish() {
    mark_committed(false);
    l3_snapshot::data d;
    d.stats = db->quick_stats(); // DBSIZE asks stats() itself
    d.pending = db->pending();
    d.expires = db->expiring_entries();
    d.applied = applied;
    d.errors = errors;
    d.last_error = last_error;
    snap->set(std::move(d));
  }
};

// -- key listings (KEYS, SCAN, DBSIZE, RANDOMKEY) over L3 and L4 ----------------------
//
// Nothing here commits or fsyncs L3: l3_lmdb::scan_live reads the committed
// records and the pending batch side by side. The store broker sends its
// write-behind batch first, so a listing sees every write made before it.
// L3 and L4 hold disjoint keys (an L3 eviction moves the entry down in one
// L3 step; an L3 write drops the archived copy once L3 committed it, and
// until then the listings skip that copy: l3_below::superseded), so within
// one handler call every live key is listed from exactly one of them.
// Order: phase 0 merges L3 (LMDB key order) with L4's keys up to 400 bytes
// (byte order, the same order for them); phase 1 lists L4's longer keys in
// L4's index order (by hash). A position is (phase, last key examined).
// With encryption at rest both tiers order by keyed hashes under different
// secrets, so nothing can be merged: phase 0 lists L3 alone, phase 1 all of L4.

constexpr size_t l4_short_key_max = 400; // archive::format::index_key

struct listed {
  std::string order; ///< position in phase 0's order (the LMDB key)
  std::string key;
  uint8_t flags = 0;
};

/// One step of phase 0 after `after`: about `limit` keys of each tier.
/// Appends the keys up to the returned position; nullopt = phase 0 is done.
result<std::optional<std::string>> list_phase0(l3_state& s, const std::string& after, size_t limit,
                                               uint64_t now, std::vector<listed>& out) {
  if (s.db->encrypted()) // L3 alone, in its keyed-hash order; L4 is phase 1
    return s.db->scan_live(after, limit, now, [&](const entry& e) {
      out.push_back({{}, e.key, e.flags});
    });
  std::vector<listed> got;
  auto r3 = s.db->scan_live(after, limit, now, [&](const entry& e) {
    got.push_back({l3_format::lmdb_key(e.key), e.key, e.flags});
  });
  if (!r3)
    return r3.err();
  std::optional<std::string> end3, end4;
  if (*r3)
    end3 = l3_format::lmdb_key(**r3);
  if (s.below) {
    std::string from = after.substr(0, std::min(after.size(), l4_short_key_max));
    bool reached_long = false;
    // a probe of one row first: past L4's short keys the iterator would
    // read a block for each long key only to drop it
    bool any = false;
    auto probe = s.below->scan_keys(from, 1, [&](const l3_below::key_info& k) {
      any = true;
      reached_long = k.key.size() > l4_short_key_max;
    });
    if (!probe)
      return probe.err();
    if (!any)
      reached_long = true; // L4 holds nothing after `from`
    std::string last_short;
    auto r4 = reached_long
                  ? result<std::optional<std::string>>(std::optional<std::string>{})
                  : s.below->scan_keys(from, limit, [&](const l3_below::key_info& k) {
                      if (reached_long || k.key.size() > l4_short_key_max) {
                        reached_long = true;
                        return;
                      }
                      last_short = k.key;
                      if ((k.expiry_ms == 0 || k.expiry_ms > now) && !s.below->superseded(k.key))
                        got.push_back({k.key, k.key, k.flags});
                    });
    if (!r4)
      return r4.err();
    if (*r4 && !reached_long)
      end4 = **r4;
  }
  // keys up to the smaller end are complete in both tiers
  std::optional<std::string> bound = end3;
  if (end4 && (!bound || *end4 < *bound))
    bound = end4;
  std::sort(got.begin(), got.end(),
            [](const listed& a, const listed& b) { return a.order < b.order; });
  for (size_t i = 0; i < got.size(); ++i) {
    if (bound && got[i].order > *bound)
      break;
    if (i > 0 && got[i].order == got[i - 1].order)
      continue;
    out.push_back(std::move(got[i]));
  }
  if (!bound)
    return std::optional<std::string>{};
  // resume after the bound: a real key of L3 or L4 (phase 0 compares LMDB keys)
  if (bound == end3)
    return std::optional<std::string>{**r3};
  return bound;
}

/// One step of phase 1 (L4's long keys) after `after` (empty = its start).
result<std::optional<std::string>> list_phase1(l3_state& s, const std::string& after, size_t limit,
                                               uint64_t now, std::vector<listed>& out) {
  if (!s.below)
    return std::optional<std::string>{};
  // encrypted: every key of L4, in its keyed-hash order; plain: every key up
  // to 400 bytes sorts before this one in L4's index
  bool all = s.db->encrypted();
  std::string from = after.empty() && !all ? std::string(l4_short_key_max, '\xff') : after;
  return s.below->scan_keys(from, limit, [&](const l3_below::key_info& k) {
    if ((all || k.key.size() > l4_short_key_max) && (k.expiry_ms == 0 || k.expiry_ms > now) &&
        !s.below->superseded(k.key)) // L3 lists it
      out.push_back({{}, k.key, k.flags});
  });
}

result<l3_listing> list_keys(l3_state& s, const l3_list& q) {
  l3_listing out;
  auto now = s.clk->now_ms();
  if (q.mode == l3_list::count) {
    // O(1): L3's record count (committed, adjusted by the pending batch)
    // plus L4's live entries, less the archive copies that L3's pending
    // writes superseded (both tiers hold those keys until L3's commit);
    // expired keys not yet swept count, as in Redis
    uint64_t n4 = s.below ? s.below->entries() : 0;
    uint64_t shadowed = s.below ? std::min<uint64_t>(n4, s.below->superseded_waiting()) : 0;
    out.count = s.db->stats().entries + n4 - shadowed;
    return out;
  }
  if (q.mode == l3_list::random) {
    auto rnd = [&s] { return s.rng(); };
    uint64_t n3 = s.db->stats().entries;
    uint64_t n4 = s.below ? s.below->entries() : 0;
    auto k3 = s.db->random_key(now, rnd);
    if (!k3)
      return k3.err();
    if (n4 > 0 && (!*k3 || s.rng() % (n3 + n4) < n4)) {
      // L4: the next live archived keys after a random point between the
      // first archived key and the last key of L3 (L4 has no cheap "last"),
      // wrapping around once
      std::string first4;
      auto f = s.below->scan_keys({}, 1, [&](const l3_below::key_info& k) { first4 = k.key; });
      if (!f)
        return f.err();
      auto b3 = s.db->key_bounds();
      if (!b3)
        return b3.err();
      std::string hi = *b3 && (*b3)->second > first4 ? (*b3)->second : first4;
      std::string from = random_position(first4, hi, rnd);
      std::vector<std::string> seen;
      for (int round = 0; round < 2 && seen.empty(); ++round) {
        auto r = s.below->scan_keys(from, 64, [&](const l3_below::key_info& k) {
          if (k.expiry_ms == 0 || k.expiry_ms > now)
            seen.push_back(k.key);
        });
        if (!r)
          return r.err();
        if (!seen.empty() || from.empty())
          break;
        from.clear();
      }
      if (!seen.empty()) {
        out.keys.push_back(seen[s.rng() % std::min<size_t>(seen.size(), 8)]);
        return out;
      }
    }
    if (*k3)
      out.keys.push_back(std::move(**k3));
    return out;
  }
  std::vector<listed> got;
  constexpr size_t chunk = 4096;
  size_t limit = q.limit == 0 ? chunk : static_cast<size_t>(q.limit);
  std::string pos = q.after;
  uint8_t phase = q.phase > 1 ? 1 : q.phase;
  bool done = false;
  while (!done) {
    result<std::optional<std::string>> r =
        phase == 0 ? list_phase0(s, pos, limit, now, got) : list_phase1(s, pos, limit, now, got);
    if (!r)
      return r.err();
    if (*r) {
      pos = std::move(**r);
      if (q.limit != 0)
        break; // SCAN: one step
    } else if (phase == 0) {
      phase = 1; // phase 0 is done: L4's long keys next
      pos.clear();
    } else {
      done = true;
    }
  }
  out.done = done;
  out.phase = phase;
  out.last = std::move(pos);
  for (auto& l : got) {
    if (!q.pattern.empty() && !glob_match(q.pattern, l.key))
      continue;
    out.keys.push_back(std::move(l.key));
    out.flags.push_back(l.flags);
  }
  return out;
}

caf::behavior l3_actor(caf::stateful_actor<l3_state>* self, std::shared_ptr<l3_lmdb> db,
                       std::shared_ptr<l3_snapshot> snap, const kura::clock* clk, uint32_t sweep_ms,
                       size_t sweep_budget, std::shared_ptr<l3_below> below,
                       std::shared_ptr<std::atomic<bool>> active_expire,
                       std::shared_ptr<std::atomic<uint64_t>> committed, bool sync_writes,
                       uint64_t max_age_ms,
                       std::function<void(std::shared_ptr<const crypto::keyring>)> rekey_log) {
  auto& st = self->state;
  st.retention = retention_sweep{max_age_ms};
  st.rekey_log = std::move(rekey_log);
  st.committed = std::move(committed);
  st.applied_batch = st.committed->load();
  st.sync_writes = sync_writes;
  st.active_expire = std::move(active_expire);
  st.below = std::move(below);
  st.db = std::move(db);
  st.snap = std::move(snap);
  st.clk = clk;
  st.sweep_ms = sweep_ms;
  st.sweep_budget = sweep_budget;
  st.publish();
  self->delayed_send(self, std::chrono::milliseconds(sweep_ms), tick_timer_atom::value);
  return {
      [=](l3_batch& b) {
        auto& s = self->state;
        auto now = s.clk->now_ms();
        uint64_t bytes = 0; // before the entries are moved into LMDB's batch
        for (auto& op : b.ops)
          bytes += op.e.key.size() + op.e.value.size() + op.shared_value.size() + op.packed_key +
                   op.packed_value;
        for (auto& op : b.ops) {
          try {
            switch (op.kind) {
            case l3_op::put: {
              kura::version ver{op.e.hlc, op.e.node};
              if (op.packed) {
                // LMDB's batch reads the key and value where they are (the
                // chunks go to it below): no strings made on this thread
                std::string_view key, value;
                if (!packed_views(b, op, key, value)) {
                  s.note(status{errc::invalid_argument, "write-behind put outside its batch"});
                  break;
                }
                entry meta;
                meta.expiry_ms = op.e.expiry_ms;
                meta.ver = ver;
                meta.flags = op.e.flags;
                auto st2 = s.db->put_view(meta, key, value, now);
                s.note(st2);
                if (s.below && st2.ok())
                  s.below->written(key, ver);
                break;
              }
              std::string key = s.below ? op.e.key : std::string{};
              if (op.shared_value) { // a large value: its one copy off the serving thread
                op.e.value.assign(op.shared_value.view());
                op.shared_value.reset();
              }
              auto st2 = s.db->put(std::move(op.e).to_entry(), now);
              s.note(st2);
              if (s.below && st2.ok())
                s.below->written(key, ver);
              break;
            }
            case l3_op::erase: {
              auto r = s.db->erase(op.e.key);
              if (!r)
                s.note(r.to_status());
              if (s.below)
                s.below->erase(op.e.key);
              break;
            }
            case l3_op::clear:
              s.note(s.db->clear());
              if (s.below)
                s.below->clear();
              break;
            default:
              s.note(status{errc::invalid_argument, "unknown write-behind operation"});
            }
          } catch (const std::exception& e) {
            s.note(status{errc::io_error, e.what()});
          }
        }
        // the packed ops still pending in LMDB's batch read these
        s.db->keep_buffers(std::move(b.chunks));
        s.applied += b.ops.size();
        s.applied_batch = std::max(s.applied_batch, b.seq);
        s.db->set_log_mark(s.applied_batch); // committed with the batch's ops
        // kura.l3.sync: the batch is durable before it is acknowledged
        auto fl = s.sync_writes ? s.db->sync() : s.db->maybe_flush(now);
        s.note(fl);
        s.mark_committed(!fl.ok());
        s.settle_below();
        // before the ack, so whoever sees the ack sees these figures -- but at
        // most every 20 ms while a batch is pending (a read transaction and
        // the snapshot's lock each time)
        auto mono = s.clk->mono_ns();
        if (s.db->pending() == 0 || mono - s.last_publish_ns >= 20'000'000) {
          s.last_publish_ns = mono;
          s.publish();
        }
        auto sender = caf::actor_cast<caf::actor>(self->current_sender());
        if (sender)
          self->send(sender, l3_ack_atom::value, static_cast<uint64_t>(b.ops.size()), bytes);
      },
      [=](l3_lookup& q) -> caf::result<l3_found> {
        auto& s = self->state;
        l3_found f;
        f.seq = q.seq;
        auto now = s.clk->now_ms();
        std::vector<std::string> missing;
        for (auto& k : q.keys) {
          auto r = s.db->get(k, now, true);
          if (!r) {
            s.note(r.to_status());
            continue;
          }
          if (*r && !(*r)->is_tombstone())
            f.entries.push_back(wire_entry::from(std::move(**r)));
          else if (!*r && s.below && !s.below->superseded(k))
            missing.push_back(k); // (a superseded archive copy is older than L3's)
        }
        if (!missing.empty()) {
          // the L4 reader answers the requester directly
          s.below->settle();
          auto rp = self->make_response_promise();
          rp.delegate(s.below->reader(), l4_lookup_atom::value, std::move(f), std::move(missing));
          return rp;
        }
        return f;
      },
      [=](l3_list& q) -> caf::result<l3_listing> {
        auto& s = self->state;
        try {
          auto r = list_keys(s, q);
          if (!r) {
            s.note(r.err());
            return caf::make_error(caf::sec::runtime_error, r.err().message);
          }
          return std::move(*r);
        } catch (const std::exception& e) {
          s.note(status{errc::io_error, e.what()});
          return caf::make_error(caf::sec::runtime_error, std::string(e.what()));
        }
      },
      [=](l3_sync_atom) -> caf::result<caf::ok_atom> {
        auto& s = self->state;
        s.note(s.db->sync());
        s.settle_below();
        s.publish();
        return caf::ok_atom::value;
      },
      [=](l3_rotate_atom, const std::string& key_file,
          const std::string& salt_file) -> std::string {
        auto& s = self->state;
        auto kr = crypto::keyring::load(key_file, salt_file);
        if (!kr)
          return kr.err().to_string();
        uint32_t active = (*kr)->active();
        auto keys = *kr;
        if (auto st2 = s.db->rotate_keys(std::move(*kr)); !st2)
          return st2.message();
        if (s.rekey_log)
          s.rekey_log(keys);
        bool was_running = s.reseal_running;
        s.reseal_running = true;
        s.reseal_ok = true;
        s.reseal_error.clear();
        s.active_key = active;
        s.reseal = reseal_progress{};
        if (!was_running)
          self->send(self, l3_reseal_atom::value, true);
        return {};
      },
      [=](l3_reseal_atom, bool) {
        // one slice of the re-seal pass; writes queued meanwhile go first
        auto& s = self->state;
        if (!s.reseal_running)
          return;
        auto r = s.db->reseal_step(2000);
        if (!r) {
          s.note(r.to_status());
          s.reseal_running = false;
          s.reseal_ok = false;
          s.reseal_error = r.err().to_string();
          return;
        }
        s.reseal = *r;
        if (r->done) {
          s.reseal_running = false;
          return;
        }
        self->send(self, l3_reseal_atom::value, true);
      },
      [=](l3_erase_atom, uint8_t mode, const std::vector<std::string>& args) {
        auto& s = self->state; // KURA.ERASE (actors/erase_tiers.hpp)
        auto r = erase_in_l3(*s.db, s.below.get(), mode, args);
        s.publish();
        return r;
      },
      [=](l3_erase_fin_atom, const std::vector<std::string>& keys) {
        auto& s = self->state;
        auto r = finish_erase_in_l3(*s.db, s.below.get(), keys);
        s.publish();
        return r;
      },
      [=](l3_reseal_atom) {
        auto& s = self->state;
        return std::make_tuple(s.reseal_running, s.reseal_ok, s.reseal_error, s.active_key,
                               s.reseal.records_done, s.reseal.records_total, s.reseal.resealed);
      },
      [=](l3_scan_atom, std::string& after, caf::actor& to) {
        // one slice of the background pass (verify-on-open=lazy): reading
        // each record checks its checksum; writes queued meanwhile go first
        auto& s = self->state;
        std::vector<std::string> keys;
        auto r = s.db->scan_live(after, 4096, s.clk->now_ms(),
                                 [&](const entry& e) { keys.push_back(e.key); });
        if (!r) {
          // a damaged record: reported, never served (get() checks it too);
          // the filter stays "maybe" for every key
          s.note(status{r.err().code, "L3 background verification: " + r.err().message});
          return;
        }
        bool done = !*r;
        // the broker's handle travels with the slices: kept in the state it
        // would make a reference cycle (broker -> core -> L3) that stops a
        // clean shutdown
        // anonymous: a message naming the L3 actor as its sender, left in
        // the broker's mailbox at shutdown, keeps the L3 actor's thread alive
        // until the middleman stops, which waits for that thread
        caf::anon_send(to, l3_scan_atom::value, std::move(keys), done);
        if (!done) {
          s.scan_slices++;
          self->send(self, l3_scan_atom::value, std::move(**r), std::move(to));
        }
      },
      [=](tick_timer_atom) {
        auto& s = self->state;
        auto now = s.clk->now_ms();
        auto fl = s.db->maybe_flush(now);
        s.note(fl);
        s.mark_committed(!fl.ok());
        if (s.active_expire->load(std::memory_order_relaxed))
          s.db->sweep_expired(now, s.sweep_budget);
        s.retention.step(*s.db, s.below.get(), now, s.sweep_budget); // not a TTL: always
        s.settle_below();
        s.publish();
        uint64_t next = s.sweep_ms;
        if (auto due = s.db->flush_due_in(now))
          next = std::max<uint64_t>(1, std::min<uint64_t>(*due, next));
        self->delayed_send(self, std::chrono::milliseconds(next), tick_timer_atom::value);
      },
  };
}

// -- the store broker --------------------------------------------------------------

struct store_state {
  std::shared_ptr<store_core> core;
  size_t sweep_budget = 16; ///< the active expiry's current budget (sweep_expired)
  static inline const char* name = "kura.store";
};

/// The store broker's tick: one active-expiry pass over the memory shards
/// with an adaptive budget, as Redis's active expire cycle samples more only
/// while many sampled keys were expired: it doubles (up to
/// kura.expiry.sweep-budget) while a pass removes at least a quarter of its
/// budget and halves (down to 16) while a pass removes nothing. A keyspace
/// without expiring keys then costs a few hundred slot looks per tick instead
/// of a walk of every table (a node touch, often a cache miss, per entry):
/// that walk was about a quarter of the serving thread under GET -P 16.
size_t sweep_expired(store_core& c, size_t& now) {
  size_t most = std::max<size_t>(c.config().sweep_budget, 1);
  size_t least = std::min<size_t>(16, most);
  size_t budget = std::clamp(now, least, most);
  size_t removed = c.ks().sweep(budget);
  if (removed > 0 && removed * 4 >= budget)
    now = std::min(most, budget * 2);
  else if (removed == 0)
    now = std::max(least, budget / 2);
  return removed;
}

kv_reply reply_get(keyspace& ks, const std::string& key) {
  kv_reply r;
  ks.read(key, [&](std::string_view v, uint64_t exp) {
    r.found = true;
    r.value.assign(v.data(), v.size());
    r.expiry_ms = exp;
  });
  return r;
}

/// Runs `f(keyspace&) -> kv_reply` once `key` is known (memory or L3 answer).
template <class F>
void with_key(caf::stateful_actor<store_state, caf::io::broker>* self, const std::string& key,
              caf::response_promise rp, F f) {
  auto core = self->state.core;
  auto& ks = core->ks();
  if (ks.known(key) || !ks.maybe_in_l3(key)) {
    try {
      rp.deliver(f(ks));
    } catch (const std::exception& e) {
      rp.deliver(kv_reply{false, {}, 0, e.what()});
    }
    return;
  }
  lookup_l3(
      self, *core, {key},
      [self, core, key, rp, f](staged_entries& staged, uint64_t seq, lookup_outcome o) mutable {
        if (o == lookup_outcome::retry)
          return with_key(self, key, rp, f);
        if (o == lookup_outcome::failed)
          return rp.deliver(kv_reply{false, {}, 0, "L3 lookup failed"});
        auto& ks2 = core->ks();
        ks2.set_overlay(&staged);
        kv_reply r;
        try {
          r = f(ks2);
        } catch (const std::exception& e) {
          r.error = e.what();
        }
        ks2.set_overlay(nullptr);
        finish_lookup(*core, staged, seq);
        rp.deliver(std::move(r));
      });
}

caf::behavior store_broker(caf::stateful_actor<store_state, caf::io::broker>* self,
                           std::shared_ptr<store_core> core) {
  self->state.core = core;
  core->broker = caf::actor_cast<caf::actor>(self);
  self->set_default_handler(caf::drop);
  self->delayed_send(self, std::chrono::milliseconds(core->config().sweep_interval_ms),
                     tick_timer_atom::value);
  auto ttl_to_expiry = [core](uint64_t ttl_ms) -> uint64_t {
    return ttl_ms == 0 ? 0 : core->ks().clock().now_ms() + ttl_ms;
  };
  return {
      [=](l3_ack_atom, uint64_t n, uint64_t bytes) { self->state.core->on_ack(n, bytes); },
      [=](wal_synced_atom) { self->state.core->on_wal_synced(); },
      [=](l3_scan_atom, std::vector<std::string>& keys, bool done) {
        auto& ks = self->state.core->ks();
        for (auto& k : keys)
          ks.note_in_l3(k);
        if (done)
          ks.end_filter_load();
      },
      [=](tick_timer_atom) {
        auto& c = *self->state.core;
        try {
          if (c.active_expire->load(std::memory_order_relaxed))
            sweep_expired(c, self->state.sweep_budget);
          // expired sensitive keys: tracking clients are invalidated
          c.ks().expire_sensitive([&c](const std::string& k) { c.changed(&k); });
        } catch (const std::exception& e) {
          std::cerr << "kura-node: expiry sweep failed: " << e.what() << std::endl;
        }
        c.flush_writes(false);
        c.watch_durability();
        if (c.predictor)
          ship_tap(c);
        self->delayed_send(self, std::chrono::milliseconds(c.config().sweep_interval_ms),
                           tick_timer_atom::value);
      },
      // the predictor's side (actors/predictor.hpp)
      [=](predictor_attach_atom, caf::actor pred, uint32_t one_in, uint32_t max_rate,
          bool follow_writes) {
        attach_predictor(*self->state.core, std::move(pred), one_in, max_rate, follow_writes);
      },
      [=](prewarm_resident_atom, std::vector<std::string>& keys) {
        return resident_keys(*self->state.core, keys);
      },
      [=](prewarm_ttl_atom, ttl_rules_ptr& rules) {
        set_ttl_rules(*self->state.core, std::move(rules));
      },
      [=](prewarm_drop_atom, std::vector<std::string>& keys) -> uint64_t {
        return prewarm_drop(*self->state.core, keys);
      },
      [=](prewarm_load_atom, std::vector<std::string>& keys) -> caf::result<prewarm_loaded> {
        return prewarm_load(self, self->state.core, std::move(keys));
      },
      [=](kv_get_atom, const std::string& key) -> caf::result<kv_reply> {
        auto rp = self->make_response_promise();
        with_key(self, key, rp, [key](keyspace& ks) { return reply_get(ks, key); });
        return rp;
      },
      [=](kv_set_atom, const std::string& key, const std::string& value,
          uint64_t ttl_ms) -> caf::result<kv_reply> {
        kv_reply r;
        auto st = self->state.core->ks().write(key, value, ttl_to_expiry(ttl_ms));
        r.found = st.ok();
        if (!st.ok())
          r.error = st.message();
        else
          self->state.core->changed(&key);
        return r;
      },
      [=](mem_erase_atom, uint8_t mode,
          const std::vector<std::string>& args) -> caf::result<std::vector<std::string>> {
        auto& c = *self->state.core; // KURA.ERASE (actors/erase_tiers.hpp)
        auto erased = erase_in_memory(c, mode, args);
        if (!c.l3)
          return erased;
        // the L3 sync comes after the deletes just sent (one sender, FIFO);
        // the log's segments up to here (they hold the erased keys' records)
        // are deleted once LMDB has committed them
        c.flush_writes(true);
        if (auto st = c.rotate_wal(); !st.ok())
          return caf::make_error(caf::sec::runtime_error, st.message());
        auto rp = self->make_response_promise<std::vector<std::string>>();
        auto core = self->state.core;
        self->request(c.l3, std::chrono::seconds(60), l3_sync_atom::value)
            .then(
                [rp, erased, core](caf::ok_atom) mutable {
                  if (auto st = core->rotate_wal(); !st.ok())
                    rp.deliver(caf::make_error(caf::sec::runtime_error, st.message()));
                  else
                    rp.deliver(std::move(erased));
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [=](kv_del_atom, const std::string& key) -> caf::result<kv_reply> {
        auto rp = self->make_response_promise();
        with_key(self, key, rp, [key, core = self->state.core](keyspace& ks) {
          kv_reply r;
          r.found = ks.erase(key);
          if (r.found)
            core->changed(&key);
          return r;
        });
        return rp;
      },
      [=](kv_expire_atom, const std::string& key, uint64_t ttl_ms) -> caf::result<kv_reply> {
        auto rp = self->make_response_promise();
        auto exp = ttl_to_expiry(ttl_ms);
        with_key(self, key, rp, [key, exp, core = self->state.core](keyspace& ks) {
          kv_reply r;
          r.found = ks.set_expiry(key, exp);
          if (r.found)
            core->changed(&key);
          return r;
        });
        return rp;
      },
      [=](kv_tier_atom, const std::string& key) -> caf::result<kv_reply> {
        auto rp = self->make_response_promise();
        with_key(self, key, rp, [key](keyspace& ks) {
          kv_reply r;
          r.value = ks.tier_of(key);
          r.found = r.value != "none";
          return r;
        });
        return rp;
      },
      [=](kv_flush_atom) -> caf::result<kv_reply> {
        self->state.core->ks().clear();
        self->state.core->changed(nullptr);
        kv_reply r;
        r.found = true;
        return r;
      },
      [=](kv_stats_atom) -> node_status {
        auto& c = *self->state.core;
        node_status st;
        auto row = [&](std::string n, uint64_t v) {
          st.names.push_back(std::move(n));
          st.values.push_back(std::to_string(v));
        };
        auto tier = [&](const std::string& t, const tier_stats& s) {
          row(t + ".hits", s.hits);
          row(t + ".misses", s.misses);
          row(t + ".evictions", s.evictions);
          row(t + ".expirations", s.expirations);
          row(t + ".entries", s.entries);
          row(t + ".bytes", s.bytes);
          row(t + ".capacity_bytes", s.capacity_bytes);
        };
        tier("l1", c.ks().l1_stats());
        tier("l2", c.ks().l2_stats());
        if (c.has_l3()) {
          auto snap = c.l3_stats->get();
          tier("l3", snap.stats);
          row("l3.uncommitted_writes", snap.pending);
          row("l3.write_behind_queue", c.queue_depth());
          row("l3.errors", snap.errors);
        }
        return st;
      },
      [=](shutdown_atom) -> caf::result<caf::ok_atom> {
        auto& c = *self->state.core;
        c.flush_writes(true);
        if (!c.l3)
          return caf::ok_atom::value;
        auto rp = self->make_response_promise<caf::ok_atom>();
        // Weak: this handler outlives the broker when the sync times out
        // (stop_store then ends the broker), and the core holds the L3
        // actor: a strong capture kept the detached L3 actor alive and the
        // process hung in ~actor_system after SIGTERM (session 15, a 22 GB
        // L3 whose backlog took longer than the timeout).
        std::weak_ptr<store_core> weak = self->state.core;
        self->request(c.l3, std::chrono::seconds(60), l3_sync_atom::value)
            .then(
                [rp, weak](caf::ok_atom) mutable {
                  // LMDB holds everything: the log's segments can go, so the
                  // next start has nothing to replay
                  auto core = weak.lock();
                  if (!core) {
                    rp.deliver(caf::ok_atom::value);
                    return;
                  }
                  if (auto st = core->rotate_wal(); !st.ok())
                    std::cerr << "kura-node: WAL checkpoint at shutdown failed: " << st.message()
                              << std::endl;
                  rp.deliver(caf::ok_atom::value);
                },
                [rp](caf::error& err) mutable { rp.deliver(err); });
        return rp;
      },
  };
}

} // namespace

// -- spawning and stopping ----------------------------------------------------------

wal_config node_wal_config(std::string dir, uint64_t max_loss_window_ms, bool sync_writes,
                           std::shared_ptr<const crypto::keyring> keys) {
  wal_config wc;
  wc.dir = std::move(dir);
  wc.keys = std::move(keys);
  wc.sync_each = sync_writes;
  // written every 10 ms (a killed process keeps what was written); synced
  // twice per loss window (a machine crash keeps what was synced), at most
  // once a second as redis-server's appendfsync everysec
  wc.write_interval_ms = std::max<uint64_t>(1, std::min<uint64_t>(10, max_loss_window_ms / 8));
  wc.sync_interval_ms =
      max_loss_window_ms == 0
          ? 1000
          : std::max<uint64_t>(1, std::min<uint64_t>(1000, max_loss_window_ms / 2));
  return wc;
}

result<std::unique_ptr<wal>> recover_wal(l3_lmdb& db, l3_below* below, const wal_config& cfg,
                                         const kura::clock& clk, wal_replay_stats* replayed) {
  auto now = clk.now_ms();
  // batches up to the mark are in LMDB already (l3_lmdb::log_mark): skipped,
  // so a restart replays only what LMDB had not committed
  uint64_t mark = db.log_mark();
  uint64_t top = mark;
  uint64_t skipped = 0;
  std::string skipped_reason;
  auto r = wal::replay(cfg, [&](wal_record&& rec) -> status {
    if (rec.batch <= mark)
      return status{};
    top = std::max(top, rec.batch);
    switch (rec.kind) {
    case wal_record::put: {
      // a budget lowered since the write (or a log of a version that took
      // such writes): the record can never fit, so the key keeps L3's value
      if (auto fit = db.fit().check(rec.e.key, rec.e.value.size(), rec.e.expiry_ms != 0); !fit) {
        if (skipped++ == 0)
          skipped_reason = fit.message();
        return status{};
      }
      std::string key = below ? rec.e.key : std::string{};
      // an expired entry is dropped by put() as write-behind would
      kura::version ver = rec.e.ver;
      auto st = db.put(std::move(rec.e), now);
      if (st.ok() && below)
        below->written(key, ver);
      // a write L3 refuses (too large) was refused when it was made too
      return st.code() == errc::key_too_large || st.code() == errc::value_too_large ? status{} : st;
    }
    case wal_record::erase: {
      auto e = db.erase(rec.e.key);
      if (below)
        below->erase(rec.e.key);
      return e.to_status();
    }
    case wal_record::clear:
      if (below)
        below->clear();
      return db.clear();
    }
    return status{};
  });
  if (!r)
    return error{r.err().code, "WAL replay from " + cfg.dir + ": " + r.err().message};
  if (top > mark) {
    db.set_log_mark(top);
    if (auto st = db.sync(); !st.ok())
      return error{st.code(), "WAL replay: L3 sync: " + st.message()};
    if (below) {
      below->settle();
      below->l3_committed(); // LMDB synced the replayed writes
    }
  }
  if (replayed) {
    *replayed = *r;
    replayed->skipped = skipped;
    replayed->skipped_reason = std::move(skipped_reason);
  }
  if (auto st = wal::remove_segments(cfg.dir); !st.ok())
    return st.err();
  return wal::open(cfg, clk);
}

store_handles spawn_store(caf::actor_system& sys, store_config cfg, std::shared_ptr<l3_lmdb> l3db,
                          const kura::clock& clk, std::shared_ptr<l3_below> below,
                          std::unique_ptr<wal> log) {
  store_handles h;
  if (l3db) // writes L3 could never hold are refused when they are made
    cfg.ks.l3_sizing = l3db->fit();
  h.core = std::make_shared<store_core>(cfg, clk, l3db != nullptr);
  bool logged = log != nullptr && l3db != nullptr;
  if (logged)
    h.core->attach_wal(std::move(log));
  if (l3db) // batch numbers go on from the last run's (the log's records name them)
    h.core->set_batch_base(l3db->log_mark());
  if (l3db) {
    auto& ks = h.core->ks();
    if (cfg.lazy_open)
      ks.begin_filter_load(); // filled by the L3 actor's background pass
    else
      (void)l3db->for_each([&](const entry& e) {
        ks.note_in_l3(e.key);
        return true;
      });
    if (below && below->entries() > 0)
      ks.saturate_filter(); // archived keys: the filter cannot list them
    h.l3 = sys.spawn<caf::detached>(
        l3_actor, l3db, h.core->l3_stats, &clk, cfg.sweep_interval_ms, cfg.sweep_budget, below,
        h.core->active_expire, h.core->committed_, cfg.sync_writes && !logged, cfg.ks.max_age_ms,
        [wk = std::weak_ptr<store_core>(h.core)](std::shared_ptr<const crypto::keyring> kr) {
          if (auto c = wk.lock(); c && c->log())
            if (auto st = c->log()->set_keys(std::move(kr)); !st.ok())
              std::cerr << "kura-node: WAL key rotation: " << st.message() << std::endl;
        });
    h.core->l3 = h.l3;
  }
  h.broker = sys.middleman().spawn_broker(store_broker, h.core);
  if (h.l3 && cfg.lazy_open) {
    caf::anon_send(h.l3, l3_scan_atom::value, std::string{}, h.broker);
  }
  if (logged)
    // weak: the core owns the log, and the broker's state owns the core
    h.core->log()->set_on_synced([b = caf::actor_cast<caf::weak_actor_ptr>(h.broker)] {
      if (auto strong = caf::actor_cast<caf::actor>(b.lock()))
        caf::anon_send(strong, wal_synced_atom::value);
    });
  return h;
}

void stop_store(caf::actor_system& sys, const store_handles& h) {
  caf::scoped_actor self{sys};
  if (h.broker) {
    self->request(h.broker, std::chrono::seconds(90), shutdown_atom::value)
        .receive([](caf::ok_atom) {},
                 [&](caf::error& err) {
                   std::cerr << "kura-node: L3 flush at shutdown failed: " << sys.render(err)
                             << std::endl;
                 });
    self->send_exit(h.broker, caf::exit_reason::user_shutdown);
  }
  if (h.l3)
    self->send_exit(h.l3, caf::exit_reason::user_shutdown);
}

} // namespace kura::actors
