// TLS on cluster links and the ops port (docs/security.md, "TLS on cluster
// links"): when the actor system was built with caf::openssl::manager
// (node/cluster_tls.hpp sets it up from kura.cluster.tls-*), every outgoing
// connection to a cluster/ops port goes through OpenSSL's middleman actor,
// with mutual certificate verification; otherwise through the plain one.
// Thread safety: the returned handle is safe to use from any actor.
#pragma once

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/openssl/manager.hpp>

namespace kura::actors {

/// The middleman actor to send connect_atom to for a peer's cluster port.
inline caf::io::middleman_actor peer_connector(caf::actor_system& sys) {
  if (sys.has_openssl_manager())
    return sys.openssl_manager().actor_handle();
  return sys.middleman().actor_handle();
}

} // namespace kura::actors
