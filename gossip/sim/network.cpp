#include "gossip/sim/network.hpp"

namespace kura::gossip::sim {

void network::send(node_id from, node_id to, std::string bytes_, uint64_t now) {
  ++sent;
  bytes += bytes_.size();
  if (to == no_node || to >= up_.size() || !reachable(from, to) || rng_.chance(cfg.loss)) {
    ++dropped;
    return;
  }
  auto delay = [&] {
    uint64_t d = cfg.base_delay_ms + rng_.below(cfg.jitter_ms + 1);
    if (rng_.chance(cfg.tail_chance))
      d += rng_.below(cfg.tail_ms + 1);
    return d;
  };
  if (rng_.chance(cfg.dup_chance))
    q_.push(delivery{now + delay(), seq_++, from, to, bytes_});
  q_.push(delivery{now + delay(), seq_++, from, to, std::move(bytes_)});
}

bool network::next(uint64_t until, delivery& out) {
  while (!q_.empty() && q_.top().at <= until) {
    out = std::move(const_cast<delivery&>(q_.top()));
    q_.pop();
    if (reachable(out.from, out.to))
      return true;
    ++dropped;
  }
  return false;
}

} // namespace kura::gossip::sim
