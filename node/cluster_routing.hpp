// How the RESP front end of a cluster node runs a command. Any node accepts
// any command: key commands go through the cluster coordinator's core
// (actors/cluster.hpp), which reads from the key's replicas (locally when this
// node is one, else from the owner, falling over to the next replica) and
// writes to all of them, answering after write-acks copies hold the write.
// Multi-key commands (MGET MSET DEL UNLINK EXISTS TOUCH) are split per key,
// each key going to its own replicas; commands that must be atomic across
// keys (MSETNX RENAME RENAMENX COPY) get Redis's CROSSSLOT error when their
// keys hash to different slots. Commands without keys (PING, INFO, ...) run
// locally. See docs/cluster.md for what is not routed yet.
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
  local,   ///< run it here with the command table (no keys)
  cluster, ///< run_clustered
  face,    ///< CLUSTER, READONLY, READWRITE, ASKING (node/cluster_faces.hpp)
};

/// Where `args` runs on a cluster node: commands with keys (by the
/// registry's key positions), WAIT and the keyspace-wide ones go through the
/// cluster; the rest (PING, INFO, CLIENT, unknown commands ...) run here.
route classify(const command_registry& reg, const std::vector<std::string_view>& args);

/// Runs a routed command; `done(reply)` is called exactly once, maybe before
/// run_clustered returns.
void run_clustered(actors::cluster_core& c, const std::vector<std::string_view>& args,
                   std::function<void(out_buffer&&)> done);

/// Runs a command against this node's own copy: the owner's side of the
/// read-modify-write commands (INCR, APPEND, SETNX, SET NX/XX/GET/KEEPTTL,
/// GETSET, GETDEL, GETEX, EXPIRE, PERSIST ...) and the per-node part of the
/// keyspace-wide ones (`kura.node.*`). The coordinator calls it for commands
/// forwarded by peers (cluster_settings::exec); `reply` gets RESP bytes.
void exec_owned(actors::cluster_core& c, std::vector<std::string> args,
                std::function<void(std::string)> reply);

} // namespace kura::node
