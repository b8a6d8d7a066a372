// TLS on cluster links and the ops port (docs/security.md, "TLS on cluster
// links"), through CAF's caf::openssl::manager: every connection to or from
// the cluster/ops port is TLS 1.2+ with mutual certificate verification
// against one CA file. Used by kura-node (kura.cluster.tls*) and by the kura
// CLI (--tls-cert/--tls-key/--tls-ca or KURA_TLS_CERT/_KEY/_CA).
// Outgoing connects pick the TLS middleman through actors/peer_link.hpp.
// Thread safety: call before the actor system exists (configure), or from
// any thread (publish).
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/expected.hpp>

#include <cstdint>
#include <string>

namespace kura::node {

struct cluster_tls_files {
  std::string cert_file; ///< PEM certificate (chain allowed)
  std::string key_file;  ///< PEM private key, unencrypted
  std::string ca_file;   ///< PEM CA certificates peers must chain to
};

/// "" when the three files load with OpenSSL, the key matches the
/// certificate and the certificate verifies against the CA file (peers with
/// the same CA file would refuse it otherwise); else one line naming the
/// file and OpenSSL's reason. CAF itself only loads the files at the first
/// connection and aborts the process when one is bad, so this runs first.
std::string check_cluster_tls(const cluster_tls_files& f);

/// Loads caf::openssl::manager into `cfg` with the files (mutual
/// authentication). Call after check_cluster_tls, before the actor system is
/// built from `cfg`.
void configure_cluster_tls(caf::actor_system_config& cfg, const cluster_tls_files& f);

/// Publishes `a` on bind:port: through OpenSSL when the system has the
/// manager, else plainly.
caf::expected<uint16_t> publish_ops_port(const caf::actor& a, uint16_t port, const char* bind);

} // namespace kura::node
