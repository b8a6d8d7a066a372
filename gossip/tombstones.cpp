#include "gossip/tombstones.hpp"

namespace kura::gossip {

void tombstone_tracker::confirm(const std::string& key, node_id who, const version& held) {
  auto& v = confirmed_[key][who];
  if (v < held)
    v = held;
}

bool tombstone_tracker::confirmed_by_all(const std::string& key, const version& v,
                                         const std::vector<node_id>& others) const {
  return missing(key, v, others).empty();
}

std::vector<node_id> tombstone_tracker::missing(const std::string& key, const version& v,
                                                const std::vector<node_id>& others) const {
  std::vector<node_id> out;
  auto it = confirmed_.find(key);
  for (node_id n : others) {
    if (it == confirmed_.end()) {
      out.push_back(n);
      continue;
    }
    auto c = it->second.find(n);
    if (c == it->second.end() || c->second < v)
      out.push_back(n);
  }
  return out;
}

} // namespace kura::gossip
