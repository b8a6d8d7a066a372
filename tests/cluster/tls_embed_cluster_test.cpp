// An embedded member in a TLS cluster (issue 13; node/tls_embedded.hpp): this
// test binary is the embedding application. It loads caf::openssl::manager
// through configure_embedded_cluster_tls (the start-time certificate checks
// of kura-node) and joins two kura-node processes that run with
// kura.cluster.tls; the three form a ring over TLS and serve each other's
// writes; the kura CLI without a certificate, or with one from another CA,
// cannot reach the application's cluster port, and each refused handshake is
// a `cluster-tls` line of the application's audit log while the ring keeps
// serving. Bad certificate files are refused before the actor system starts.
#include "actors/kura.hpp"
#include "cluster/cluster_harness.hpp"
#include "cluster/tls_util.hpp"
#include "node/tls_embedded.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

using namespace kura::test;
using namespace kura::actors;

namespace {

/// The embedding application: its actor system with caf::openssl (or the
/// reason it did not start), and its kura instance joined through `seed_port`.
struct tls_app {
  temp_dir dir;
  uint16_t port = free_port();
  std::string audit_path = dir.path + "/audit.log";
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<instance> db;
  std::string error;

  tls_app(const test_pki& pki, uint16_t seed_port) {
    cfg.load<caf::io::middleman>();
    kura::node::embedded_tls_options t{{pki.cert, pki.key, pki.ca}, audit_path, "app3"};
    error = kura::node::configure_embedded_cluster_tls(cfg, t);
    if (!error.empty())
      return;
    embedded_options o;
    o.data_dir = dir.path + "/data";
    o.memory_bytes = 16ull << 20;
    o.cluster.node_id = "app3";
    o.cluster.port = port;
    o.cluster.seeds = {"127.0.0.1:" + std::to_string(seed_port)};
    o.cluster.heartbeat_ms = 1000; // as tls_flags()
    o.cluster.sync_ms = 1000;
    o.cluster.request_timeout_ms = 3000;
    prepare_cluster_config(cfg, o.cluster.heartbeat_ms);
    sys = std::make_unique<caf::actor_system>(cfg);
    auto r = spawn_kura(*sys, o);
    if (r)
      db = std::move(*r);
    else
      error = sys->render(r.error());
  }
  ~tls_app() {
    if (db)
      db->stop();
    db.reset();
    kura::node::stop_embedded_cluster_tls();
  }
};

} // namespace

TEST_CASE("an embedding application is a member of a TLS cluster of two kura-node processes") {
  test_pki pki;
  cli_tls_env env(pki); // every `kura` the harness runs presents the node certificate
  auto good = tls_flags(pki.cert, pki.key, pki.ca);
  test_cluster c;
  REQUIRE(c.start("n1", good).ready);
  tls_app app(pki, c["n1"].cluster_port);
  REQUIRE_MESSAGE(app.db != nullptr, app.error);
  REQUIRE(app.sys->has_openssl_manager());
  REQUIRE(c.start("n2", good).ready);
  INFO(c.logs());
  REQUIRE(wait_for(
      [&] { return c.all_see_alive(3) && count_state(members_json(app.port), "alive") == 3; },
      60000));
  CHECK(members_json(app.port).find("\"app3\"") != std::string::npos);

  // typed writes through the app read back through the processes, and back
  blocking_client kv{*app.sys, app.db->handle()};
  REQUIRE(wait_for([&] { return !kv.set("probe", "1"); }));
  for (int i = 0; i < 40; ++i)
    REQUIRE(!kv.set("e:" + std::to_string(i), "v" + std::to_string(i)));
  client k1(c["n1"].port), k2(c["n2"].port);
  for (int i = 0; i < 40; ++i) {
    CHECK(k1.call({"GET", "e:" + std::to_string(i)}) == bulk("v" + std::to_string(i)));
    CHECK(k2.call({"GET", "e:" + std::to_string(i)}) == bulk("v" + std::to_string(i)));
  }
  for (int i = 0; i < 20; ++i)
    REQUIRE(k2.call({"SET", "r:" + std::to_string(i), "w" + std::to_string(i)}) ==
            std::string("+OK\r\n"));
  for (int i = 0; i < 20; ++i)
    CHECK(kv.get("r:" + std::to_string(i)) ==
          std::optional<std::optional<std::string>>("w" + std::to_string(i)));

  // strangers at the app's cluster port: refused and audited by the app
  int rc = -1;
  auto out = members_with(app.port, "", &rc); // plain BASP
  CHECK_MESSAGE(rc == 2, out);
  auto rogue =
      "--tls-cert=" + pki.rogue_cert + " --tls-key=" + pki.rogue_key + " --tls-ca=" + pki.rogue_ca;
  out = members_with(app.port, rogue, &rc);
  CHECK_MESSAGE(rc == 2, out);
  INFO(read_audit(app.audit_path));
  CHECK(wait_for([&] {
    return audit_text_lines(read_audit(app.audit_path), "cluster-tls",
                            {"\"node\":\"app3\"", "\"client\":\"127.0.0.1:", "TLS ACCEPT",
                             "DENIED handshake failed: wrong version number"}) >= 1;
  }));
  CHECK(wait_for([&] {
    return audit_text_lines(read_audit(app.audit_path), "cluster-tls",
                            {"TLS ACCEPT", "DENIED handshake failed:", "unknown ca"}) >= 1;
  }));
  // the ring still has its three members and serves through the app
  CHECK(count_state(members_json(app.port), "alive") == 3);
  REQUIRE(!kv.set("after", "refusals"));
  CHECK(k1.call({"GET", "after"}) == bulk("refusals"));
}

TEST_CASE("an embedded member's bad TLS files are refused before its actor system starts") {
  test_pki pki;
  temp_dir d;
  auto refused = [&](kura::node::cluster_tls_files f) {
    caf::actor_system_config cfg;
    cfg.load<caf::io::middleman>();
    kura::node::embedded_tls_options t{std::move(f), d.path + "/audit.log", "app"};
    auto why = kura::node::configure_embedded_cluster_tls(cfg, t);
    caf::actor_system sys{cfg};
    CHECK(!sys.has_openssl_manager()); // cfg unchanged
    return why;
  };
  CHECK(refused({pki.rogue_cert, pki.rogue_key, pki.ca}).find("does not verify against CA file") !=
        std::string::npos);
  CHECK(refused({pki.cert, pki.rogue_key, pki.ca}).find("does not match certificate") !=
        std::string::npos);
  CHECK(refused({pki.cert, pki.key, d.path + "/none.pem"}).find("cannot load CA file") !=
        std::string::npos);
  CHECK(refused({pki.cert, pki.key, ""}).find("needs a certificate, its key and a CA file") !=
        std::string::npos);
  // good files: the manager is loaded
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  kura::node::embedded_tls_options t{{pki.cert, pki.key, pki.ca}, "", "app"};
  CHECK(kura::node::configure_embedded_cluster_tls(cfg, t).empty());
  caf::actor_system sys{cfg};
  CHECK(sys.has_openssl_manager());
  kura::node::stop_embedded_cluster_tls();
}
