// The one version issuer of a node: a hybrid logical clock (Kulkarni et al.,
// 2014) that mints the `version` of every write the node coordinates, in the
// keyspace (RESP writes) and in the gossip core alike. Versions follow wall
// time when clocks are sane and still move forward when they are not.
//
// Why two nodes never mint the same version: a version is (hlc, node id) and
// every node has its own non-zero id (from kura.cluster.node-id, see
// `node_id_of`), so two nodes differ in the node part; one node never repeats
// an hlc because `now` is strictly increasing. Across a restart the clock is
// seeded (`observe`) from the highest version the node's disk holds (L3 keeps
// it in its meta record, l3_lmdb::max_version) and from the wall clock, which
// has moved on by at least the restart time; a write that was acknowledged
// but lost with the write-behind batch also reaches the restarted node again
// through replication or anti-entropy, and observing it moves the clock past it.
// Thread safety: not thread-safe; one per node, owned by one actor.
#pragma once

#include "tiers/entry.hpp"

#include <cstdint>
#include <string_view>

namespace kura {

/// Issues `version`s for one node. The 48-bit physical part is the largest
/// wall-clock ms seen (locally or in any observed version); the 16-bit counter
/// orders events inside one ms. A version issued after observing `v` is always
/// greater than `v`, whatever the local wall clock says: that is what keeps
/// last-writer-wins meaningful when an owner with a slow clock takes over a key
/// written by a node with a fast one.
class hlc {
public:
  /// `node_id` must not be 0 (0 means "no node"); a single node that is not
  /// part of a cluster uses 1.
  explicit hlc(uint32_t node_id) : node_(node_id) {}

  /// A new version for a local event at wall time `wall_ms`; greater than every
  /// version issued or observed before.
  version now(uint64_t wall_ms);

  /// Merges a remote (or stored) version so that the next `now` exceeds it.
  void observe(const version& v) {
    if (last_ < v.hlc)
      last_ = v.hlc;
  }
  /// Same, and also moves the physical part up to `wall_ms`.
  void observe(const version& v, uint64_t wall_ms);

  /// The last issued or observed timestamp (48-bit ms << 16 | counter).
  uint64_t last() const { return last_; }
  uint32_t node_id() const { return node_; }

private:
  uint32_t node_;
  uint64_t last_ = 0;
};

/// The numeric node id (`version::node`, gossip's node_id) of a configured
/// node name such as "n1" (kura.cluster.node-id): FNV-1a (32 bits) of the
/// name, 0 mapped to 1 -- the same function as the node side's
/// gossip_id_of, so either may call the other. Distinct names may collide
/// (about 1 in 2^32 per pair); the cluster refuses a member whose id is
/// already taken by another name.
uint32_t node_id_of(std::string_view name);

} // namespace kura
