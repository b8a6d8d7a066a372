#include "gossip/suspicion.hpp"

#include <cmath>

namespace kura::gossip {

uint64_t suspicion_timers::timer::deadline() const {
  // The first reporter is not a confirmation; only further distinct members.
  double c = confirmers.size() > 0 ? static_cast<double>(confirmers.size() - 1) : 0.0;
  double frac = k == 0 ? 1.0 : std::log(c + 1.0) / std::log(static_cast<double>(k) + 1.0);
  if (frac > 1.0)
    frac = 1.0;
  double t = static_cast<double>(max_ms) - static_cast<double>(max_ms - min_ms) * frac;
  uint64_t timeout = static_cast<uint64_t>(std::floor(t));
  if (timeout < min_ms)
    timeout = min_ms;
  return start + timeout;
}

bool suspicion_timers::start(node_id id, uint64_t inc, node_id from, uint64_t now,
                             uint64_t min_ms, uint64_t max_ms, uint32_t k) {
  auto it = timers_.find(id);
  if (it != timers_.end() && it->second.inc >= inc) {
    it->second.confirmers.insert(from);
    return false;
  }
  timer t;
  t.inc = inc;
  t.start = now;
  t.min_ms = min_ms;
  t.max_ms = max_ms < min_ms ? min_ms : max_ms;
  t.k = k;
  t.confirmers.insert(from);
  timers_[id] = std::move(t);
  return true;
}

bool suspicion_timers::confirm(node_id id, node_id from) {
  auto it = timers_.find(id);
  if (it == timers_.end())
    return false;
  return it->second.confirmers.insert(from).second;
}

std::vector<std::pair<node_id, uint64_t>> suspicion_timers::expired(uint64_t now) {
  std::vector<std::pair<node_id, uint64_t>> out;
  for (auto it = timers_.begin(); it != timers_.end();) {
    if (it->second.deadline() <= now) {
      out.emplace_back(it->first, it->second.inc);
      it = timers_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

uint64_t suspicion_timers::deadline(node_id id) const {
  auto it = timers_.find(id);
  return it == timers_.end() ? 0 : it->second.deadline();
}

} // namespace kura::gossip
