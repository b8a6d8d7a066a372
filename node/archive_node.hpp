// kura-node's L4 wiring: opens the archive under <data-dir>/archive from the
// kura.archive.* settings, exports its metrics, and serves the archive
// commands of the ops actor (`kura archive`, `kura compact`).
// Thread safety: open_archive and l4_settings are plain functions;
// archive_metrics is safe for concurrent use; handle_archive_op runs inside
// the ops actor.
#pragma once

#include "actors/archive_actors.hpp"
#include "node/config.hpp"
#include "node/metrics.hpp"

#include <caf/actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include <memory>
#include <mutex>
#include <string>

namespace kura::node {

/// Opens (creating) the archive at <data-dir>/archive with cfg's settings.
result<std::shared_ptr<archive::archive>>
open_archive(const node_config& cfg, const kura::clock& clk,
             std::shared_ptr<const crypto::keyring> keys = nullptr);

/// The compactor's settings from cfg.
actors::l4_config l4_settings(const node_config& cfg);

/// Archive metrics in the node's registry: stored/raw bytes, ratio, segments,
/// compaction runs/bytes/seconds, L4 hits and the L4 read latency histogram.
/// Returns a hook for spawn_l4 (empty when `m` is null).
actors::l4_tick_hook archive_metrics_hook(node_metrics* m);

/// Serves kv_request ops archive_ops::* (answer delivered through `rp`);
/// false when `op` is not an archive op. `compactor` may be invalid (L4 off).
bool handle_archive_op(caf::event_based_actor* self, const caf::actor& compactor, uint8_t op,
                       caf::typed_response_promise<std::string> rp);

/// The `kura compact` and `kura archive` commands of the CLI (node/cli_archive.cpp);
/// returns the exit code (0 ok, 1 error answer, 2 node unreachable).
int run_archive_command(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
                        const std::string& cmd, bool json, caf::timespan timeout);

} // namespace kura::node
