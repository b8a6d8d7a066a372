// Retention and sensitive keys on a cluster node (docs/security.md): the
// expiry cap every write gets before it is versioned and replicated (so each
// replica holds the capped expiry and expires the value at the same moment),
// and the keys the cluster store never archives to L4.
// Thread safety: the returned functions are pure (safe anywhere).
#pragma once

#include "gossip/store.hpp"
#include "node/config.hpp"

#include <cstdint>
#include <functional>
#include <string_view>

namespace kura::node {

/// (key, expiry ms or 0, now ms) -> expiry capped by kura.retention.max-age
/// and, for keys matching kura.security.sensitive-patterns, by
/// sensitive-max-ttl. Empty when neither is configured.
std::function<uint64_t(std::string_view, uint64_t, uint64_t)>
cluster_expiry_cap(const node_config& cfg);

/// Keys matching kura.security.sensitive-patterns (empty: none configured).
std::function<bool(std::string_view)> sensitive_matcher(const node_config& cfg);

/// kura.retention.max-age on a cluster node, for entries written before the
/// cap was set (or under a longer one): they carry no capped expiry. The
/// store never serves one older than max-age (gossip::tier_store::
/// set_max_age), and this sweep walks the store's index (in memory, by ring
/// position) in slices of `budget` keys every `interval_ms` on the
/// coordinator's tick, and turns every value written max-age ago or earlier
/// into the tombstone of its own version: its bytes leave L3 and L4, its
/// tracking clients are invalidated (the store reports the change, as for a
/// write), and since every replica does the same with the same version, the
/// replicas stay equal for anti-entropy (digests are key + version) and a
/// late copy of that version is refused by last-writer-wins. A tombstone
/// leaves later as every tombstone does (collection). Thread safety: the
/// multiplexer thread (the coordinator's tick).
class cluster_retention {
public:
  cluster_retention(uint64_t max_age_ms, size_t budget, uint64_t interval_ms)
      : max_age_ms_(max_age_ms), budget_(budget == 0 ? 1 : budget), interval_ms_(interval_ms) {}
  void step(gossip::replica_store& s, uint64_t now_ms);
  uint64_t removed() const noexcept { return removed_; }
  uint64_t passes() const noexcept { return passes_; }

private:
  uint64_t max_age_ms_;
  size_t budget_;
  uint64_t interval_ms_, next_ms_ = 0;
  uint64_t from_ = 0; ///< ring position the next slice starts at
  uint64_t removed_ = 0, passes_ = 0;
};

} // namespace kura::node
