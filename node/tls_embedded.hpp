// TLS on cluster links for an application that embeds kura as a cluster
// member (actors/kura.hpp; docs/security.md, "An embedded member in a TLS
// cluster"): what kura-node does with kura.cluster.tls, as one call the
// application makes before it builds its actor system:
//   - the start-time check of the certificate, its key and the CA file
//     (check_cluster_tls: a bad file is refused with the reason, before CAF
//     could abort the process at the first connection);
//   - caf::openssl::manager loaded with them (mutual verification), so
//     spawn_kura publishes the member's cluster port through TLS and dials
//     its peers through TLS;
//   - every refused handshake on the member's cluster port (or of its own
//     dials) as one line on stderr and one `cluster-tls` line in the
//     member's audit log, as kura-node writes them.
// The program must link kura_cluster_tls: its SSL_read/SSL_write/SSL_accept/
// SSL_connect wrappers (node/cluster_tls.cpp) notice the failed handshakes
// and clear OpenSSL's error queue that CAF 0.17.6 leaves behind.
//
//   caf::actor_system_config cfg;
//   cfg.load<caf::io::middleman>();
//   kura::node::embedded_tls_options t{{"node.pem", "node.key", "ca.pem"},
//                                      "./my-data/audit.log", "app3"};
//   if (auto why = kura::node::configure_embedded_cluster_tls(cfg, t); !why.empty())
//     return fail(why);
//   kura::actors::prepare_cluster_config(cfg, heartbeat_ms);
//   caf::actor_system sys{cfg};
//   auto db = kura::actors::spawn_kura(sys, options_with_cluster);
//
// Thread safety: call configure before the actor system exists; stop from
// any thread once the member stopped.
#pragma once

#include "node/cluster_tls.hpp"

#include <cstdint>
#include <string>

namespace kura::node {

struct embedded_tls_options {
  cluster_tls_files files;
  /// The member's audit log ("" = none; refusals then go to stderr only).
  std::string audit_log;
  /// The node name written in every audit line (the member's node id).
  std::string node_name;
  /// Identical refusals from one host within it: one line, then one summary
  /// line with the count at the next refusal after it (0: every one).
  uint64_t repeat_window_ms = 60'000;
};

/// Checks the files, loads caf::openssl::manager into `cfg` and routes the
/// refused handshakes (above). "" or why not; on an error `cfg` is
/// unchanged and the member must not start.
std::string configure_embedded_cluster_tls(caf::actor_system_config& cfg,
                                           const embedded_tls_options& o);

/// Stops routing refusals and closes the audit log (after the member
/// stopped).
void stop_embedded_cluster_tls();

} // namespace kura::node
