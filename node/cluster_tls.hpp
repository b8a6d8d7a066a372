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
#include <caf/atom.hpp>
#include <caf/expected.hpp>

#include <cstdint>
#include <functional>
#include <mutex>
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

/// Sent to the RESP broker, which owns the audit log: (audit_line_atom,
/// event, client, command, result) is written as one audit line (refused
/// TLS handshakes and refused peers of the cluster port, docs/security.md).
using audit_line_atom = caf::atom_constant<caf::atom("audit_line")>;

/// Hands audit lines to the RESP broker once it runs (before: dropped).
/// Thread safety: safe from any thread.
class audit_forwarder {
public:
  void set(caf::actor resp);
  void send(const std::string& event, const std::string& client, const std::string& command,
            const std::string& result);

private:
  std::mutex mu_;
  caf::actor resp_;
};

/// Where failed TLS handshakes on cluster links and the ops port go: the
/// peer ("ip:port"), whether we accepted ("accept") or dialed ("connect"),
/// and why (OpenSSL's reason, the certificate check's result). kura-node
/// writes them to its log and its audit log. Unset: nothing. Thread safety:
/// set it from any thread; it is called on the thread that ran the failed
/// handshake (the middleman's), once per connection.
void set_cluster_tls_refusals(
    std::function<void(const std::string& peer, const std::string& side, const std::string& why)>
        sink);

/// How a refused handshake is written: the log line (without the program's
/// prefix) and the audit line's command and result (kura-node and embedded
/// members, node/tls_embedded.hpp, write the same).
struct cluster_tls_refusal {
  std::string log_line; ///< "cluster tls: refused a connection from ...: handshake failed: ..."
  std::string command;  ///< "TLS ACCEPT" or "TLS CONNECT"
  std::string result;   ///< "DENIED handshake failed: <why>"
};
cluster_tls_refusal describe_cluster_tls_refusal(const std::string& peer, const std::string& side,
                                                 const std::string& why);

/// Publishes `a` on bind:port: through OpenSSL when the system has the
/// manager, else plainly.
caf::expected<uint16_t> publish_ops_port(const caf::actor& a, uint16_t port, const char* bind);

} // namespace kura::node
