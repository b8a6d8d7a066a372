// Prometheus metrics of a cluster node (docs/cluster.md, "Metrics"): members
// by state, slots owned and replicated, gossip traffic and batching, hints,
// forwarded commands, invalidations sent and acknowledged, anti-entropy rounds
// and repairs, bytes streamed, and the store's background-commit backlog.
// The coordinator calls the hook once a second on the multiplexer thread;
// counters are pushed as deltas of the gossip core's cumulative counters.
// Thread safety: the hook is called from one thread; prometheus-cpp's metric
// objects are thread-safe for the exposer's reads.
#pragma once

#include "actors/cluster.hpp"
#include "node/metrics.hpp"

#include <functional>

namespace kura::node {

/// Registers the cluster metrics in `m`'s registry and returns the report
/// hook for cluster_settings::report (empty when `m` is null).
std::function<void(const actors::cluster_core&)> cluster_metrics_hook(node_metrics* m);

/// The cluster data this node holds (INFO's l1, l2, l3, l4 and keyspace
/// sections on a cluster node): keys in the store's index, the memory tier's
/// (the read cache in front of it: L1 window, L2 main), L3's and L4's stats; with
/// `kinds` also the values with an expiry (a walk of the index). Multiplexer
/// thread.
struct cluster_holdings {
  uint64_t keys = 0, expires = 0;
  tier_stats l1, l2, l3, l4;
};
cluster_holdings holdings_of(const actors::cluster_core& c, bool kinds);

/// The cluster store's write-behind figures, as a single node's
/// `kura_l3_write_behind_queue` and `kura_l3_uncommitted_writes`: writes it
/// has not handed to L3 yet (its overlay), and writes in L3's batch not
/// committed yet. No lock (INFO asks at every batch of commands).
/// Multiplexer thread.
struct cluster_write_queue {
  uint64_t queued = 0, uncommitted = 0;
};
cluster_write_queue write_queue_of(const actors::cluster_core& c);

} // namespace kura::node
