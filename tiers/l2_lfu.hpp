// L2: the main region. A byte-bounded segmented LRU (probation + protected,
// protected holding up to 80% of the bytes) under TinyLFU admission:
//
//   * a new key enters probation (at its most recently used end);
//   * a hit in probation promotes the entry to protected; when protected
//     outgrows its share its least recently used entry is demoted back to
//     probation;
//   * when a new key does not fit, it is compared against the victim (the
//     least recently used entry of probation, else of protected) using the
//     count-min sketch (tiers/frequency_sketch.hpp): the candidate is
//     admitted, and the victim evicted, only if its estimated frequency is
//     higher by more than the admission margin (or, to defeat an attacker
//     who inflates a victim's counters, by a 1/128 coin flip when the
//     candidate is warm, frequency >= 6); repeated per victim until the
//     candidate fits. A rejected candidate is reported to
//     the eviction listener like an evicted entry.
//
// Why SLRU + TinyLFU and not LFU with aging (measured with
// kura-bench-mainpolicy: same 1% window and admission, main region SLRU vs a
// sampled LFU with aging over the same aged sketch; miss ratios SLRU / LFU):
// loop 10% 0.930 / 0.969, multi2 1% 0.786 / 0.826, 2_pools 1% 0.530 / 0.539,
// web07 1% 0.606 / 0.608 favour SLRU; cloudPhysicsIO 10% 0.792 / 0.756,
// orm-night 1% 0.481 / 0.428, web07 10% 0.432 / 0.426 favour LFU. Neither
// dominates, so the main region's policy is one more dimension memory_cache
// adapts: SLRU by default, sampled LFU (set_main_lfu: the least frequent of 5
// random entries is the victim, O(1) per eviction) when its shadow simulation
// misses less. The probation/protected lists are kept in both modes, so a
// switch moves nothing.
// The admission margin (see set_admission_margin) is 0 standalone: strictly
// more frequent.
//
// Standalone, get() and put() count accesses in the sketch; inside
// memory_cache the sketch is shared with L1 (memory_cache counts accesses and
// offers L1 victims through offer(), which does not count).
// Bytes: as l1_lru (node charges + index slots x 5) + the sketch's counters;
// in count_objects mode 1 per entry. Expiry: lazy on get + the same
// incremental sweep as l1_lru.
// Thread safety: not thread-safe; owned by one memory shard.
#pragma once

#include "tiers/entry_table.hpp"
#include "tiers/frequency_sketch.hpp"
#include "tiers/random.hpp"
#include "tiers/tier.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kura {

class memory_cache;

class l2_lfu final : public tier {
public:
  /// `capacity_bytes` bounds stats().bytes (entries when `count_objects`).
  /// The sketch is sized for `expected_entries` (0: grows with the entry count).
  explicit l2_lfu(uint64_t capacity_bytes, limits lim = {}, bool count_objects = false,
                  uint64_t seed = 0x6b757261, uint64_t expected_entries = 0);
  ~l2_lfu() override;

  const char* name() const override { return "l2"; }
  result<std::optional<entry>> get(std::string_view key, uint64_t now_ms,
                                   bool touch = true) override;
  status put(entry e, uint64_t now_ms) override;
  result<bool> erase(std::string_view key) override;
  size_t sweep_expired(uint64_t now_ms, size_t budget) override;
  status clear() override;
  tier_stats stats() const override;

  // -- extras -------------------------------------------------------------------

  /// Offers an entry without counting an access: admission decides (used by
  /// memory_cache for L1 victims). Returns whether it was admitted.
  /// With `reused`, an admitted entry goes straight to the protected segment
  /// (memory_cache: it was hit again while in L1, as it would have been
  /// promoted in L2 had it been there). With `bypass_admission` it is
  /// admitted without the frequency test (memory_cache: a ghost hit).
  bool offer(entry e, uint64_t now_ms, bool reused = false, bool bypass_admission = false);
  /// Changes the capacity; evicts down to it.
  void set_capacity(uint64_t capacity);
  uint64_t capacity() const { return capacity_; }
  uint64_t bytes() const;
  uint64_t cost(const entry& e) const;
  bool contains(std::string_view key) const;
  /// Whether `key` sits in the protected segment.
  bool is_protected(std::string_view key) const;
  /// Admission margin: a candidate is admitted when its estimated frequency
  /// exceeds the victim's by more than `m` (0: strictly more frequent; 1:
  /// "clearly" more frequent, which resists loops; -1: ties admit, which
  /// favours recency). memory_cache picks it adaptively.
  void set_admission_margin(int m) { margin_ = m; }
  /// Whether offer(..., reused = true) admits into protected (default: no).
  void set_promote_reused(bool on) { promote_reused_ = on; }
  bool promote_reused() const { return promote_reused_; }
  /// Victim selection: SLRU (default: the least recently used probation
  /// entry) or sampled LFU (the least frequent, by the sketch, of 5 entries
  /// drawn at random, as Redis's allkeys-lfu). Either way the probation and
  /// protected lists are kept, so the mode can change at any time; memory_cache
  /// adapts it.
  void set_main_lfu(bool on) { main_lfu_ = on; }
  bool main_lfu() const { return main_lfu_; }
  int admission_margin() const { return margin_; }
  frequency_sketch& sketch() { return sketch_; }
  const frequency_sketch& sketch() const { return sketch_; }
  /// Keys of probation then protected, each from most to least recently used.
  std::vector<std::string> keys_probation() const;
  std::vector<std::string> keys_protected() const;

private:
  friend class memory_cache;
  using node_id = detail::node_id;
  static constexpr uint8_t seg_probation = 0;
  static constexpr uint8_t seg_protected = 1;

  uint64_t used_after_insert(size_t node_charge) const;
  size_t charge_of(const entry& e) const;
  size_t charge_of(const detail::node_view& v) const;
  uint64_t cost(const detail::node_view& v) const;
  detail::node_list& list_of(node_id id) {
    return table_.aux(id) == seg_protected ? protected_ : probation_;
  }
  void remove_node(node_id id);
  /// The next entry to leave: SLRU's least recently used probation entry
  /// (else protected's), or with main_lfu the least frequent of 5 sampled.
  node_id victim();
  void evict(node_id id);
  void on_hit(node_id id);
  void rebalance_protected();
  bool admit(uint64_t cand_hash, node_id victim);
  node_id insert_probation(const entry& e, uint64_t h);
  /// The same from another table's node (memory_cache moves entries between
  /// L1 and L2 without building an entry).
  node_id insert_probation(const detail::node_view& v, uint64_t h);
  bool offer_hashed(entry&& e, uint64_t h, uint64_t now_ms, bool reused = false,
                    bool bypass_admission = false);
  status upsert(const entry& e, uint64_t h, uint64_t now_ms);
  void grow_sketch();

  detail::entry_table table_;
  detail::node_list probation_;
  detail::node_list protected_;
  frequency_sketch sketch_;
  rng rng_;
  uint64_t capacity_;
  limits lim_;
  bool count_objects_;
  bool fixed_sketch_;
  int margin_ = 0;
  bool promote_reused_ = false;
  bool main_lfu_ = false;
  size_t sweep_cursor_ = 0;
  tier_stats st_;
};

} // namespace kura
