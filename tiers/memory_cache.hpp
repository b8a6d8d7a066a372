// L1 + L2 of one memory shard: a W-TinyLFU-shaped cache.
//
//   put ──▶ L1 (window, exact LRU, byte-bounded; tiers/l1_lru.hpp)
//              │ victim
//              ▼  admitted only if sketch.estimate(victim) > sketch.estimate(L2's victim) + margin
//           L2 (main region, SLRU or sampled LFU under TinyLFU admission, byte-bounded;
//              tiers/l2_lfu.hpp)
//              │ victim ──▶ dropped, reported to the eviction listener (L3 keeps every live entry)
//
// A count-min sketch (4-bit counters, periodic halving; tiers/frequency_sketch.hpp)
// estimates key frequency. The L1/L2 split of the budget and the admission
// margin (and L2's victim policy, SLRU or sampled LFU) adapt to the workload
// unless `adaptive_window` is off: by default
// with miniature "shadow" simulations of alternative settings, or with
// Caffeine's hill climbing on the hit ratio (see memory_cache.cpp for both).
// Bytes (stats().bytes) = L1 + L2 (slab nodes + index, tiers/entry_table.hpp)
// + the sketch + the shadow simulations; in count_objects mode, entries.
//
// Contract for callers: a put of a key not in L2 always lands in L1, so the
// newest write is resident (read-your-writes; locate() says l1); an overwrite
// of an L2 key stays in L2. The sketch counts one access per get hit, per put
// and per record_miss(); a get miss is not counted (the put that promotes the
// entry from a lower tier counts it), so a chain calls record_miss() only for
// misses that no put follows.
// Thread safety: not thread-safe; one shard is owned by one actor.
#pragma once

#include "tiers/entry.hpp"
#include "tiers/tier.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace kura {

/// How the L1/L2 split (and L2's admission margin) adapts to the workload.
/// L2's (the main region's) victim policy; see l2_lfu.
enum class main_region_policy : uint8_t {
  /// Segmented LRU: the victim is probation's least recently used entry.
  slru,
  /// SLRU, and an L1 victim that was hit while in L1 enters protected when
  /// admitted.
  slru_promote_reused,
  /// The least frequent (by the sketch) of 5 random entries.
  sampled_lfu,
  /// SLRU, and an L1 victim that L2 rejected recently (a ghost queue of
  /// their 16-bit fingerprints remembers about half a capacity of them) is
  /// admitted without the frequency test, as S3-FIFO admits a ghost hit.
  slru_ghost,
};

enum class window_adaptation : uint8_t {
  /// Miniature simulations of alternative settings on a hash-sampled share of
  /// the reads; the setting that would have missed least wins (default).
  shadow,
  /// Caffeine's hill climbing on the cache's own hit ratio (window only).
  hill_climbing,
};

