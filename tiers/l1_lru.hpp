// L1: the recency window. A byte-bounded exact LRU with O(1) get/put/erase;
// the least recently used entry is evicted (to the eviction listener) when a
// put would exceed the capacity.
//
// Storage is the compact entry_table (slab nodes with 32-bit ids and an
// open-addressing index, see tiers/entry_table.hpp), threaded by one doubly
// linked list in recency order. Bytes are counted as
//   bytes = sum of node charges (slab class size) + index slots x 5
// or, in count_objects mode, 1 per entry.
// Expiry is lazy on get plus sweep_expired(now, budget): a cursor walks the
// index slots, removes at most `budget` expired entries, inspects at most
// 16 x budget + 64 slots per call, and resumes where the last call stopped.
// Thread safety: not thread-safe; owned by one memory shard.
#pragma once

#include "tiers/entry_table.hpp"
#include "tiers/tier.hpp"

#include <cstdint>
#include <functional>
#include <optional>

namespace kura {

class memory_cache;

class l1_lru final : public tier {
public:
  /// `capacity_bytes` bounds stats().bytes (entries when `count_objects`).
  explicit l1_lru(uint64_t capacity_bytes, limits lim = {}, bool count_objects = false);
  ~l1_lru() override;

  const char* name() const override { return "l1"; }
  result<std::optional<entry>> get(std::string_view key, uint64_t now_ms,
                                   bool touch = true) override;
  status put(entry e, uint64_t now_ms) override;
  result<bool> erase(std::string_view key) override;
  size_t sweep_expired(uint64_t now_ms, size_t budget) override;
  status clear() override;
  tier_stats stats() const override;

  // -- extras -------------------------------------------------------------------

  /// Changes the capacity; evicts (to the listener) down to it.
  void set_capacity(uint64_t capacity);
  uint64_t capacity() const { return capacity_; }
  /// Current bytes (or entries in count_objects mode).
  uint64_t bytes() const;
  /// What an entry would be charged on its own (node + one index slot).
  uint64_t cost(const entry& e) const { return cost(e.key, e.value.size(), e.expiry_ms, e.ver); }
  uint64_t cost(std::string_view key, size_t value_size, uint64_t expiry_ms,
                const version& ver) const;
  bool contains(std::string_view key) const;
  /// Keys from most to least recently used (for tests; O(n)).
  std::vector<std::string> keys_mru() const;

private:
  friend class memory_cache;
  using node_id = detail::node_id;

  uint64_t used_after_insert(size_t node_charge) const;
  status upsert(const entry& e, uint64_t h, uint64_t now_ms);
  void remove_node(detail::node_id id);
  void evict_one();
  detail::node_id insert_front(const entry& e, uint64_t h);
  detail::node_id insert_front(const detail::node_view& v, uint64_t h);

  detail::entry_table table_;
  detail::node_list lru_;
  uint64_t capacity_;
  limits lim_;
  bool count_objects_;
  size_t sweep_cursor_ = 0;
  bool last_evicted_reused_ = false; // the last victim was hit while in L1
  tier_stats st_;
};

} // namespace kura
