#include "gossip/replication.hpp"

#include <algorithm>

namespace kura::gossip {

write_plan plan_write(const ring& r, std::string_view key, uint32_t write_acks) {
  write_plan p;
  p.targets = r.replicas(key);
  // Capped by the configured rf, not by how many replicas this view has: a
  // node cut off from the others must not acknowledge a write with fewer
  // copies than it promised (it would not survive that node's crash).
  p.acks_needed =
      std::min<uint32_t>(std::max<uint32_t>(write_acks, 1), std::max<uint32_t>(r.config().rf, 1));
  return p;
}

pending_writes::write& pending_writes::add(uint64_t rid, entry e, std::set<node_id> waiting,
                                           uint32_t acks, uint32_t needed, uint64_t deadline,
                                           uint64_t next_retry) {
  write w;
  w.rid = rid;
  w.e = std::move(e);
  w.waiting = std::move(waiting);
  w.acks = acks;
  w.needed = needed;
  w.deadline = deadline;
  w.next_retry = next_retry;
  return writes_[rid] = std::move(w);
}

pending_writes::write* pending_writes::ack(uint64_t rid, node_id from, const version& held) {
  auto it = writes_.find(rid);
  if (it == writes_.end() || held < it->second.e.ver)
    return nullptr;
  if (it->second.waiting.erase(from) == 0)
    return nullptr;
  ++it->second.acks;
  return &it->second;
}

pending_writes::write* pending_writes::find(uint64_t rid) {
  auto it = writes_.find(rid);
  return it == writes_.end() ? nullptr : &it->second;
}

} // namespace kura::gossip
