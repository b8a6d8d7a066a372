#include "gossip/store.hpp"

#include "tiers/hash.hpp"

namespace kura::gossip {

bool replica_store::apply(const entry& e) {
  auto it = map_.find(e.key);
  if (it == map_.end()) {
    map_.emplace(e.key, e);
    return true;
  }
  if (e.ver > it->second.ver) {
    it->second = e;
    return true;
  }
  return false;
}

const entry* replica_store::get(std::string_view key) const {
  auto it = map_.find(std::string(key));
  return it == map_.end() ? nullptr : &it->second;
}

bool replica_store::erase(std::string_view key) {
  return map_.erase(std::string(key)) > 0;
}

uint64_t replica_store::item_digest(const entry& e) {
  return mix64(hash64(e.key, 0x61652d6b6579ull) ^ mix64(e.ver.hlc)
               ^ (uint64_t{e.ver.node} << 8 | e.flags));
}

} // namespace kura::gossip
