// -ASK while a slot moves (issue 9), on real kura-node processes: a node
// joins and streams the ranges it now replicates at 4 KiB/s, so most of them
// are still on their way for the whole test. The joiner runs
// kura.cluster.redirect=moved (every connection in cluster mode). A read of a
// key the new replica has not received yet is answered `-ASK slot
// host:port` naming the member it streams from, which serves the key after
// ASKING; a write is taken by the new primary at once; a key already there is
// served. redis-cli -c and redis-py's RedisCluster (Debian's python3-redis)
// follow the -ASK and read every value. kura_cluster_redirects_total counts
// the answers.
#include "cluster/move_util.hpp"

#include <doctest/doctest.h>

#include <map>
#include <memory>

using namespace kura::test;

TEST_CASE("-ASK sends a cluster client to the stream's source for keys not received yet") {
  test_cluster c;
  std::vector<std::string> slow{"--kura.cluster.stream-rate=4096"};
  REQUIRE(c.start("n1", slow).ready);
  REQUIRE(c.start("n2", slow).ready);
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(2); }));
  const int n = 3000; // ~600 KB; n3 gets about 2/3 of it, at 4 KiB/s
  REQUIRE(write_keys(c["n1"].port, n));
  auto mode = slow;
  mode.push_back("--kura.cluster.redirect=moved");
  REQUIRE(c.start("n3", mode).ready);
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }));
  REQUIRE(wait_for([&] { return move_active(members_json(c["n3"].cluster_port)); }, 30000));
  auto p = place(c["n1"].port, n);
  REQUIRE(p.slot.size() == static_cast<size_t>(n));
  std::map<uint16_t, std::string> node_at{{c["n1"].port, "n1"}, {c["n2"].port, "n2"}};

  // Every key read once through n3 on one pipelined connection.
  std::vector<std::vector<std::string>> gets;
  for (int i = 0; i < n; ++i)
    gets.push_back({"GET", key_of(i)});
  auto r = pipeline(c["n3"].port, gets);
  REQUIRE(r.size() == gets.size());
  std::map<uint16_t, std::unique_ptr<client>> at; // connections to the ASK targets
  int served = 0, asked = 0, moved = 0, bad = 0;
  std::vector<int> asked_keys;
  for (int i = 0; i < n; ++i) {
    auto want = bulk(value_of(i));
    bool n3_replica = std::find(p.owners[i].begin(), p.owners[i].end(), "n3") != p.owners[i].end();
    if (r[i] == want) {
      ++served;
      continue;
    }
    if (r[i].rfind("-MOVED ", 0) == 0 && !n3_replica) {
      ++moved;
      continue;
    }
    // -ASK <slot> 127.0.0.1:<port of n1 or n2>, for a slot n3 replicates
    auto sp = r[i].find(' ', 5);
    auto colon = r[i].rfind(':');
    if (r[i].rfind("-ASK ", 0) != 0 || !n3_replica || sp == std::string::npos ||
        colon == std::string::npos || r[i].substr(5, sp - 5) != p.slot[i]) {
      INFO("mv:" << i << " -> " << r[i].substr(0, 60));
      CHECK(false);
      ++bad;
      continue;
    }
    auto port = static_cast<uint16_t>(std::stoi(r[i].substr(colon + 1)));
    INFO("mv:" << i << " -> " << r[i].substr(0, 60));
    REQUIRE(node_at.count(port) == 1);
    auto& cl = at[port];
    if (!cl)
      cl = std::make_unique<client>(port);
    CHECK(cl->call({"ASKING"}) == "+OK\r\n");
    CHECK(cl->call({"GET", key_of(i)}) == want);
    // without ASKING a source that no longer replicates the slot redirects
    // to its primary instead
    if (std::find(p.owners[i].begin(), p.owners[i].end(), node_at[port]) == p.owners[i].end())
      CHECK(cl->call({"GET", key_of(i)}).value_or("").rfind("-MOVED ", 0) == 0);
    ++asked;
    asked_keys.push_back(i);
  }
  INFO("served " << served << ", asked " << asked << ", moved " << moved);
  CHECK(bad == 0);
  CHECK(served + asked + moved == n);
  // At 4 KiB/s n3 has received a small part of its ~400 KB by now.
  CHECK(move_active(members_json(c["n3"].cluster_port)));
  CHECK(asked > 100);
  auto asks = [&] {
    return metric_value(c["n3"].metrics_port, "kura_cluster_redirects_total{kind=\"ask\"}");
  };
  CHECK(wait_for([&] { return asks() >= asked; })); // the metrics catch up periodically

  // A write to a key not received yet is taken by its new primary at once
  // (the stream's older copy cannot win over it: last writer wins).
  int written = -1;
  for (int i : asked_keys)
    if (p.owners[i][0] == "n3") {
      written = i;
      break;
    }
  REQUIRE(written >= 0);
  client w(c["n3"].port);
  CHECK(w.call({"SET", key_of(written), "new"}) == "+OK\r\n");
  CHECK(w.call({"GET", key_of(written)}) == bulk("new"));

  // redis-cli -c follows -ASK (ASKING, then the command at the node named).
  int cli_checked = 0;
  for (int i : asked_keys) {
    if (i == written || cli_checked == 5)
      continue;
    ++cli_checked;
    CHECK(c["n3"].cli("-c get " + key_of(i)) == value_of(i) + "\n");
  }

  // redis-py's RedisCluster reads every key right while n3 still streams.
  double asks_before = asks();
  const char* src = std::getenv("KURA_SOURCE_DIR");
  std::string script = std::string(src ? src : ".") + "/tests/cluster/move_ask_redis_py.py";
  int rc = -1;
  auto out =
      run_shell("timeout 240 /usr/bin/python3 " + script + " " + std::to_string(c["n3"].port) +
                    " " + std::to_string(n) + " " + std::to_string(written) + " 2>&1",
                &rc);
  INFO(out);
  CHECK(rc == 0);
  auto ok = "ok " + std::to_string(n - 1) + " asks ";
  REQUIRE(out.rfind(ok, 0) == 0);
  CHECK(std::atoi(out.c_str() + ok.size()) > 0); // it followed -ASK answers
  CHECK(wait_for([&] { return asks() > asks_before; }));
}
