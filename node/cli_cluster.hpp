// The kura CLI's ring commands (issues 8 and 9), against a cluster node's ops
// port:
//   kura members [--json]        membership, plus what the node is moving
//   kura ring [--json]           owned slot ranges, slots and keys per node
//   kura join HOST:PORT          tell a lone node to join the cluster of HOST:PORT
//   kura leave [NODE]            graceful leave: hand every key off, then exit
//   kura drain NODE              keep NODE out of placement, its keys move away
//   kura undrain NODE            back into placement, its ranges stream in
//   kura rebalance [bytes|keys]  move slots (token counts) to even out bytes/keys per node
// join and leave draw a progress bar (keys and bytes moved, rate, ETA) until
// the move is done; Ctrl-C detaches and the operation goes on on the node;
// `kura status` shows it (the move_* rows). --json prints one JSON document
// with numbers as JSON numbers.
// Thread safety: CLI functions, one thread.
#pragma once

#include "actors/cluster_wire.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace kura::node {

/// How long join, leave, drain, undrain and rebalance may watch a move that
/// does not change at all before they stop with exit code 3 (`kura
/// --stall-timeout=MS`); zero (the default) = 60 s, or 20 x --timeout when
/// that is longer.
std::chrono::milliseconds& cli_stall_timeout();

/// members, ring, join or leave.
bool is_cluster_command(const std::string& cmd);

/// Runs one of them against the ops actor `ops` (reached at host:port);
/// returns the exit code (0 ok, 1 refused or failed, 2 unreachable).
int run_cluster_command(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
                        const std::string& host, const std::vector<std::string>& args, bool json,
                        std::chrono::milliseconds timeout);

/// `kura status` on a cluster node: the node_status answer with the node's
/// move_* rows appended (unchanged when the node is not in a cluster).
std::string status_with_move(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
                             std::string answer, std::chrono::milliseconds timeout);

/// "receiving 3/12 ranges: 1200/5000 keys, 1.2 MiB, 300.0 KiB/s, ETA 12 s"
/// (empty when the node never moved anything).
std::string describe_move(const actors::move_row& m);

} // namespace kura::node
