// Embedding kura in a CAF application: `spawn_kura` starts kura's actor graph
// (memory shards in the store broker, the L3 actor owning LMDB) inside the
// caller's caf::actor_system and returns a typed handle. Requests:
//   get    (kv_get_atom, key)                 -> kv_reply{found, value, expiry_ms}
//   set    (kv_set_atom, key, value, ttl_ms)  -> kv_reply{found = stored}
//   del    (kv_del_atom, key)                 -> kv_reply{found = existed}
//   expire (kv_expire_atom, key, ttl_ms)      -> kv_reply{found = existed}; ttl 0 = persist
//   tier   (kv_tier_atom, key)                -> kv_reply{value = "l1" | "l2" | "l3" | "none"}
//          (a cluster member: "l3" | "l4" when it holds a copy, else "remote")
//   flush  (kv_flush_atom)                    -> kv_reply{found = true}
// kv_reply::error is non-empty when something failed (L3 error, limits).
// `blocking_client` wraps the handle for code outside actors (main, tests).
//
// In a cluster (embedded_options::cluster.node_id set) the application is a
// full member of a kura ring, beside kura-node processes: it listens on its
// cluster port, joins through the seeds, owns and replicates slots, and its
// typed requests take the same paths as a RESP client's on a kura-node: get
// reads locally when this node is a replica (else from the owner, with near
// copies invalidated on change), set is a replicated write acknowledged by
// write-acks copies, del/expire/flush run at the key's owner (or every
// member). Its data lives in data_dir/l3 and, below it, the archive (L4) in
// data_dir/archive with its compactor (the cluster's store, as kura-node's;
// `archive` and `l3_max_bytes` are kura-node's kura.archive.* and
// kura.l3.max-bytes). The commands peers forward to it (INCR, HSET ... of
// keys it owns) run with kura-node's command execution: link the library
// kura_cluster (node/), which hands it over by itself; `cluster.exec`
// overrides it. Before creating the actor system, call
// prepare_cluster_config (middleman heartbeat and connection timeout).
//
//   caf::actor_system_config cfg;
//   cfg.load<caf::io::middleman>();           // kura's store is a broker
//   caf::actor_system sys{cfg};
//   auto db = kura::actors::spawn_kura(sys, {"./my-data"});
//   kura::actors::blocking_client kv{sys, (*db)->handle()};
//   kv.set("k", "v");  auto v = kv.get("k");  // std::optional<std::string>
//   (*db)->stop();                            // flushes L3; before sys goes away
//
// Thread safety: the handle is an actor handle (safe everywhere); an
// `instance` and a `blocking_client` belong to one thread.
#pragma once

