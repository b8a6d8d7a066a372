// TLS on cluster links and the ops port (issue 13; node/cluster_tls.hpp):
// three real kura-node processes with kura.cluster.tls and certificates the
// test makes with the openssl CLI form a cluster and serve SET/GET through
// every node; the kura CLI reaches the ops port only with a certificate
// from the cluster's CA; a node whose certificate comes from another CA, and
// a node without TLS, are refused while the cluster keeps serving; bad
// certificate settings stop kura-node at start with a clear error. Every
// refused handshake (the CLI without a certificate, the foreign and the plain
// node) and every peer without the cluster secret is a line of the refusing
// node's audit log: who, when, why.
#include "cluster/cluster_harness.hpp"
#include "cluster/tls_util.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

using namespace kura::test;

TEST_CASE("cluster links over TLS: a 3-node ring serves; foreign and plain nodes are refused") {
  test_pki pki;
  cli_tls_env env(pki); // every `kura` the harness runs presents the node certificate
  auto good = tls_flags(pki.cert, pki.key, pki.ca);

  test_cluster c;
  for (int i = 1; i <= 3; ++i)
    REQUIRE(c.start("n" + std::to_string(i), good).ready);
  INFO(c.logs());
  REQUIRE(c["n1"].log().find("cluster-tls=on") != std::string::npos);
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 60000));

  // data written through one node reads back through the others
  {
    client w(c["n1"].port);
    for (int i = 0; i < 200; ++i)
      REQUIRE(*w.call({"SET", "tk:" + std::to_string(i), "tv" + std::to_string(i)}) == "+OK\r\n");
    for (auto id : {"n2", "n3"}) {
      client r(c[id].port);
      for (int i = 0; i < 200; i += 7)
        CHECK(*r.call({"GET", "tk:" + std::to_string(i)}) == bulk("tv" + std::to_string(i)));
    }
  }

  // The ops port: the CLI with the cluster's certificate works; without a
  // certificate, or with one from another CA, it cannot connect (exit 2).
  {
    int rc = -1;
    auto tls = "--tls-cert=" + pki.cert + " --tls-key=" + pki.key + " --tls-ca=" + pki.ca;
    auto out = members_with(c["n2"].cluster_port, tls, &rc);
    CHECK_MESSAGE(rc == 0, out);
    CHECK(count_state(out, "alive") == 3);
    out = members_with(c["n2"].cluster_port, "", &rc);
    CHECK_MESSAGE(rc == 2, out);
    CHECK(out.find("cannot reach") != std::string::npos);
    auto rogue = "--tls-cert=" + pki.rogue_cert + " --tls-key=" + pki.rogue_key +
                 " --tls-ca=" + pki.rogue_ca;
    out = members_with(c["n2"].cluster_port, rogue, &rc);
    CHECK_MESSAGE(rc == 2, out);
    // n2 wrote both refusals to its audit log (the CLI without a certificate
    // spoke plain BASP, the other refused n2's certificate): address, reason
    INFO(audit_of(c["n2"]));
    CHECK(wait_for([&] {
      return audit_lines(c["n2"], "cluster-tls",
                         {"\"client\":\"127.0.0.1:", "\"time\":\"20", "TLS ACCEPT",
                          "DENIED handshake failed: wrong version number"}) >= 1;
    }));
    CHECK(wait_for([&] {
      return audit_lines(c["n2"], "cluster-tls",
                         {"TLS ACCEPT", "DENIED handshake failed:", "unknown ca"}) >= 1;
    }));
    // half a TLS configuration is a usage error
    out = members_with(c["n2"].cluster_port, "--tls-cert=" + pki.cert, &rc);
    CHECK_MESSAGE(rc == 1, out);
  }

  // A node with a certificate from another CA, and a node without TLS, try
  // to join through n1: both are refused, n1..n3 stay a ring of three and
  // keep serving.
  REQUIRE(c.start("rogue", tls_flags(pki.rogue_cert, pki.rogue_key, pki.rogue_ca)).ready);
  REQUIRE(c.start("plain").ready);
  auto attempts = [&](const std::string& id) {
    auto log = c[id].log();
    size_t n = 0;
    for (auto p = log.find("seed not reachable yet"); p != std::string::npos;
         p = log.find("seed not reachable yet", p + 1))
      ++n;
    return n;
  };
  REQUIRE(wait_for([&] { return attempts("rogue") >= 2 && attempts("plain") >= 2; }, 60000));
  for (auto id : {"n1", "n2", "n3"}) {
    REQUIRE(c[id].alive());
    auto json = members_json(c[id].cluster_port);
    CHECK_MESSAGE(count_state(json, "alive") == 3, id << ": " << json);
    CHECK(member_state(json, "rogue").empty());
    CHECK(member_state(json, "plain").empty());
  }
  CHECK(c["rogue"].log().find("connected to n") == std::string::npos);
  CHECK(c["plain"].log().find("connected to n") == std::string::npos);
  // n1 audited both (the foreign node gave up at n1's certificate, the plain
  // one spoke no TLS); the foreign node audited why it refused n1
  {
    INFO(audit_of(c["n1"]));
    INFO(audit_of(c["rogue"]));
    CHECK(wait_for([&] {
      return audit_lines(c["n1"], "cluster-tls",
                         {"TLS ACCEPT",
                          "\"client\":\"127.0.0.1:", "DENIED handshake failed:", "unknown ca"}) >=
             1;
    }));
    CHECK(wait_for([&] {
      return audit_lines(c["n1"], "cluster-tls", {"TLS ACCEPT", "DENIED handshake failed:"}) >= 2;
    }));
    CHECK(wait_for([&] {
      return audit_lines(
                 c["rogue"], "cluster-tls",
                 {"TLS CONNECT", "\"client\":\"127.0.0.1:",
                  "DENIED handshake failed: certificate verify failed (peer certificate:"}) >= 1;
    }));
    CHECK(c["n1"].log().find("kura-node: cluster tls: refused a connection from 127.0.0.1:") !=
          std::string::npos);
  }
  {
    client w(c["n3"].port);
    REQUIRE(*w.call({"SET", "after", "refusals"}) == "+OK\r\n");
    client r(c["n1"].port);
    CHECK(*r.call({"GET", "after"}) == bulk("refusals"));
  }
}

