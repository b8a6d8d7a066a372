// policy_sim: a keys-only, object-counted simulation of memory_cache's policy
// (LRU window -> TinyLFU admission -> SLRU main) with fixed parameters. A set of
// them, fed a hash-sampled share of the accesses ("miniature simulation",
// Waldspurger et al., ATC'17), tells memory_cache which window size and
// admission margin would have missed least on the current workload.
// Internal header of tiers/. Thread safety: not thread-safe.
#pragma once

#include "tiers/frequency_sketch.hpp"
#include "tiers/ghost_queue.hpp"
#include "tiers/random.hpp"

#include <cstdint>
#include <vector>

namespace kura::detail {

class policy_sim {
public:
  /// `capacity` entries, of which `window` (at least 1, as in memory_cache the
  /// newest write always sits in L1) in the LRU window; a candidate is
  /// admitted into main when freq(candidate) > freq(victim) + margin.
  /// With `promote_reused`, an admitted candidate that was hit while in the
  /// window enters main's protected segment directly. With `main_lfu`, main's
  /// victim is the least frequent (by the sketch) of 5 randomly sampled main
  /// entries, as memory_cache's L2 picks it in that mode (l2_lfu::set_main_lfu),
  /// instead of SLRU's least recently used probation entry; `seed` seeds the
  /// sampling.
  /// With `shared`, the simulation reads its frequencies from that sketch and
  /// does not count accesses itself: the owner increments it once per access,
  /// before calling access(h) on each simulation that shares it (simulations
  /// of the same capacity fed the same accesses would hold identical
  /// sketches: sharing one saves 8 bytes per simulated key and simulation,
  /// and all but one increment per access). Without it the simulation owns a sketch sized for
  /// `capacity` and counts its accesses there.
  /// With `ghost_capacity` > 0, a candidate that admission rejects is
  /// remembered in a ghost queue of that many keys (tiers/ghost_queue.hpp),
  /// and a candidate the ghost remembers is admitted without the frequency
  /// test (S3-FIFO's ghost admission; memory_cache's "SLRU + ghost").
  policy_sim(uint32_t capacity, uint32_t window, int margin, bool promote_reused = false,
             bool main_lfu = false, uint64_t seed = 0x6b757261,
             const frequency_sketch* shared = nullptr, bool returning_reused = false,
             uint32_t ghost_capacity = 0);

  /// One access to the key with hash `h`; returns whether it hit.
  /// `returning`: the key was accessed recently (see recency_filter); a miss
  /// on it counts as a reuse (promote reused).
  bool access(uint64_t h, bool returning = false);

  uint32_t capacity() const { return cap_; }
  uint32_t window() const { return wcap_; }
  int margin() const { return margin_; }
  bool main_lfu() const { return main_lfu_; }
  bool ghost() const { return ghost_.capacity() > 0; }
  /// Calls f(h) for the hash of every key in the main region (probation and
  /// protected), in node order.
  template <class F>
  void for_each_main(F&& f) const {
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (seg(static_cast<uint32_t>(i)) == seg_probation ||
          seg(static_cast<uint32_t>(i)) == seg_protected)
        f(nodes_[i].key);
  }
  /// Heap bytes (for the memory accounting of memory_cache); a shared sketch
  /// is not included. Fixed at construction (nothing grows later).
  uint64_t memory_bytes() const;

private:
  // Layout (memory_cache runs 126 of these): a 16-byte node (key, links), a
  // meta byte per node, and an open-addressing index at most 2/3 full whose
  // slots are 2 bytes when the capacity allows (4 otherwise): ~20 bytes per
  // simulated key. Free nodes are threaded through `next`.
  enum : uint8_t { seg_free = 0, seg_window, seg_probation, seg_protected };
  static constexpr uint8_t reused_bit = 4; // meta: seg | reused (hit while in the window)
  static constexpr uint32_t none = UINT32_MAX;
  struct node {
    uint64_t key;
    uint32_t prev;
    uint32_t next;
  };
  struct list {
    uint32_t head = none;
    uint32_t tail = none;
    uint32_t count = 0;
  };

  uint32_t slot(uint64_t i) const { return narrow_ ? slots16_[i] : slots32_[i]; }
  void set_slot(uint64_t i, uint32_t v);
  uint64_t home(uint64_t h) const;
  uint64_t next_slot(uint64_t i) const { return i + 1 == n_slots_ ? 0 : i + 1; }
  uint32_t find(uint64_t h) const;
  void map_insert(uint64_t h, uint32_t idx);
  void map_erase(uint64_t h);
  uint8_t seg(uint32_t i) const { return meta_[i] & 3; }
  bool reused(uint32_t i) const { return (meta_[i] & reused_bit) != 0; }
  void push_front(list& l, uint32_t i, uint8_t sg);
  void unlink(list& l, uint32_t i);
  list& list_of(uint8_t seg);
  uint32_t alloc(uint64_t h);
  uint32_t freq(uint64_t h) const {
    return shared_ ? shared_->frequency(h) : own_sketch_.frequency(h);
  }
  void release(uint32_t i);
  void to_main(uint32_t cand);
  void promote(uint32_t i);
  uint32_t victim();

  uint32_t cap_, wcap_, mcap_, pcap_;
  int margin_;
  bool promote_reused_;
  bool main_lfu_;
  bool returning_reused_;
  ghost_queue ghost_; // capacity 0: no ghost admission
  rng rng_;
  std::vector<node> nodes_;
  std::vector<uint8_t> meta_;
  uint32_t free_head_ = none; // free nodes, threaded through `next` (LIFO)
  bool narrow_;               // 2-byte index slots (capacity < 65535)
  uint32_t empty_;            // the empty slot's value
  uint64_t n_slots_;
  std::vector<uint16_t> slots16_;
  std::vector<uint32_t> slots32_;
  list window_, probation_, protected_;
  frequency_sketch own_sketch_;    // unused (16 counters) when shared
  const frequency_sketch* shared_; // nullptr: own_sketch_
};

} // namespace kura::detail
