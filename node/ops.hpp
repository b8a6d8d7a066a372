// The ops actor: what the `kura` CLI talks to on the cluster port (a CAF
// remote actor published with the middleman). Requests and answers are the
// kv_request / kv_reply / node_status messages of actors/messages.hpp,
// carried msgpack-encoded in a versioned envelope as std::string payloads
// (ops_request_atom, bytes) -> bytes, so the wire format is pinned by the
// golden-byte tests, not by CAF's serializer.
// Thread safety: an actor; talk to it with messages.
#pragma once

#include "actors/store.hpp"
#include "node/config.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/timespan.hpp>

#include <optional>
#include <string>

namespace kura::node {

using ops_request_atom = caf::atom_constant<caf::atom("ops_req")>;
/// Asks the RESP broker whether (user, password) may run the RESP command
/// an ops request maps to: (ops_auth_atom, user, password, command, key) ->
/// "" or the refusal (NOAUTH, WRONGPASS, NOPERM text). Empty user: the
/// default user without a password.
using ops_auth_atom = caf::atom_constant<caf::atom("ops_auth")>;

/// The CLI's credentials for the ops port (--user/--password or KURA_USER /
/// KURA_PASSWORD); requests carry them: (ops_request_atom, user, password,
/// bytes). The two-element form (ops_request_atom, bytes) is the default
/// user without a password.
struct ops_credentials {
  std::string user;
  std::string password;
};
ops_credentials& cli_credentials(); // defined by the kura CLI
/// One kv_request with `op` to the ops actor `ops`, with the CLI's
/// credentials; nullopt (and `why`) when it did not answer. Defined by the
/// kura CLI (node/cli_archive.cpp).
std::optional<std::string> ask_ops(caf::actor_system& sys, caf::scoped_actor& self,
                                   const caf::actor& ops, uint8_t op, caf::timespan timeout,
                                   std::string& why);

/// Spawns the ops actor and publishes it on bind:port. `l4` is the archive
/// compactor (invalid when L4 is off). `resp` is the RESP broker, which
/// checks every request's credentials against the node's users and ACLs
/// (invalid: no checks, for tests that run the ops actor alone).
/// `coordinator` is the cluster coordinator (invalid when the node is alone):
/// the ops actor hands it to peers (coord_atom) and asks it for `kura
/// members` (members_atom). `predictor` serves `kura prewarm | predictor |
/// alerts` (invalid when prewarm is off).
/// `erase` serves `kura erase` (node/erase.hpp; null: not available).
caf::expected<caf::actor> start_ops(caf::actor_system& sys, const actors::store_handles& store,
                                    const node_config& cfg, const std::string& bind, uint16_t port,
                                    caf::actor l4 = {}, caf::actor resp = {},
                                    caf::actor coordinator = {}, caf::actor predictor = {},
                                    std::shared_ptr<class erase_book> erase = nullptr);

} // namespace kura::node