struct memory_cache_config {
  uint64_t capacity_bytes = 64ull << 20; ///< L1 + L2 together, overhead included
  /// Initial share of L1 (adapted from there). 1 (all of it: plain LRU) by
  /// default, so the cache is LRU until a shadow simulation shows a setting
  /// that misses less; measured over the traces in ../shared/traces
  /// (bench/RESULTS.md, "Hit ratio that never loses"), it is the start that
  /// keeps the cache at or below LRU on all of them (a 0% or 20% start loses
  /// to LRU on corda-vaultservice, zigzag or gcc-address while it adapts).
  /// Without adaptation this is the window for good. In byte mode below
  /// ~12 MB, where the simulations do not fit their budget and the start would
  /// be final, the default (1) is replaced by 0: fixed W-TinyLFU.
  double window_fraction = 1.0;
  bool adaptive_window = true; ///< adapt the L1 share (see `adaptation`)
  window_adaptation adaptation = window_adaptation::shadow;
  /// Initial L2 admission margin (-1, 0 or 1, see l2_lfu): an L1 victim enters
  /// L2 when freq(victim of L1) > freq(victim of L2) + margin. The shadow
  /// adaptation moves it.
  int admission_margin = 0;
  /// Initial main-region policy (the shadow adaptation moves it; without
  /// adaptation it is the policy for good).
  main_region_policy main_policy = main_region_policy::slru_promote_reused;
  /// Initial sketch aging: the counters are halved every `sketch_aging` x
  /// (sketch capacity) increments (at least 1). The shadow adaptation moves it
  /// between 10 and 20; without adaptation it stays.
  uint32_t sketch_aging = 10;
  /// Capacity counted in entries instead of bytes (each entry costs 1); for
  /// hit-ratio benchmarks against object-counted references.
  bool count_objects = false;
  /// Returning keys (shadow adaptation only): a read that misses on a key read
  /// within about the last capacity reads marks it reused, so the "promote
  /// reused" setting protects it (a ghost history; memory_cache.cpp). Off by
  /// default: it costs 2 bytes per entry, which the 80-byte budget does not
  /// hold, and paying for it with a smaller byte-mode simulation budget lost
  /// the cloudPhysicsIO --bytes bar (bench/RESULTS.md, issue 14 third pass).
  bool returning_keys = false;
  uint64_t sketch_seed = 0x6b757261; ///< seeds L2's admission coin flips
  limits lim;
};

/// Which memory tier holds a key.
enum class memory_region : uint8_t { none, l1, l2 };

class memory_cache final : public tier {
public:
  explicit memory_cache(memory_cache_config cfg);
  ~memory_cache() override;

  const char* name() const override { return "mem"; }
  result<std::optional<entry>> get(std::string_view key, uint64_t now_ms,
                                   bool touch = true) override;
  status put(entry e, uint64_t now_ms) override;
  /// put() reading `e` (copied into the slab, nothing moved from it), for a
  /// caller that hands the entry on afterwards.
  status store(const entry& e, uint64_t now_ms);
  /// Whether put() can hold a value of `value_bytes` for `key` at all (with
  /// an expiry and a version of the widest encoding): ok, or the
  /// errc::out_of_space put() would return, before put() drops the key's
  /// older value for it.
  status admits(std::string_view key, size_t value_bytes) const;
  result<bool> erase(std::string_view key) override;
  size_t sweep_expired(uint64_t now_ms, size_t budget) override;
  status clear() override;
  /// Stats of L1 and L2 summed.
  tier_stats stats() const override;

  // -- memory-specific --------------------------------------------------------

  /// Fast path for a hit: calls `f(const entry_view&)` without copying the
  /// value. Returns false on a miss (or expired entry, which is removed).
  struct entry_view {
    std::string_view key;
    std::string_view value;
    uint64_t expiry_ms;
    kura::version ver;
    uint8_t flags;
    /// visit: the main region (L2) answered, not the window (L1).
    bool l2 = false;
  };
  template <class F>
  bool visit(std::string_view key, uint64_t now_ms, F&& f) {
    const entry_view* v = find_view(key, now_ms, true);
    if (!v)
      return false;
    f(*v);
    return true;
  }

  /// A hint that `keys` are about to be looked up (a pipeline of reads):
  /// starts loading what their lookups touch -- index slots, nodes, the LRU
  /// neighbours a hit relinks, sketch blocks -- one stage for all keys
  /// before the next, so that their cache misses overlap instead of
  /// following each other. Changes nothing observable (no recency, no
  /// counts, no stats). Sets maybe_resident[i] (when given) to whether
  /// keys[i] may be in memory (false: certainly not), and resident[i] (when
  /// given) to whether memory certainly holds keys[i] (its node was compared;
  /// false also when a tag collision hid it): valid while removals() stays.
  void prefetch(const std::string_view* keys, size_t n, bool* maybe_resident = nullptr,
                bool* resident = nullptr) const;
  /// Nodes removed from memory since construction (evicted, expired, erased,
  /// moved between the regions, cleared): while it stays the same, every key
  /// memory held still is in memory.
  uint64_t removals() const noexcept;

