// Embedding kura in a CAF application: `spawn_kura` starts kura's actor graph
// (memory shards in the store broker, the L3 actor owning LMDB) inside the
// caller's caf::actor_system and returns a typed handle. Requests:
//   get    (kv_get_atom, key)                 -> kv_reply{found, value, expiry_ms}
//   set    (kv_set_atom, key, value, ttl_ms)  -> kv_reply{found = stored}
//   del    (kv_del_atom, key)                 -> kv_reply{found = existed}
//   expire (kv_expire_atom, key, ttl_ms)      -> kv_reply{found = existed}; ttl 0 = persist
//   tier   (kv_tier_atom, key)                -> kv_reply{value = "l1" | "l2" | "l3" | "none"}
//   flush  (kv_flush_atom)                    -> kv_reply{found = true}
// kv_reply::error is non-empty when something failed (L3 error, limits).
// `blocking_client` wraps the handle for code outside actors (main, tests).
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

#include "actors/messages.hpp"

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/typed_actor.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace kura::actors {

/// The typed key/value interface of an embedded kura.
using kura_actor = caf::typed_actor<
    caf::replies_to<kv_get_atom, std::string>::with<kv_reply>,
    caf::replies_to<kv_set_atom, std::string, std::string, uint64_t>::with<kv_reply>,
    caf::replies_to<kv_del_atom, std::string>::with<kv_reply>,
    caf::replies_to<kv_expire_atom, std::string, uint64_t>::with<kv_reply>,
    caf::replies_to<kv_tier_atom, std::string>::with<kv_reply>,
    caf::replies_to<kv_flush_atom>::with<kv_reply>>;

struct embedded_options {
  std::string data_dir;                ///< L3 lives in data_dir/l3; empty = no L3
  uint64_t memory_bytes = 64ull << 20; ///< L1 + L2, all shards
  size_t shards = 2;
  bool l3_sync = false; ///< fsync every write instead of write-behind
  uint64_t max_value_bytes = 64ull << 20;
};

/// A running kura graph inside the caller's actor system.
class instance {
public:
  virtual ~instance() = default;
  /// The typed handle (valid until stop()).
  virtual kura_actor handle() const = 0;
  /// Sends pending writes to L3, syncs, and stops the actors. Idempotent.
  /// Call before the actor_system is destroyed (it waits for its actors).
  virtual void stop() = 0;
};

/// Starts kura in `sys` (which must have loaded caf::io::middleman). Fails
/// when the data directory cannot be used or L3 cannot be opened.
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
