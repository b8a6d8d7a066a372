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

/// INFO cluster's lines about the cluster data this node holds (keys, values
/// with an expiry, tombstones; entries and bytes of the memory read cache, L3
/// and L4; hints queued), "name:value\r\n" each. Walks the store's index
/// once: on demand only. Multiplexer thread.
std::string cluster_data_info(const actors::cluster_core& c);

} // namespace kura::node
