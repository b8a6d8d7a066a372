// Contract: `kura rebalance`'s planner. Given the ring's members with their
// token counts (ring(members, cfg, tokens)) and the load of every slot (keys
// or bytes, one copy), it searches token counts that even out the load each
// member holds (the slots it replicates, owner or not): a local search that
// moves a few tokens at a time from or to one member while max/mean of the
// held load improves. A member's tokens are the first N of its own sequence,
// so a change moves only the arcs next to the tokens added or removed (the
// data to stream stays proportional to the change). Pure and deterministic:
// the same input gives the same plan. No clock, no I/O.
// Thread safety: free functions.
#pragma once

#include "gossip/ring.hpp"

#include <cstdint>
#include <map>
#include <vector>

namespace kura::gossip {

/// The load each member of `r` holds (in r.members() order): the sum of
/// `slot_load[s]` over the slots s it replicates. `slot_load` has 16384
/// entries (fewer: the rest count 0).
std::vector<double> held_load(const ring& r, const std::vector<uint64_t>& slot_load);
/// max/mean of `load` (1 when every member holds the same; 0 when empty or all 0).
double max_over_mean(const std::vector<double>& load);

struct rebalance_limits {
  uint32_t min_tokens = 16;   ///< no member gets fewer tokens
  uint32_t max_tokens = 4096; ///< nor more
  uint32_t max_rounds = 120;  ///< accepted moves at most
  double min_gain = 0.001;    ///< a move must lower max/mean by this much
};

struct rebalance_plan {
  std::map<node_id, uint32_t> tokens; ///< every member's token count after the plan
  double before = 0;                  ///< max/mean of the held load now
  double after = 0;                   ///< ... with the planned token counts
  uint32_t rounds = 0;                ///< moves accepted
  /// Slots whose replicas change (what the rebalance streams).
  uint32_t slots_moved = 0;
};

/// Plans token counts for `members` (current counts in `tokens`; absent =
/// cfg.vnodes) that even out `slot_load` per member.
rebalance_plan plan_rebalance(const std::vector<node_id>& members,
                              const std::map<node_id, uint32_t>& tokens, const ring_config& cfg,
                              const std::vector<uint64_t>& slot_load,
                              const rebalance_limits& lim = {});

} // namespace kura::gossip
