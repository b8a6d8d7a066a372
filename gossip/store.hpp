// The replicated store model: what one node holds for the keys it replicates
// (and, until handed off, keys it used to replicate). Writes merge by
// last-writer-wins on `version` (HLC, then node id): applying the same set of
// entries in any order, any number of times, gives the same store. Deletes are
// tombstone entries; they are removed only by `erase`, which the tombstone
// collector calls once every replica holds the tombstone.
// In kura-node the tier chain plays this role; here it is an in-memory map so
// the cluster logic can be simulated in isolation.
// Thread safety: not thread-safe; owned by one node.
#pragma once

#include "tiers/entry.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kura::gossip {

class replica_store {
public:
  /// Stores `e` if it is newer than what we hold; returns true if it was.
  bool apply(const entry& e);
  /// The stored entry (tombstones included), or nullptr.
  const entry* get(std::string_view key) const;
  /// Removes a key outright (tombstone collection, handoff, tests).
  bool erase(std::string_view key);
  size_t size() const { return map_.size(); }
  void clear() { map_.clear(); }

  template <class F>
  void for_each(F&& f) const {
    for (auto& [k, e] : map_)
      f(e);
  }

  /// Order-independent fingerprint of one stored item (key + version + kind).
  static uint64_t item_digest(const entry& e);

private:
  std::unordered_map<std::string, entry> map_;
};

} // namespace kura::gossip