  /// Records an access to a key that is not in memory (a miss served by a
  /// lower tier), so its frequency counts toward admission.
  void record_miss(std::string_view key);

  /// A load the caller predicts will be read soon (the prewarm predictor):
  /// a key not in memory goes into L2's probation segment when L2 has room
  /// for it without evicting anything, else through put() into L1 like any
  /// other new key. A resident key is left alone. Counts one access.
  status put_predicted(entry e, uint64_t now_ms);

  /// Where `key` lives now (no side effects).
  memory_region locate(std::string_view key) const;

  /// The sketch's frequency estimate of `key` (0..15; OBJECT FREQ).
  uint32_t frequency(std::string_view key) const;
  /// Bytes charged for a resident key's node (0 when absent; MEMORY USAGE).
  uint64_t charged_bytes(std::string_view key) const;

  /// Changes the expiry of a resident key; false when absent.
  bool set_expiry(std::string_view key, uint64_t expiry_ms);

  /// Called with the key of each entry a lookup (visit, get) finds expired
  /// and removes: lazy expiry, not sweep_expired. The keyspace drops the L3
  /// copy there (actors/keyspace.cpp). Empty function: none.
  void on_lazy_expire(std::function<void(std::string_view)> f);

  /// Calls f(const entry_view&) for every resident entry (no recency change).
  void for_each(const std::function<void(const entry_view&)>& f) const;

  tier_stats l1_stats() const;
  tier_stats l2_stats() const;
  uint64_t window_capacity() const;

  /// Counters of the shadow adaptation since construction (memory_cache.cpp,
  /// "a switch is warm"): setting switches; keys a warm switch admitted
  /// without the frequency test; and, with exact simulations, the warm
  /// switches' gains (first hits of warm-admitted keys) and costs (first
  /// misses of keys a warm admission evicted).
  struct adaptation_stats {
    uint64_t switches = 0;
    uint64_t warm_admissions = 0;
    uint64_t warm_gains = 0;
    uint64_t warm_costs = 0;
  };
  adaptation_stats adaptation() const;

  /// One setting of the shadow adaptation's grid (memory_cache.cpp).
  struct shadow_setting {
    double window = 0; ///< L1's share of the capacity
    int margin = 0;    ///< L2's admission margin
    main_region_policy main = main_region_policy::slru_promote_reused;
    uint32_t aging = 10; ///< sketch halving period, x capacity increments
  };
  /// One decision period of the shadow adaptation, as it was decided: the
  /// misses are counted on the sampled reads only (all reads when the
  /// simulations are exact), so the cache's and the simulations' are
  /// comparable.
  struct period_report {
    uint32_t period = 0;         ///< decisions since the simulations were built, from 1
    uint32_t sampling_shift = 0; ///< a read is sampled with probability 2^-shift
    shadow_setting setting;      ///< in use at the period's start (a switch within
                                 ///< the period shows in `switched` and `next`)
    uint64_t cache_misses = 0;   ///< the cache's misses on the period's sampled reads
    uint64_t setting_misses = 0; ///< the misses of that setting's simulation
    shadow_setting best;         ///< the setting whose simulation missed least in the period
    uint64_t best_misses = 0;    ///< its misses
    bool switched = false;       ///< `next` differs from `setting`
    shadow_setting next;         ///< in use after the decision
    /// Every grid setting's simulation's misses in the period, in the order
    /// of shadow_grid() (`setting_misses` and `best_misses` are two of them):
    /// what an offline replay of other decision rules needs.
    std::vector<uint64_t> all_misses;
  };
  /// The settings the shadow adaptation chooses among, in grid order.
  static std::vector<shadow_setting> shadow_grid();
  /// Calls f after each decision of the shadow adaptation (a diagnostic for
  /// kura-bench-hitratio --periods; empty function: none). Called from inside
  /// a get/put: f must not call back into the cache.
  void on_period(std::function<void(const period_report&)> f);

private:
  const entry_view* find_view(std::string_view key, uint64_t now_ms, bool touch);
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace kura
