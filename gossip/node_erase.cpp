// KURA.ERASE's steps inside the gossip core (gossip/node.hpp, "erasure"):
// node/cluster_erase.hpp runs them on every member, purge first, collect once
// every member purged.
#include "gossip/node.hpp"

namespace kura::gossip {

node::erase_counts node::erase_purge(const std::string& key, const version& v, uint64_t now) {
  erase_counts n;
  hlc_.observe(v, now);
  entry tomb;
  tomb.key = key;
  tomb.ver = v;
  tomb.flags = entry_flags::tombstone;
  // Older copies are replaced; a replica that holds nothing gets the
  // tombstone too, so a late copy from a member not purged yet loses.
  auto held = store_->version_of(key);
  if ((held && *held < v) || (!held && ring_.is_replica(id(), key)))
    if (apply_entry(tomb, now) && held) // removes L4's older copy too (tier_store)
      ++n.store;
  n.hints = hints_.supersede(key, tomb);
  if (auto it = near_.find(key); it != near_.end()) {
    near_.erase(it);
    ++n.near;
  }
  raise_floor(key, v);
  return n;
}

node::erase_counts node::erase_collect(const std::string& key, const version& v, uint64_t now) {
  erase_counts n;
  // Anything at v or older goes: the tombstone, and an older copy that
  // reached a member after its purge (a stream batch read before the
  // holder's purge, on a member that was not a replica of the key then).
  if (auto held = store_->version_of(key); held && !(v < *held)) {
    if (store_->erase(key))
      ++n.store;
    tombstones_.forget(key);
    handoff_acks_.erase(key);
  }
  n.hints = hints_.drop(key, v);
  if (auto it = near_.find(key); it != near_.end() && !(v < it->second.e.ver)) {
    near_.erase(it);
    ++n.near;
  }
  for (auto it = erased_.begin(); it != erased_.end();) // expired floors go
    it = it->second.second <= now ? erased_.erase(it) : std::next(it);
  auto& f = erased_[key];
  if (f.first < v)
    f.first = v;
  f.second = now + cfg_.tombstone_grace_ms;
  raise_floor(key, v);
  return n;
}

bool node::erased_floor(const entry& e, uint64_t now) {
  auto it = erased_.find(e.key);
  if (it == erased_.end())
    return false;
  if (it->second.second <= now) {
    erased_.erase(it);
    return false;
  }
  return !(it->second.first < e.ver);
}

std::vector<std::string>
node::erase_candidates(const std::function<bool(std::string_view)>& match) const {
  std::vector<std::string> out;
  store_->for_each_key_from(0, [&](uint64_t, const entry& e) {
    if (match(e.key))
      out.push_back(e.key);
    return true;
  });
  for (auto& k : hints_.keys())
    if (match(k))
      out.push_back(k);
  for (auto& [k, c] : near_)
    if (match(k))
      out.push_back(k);
  return out;
}

} // namespace kura::gossip
