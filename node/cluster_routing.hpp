// How the RESP front end of a cluster node runs a command. Any node accepts
// any command: key commands go through the cluster coordinator's core
// (actors/cluster.hpp), which reads from the key's replicas (locally when this
// node is one, else from the owner, falling over to the next replica) and
// writes to all of them, answering after write-acks copies hold the write.
// Multi-key commands (MGET MSET DEL UNLINK EXISTS TOUCH) are split per key,
// each key going to its own replicas; every other command with keys in more
// than one slot gets Redis's CROSSSLOT error (MSETNX RENAME COPY BITOP ...).
// A one-slot command that writes runs at the slot's owner with kura's own
// command table (node/cluster_exec.hpp); a read-only one runs here on what
// the replicas answer. MULTI/EXEC run as one unit at the owner of the
// transaction's one slot. Commands without keys (PING, INFO, ...) run
// locally. docs/cluster.md ("Routing").
// Thread safety: runs on the multiplexer thread with the RESP broker.
#pragma once

#include "actors/cluster.hpp"
#include "node/command_registry.hpp"
#include "node/resp_writer.hpp"

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

namespace kura::node {

enum class route : uint8_t {
  local,       ///< run it here with the command table (no keys)
  cluster,     ///< run_clustered
  face,        ///< CLUSTER, READONLY, READWRITE, ASKING (node/cluster_faces.hpp)
  transaction, ///< run_transaction: WATCH, and EXEC of a transaction with keys
};

/// Where `args` runs on a cluster node: commands with keys (by the
/// registry's key positions), WAIT and the keyspace-wide ones go through the
/// cluster; the rest (PING, INFO, CLIENT, unknown commands ...) run here.
route classify(const command_registry& reg, const std::vector<std::string_view>& args);

/// The same for a connection's session: while MULTI is open every command
/// runs here (the command table queues it, checking that its keys share the
/// transaction's slot); WATCH, and EXEC of a transaction with keys, are
/// route::transaction.
route classify(const command_registry& reg, const std::vector<std::string_view>& args,
               const session& s);

/// Calls its argument with the connection's session if the connection is
/// still there (answers of a WATCH land in it).
/// Why `args` may not be queued inside MULTI on a cluster node ("" = it may):
/// the keyspace-wide commands (DBSIZE, KEYS, SCAN, RANDOMKEY, FLUSHALL,
/// FLUSHDB) need every member, a transaction runs as one unit on its slot's
/// owner (as on Redis Cluster, where MULTI is per node). An error reply
/// without '-' (command_table::set_queue_check).
std::string queue_refusal(const std::vector<std::string_view>& args);

using session_fn = std::function<void(const std::function<void(session&)>&)>;

/// WATCH (reads the keys' versions at their slot's owner into the session)
/// and EXEC (sends the queued commands and the watched versions to the slot's
/// owner as one unit: a changed watched key aborts it with a null array).
/// The caller runs it only once every earlier reply of the connection is in,
/// so that the session holds the answers of earlier WATCHes.
void run_transaction(actors::cluster_core& c, const std::vector<std::string_view>& args, session& s,
                     session_fn with_session, std::function<void(out_buffer&&)> done);

/// GET `key` when this node answers it from its own copy at once (it
/// replicates the key and nothing makes the read ask the others or wait:
/// cluster_core::read_here, and no command of the key's slot waits at this
/// node's gate): appends the reply run_clustered would give (RESP3's null
/// when `resp3`) to `out`, without a callback or a copy of the value between,
/// and returns true. False: nothing was done; run_clustered it.
bool get_here(actors::cluster_core& c, std::string_view key, bool resp3, out_buffer& out);

/// Runs a routed command; `done(reply)` is called exactly once, maybe before
/// run_clustered returns.
void run_clustered(actors::cluster_core& c, const std::vector<std::string_view>& args,
                   std::function<void(out_buffer&&)> done);

/// Runs a command against this node's own copy: the owner's side of every
/// command that writes (INCR, SET NX, HSET, SETBIT, RENAME ...; with the
/// command table, node/cluster_exec.hpp), the per-node part of the
/// keyspace-wide ones and of transactions (`kura.node.*`). The coordinator calls it for commands
/// forwarded by peers (cluster_settings::exec); `reply` gets RESP bytes.
void exec_owned(actors::cluster_core& c, std::vector<std::string> args,
                std::function<void(std::string)> reply);

} // namespace kura::node
