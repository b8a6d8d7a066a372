// kura.retention.max-age below memory (docs/security.md, "Retention"): no
// entry lives longer than max-age after it was written, in any tier.
//
// Two mechanisms:
//   - every write gets an expiry of at most write time + max-age (the
//     keyspace clamps it, actors/keyspace.hpp), so the ordinary expiry sweeps
//     of memory, L3 and L4 remove it in time, and TTL shows the cap;
//   - entries written before the setting was on (or under a longer max-age)
//     carry no such expiry: the keyspace never serves one older than max-age,
//     and this sweep walks L3 and the L4 index in slices from the L3 actor's
//     tick, removing every record whose version (its write time) is max-age
//     old. A pass over L3, then over the L4 index, then again from the
//     start; an entry outlives max-age by at most one pass.
// Thread safety: not thread-safe; owned by the L3 actor.
#pragma once

#include "actors/store.hpp"
#include "tiers/l3_lmdb.hpp"

#include <cstdint>
#include <string>

namespace kura::actors {

class retention_sweep {
public:
  explicit retention_sweep(uint64_t max_age_ms) : max_age_ms_(max_age_ms) {}
  bool enabled() const noexcept { return max_age_ms_ != 0; }
  /// Examines up to `budget` L3 records or L4 index rows from where the last
  /// call stopped and removes those written at `now_ms - max_age` or earlier
  /// (tombstones stay: they are deletes). `below` may be null.
  void step(l3_lmdb& db, l3_below* below, uint64_t now_ms, size_t budget);
  uint64_t removed_l3() const noexcept { return removed_l3_; }
  uint64_t removed_l4() const noexcept { return removed_l4_; }
  uint64_t passes() const noexcept { return passes_; } ///< full passes finished

private:
  bool aged(const kura::version& v, uint64_t now_ms) const {
    return v.ms() + max_age_ms_ <= now_ms;
  }
  uint64_t max_age_ms_;
  bool in_l4_ = false;
  std::string after_;
  uint64_t removed_l3_ = 0, removed_l4_ = 0, passes_ = 0;
};

} // namespace kura::actors
