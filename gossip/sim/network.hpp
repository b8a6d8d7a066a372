// The simulated network: every message gets a delay (a base, jitter and a rare
// long tail, which also reorders), may be duplicated or lost, and is dropped
// when its endpoints are on different sides of a partition or down. Messages
// are delivered in (time, sequence) order, so a run is deterministic.
// Thread safety: not thread-safe; one per simulation.
#pragma once

#include "gossip/types.hpp"
#include "tiers/random.hpp"

#include <cstdint>
#include <functional>
#include <queue>
#include <string>
#include <vector>

namespace kura::gossip::sim {

struct net_config {
  uint64_t base_delay_ms = 1;
  uint64_t jitter_ms = 20;
  double tail_chance = 0.02;   ///< chance of an extra long delay
  uint64_t tail_ms = 150;
  double dup_chance = 0.01;
  double loss = 0.0;
};

class network {
public:
  network(uint32_t nodes, uint64_t seed) : rng_(seed), group_(nodes + 1, 0), up_(nodes + 1, true) {}

  net_config cfg;

  void set_up(node_id n, bool up) { up_[n] = up; }
  bool up(node_id n) const { return up_[n]; }
  /// Nodes in different groups cannot talk; all 0 = healed.
  void set_group(node_id n, int g) { group_[n] = g; }
  void heal() { std::fill(group_.begin(), group_.end(), 0); }
  bool partitioned() const {
    for (int g : group_)
      if (g != 0)
        return true;
    return false;
  }

  /// Queues a message sent at `now`.
  void send(node_id from, node_id to, std::string bytes, uint64_t now);

  struct delivery {
    uint64_t at = 0;
    uint64_t seq = 0;
    node_id from = no_node, to = no_node;
    std::string bytes;
    bool operator>(const delivery& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  /// Pops the next delivery due at or before `until`; false if none. Messages
  /// whose endpoints are down or split at delivery time are dropped silently.
  bool next(uint64_t until, delivery& out);

  uint64_t sent = 0, dropped = 0, bytes = 0;

private:
  bool reachable(node_id a, node_id b) const { return up_[a] && up_[b] && group_[a] == group_[b]; }
  rng rng_;
  std::vector<int> group_;
  std::vector<bool> up_;
  uint64_t seq_ = 0;
  std::priority_queue<delivery, std::vector<delivery>, std::greater<delivery>> q_;
};

} // namespace kura::gossip::sim
