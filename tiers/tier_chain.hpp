// The tier chain of one node, the entry point a newcomer reads first.
//
//   get:   L1/L2 (memory) ─miss─▶ L3 (LMDB) ─miss─▶ L4 (archive)
//          a hit below memory promotes the entry to memory (and an L4 hit to L3)
//   put:   memory + L3 (write-behind); an older archive copy is removed once
//          L3 committed the write (tiers/superseded.hpp), so a key lives in
//          one persistent tier, never comes back from L4, and a crash before
//          the commit leaves the old value rather than nothing
//   erase: every tier
//   expiry: lazy on read + sweep_expired(budget), a bounded incremental sweep
//
// L3 and L4 are optional (memory-only chains for benchmarks and tests). The
// chain owns its tiers. Inside kura-node the same tiers live in separate actors;
// this class is the synchronous composition used by tests, benchmarks and the
// embedded single-threaded mode.
// Thread safety: not thread-safe.
#pragma once

#include "tiers/clock.hpp"
#include "tiers/entry.hpp"
#include "tiers/memory_cache.hpp"
#include "tiers/superseded.hpp"
#include "tiers/tier.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kura {

struct tier_chain_config {
  memory_cache_config memory;
  limits lim;
};

class tier_chain {
public:
  /// `l3` and `l4` may be null.
  tier_chain(tier_chain_config cfg, const clock& clk, std::unique_ptr<tier> l3 = nullptr,
             std::unique_ptr<tier> l4 = nullptr);
  ~tier_chain();

  /// Walks the tiers; promotes a lower-tier hit into memory.
  result<std::optional<entry>> get(std::string_view key);
  /// Writes memory and L3. Checks limits first.
  status put(entry e);
  /// Removes from every tier; true if any tier held the key.
  result<bool> erase(std::string_view key);
  /// Bounded active expiry over every tier; returns entries removed.
  size_t sweep_expired(size_t budget);
  /// Which tier holds the key ("l1", "l2", "l3", "l4"), nullptr if none.
  const char* locate(std::string_view key);
  /// Drops everything in every tier.
  status clear();
  /// Commits write-behind batches that are due (L3, and archive blocks filled
  /// by L3's evictions), then drops the archive copies that committed writes
  /// superseded. Call it on a timer, as the actors do.
  status tick();
  /// Commits every buffered write in every tier now (superseded archive
  /// copies dropped after L3's commit).
  status flush();

  /// Per-tier stats, in order l1, l2, l3, l4 (absent tiers omitted).
  std::vector<std::pair<std::string, tier_stats>> stats() const;

  memory_cache& memory() { return *mem_; }
  tier* l3() { return l3_.get(); }
  tier* l4() { return l4_.get(); }

private:
  tier_chain_config cfg_;
  const clock& clk_;
  std::unique_ptr<memory_cache> mem_;
  std::unique_ptr<tier> l3_;
  std::unique_ptr<tier> l4_;
  /// Archive copies superseded by writes L3 has not committed yet.
  superseded_copies superseded_;
  /// Drops the superseded archive copies once L3 has nothing pending (with
  /// a long list, commits L3 first).
  status drop_superseded();
  latency_histogram lat_[4];
  uint64_t hits_[4] = {0, 0, 0, 0};
  uint64_t misses_[4] = {0, 0, 0, 0};
};

} // namespace kura
