// Tombstone collection. A delete is a tombstone entry so that it wins over
// older values everywhere (LWW). Dropping it too early resurrects the value from
// any replica that missed the delete, so a node collects a tombstone only when
// (1) it is older than a grace period (longer than any hint or handoff can be
// delayed), and (2) every *other* current replica of the key has confirmed it
// holds that tombstone or something newer (through a replicate ack, a handoff
// ack or a tomb_check answer). Each replica decides for itself.
// Thread safety: not thread-safe; owned by one node.
#pragma once

#include "gossip/types.hpp"
#include "tiers/entry.hpp"

#include <map>
#include <set>
#include <string>
#include <vector>

namespace kura::gossip {

class tombstone_tracker {
public:
  /// `who` holds `key` at `held` or newer.
  void confirm(const std::string& key, node_id who, const version& held);
  /// Whether every node in `others` confirmed holding version `v` of `key`.
  bool confirmed_by_all(const std::string& key, const version& v,
                        const std::vector<node_id>& others) const;
  /// Nodes of `others` that have not confirmed `v` yet.
  std::vector<node_id> missing(const std::string& key, const version& v,
                               const std::vector<node_id>& others) const;
  void forget(const std::string& key) { confirmed_.erase(key); }

private:
  std::map<std::string, std::map<node_id, version>> confirmed_;
};

} // namespace kura::gossip