#include "actors/cluster.hpp"
#include "actors/messages.hpp"

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/typed_actor.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kura::actors {

/// The typed key/value interface of an embedded kura.
using kura_actor = caf::typed_actor<
    caf::replies_to<kv_get_atom, std::string>::with<kv_reply>,
    caf::replies_to<kv_set_atom, std::string, std::string, uint64_t>::with<kv_reply>,
    caf::replies_to<kv_del_atom, std::string>::with<kv_reply>,
    caf::replies_to<kv_expire_atom, std::string, uint64_t>::with<kv_reply>,
    caf::replies_to<kv_tier_atom, std::string>::with<kv_reply>,
    caf::replies_to<kv_flush_atom>::with<kv_reply>>;

/// Cluster membership of an embedded kura (the kura.cluster.* settings of
/// kura-node, docs/cluster.md).
struct embedded_cluster {
  std::string node_id;            ///< kura.cluster.node-id; empty = not in a cluster
  std::string host = "127.0.0.1"; ///< the cluster port's bind and advertised host
  uint16_t port = 0;              ///< the cluster port (peers and `kura members` use it)
  std::vector<std::string> seeds; ///< host:port of other members' cluster ports
  uint32_t replication_factor = 2;
  uint32_t write_acks = 0; ///< 0 = min(2, replication_factor)
  std::string secret;      ///< kura.cluster.secret
  uint64_t heartbeat_ms = 10'000;
  uint64_t sync_ms = 30'000;
  uint64_t request_timeout_ms = 2'000;
  bool near_cache = true;
  /// Runs the commands peers forward to this node. Unset: kura-node's
  /// (kura::node::exec_owned, given by the library kura_cluster when the
  /// application links it; without it spawn_kura refuses to start a member).
  exec_fn exec;
};

/// The archive (L4) below L3 on an embedded cluster member, in
/// data_dir/archive: kura-node's kura.archive.* settings, same defaults.
struct embedded_archive {
  bool enabled = true;                             ///< kura.archive.enabled
  std::string codec = "lz4";                       ///< kura.archive.codec: lz4, zstd, zstd-dict
  int level = -1;                                  ///< kura.archive.level (-1: the codec's default)
  uint64_t max_bytes = 10ull * 1000 * 1000 * 1000; ///< kura.archive.max-bytes
  uint32_t ttl_days = 365;                         ///< kura.archive.ttl-days
  uint64_t index_memory = 100ull * 1000 * 1000;    ///< kura.archive.index-memory
  uint64_t segment_bytes = 64ull << 20;            ///< kura.archive.segment-bytes
  double compact_threshold = 0.5;                  ///< kura.archive.compact-threshold
  uint64_t compact_interval_ms = 600'000;          ///< kura.archive.compact-interval (0: off)
  uint64_t compact_rate = 32ull << 20;             ///< kura.archive.compact-rate (bytes/s, 0: any)
};

struct embedded_options {
  std::string data_dir;                ///< L3 lives in data_dir/l3; empty = no L3
  uint64_t memory_bytes = 64ull << 20; ///< L1 + L2, all shards
  size_t shards = 2;
  bool l3_sync = false; ///< fsync every write instead of write-behind
  uint64_t max_value_bytes = 64ull << 20;
  embedded_cluster cluster{}; ///< node_id set: join a cluster (data_dir required)
  /// In a cluster: L3's size budget (kura.l3.max-bytes; 0 = 90% of its 1 GiB
  /// map); beyond it the coldest entries go to the archive.
  uint64_t l3_max_bytes = 0;
  embedded_archive archive{}; ///< in a cluster: L4 below L3
};

/// Sets the middleman heartbeat (max(500 ms, heartbeat/2)) and connection
/// timeout (max(4 x that, 3 x heartbeat)) unless set already: without them a
/// frozen peer is never noticed (CAF-0.17.md §4). middleman.workers=0 and
/// scheduler.policy='sharing' are not set (docs/cluster.md, "Threads").
/// Call before the actor_system is made from `cfg`.
void prepare_cluster_config(caf::actor_system_config& cfg, uint64_t heartbeat_ms);

/// The cluster node id kept in `data_dir`/cluster.id: records `configured`
/// at first start, refuses another one later (returns a one-line error),
/// makes a random id when none is configured or recorded; bumps
/// `data_dir`/cluster.incarnation. Returns "" with `id` and `incarnation` set.
std::string resolve_cluster_identity(const std::string& data_dir, const std::string& configured,
                                     std::string& id, uint64_t& incarnation);

/// A running kura graph inside the caller's actor system.
class instance {
public:
  virtual ~instance() = default;
  /// The typed handle (valid until stop()).
  virtual kura_actor handle() const = 0;
  /// In a cluster: the coordinator's core (members, owners; multiplexer
  /// thread only), else null.
  virtual std::shared_ptr<cluster_core> cluster() const = 0;
  /// Sends pending writes to L3, syncs, and stops the actors (in a cluster:
  /// leaves the ring gracefully first). Idempotent. Call before the
  /// actor_system is destroyed (it waits for its actors).
  virtual void stop() = 0;
};

/// Starts kura in `sys` (which must have loaded caf::io::middleman). Fails
/// when the data directory cannot be used, L3 cannot be opened, or (in a
/// cluster) the node id or the cluster port are refused.
caf::expected<std::unique_ptr<instance>> spawn_kura(caf::actor_system& sys, embedded_options opts);

/// Blocking calls on a kura handle, each bounded by `timeout`.
class blocking_client {
public:
  blocking_client(caf::actor_system& sys, kura_actor handle,
                  std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~blocking_client();

  caf::expected<std::optional<std::string>> get(const std::string& key);
  caf::error set(const std::string& key, const std::string& value, uint64_t ttl_ms = 0);
  caf::expected<bool> del(const std::string& key);
  caf::expected<bool> expire(const std::string& key, uint64_t ttl_ms);
  caf::expected<std::string> tier(const std::string& key);
  caf::error flush();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace kura::actors
