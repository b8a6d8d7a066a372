// The replicated store: what one node holds for the keys it replicates (and,
// until handed off, keys it used to replicate), as the cluster core sees it.
// Writes merge by last-writer-wins on `version` (HLC, then node id): applying
// the same set of entries in any order, any number of times, gives the same
// store. Deletes are tombstone entries; they are removed only by `erase`, which
// the tombstone collector calls once every replica holds the tombstone.
//
// `replica_store` is the interface; two implementations:
//   - memory_store (here): an in-memory map, what kura-sim runs thousands of
//     seeds on;
//   - tier_store (gossip/tier_store.hpp): the real tiers (L3 LMDB + L4
//     archive), what kura-node runs.
//
// Anti-entropy digests are kept by this base class, incrementally: every
// implementation reports each change (before -> after) through `changed()`,
// which XORs the item digests in and out of 65,536 bucket digests (bucket =
// top 16 bits of the key's ring position: 4 buckets per slot, gossip/ring.hpp).
// A sync round therefore reads 16,384 slot digests, never the keys; only the
// buckets found to differ are listed (`for_each_in_buckets`).
// Thread safety: not thread-safe; owned by one node (one actor).
#pragma once

#include "gossip/ring.hpp"
#include "tiers/entry.hpp"
#include "tiers/status.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kura::gossip {

/// "ms.counter@node": a version as KURA.HELD prints it.
inline std::string version_text(const version& v) {
  return std::to_string(v.ms()) + "." + std::to_string(v.counter()) + "@" + std::to_string(v.node);
}

/// A view of an entry owned elsewhere (the read cache's node, a scratch
/// entry): valid only while its owner is unchanged.
struct entry_ref {
  std::string_view key;
  std::string_view value;
  uint64_t expiry_ms = 0;
  kura::version ver;
  uint8_t flags = 0;

  bool expired(uint64_t now_ms) const { return expiry_ms != 0 && expiry_ms <= now_ms; }
  bool is_tombstone() const { return (flags & entry_flags::tombstone) != 0; }
  static entry_ref of(const entry& e) { return {e.key, e.value, e.expiry_ms, e.ver, e.flags}; }
};

class replica_store {
public:
  /// Buckets of the anti-entropy digests: position >> 48.
  static constexpr size_t bucket_count = 65536;
  using visitor = std::function<void(const entry&)>;

  /// `ring_seed` must be the ring's (ring_config::seed): it places keys in
  /// buckets exactly as the ring places them on the circle.
  explicit replica_store(uint64_t ring_seed = ring_config{}.seed);
  virtual ~replica_store() = default;

  // -- data (implemented by each store) ----------------------------------------

  /// Stores `e` if it is newer than what we hold (tombstones included);
  /// returns true if it was.
  virtual bool apply(const entry& e) = 0;
  /// The stored entry, tombstones included, or nullopt.
  virtual std::optional<entry> get(std::string_view key) const = 0;
  /// What get() answers, as a view: into the store's memory when it holds
  /// the value there (no copy; valid until the store is next used), else into
  /// `scratch`, which then holds get()'s copy. nullopt when get() is. A view
  /// into the store's memory is of the version version_of() answers. The
  /// hot path of a read served from this node's copy (node::read_here).
  virtual std::optional<entry_ref> get_ref(std::string_view key, entry& scratch) const {
    auto e = get(key);
    if (!e)
      return std::nullopt;
    scratch = std::move(*e);
    return entry_ref::of(scratch);
  }
  /// The version get() would answer, without reading the value (the hot
  /// paths of writes and acks need only that).
  virtual std::optional<version> version_of(std::string_view key) const {
    auto e = get(key);
    return e ? std::optional<version>(e->ver) : std::nullopt;
  }
  /// Whether the copy held of `key` is a tombstone (every replicate ack asks;
  /// a store that can tell without reading the value overrides this).
  virtual bool holds_tombstone(std::string_view key) const {
    auto e = get(key);
    return e && e->is_tombstone();
  }
  /// Takes back the value of a floor: `e` is a live value whose version is
  /// the version of the tombstone held for its key (the floor the value left
  /// in L3 when it was demoted to L4, whose copy below was lost). A value and
  /// its floor are one write (the digests see no difference), so only a
  /// read or a stream that brings the value repairs it. Returns whether it
  /// was taken (false: not that case).
  virtual bool restore(const entry& e) = 0;
  /// Where the copy of `key` lives, as text (KURA.HELD; "" when the store
  /// cannot tell more than get()).
  virtual std::string where(std::string_view key) const {
    (void)key;
    return {};
  }
  /// Removes a key outright (tombstone collection, handoff, tests).
  virtual bool erase(std::string_view key) = 0;
  /// Entries held (tombstones included).
  virtual size_t size() const = 0;
  /// Every entry, in no particular order.
  virtual void for_each(const visitor& f) const = 0;
  /// Every entry whose bucket lies in [first, last].
  virtual void for_each_in_buckets(uint16_t first, uint16_t last, const visitor& f) const = 0;
  /// Keys held (tombstones included) with ring position >= `from`, in
  /// (position, key) order, as entries without their value (key, version,
  /// flags, expiry; no tier is read);
  /// `f` returns false to stop. For SCAN/KEYS/DBSIZE over the cluster.
  using key_visitor = std::function<bool(uint64_t pos, const entry& meta)>;
  virtual void for_each_key_from(uint64_t from, const key_visitor& f) const = 0;
  /// As for_each_key_from, with the bytes of each value held. A store that
  /// knows them without reading the value (tier_store: from its index)
  /// overrides this; the default reads every value.
  using sized_key_visitor =
      std::function<bool(uint64_t pos, const entry& meta, uint64_t value_bytes)>;
  virtual void for_each_key_sized_from(uint64_t from, const sized_key_visitor& f) const {
    for_each_key_from(from, [&](uint64_t pos, const entry& meta) {
      auto e = get(meta.key);
      return f(pos, meta, e ? e->value.size() : 0);
    });
  }

