// kura-node's side of the cluster set-up: the node id kept in the data dir,
// the incarnation bumped on every start, and the coordinator's settings taken
// from node_config. Runs before the actor system starts.
// Thread safety: free functions, called once at start-up.
#pragma once

#include "actors/cluster.hpp"
#include "archive/archive.hpp"
#include "archive/job_gate.hpp"
#include "gossip/store.hpp"
#include "node/config.hpp"
#include "tiers/clock.hpp"
#include "tiers/l3_lmdb.hpp"

#include <cstdint>
#include <string>

namespace kura::node {

/// Reads or records the node id in `<data-dir>/cluster.id` and bumps
/// `<data-dir>/cluster.incarnation`. A configured id that differs from the
/// recorded one is refused (returns a one-line error); with no configured id
/// the recorded one is used, or a new random one is made and recorded.
/// Returns "" on success with `id` and `incarnation` set.
std::string resolve_cluster_identity(const node_config& cfg, std::string& id,
                                     uint64_t& incarnation);

/// The coordinator settings for node id `id`.
actors::cluster_settings cluster_settings_of(const node_config& cfg, const std::string& id);

/// The store the cluster replicates into: the node's persistent tiers, L3
/// (`l3`, forced into cluster mode: tombstones and version floors) with the
/// archive below it when kura.archive.enabled (gossip/tier_store.hpp). The
/// node's own L3 actor must not open the same environment (LMDB allows one
/// open per process): in cluster mode this store is the node's L3 and L4.
/// With the archive on, `l4` receives it and the gate its compactor must
/// share with the store (archive/job_gate.hpp): the caller runs the L4
/// actors on it (compaction, retention, `kura compact`, `kura archive`).
struct cluster_archive {
  std::shared_ptr<archive::archive> l4;
  std::shared_ptr<archive::job_gate> gate;
};
result<std::unique_ptr<gossip::replica_store>> open_cluster_store(const node_config& cfg,
                                                                  l3_config l3,
                                                                  const kura::clock& clk,
                                                                  cluster_archive* l4 = nullptr);

/// Sets the middleman heartbeat and connection timeout (CAF-0.17.md §4: a
/// frozen peer is never noticed without them) and `middleman.workers` = 0
/// (BASP deserialized on the multiplexer thread: docs/cluster.md, "Threads")
/// unless the user set them.
void set_cluster_transport_defaults(node_config& cfg);

} // namespace kura::node
