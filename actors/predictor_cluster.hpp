// The predictor on a cluster node: each node predicts for the slots it
// replicates (issue 12).
//
//   clients' reads (here, and fetched by other nodes) ─▶ tier_store::get ─┐
//   writes stored here (owner or replica) ──────────────▶ tier_store::apply ─┤ cluster_tap
//                                          (the cluster store, gossip/tier_store.hpp)   │
//   prewarm broker (multiplexer thread) ── every ship_ms: tap_batch ──▶ predictor actor
//        { events, read-cache hits/misses, L3 bytes, sync failures }
//   predictor actor ─(prewarm_where_atom, shortlist)─▶ prewarm broker: which keys the
//        read cache holds, which this node does not replicate (skipped by the plan)
//                   ─(prewarm_drop_atom / prewarm_load_atom, keys)─▶ prewarm broker:
//        drop from / load into the read cache (L3/L4 -> memory_cache::put_predicted)
//
// The cluster's data lives in the cluster store (L3 + L4 under the gossip
// core, with the memory tier as its read cache), which the coordinator and
// the RESP broker use on the middleman's multiplexer thread. The prewarm
// broker is a broker of its own on that thread, so it reads the store and its
// cache without a lock and without touching the coordinator: the predictor
// actor (actors/predictor.hpp, unchanged but for predictor_settings::cluster)
// talks to it with the atoms it sends the store broker on a single node.
//
// The per-slot filter: a key is loaded only while this node is one of its
// replicas (cluster_core::replica_ids), checked when the plan is made and
// again at the load. The first shipment, which lets the first plan run, waits
// until the node joined the ring and its membership has not changed for a
// second, so a restarted node does not plan against a ring of itself alone.
// Thread safety: talk to the actors with messages.
#pragma once

#include "actors/cluster.hpp"
#include "actors/predictor.hpp"
#include "actors/predictor_cluster_tap.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <memory>

namespace kura::actors {

/// What spawn_cluster_predictor started.
struct cluster_predictor_handles {
  caf::actor predictor; ///< the predictor actor (for the ops actor)
  caf::actor broker;    ///< the prewarm broker
};

/// Spawns the prewarm broker over `store` (the cluster store `core` runs
/// on; it must live as long as `core`) and the predictor actor addressing it
/// (`s.cluster` is set here). `memory_bytes`: the read cache's capacity;
/// `mk`: kura.security.hash-keys-in-models (null: plain keys). The broker
/// installs the tap in `store` once the actor asked for it.
cluster_predictor_handles spawn_cluster_predictor(caf::actor_system& sys, predictor_settings s,
                                                  std::shared_ptr<cluster_core> core,
                                                  gossip::tier_store& store,
                                                  std::shared_ptr<model_keys> mk,
                                                  uint64_t memory_bytes, const kura::clock& clk,
                                                  predictor_hook hook);

/// Saves the model, stops the predictor, then the broker (which removes its
/// tap from the store). Call from a non-actor thread.
void stop_cluster_predictor(caf::actor_system& sys, const cluster_predictor_handles& h);

} // namespace kura::actors
