// Suspicion timers with Lifeguard's dynamic timeout. When a member is suspected
// we do not declare it dead at once: it gets a window to refute (by gossiping
// an alive message with a higher incarnation). The window starts at `max` and
// shrinks towards `min` as independent members confirm the suspicion:
//   timeout(c) = max(min, max - (max - min) * log(c + 1) / log(k + 1))
// where c is the number of distinct confirmers seen and k the number expected.
// A lone slow prober thus cannot kill a healthy member quickly, while a member
// that many peers cannot reach is declared dead fast (Lifeguard, §IV-B).
// Thread safety: not thread-safe; owned by one membership.
#pragma once

#include "gossip/types.hpp"

#include <cstdint>
#include <map>
#include <set>
#include <vector>

namespace kura::gossip {

class suspicion_timers {
public:
  /// Starts (or keeps) a suspicion of `id` at incarnation `inc`, first reported
  /// by `from`. Returns true if this started a new timer.
  bool start(node_id id, uint64_t inc, node_id from, uint64_t now, uint64_t min_ms,
             uint64_t max_ms, uint32_t expected_confirmations);

  /// Counts an independent confirmation; returns true if it was new.
  bool confirm(node_id id, node_id from);

  /// Stops the timer (refuted or declared dead).
  void stop(node_id id) { timers_.erase(id); }
  bool active(node_id id) const { return timers_.count(id) != 0; }

  /// Members whose suspicion timed out at `now` (their timers are removed);
  /// each comes with the incarnation it was suspected at.
  std::vector<std::pair<node_id, uint64_t>> expired(uint64_t now);

  /// Current deadline of a suspicion (for tests and metrics).
  uint64_t deadline(node_id id) const;

private:
  struct timer {
    uint64_t inc = 0;
    uint64_t start = 0;
    uint64_t min_ms = 0;
    uint64_t max_ms = 0;
    uint32_t k = 0;
    std::set<node_id> confirmers;
    uint64_t deadline() const;
  };
  std::map<node_id, timer> timers_;
};

} // namespace kura::gossip
