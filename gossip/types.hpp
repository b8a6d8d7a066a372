// Small shared names of the cluster core: node ids and the outbox a state
// machine fills. Thread safety: plain value types.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kura::gossip {

/// A node's identity in the cluster; it is also the `version::node` of the
/// writes the node coordinates. 0 is never a valid node.
using node_id = uint32_t;

/// No node (an absent source or owner).
constexpr node_id no_node = 0;

/// One message a state machine wants sent: the transport delivers `bytes` (an
/// encoded envelope) to `to`, or loses it. Nothing is ever assumed delivered.
struct outgoing {
  node_id to = no_node;
  std::string bytes;
};

using outbox = std::vector<outgoing>;

} // namespace kura::gossip
