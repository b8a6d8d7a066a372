// The interface every cache tier satisfies (L1 LRU window, L2 LFU main, L3 LMDB,
// L4 archive), and the stats each one reports. One conformance suite
// (tests/tiers/conformance.cpp) runs the same cases against every implementation.
// Thread safety: a tier is owned by one actor (or one thread); not thread-safe
// unless an implementation says otherwise.
#pragma once

#include "tiers/entry.hpp"
#include "tiers/status.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

namespace kura {

/// Latency histogram with log2 buckets in ns (bucket i holds [2^i, 2^(i+1))).
struct latency_histogram {
  static constexpr size_t buckets = 40;
  std::array<uint64_t, buckets> counts{};
  uint64_t total_ns = 0;
  uint64_t samples = 0;

  void record(uint64_t ns) {
    size_t b = ns == 0 ? 0 : static_cast<size_t>(63 - __builtin_clzll(ns));
    counts[b < buckets ? b : buckets - 1]++;
    total_ns += ns;
    ++samples;
  }
  /// Upper bound (ns) of the bucket holding quantile q in [0,1]; 0 when empty.
  uint64_t quantile_ns(double q) const;
  void merge(const latency_histogram& o);
};

/// What a tier reports.
struct tier_stats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t puts = 0;
  uint64_t erases = 0;
  uint64_t evictions = 0;   ///< entries pushed out by capacity
  uint64_t expirations = 0; ///< entries removed because their expiry passed
  uint64_t entries = 0;     ///< live entries now
  uint64_t bytes = 0;       ///< bytes really used now, overhead included
  uint64_t capacity_bytes = 0;
  latency_histogram get_latency; ///< filled by the tier chain
};

/// Called with each entry a tier evicts for capacity (not for expiry/erase).
using eviction_listener = std::function<void(entry&&)>;

/// A cache tier.
class tier {
public:
  virtual ~tier() = default;

  /// Short name ("l1", "l2", "l3", "l4").
  virtual const char* name() const = 0;

  /// Looks `key` up. A hit on an entry whose expiry passed counts as a miss and
  /// removes the entry (lazy expiry). `touch` = false reads without changing
  /// recency/frequency. Errors only for I/O or corruption.
  virtual result<std::optional<entry>> get(std::string_view key, uint64_t now_ms,
                                           bool touch = true) = 0;

  /// Inserts or replaces. May evict others (reported to the eviction listener).
  /// An entry larger than the whole tier is rejected with out_of_space.
  virtual status put(entry e, uint64_t now_ms) = 0;

  /// Removes `key`; returns whether it was there.
  virtual result<bool> erase(std::string_view key) = 0;

  /// The version held for `key` (expired entries and tombstones included),
  /// without touching recency or counting toward expiry; nullopt when absent.
  /// Tiers with an index (L3, L4) answer without reading the value.
  virtual result<std::optional<version>> held_version(std::string_view key) {
    auto r = get(key, 0, false); // now = 0: nothing counts as expired
    if (!r)
      return r.err();
    return *r ? std::optional<version>{(*r)->ver} : std::optional<version>{};
  }

  /// Removes up to `budget` expired entries (incremental active expiry: each
  /// call does bounded work and resumes where the last one stopped). Returns the
  /// number removed.
  virtual size_t sweep_expired(uint64_t now_ms, size_t budget) = 0;

  /// Drops everything.
  virtual status clear() = 0;

  /// Current stats.
  virtual tier_stats stats() const = 0;

  /// Write-behind tiers: commits buffered writes that are due (the owner calls
  /// this on a timer). No-op for tiers that write through.
  virtual status maybe_flush(uint64_t /*now_ms*/) { return {}; }
  /// Write-behind tiers: commits every buffered write now.
  virtual status flush() { return {}; }

  /// Registers a callback for capacity evictions. `make_durable`, when given,
  /// is called after the listener received a group of victims and before the
  /// tier makes their removal durable (L3 calls it inside its commit), so the
  /// tier below can commit them first: a crash between the two then loses
  /// nothing. When it fails, the tier does not commit the removal.
  void set_eviction_listener(eviction_listener f, std::function<status()> make_durable = {}) {
    on_evict_ = std::move(f);
    on_evict_durable_ = std::move(make_durable);
  }

protected:
  void notify_evicted(entry&& e) {
    if (on_evict_)
      on_evict_(std::move(e));
  }
  eviction_listener on_evict_;
  std::function<status()> on_evict_durable_;
};

} // namespace kura
