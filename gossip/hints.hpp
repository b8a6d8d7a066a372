// Hinted handoff: writes meant for a replica that was down (or did not answer
// in time) are kept here, one newest entry per (target, key), and delivered
// when membership sees the target alive again. A hint is removed only when the
// target acknowledges holding that version or newer. Bounded per target: when
// full, new hints are dropped and counted (anti-entropy repairs them later).
// Thread safety: not thread-safe; owned by one node.
#pragma once

#include "gossip/types.hpp"
#include "tiers/entry.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kura::gossip {

class hint_store {
public:
  explicit hint_store(size_t max_per_target = 100'000) : max_(max_per_target) {}

  /// Keeps `e` for `target` (replacing an older hint for the same key).
  void add(node_id target, const entry& e);
  /// Up to `max` hints for `target`, oldest key order.
  std::vector<entry> peek(node_id target, size_t max) const;
  /// The target holds `held` for `key`: drop the hint if it is covered.
  bool acknowledge(node_id target, const std::string& key, const version& held);
  /// KURA.ERASE: every hint of `key` older than `tomb` (a tombstone) becomes
  /// `tomb`, so the target gets the erasure instead of the value. Returns
  /// the hints replaced.
  size_t supersede(const std::string& key, const entry& tomb);
  /// KURA.ERASE: drops every hint of `key` at `upto` or older. Returns the
  /// hints dropped.
  size_t drop(const std::string& key, const version& upto);
  /// Keys of every hint, for every target (KURA.ERASE PREFIX/SUBJECT).
  std::vector<std::string> keys() const;
  /// Targets that have hints.
  std::vector<node_id> targets() const;
  /// Calls f(target, entry) for every hint held.
  template <class F>
  void for_each(F f) const {
    for (auto& [t, m] : hints_)
      for (auto& [k, e] : m)
        f(t, e);
  }
  size_t size() const;
  size_t size(node_id target) const;
  uint64_t dropped() const { return dropped_; }

private:
  size_t max_;
  uint64_t dropped_ = 0;
  std::map<node_id, std::map<std::string, entry>> hints_;
};

} // namespace kura::gossip
