// The Redis Cluster face of a cluster node: CLUSTER SLOTS / SHARDS / NODES /
// INFO / MYID / KEYSLOT / COUNTKEYSINSLOT / GETKEYSINSLOT, READONLY,
// READWRITE and ASKING in Redis 7's reply formats, and the redirect decision
// (-MOVED) for connections in cluster mode. Everything is computed from the
// gossip core's ring, so every node with the same view gives the same map.
//
// The slot map. For each of the 16384 slots the ring gives its replicas,
// owner first (gossip/ring.hpp). The face announces the first replica that
// is alive as the slot's primary and the others as its replicas; a suspect
// member (SWIM suspicion: a dropped connection, a missed probe) moves to the
// end, so a cluster client that refreshes its map after a node died goes to a
// live node at once instead of waiting for the dead declaration. Consecutive
// slots with the same node list form one range (CLUSTER SLOTS), and the
// ranges with the same node list one shard (CLUSTER SHARDS). A kura node is a
// primary of some ranges and a replica of others, so CLUSTER NODES lists every
// node as a master with the ranges it is primary of (Redis's format has no
// way to say "replica of several masters"); CLUSTER SLOTS and SHARDS carry
// the replicas.
//
// Node ids. Redis clients expect 40 hex digits: a node's Redis id is the
// SHA-1 of its kura.cluster.node-id, the same on every node.
//
// Cluster mode and redirects. A connection is in cluster mode when
// kura.cluster.redirect is `moved`, or when it showed that it is a cluster
// client: it asked for the slot map (CLUSTER SLOTS, SHARDS or NODES) or sent
// READONLY, READWRITE or ASKING. A key command of a connection in cluster
// mode whose keys are all in one slot that another node is primary of gets
// `-MOVED slot host:port` (the primary's RESP address) unless it is a read
// and this node replicates the slot: kura serves reads from every replica's
// copy (as it does for plain clients), so READONLY changes nothing.
// Commands whose keys span several slots are still served (split, as for
// plain clients) where Redis would answer CROSSSLOT. DBSIZE, KEYS and
// RANDOMKEY answer for the keys this node is primary of, as a Redis Cluster
// node does; SCAN and FLUSHALL/FLUSHDB stay cluster-wide (this_node_only in
// the .cpp says why). Any other connection is proxied
// (node/cluster_routing.hpp).
//
// -ASK. There are no manual slot migrations (the ring places slots): when the
// ring changes, the map shows the new replicas at once and they serve the
// slot while it streams in. A cluster-mode read of a slot this node is still
// receiving, none of whose keys has arrived yet, gets `-ASK slot host:port`
// of the member it streams from (which holds them), as a Redis node migrating
// a slot answers for keys it no longer holds; writes are served at once (last
// writer wins against the stream). ASKING makes the connection's next key
// command be served or proxied here, never redirected. Plain connections are
// never redirected: the node asks the stream's source itself.
// Thread safety: runs on the multiplexer thread with the RESP broker.
#pragma once

#include "actors/cluster.hpp"
#include "node/command_registry.hpp"
#include "node/resp_writer.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace kura::node {

/// What a connection told us about itself (one per RESP connection).
struct face_state {
  bool aware = false;  ///< asked for the slot map or sent READONLY/READWRITE/ASKING
  bool asking = false; ///< sent ASKING: the next key command is not redirected
};

/// CLUSTER, READONLY, READWRITE or ASKING.
bool is_face_command(std::string_view name);

/// The hook in front of run_clustered for a command classify() routed:
/// answers the face commands, redirects a cluster-mode connection's key
/// command to its slot's primary, and answers a cluster-mode connection's
/// keyspace-wide commands for this node. True when it took the command
/// (`done` is then called exactly once, maybe later); false: route it.
/// `resp` is the connection's protocol version (HELLO).
bool faces_first(actors::cluster_core& c, const command_registry& reg, face_state& f,
                 const std::vector<std::string_view>& a, int resp,
                 const std::function<void(out_buffer&&)>& done);

/// -MOVED and -ASK answers sent so far (this process; any thread).
uint64_t moved_redirects();
uint64_t ask_redirects();

// -- the parts that need no running cluster (tests) ---------------------------------

/// A run of consecutive slots with the same nodes, primary first.
struct slot_range {
  uint16_t first = 0, last = 0;
  std::vector<gossip::node_id> nodes;
};

/// The slot map of ring `r`: members for which `down` is true move behind
/// the others in each slot's list. Covers 0..16383 unless the ring is empty.
std::vector<slot_range> slot_ranges(const gossip::ring& r,
                                    const std::function<bool(gossip::node_id)>& down);

/// The 40-hex-digit Redis node id of kura node `name` (SHA-1 of it).
std::string redis_node_id(std::string_view name);

/// "0-5460 5461 5462-10000": the slots of `ranges` whose primary is `id`.
std::string owned_slots_text(const std::vector<slot_range>& ranges, gossip::node_id id);

} // namespace kura::node
