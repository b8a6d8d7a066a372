// policy_sim: a keys-only, object-counted simulation of memory_cache's policy
// (LRU window -> TinyLFU admission -> SLRU main) with fixed parameters. A set of
// them, fed a hash-sampled share of the accesses ("miniature simulation",
// Waldspurger et al., ATC'17), tells memory_cache which window size and
// admission margin would have missed least on the current workload.
// Internal header of tiers/. Thread safety: not thread-safe.
#pragma once

#include "tiers/frequency_sketch.hpp"

#include <cstdint>
#include <vector>

namespace kura::detail {

class policy_sim {
public:
  /// `capacity` entries, of which `window` (at least 1, as in memory_cache the
  /// newest write always sits in L1) in the LRU window; a candidate is
  /// admitted into main when freq(candidate) > freq(victim) + margin.
  /// With `promote_reused`, an admitted candidate that was hit while in the
  /// window enters main's protected segment directly.
  policy_sim(uint32_t capacity, uint32_t window, int margin, bool promote_reused = false);

  /// One access to the key with hash `h`; returns whether it hit.
  bool access(uint64_t h);

  uint32_t capacity() const { return cap_; }
  uint32_t window() const { return wcap_; }
  int margin() const { return margin_; }
  /// Heap bytes (for the memory accounting of memory_cache).
  uint64_t memory_bytes() const;

private:
  enum : uint8_t { seg_free = 0, seg_window, seg_probation, seg_protected };
  struct node {
    uint64_t key;
    int32_t prev;
    int32_t next;
    uint8_t seg;
    bool reused; // hit while in the window
  };
  struct list {
    int32_t head = -1;
    int32_t tail = -1;
    uint32_t count = 0;
  };

  int32_t find(uint64_t h) const;
  void map_insert(uint64_t h, int32_t idx);
  void map_erase(uint64_t h);
  void push_front(list& l, int32_t i, uint8_t seg);
  void unlink(list& l, int32_t i);
  list& list_of(uint8_t seg);
  int32_t alloc(uint64_t h);
  void release(int32_t i);
  void to_main(int32_t cand);
  void promote(int32_t i);

  uint32_t cap_, wcap_, mcap_, pcap_;
  int margin_;
  bool promote_reused_;
  std::vector<node> nodes_;
  std::vector<int32_t> free_;
  std::vector<int32_t> slots_; // open addressing, -1 empty
  uint64_t mask_;
  list window_, probation_, protected_;
  frequency_sketch sketch_;
};

} // namespace kura::detail
