// Replication plan and the coordinator's bookkeeping of writes in flight.
// A write for key k goes to the replicas of k (owner + rf-1 successors) and the
// client is acknowledged once `write_acks` of them hold it (default 1: the owner
// alone, as DESIGN.md says; the simulator runs with 2 so that an acknowledged
// write survives a crash). A target that does not ack is retried every
// `retry_ms`; when it is declared dead, or the write times out, the entry
// becomes a hint for it (hints.hpp) instead of being retried forever.
// Thread safety: not thread-safe; owned by one node.
#pragma once

#include "gossip/ring.hpp"
#include "tiers/entry.hpp"

#include <cstdint>
#include <map>
#include <set>
#include <string_view>
#include <vector>

namespace kura::gossip {

/// Who receives a write and how many acknowledgements the writer waits for.
struct write_plan {
  std::vector<node_id> targets; ///< the key's replicas, owner first
  uint32_t acks_needed = 0;     ///< min(write_acks, rf): never fewer because the view shrank
  /// False when the view has fewer replicas than acks_needed (a partition, a
  /// cluster smaller than rf): the write cannot be acknowledged as asked.
  bool achievable() const { return targets.size() >= acks_needed; }
};

write_plan plan_write(const ring& r, std::string_view key, uint32_t write_acks);

/// Writes this node coordinates and has not finished.
class pending_writes {
public:
  struct write {
    uint64_t rid = 0;
    entry e;
    std::set<node_id> waiting; ///< targets that have not acked
    uint32_t acks = 0;
    uint32_t needed = 0;
    uint64_t deadline = 0;
    uint64_t next_retry = 0;
    uint32_t resends = 0;  ///< rounds of resends so far
    bool reported = false; ///< the client got its answer
    /// Sloppy quorum: hint holder -> the suspect replica it holds the write for.
    std::map<node_id, node_id> holders;
  };

  write& add(uint64_t rid, entry e, std::set<node_id> waiting, uint32_t acks, uint32_t needed,
             uint64_t deadline, uint64_t next_retry);
  /// Records an ack; returns the write if `from` was still awaited.
  write* ack(uint64_t rid, node_id from, const version& held);
  write* find(uint64_t rid);
  void erase(uint64_t rid) { writes_.erase(rid); }
  std::map<uint64_t, write>& all() { return writes_; }
  size_t size() const { return writes_.size(); }

private:
  std::map<uint64_t, write> writes_;
};

} // namespace kura::gossip
