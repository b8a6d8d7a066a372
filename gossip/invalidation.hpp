// Invalidation of near-cache copies. A node that serves a key to a non-replica
// (which then keeps a copy in its L1) records it as a holder of that key. When
// the key changes here, every holder is sent an invalidation carrying the new
// version; it is resent every `retry_ms` until the holder acknowledges or
// membership declares the holder dead. An acknowledging holder has dropped its
// copy, so it stops being a holder until it fetches again. Replicas are told by
// replication itself (the replicate message is their invalidation).
// Thread safety: not thread-safe; owned by one node.
#pragma once

#include "gossip/messages.hpp"
#include "gossip/types.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kura::gossip {

class invalidation_tracker {
public:
  /// `holder` now keeps a copy of `key` until `until` (its near-cache TTL).
  void add_holder(const std::string& key, node_id holder, uint64_t until);
  /// `key` changed to `v` at `now`: every current holder gets a pending
  /// invalidation, due immediately.
  void on_change(const std::string& key, const version& v, uint64_t now);
  /// The invalidations of `key` due at `now` (sent right away after a change
  /// instead of at the next tick; their next retry is `retry_ms` later).
  std::vector<std::pair<node_id, key_version>> due_for(const std::string& key, uint64_t now,
                                                       uint64_t retry_ms);
  /// Invalidations due at `now` (their next retry is set `retry_ms` later).
  std::vector<std::pair<node_id, key_version>> due(uint64_t now, uint64_t retry_ms);
  /// The holder acknowledged `kv`: done (and no longer a holder).
  bool acknowledge(node_id holder, const key_version& kv);
  /// The holder was declared dead: forget it everywhere.
  void drop_holder(node_id holder);

  size_t pending() const { return pending_.size(); }
  size_t holders(const std::string& key) const;

private:
  std::map<std::string, std::map<node_id, uint64_t>> holders_; // key -> holder -> until
  struct inv {
    version v;
    uint64_t next = 0;
  };
  std::map<std::pair<node_id, std::string>, inv> pending_;
};

} // namespace kura::gossip
