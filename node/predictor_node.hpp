// kura-node's predictor wiring: the actor's settings from kura.prewarm.* and
// kura.alerts.*, and its Prometheus metrics (prewarm loads, bytes, hits,
// precision, alerts active and raised by kind, model size, sampled events).
// Thread safety: plain functions; the hook is safe for concurrent use.
#pragma once

#include "actors/predictor.hpp"
#include "node/config.hpp"
#include "node/metrics.hpp"

namespace kura::node {

/// The predictor actor's settings from cfg (model file in the data dir).
actors::predictor_settings predictor_settings_of(const node_config& cfg);

/// Registers the predictor's metrics in `m` and returns the hook that
/// updates them (empty when `m` is null).
actors::predictor_hook predictor_metrics_hook(node_metrics* m);

} // namespace kura::node