  // -- persistence (no-ops for an in-memory store) ------------------------------

  /// Due group commits, plus bounded expiry sweeps when `sweep_budget` > 0.
  virtual status tick(size_t sweep_budget) {
    (void)sweep_budget;
    return {};
  }
  /// Commits everything now.
  virtual status flush() { return {}; }

  // -- digests (kept here) -------------------------------------------------------

  uint64_t position(std::string_view key) const { return ring::position(key, cfg_); }
  static uint16_t bucket_of(uint64_t pos) { return static_cast<uint16_t>(pos >> 48); }
  uint64_t bucket_digest(uint16_t b) const { return buckets_[b]; }
  /// XOR of the slot's four bucket digests (kept as well, for level 1).
  uint64_t slot_digest(uint16_t slot) const { return slots_[slot]; }
  /// The highest version ever applied (or found at open): the node seeds its
  /// HLC with it at start, so it never mints a version below what it holds.
  version max_version() const { return max_version_; }
  /// Order-independent fingerprint of one stored item (key + version).
  static uint64_t item_digest(const entry& e);
  /// Called for every version stored (a write, a delete's tombstone, from
  /// replication, hints, repairs, streaming or erasure), after the store
  /// took it: client tracking on cluster nodes (actors/cluster.hpp
  /// on_store_change). Unset: nothing.
  std::function<void(const entry&)> on_store;

protected:
  /// Implementations call this for every change of a key: `before` is what was
  /// held (nullptr: nothing), `after` what is held now (nullptr: nothing).
  void changed(const entry* before, const entry* after);
  /// Raises max_version() to `v` (a version held before, no longer stored).
  void note_version(const version& v) {
    if (max_version_ < v)
      max_version_ = v;
  }
  /// Forgets every digest (an implementation that was cleared).
  void reset_digests();

public:
  /// Calls f(slot) for every slot holding at least one item, in order
  /// (cheap when few slots are occupied: one word per 64 slots).
  template <class F>
  void for_each_occupied_slot(F&& f) const {
    for (size_t w = 0; w < occupied_.size(); ++w)
      for (uint64_t bits = occupied_[w]; bits != 0; bits &= bits - 1)
        f(static_cast<uint16_t>(w * 64 + static_cast<size_t>(__builtin_ctzll(bits))));
  }

private:
  ring_config cfg_;
  std::vector<uint64_t> buckets_;
  std::vector<uint64_t> slots_;
  std::vector<uint32_t> counts_;   // items per slot
  std::vector<uint64_t> occupied_; // bit per slot: counts_ != 0
  version max_version_;
};

/// The in-memory store (the simulator's model). Copyable: kura-sim keeps
/// copies as the "disk" of a crashed node.
class memory_store final : public replica_store {
public:
  explicit memory_store(uint64_t ring_seed = ring_config{}.seed) : replica_store(ring_seed) {}

  bool apply(const entry& e) override;
  bool restore(const entry& e) override;
  std::optional<entry> get(std::string_view key) const override;
  bool erase(std::string_view key) override;
  size_t size() const override { return map_.size(); }
  void for_each(const visitor& f) const override;
  void for_each_in_buckets(uint16_t first, uint16_t last, const visitor& f) const override;
  void for_each_key_from(uint64_t from, const key_visitor& f) const override;
  void for_each_key_sized_from(uint64_t from, const sized_key_visitor& f) const override;
  void clear();

  /// A copy of everything `s` holds.
  static memory_store copy_of(const replica_store& s, uint64_t ring_seed = ring_config{}.seed);

private:
  // keyed by (ring position, key): bucket ranges are map ranges
  std::map<std::pair<uint64_t, std::string>, entry> map_;
};

} // namespace kura::gossip
