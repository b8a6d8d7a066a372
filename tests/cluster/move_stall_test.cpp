// The kura CLI never watches a move forever (issue 9): when nothing moves
// for --stall-timeout (default 60 s) join, leave, drain, undrain and
// rebalance stop with exit code 3 and say what is missing, naming a member
// that does not answer. Here a drain waits for a SIGSTOPped member's
// confirmations; after SIGCONT the drain finishes on the nodes by itself.
#include "cluster/move_util.hpp"

#include <doctest/doctest.h>

#include <csignal>

using namespace kura::test;

namespace {

/// A member with a slow failure detector (10 s probes): a SIGSTOPped peer
/// stays a live member (suspect at most) for tens of seconds, so the ring
/// does not move around it while the CLI watches.
node_process& start_slow(test_cluster& c, const std::string& id) {
  std::vector<std::string> args{
      "--kura.cluster.heartbeat=10s",      "--kura.cluster.sync-interval=2s",
      "--kura.cluster.request-timeout=1s", "--memory-bytes=16777216",
      "--kura.archive.enabled=false",      "--kura.l3.map-size=67108864",
      "--kura.cluster.node-id=" + id};
  if (!c.nodes.empty())
    args.push_back("--kura.cluster.seeds=127.0.0.1:" +
                   std::to_string(c.nodes.at(c.order.front())->cluster_port));
  auto n = std::make_unique<node_process>(args);
  auto& ref = *n;
  c.nodes[id] = std::move(n);
  c.order.push_back(id);
  return ref;
}

} // namespace

TEST_CASE("a drain held up by a SIGSTOPped member stops after --stall-timeout with exit 3 and "
          "names it") {
  test_cluster c;
  for (auto id : {"n1", "n2", "n3"})
    REQUIRE(start_slow(c, id).ready);
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 60000));
  const int n = 300;
  REQUIRE(load_keys(c["n1"].port, n));
  // Without n1 every key's replicas are n2 and n3: n1 drops a key only once
  // both confirmed it, and n2 cannot.
  REQUIRE(::kill(c["n2"].pid, SIGSTOP) == 0);
  int rc = -1;
  auto out = kura_cli(c["n1"].cluster_port, "--stall-timeout=2000 --json drain n1", &rc);
  INFO(out);
  ::kill(c["n2"].pid, SIGCONT);
  CHECK(rc == 3);
  CHECK(out.find("\"error\": \"the drain of n1: nothing moved for 2 s") != std::string::npos);
  CHECK(out.find("keys held") != std::string::npos);
  CHECK(out.find("n2 does not answer (127.0.0.1:" + std::to_string(c["n2"].cluster_port) + ")") !=
        std::string::npos);
  // The drain went on on the nodes: once n2 runs again n1 hands everything off.
  CHECK(wait_for([&] { return move_field(members_json(c["n1"].cluster_port), "keys_held") == 0; },
                 90000));
  CHECK(wrong_reads(c["n3"].port, n) == 0);
}

TEST_CASE("--stall-timeout takes milliseconds") {
  int rc = -1;
  auto out = run_shell(bin_dir() + "/kura --stall-timeout=soon members 2>&1", &rc);
  CHECK(rc == 1);
  CHECK(out.find("bad --stall-timeout (milliseconds)") != std::string::npos);
}
