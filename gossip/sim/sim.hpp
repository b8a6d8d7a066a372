// The cluster simulator: N `gossip::node` state machines on a simulated network
// (delay, jitter and reordering, duplication, loss, partitions and heals, crash
// and restart with or without the disk, clock skew and drift), a client
// workload of writes, reads and deletes, and the checkers. Everything is a
// function of (nodes, seed, faults): a failing seed replays exactly.
// Thread safety: each run is self-contained; runs may execute in parallel.
#pragma once

#include "gossip/node.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kura::gossip::sim {

enum class fault_mode { none, loss, partition, crash, skew, all };

const char* to_string(fault_mode m);
bool parse_fault_mode(const std::string& s, fault_mode& out);

struct options {
  uint32_t nodes = 5;
  uint64_t seed = 1;
  fault_mode faults = fault_mode::all;
  bool trace = false; ///< print a timeline of faults and checks to stderr
  /// The store of node `n` at its `restart`-th start (an empty one; a kept
  /// disk is applied into it). Unset: an in-memory memory_store. Tests set it
  /// to run the same checks on the real tiers (gossip/tier_store.hpp).
  std::function<std::unique_ptr<replica_store>(node_id n, uint64_t restart)> make_store;
};

/// Protocol settings the simulator runs with (short periods on simulated time).
node_config sim_node_config(node_id self, uint32_t nodes);

struct report {
  bool ok = true;
  std::vector<std::string> failures;
  // what happened, for the summary line
  uint64_t messages = 0, dropped = 0, acked_writes = 0, failed_writes = 0, reads = 0;
  uint64_t invalidation_acks = 0, repaired = 0;
  int64_t converge_ms = -1; ///< heal -> all live nodes agree (-1: never / not measured)
  int64_t detect_ms = -1;   ///< crash -> all live nodes declare it dead
  uint64_t sim_ms = 0;
};

/// The checkers' bounds for a cluster of `nodes`, in words (for the summary).
std::string describe_bounds(uint32_t nodes);

/// Runs one seeded simulation and its checkers.
report run(const options& opt);

} // namespace kura::gossip::sim
