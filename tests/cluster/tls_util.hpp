// Helpers of the cluster TLS tests (tls_cluster_test, tls_embed_cluster_test):
// certificates made with the openssl CLI, kura-node's TLS flags, `kura
// members` with explicit TLS flags, and audit-log lines.
#pragma once

#include "cluster/cluster_harness.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace kura::test {

inline std::string read_audit(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::string audit_of(const node_process& n) {
  return read_audit(n.data_dir + "/audit.log");
}

/// The lines of the audit log `text` with `event` whose text holds every one of `needles`.
inline size_t audit_text_lines(const std::string& text, const std::string& event,
                               const std::vector<std::string>& needles) {
  std::istringstream in(text);
  size_t found = 0;
  for (std::string l; std::getline(in, l);) {
    if (l.find("\"event\":\"" + event + "\"") == std::string::npos)
      continue;
    bool all = true;
    for (auto& x : needles)
      all = all && l.find(x) != std::string::npos;
    found += all;
  }
  return found;
}

/// The audit lines of `n` with `event` whose text holds every one of `needles`.
inline size_t audit_lines(const node_process& n, const std::string& event,
                          const std::vector<std::string>& needles) {
  return audit_text_lines(audit_of(n), event, needles);
}

/// A CA, a node certificate it signed, and a rogue CA with its own node
/// certificate, in a temporary directory.
struct test_pki {
  temp_dir dir;
  std::string ca, cert, key, rogue_ca, rogue_cert, rogue_key;

  test_pki() {
    auto d = dir.path;
    ca = d + "/ca.pem", cert = d + "/node.pem", key = d + "/node.key";
    rogue_ca = d + "/rogue-ca.pem", rogue_cert = d + "/rogue.pem", rogue_key = d + "/rogue.key";
    auto make = [&](const std::string& name, const std::string& ca_name) {
      int rc = 0;
      auto out =
          run_shell("cd '" + d + "' && (openssl req -x509 -newkey rsa:2048 -nodes -keyout " +
                        ca_name + ".key -out " + ca_name + ".pem -days 2 -subj /CN=" + ca_name +
                        " && openssl req -newkey rsa:2048 -nodes -keyout " + name + ".key -out " +
                        name + ".csr -subj /CN=" + name + " && openssl x509 -req -in " + name +
                        ".csr -CA " + ca_name + ".pem -CAkey " + ca_name +
                        ".key -CAcreateserial -out " + name + ".pem -days 2) 2>&1",
                    &rc);
      REQUIRE_MESSAGE(rc == 0, out);
    };
    make("node", "ca");
    make("rogue", "rogue-ca");
  }
};

/// TLS flags; the timing is looser than fast_cluster_flags' (a TLS connect
/// costs more CPU, and CI machines are loaded).
inline std::vector<std::string> tls_flags(const std::string& cert, const std::string& key,
                                          const std::string& ca) {
  return {"--kura.cluster.tls=true",
          "--kura.cluster.tls-cert-file=" + cert,
          "--kura.cluster.tls-key-file=" + key,
          "--kura.cluster.tls-ca-file=" + ca,
          "--kura.cluster.heartbeat=1s",
          "--kura.cluster.request-timeout=3s"};
}

/// `kura members --json` with explicit TLS flags (rc in `rc`).
inline std::string members_with(uint16_t port, const std::string& tls, int* rc) {
  return run_shell("env -u KURA_TLS_CERT -u KURA_TLS_KEY -u KURA_TLS_CA " + bin_dir() +
                       "/kura --timeout=3000 --port=" + std::to_string(port) + " " + tls +
                       " --json members 2>&1",
                   rc);
}

/// While it lives, every `kura` the harness runs (members_json) presents the
/// node certificate of `pki` (KURA_TLS_CERT/_KEY/_CA).
struct cli_tls_env {
  explicit cli_tls_env(const test_pki& pki) {
    ::setenv("KURA_TLS_CERT", pki.cert.c_str(), 1);
    ::setenv("KURA_TLS_KEY", pki.key.c_str(), 1);
    ::setenv("KURA_TLS_CA", pki.ca.c_str(), 1);
  }
  ~cli_tls_env() {
    ::unsetenv("KURA_TLS_CERT");
    ::unsetenv("KURA_TLS_KEY");
    ::unsetenv("KURA_TLS_CA");
  }
  cli_tls_env(const cli_tls_env&) = delete;
  cli_tls_env& operator=(const cli_tls_env&) = delete;
};

} // namespace kura::test
