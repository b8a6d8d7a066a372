#include "gossip/invalidation.hpp"

namespace kura::gossip {

void invalidation_tracker::add_holder(const std::string& key, node_id holder, uint64_t until) {
  auto& h = holders_[key][holder];
  if (h < until)
    h = until;
}

void invalidation_tracker::on_change(const std::string& key, const version& v, uint64_t now) {
  auto it = holders_.find(key);
  if (it == holders_.end())
    return;
  for (auto h = it->second.begin(); h != it->second.end();) {
    if (h->second < now) { // its copy has expired on its own
      h = it->second.erase(h);
      continue;
    }
    auto& p = pending_[{h->first, key}];
    if (p.v < v)
      p.v = v;
    p.next = now;
    ++h;
  }
  if (it->second.empty())
    holders_.erase(it);
}

std::vector<std::pair<node_id, key_version>> invalidation_tracker::due(uint64_t now,
                                                                       uint64_t retry_ms) {
  std::vector<std::pair<node_id, key_version>> out;
  for (auto& [hk, p] : pending_)
    if (p.next <= now) {
      out.emplace_back(hk.first, key_version{hk.second, p.v.hlc, p.v.node});
      p.next = now + retry_ms;
    }
  return out;
}

std::vector<std::pair<node_id, key_version>>
invalidation_tracker::due_for(const std::string& key, uint64_t now, uint64_t retry_ms) {
  std::vector<std::pair<node_id, key_version>> out;
  auto it = holders_.find(key);
  if (it == holders_.end())
    return out;
  for (auto& [holder, until] : it->second) {
    auto p = pending_.find({holder, key});
    if (p != pending_.end() && p->second.next <= now) {
      out.emplace_back(holder, key_version{key, p->second.v.hlc, p->second.v.node});
      p->second.next = now + retry_ms;
    }
  }
  return out;
}

bool invalidation_tracker::acknowledge(node_id holder, const key_version& kv) {
  auto it = pending_.find({holder, kv.key});
  if (it == pending_.end() || kv.ver() < it->second.v)
    return false;
  pending_.erase(it);
  auto h = holders_.find(kv.key);
  if (h != holders_.end()) {
    h->second.erase(holder);
    if (h->second.empty())
      holders_.erase(h);
  }
  return true;
}

void invalidation_tracker::drop_holder(node_id holder) {
  for (auto it = pending_.begin(); it != pending_.end();)
    it = it->first.first == holder ? pending_.erase(it) : std::next(it);
  for (auto it = holders_.begin(); it != holders_.end();) {
    it->second.erase(holder);
    it = it->second.empty() ? holders_.erase(it) : std::next(it);
  }
}

size_t invalidation_tracker::holders(const std::string& key) const {
  auto it = holders_.find(key);
  return it == holders_.end() ? 0 : it->second.size();
}

} // namespace kura::gossip
