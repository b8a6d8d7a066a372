// The RESP2 front end: one CAF broker owns the listening socket and every
// client connection (CAF-0.17.md §5: a single broker answers as fast as
// redis-server; all brokers share the multiplexer thread anyway). It parses
// with resp_parser, plans each command with command_table::plan and runs it
// against the store's keyspace directly, so a memory hit costs no actor hop.
// A command that touches keys memory does not hold (and the presence filter
// says L3 may hold) sends ONE lookup for all of them to the L3 actor; that
// connection then waits (later pipelined commands stay queued in its input,
// so replies keep their order) while every other connection goes on. KEYS,
// SCAN, DBSIZE and RANDOMKEY ask L3 for a listing the same way.
// Limits: a protocol error, an oversized bulk or argument count, or more than
// max_output_bytes of unsent replies gets an error reply and closes that
// connection only. Above the write-behind high-water mark the broker stops
// running commands (input stays buffered, up to the query buffer limit) until
// L3 catches up.
// Thread safety: runs on the multiplexer thread; talk to it with messages.
#pragma once

#include "actors/cluster.hpp"
#include "actors/store.hpp"
#include "node/commands.hpp"
#include "node/resp_parser.hpp"
#include "node/security.hpp"
#include "node/tls.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>

#include <future>
#include <memory>
#include <string>

namespace kura::node {

class node_metrics;

struct resp_server_config {
  std::string bind = "127.0.0.1";
  uint16_t port = 6379;
  resp_limits limits;
  uint64_t max_output_bytes = 256ull << 20; ///< unsent replies per client
  uint64_t max_clients = 10000;
  /// Bytes asked per socket read. CAF 0.17 resizes (zero-fills) the read
  /// buffer to this size before every read, so bigger is not free.
  uint32_t read_buffer_bytes = 4096;
  uint32_t metrics_interval_ms = 1000;
  node_facts facts; ///< initial facts (version, data dir, start time)
  /// The cluster coordinator's core; null when the node is alone. Then key
  /// commands are routed through it (node/cluster_routing.hpp).
  std::shared_ptr<actors::cluster_core> cluster;
  security_config security; ///< users, ACL file, protected mode, audit log
  /// RESP over TLS on tls.port (0 = off), beside `port` or alone (port 0).
  tls_settings tls;
};

/// Sent to the RESP broker (SIGHUP): re-read the TLS certificate, key and CA
/// files; on error the old ones stay in use (logged either way).
using tls_reload_atom = caf::atom_constant<caf::atom("tlsreload")>;

/// Spawns the RESP broker. `listening` receives "" once the port is open, or
/// a one-line error ("cannot listen on 127.0.0.1:6379: ...", or a security
/// setting that cannot be applied). `metrics` may be
/// null; it must outlive the broker.
caf::actor spawn_resp_server(caf::actor_system& sys, std::shared_ptr<actors::store_core> core,
                             resp_server_config cfg, node_metrics* metrics,
                             std::shared_ptr<std::promise<std::string>> listening);

} // namespace kura::node