TEST_CASE("bad cluster TLS settings stop kura-node at start with a clear error") {
  test_pki pki;
  temp_dir d;
  auto base = std::vector<std::string>{
      "--port=" + std::to_string(free_port()), "--cluster-port=" + std::to_string(free_port()),
      "--metrics-port=0", "--data-dir=" + d.path, "--kura.cluster.node-id=x"};
  auto with = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    std::string out;
    int rc = run_node_once(a, out);
    return std::make_pair(rc, out);
  };
  // a certificate another CA signed
  auto r = with(tls_flags(pki.rogue_cert, pki.rogue_key, pki.ca));
  CHECK(r.first == 1);
  CHECK_MESSAGE(r.second.find("does not verify against CA file") != std::string::npos, r.second);
  // a key that is not the certificate's
  r = with(tls_flags(pki.cert, pki.rogue_key, pki.ca));
  CHECK(r.first == 1);
  CHECK_MESSAGE(r.second.find("does not match certificate") != std::string::npos, r.second);
  // a missing CA file
  r = with(tls_flags(pki.cert, pki.key, d.path + "/none.pem"));
  CHECK(r.first == 1);
  CHECK_MESSAGE(r.second.find("cannot load CA file") != std::string::npos, r.second);
  // TLS on without a CA
  r = with({"--kura.cluster.tls=true", "--kura.cluster.tls-cert-file=" + pki.cert,
            "--kura.cluster.tls-key-file=" + pki.key});
  CHECK(r.first == 1);
  CHECK_MESSAGE(r.second.find("kura.cluster.tls") != std::string::npos, r.second);
}

TEST_CASE("peers without the cluster secret are refused and audited") {
  test_cluster c;
  REQUIRE(c.start("n1", {"--kura.cluster.secret=s3cret"}).ready);
  REQUIRE(c.start("n2", {"--kura.cluster.secret=s3cret"}).ready);
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(2); }));
  // a stranger that answers n1's challenge with a wrong proof: n1 refuses it
  int rc = -1;
  auto out = run_shell(bin_dir() + "/tests/cluster_poke " + std::to_string(c["n1"].cluster_port) +
                           " handshake wrong 2>&1",
                       &rc);
  CHECK_MESSAGE(rc == 3, out);
  INFO(audit_of(c["n1"]));
  CHECK(wait_for([&] {
    return audit_lines(
               c["n1"], "cluster-peer",
               {"CLUSTER HELLO", "DENIED refused peer", "does not know the cluster secret"}) >= 1;
  }));
  // a node with the wrong secret dials n1 and refuses n1's proof (its side)
  auto& n3 = c.start("n3", {"--kura.cluster.secret=guess"});
  REQUIRE(n3.ready);
  INFO(audit_of(n3));
  CHECK(wait_for([&] {
    return audit_lines(n3, "cluster-peer",
                       {"CLUSTER HELLO", "DENIED refused peer n1", "cluster secret"}) >= 1;
  }));
  CHECK(member_state(members_json(c["n1"].cluster_port), "n3").empty());
  CHECK(c["n2"].cli("set k v") == "OK\n");
  CHECK(c["n1"].cli("get k") == "v\n");
}
