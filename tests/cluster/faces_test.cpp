// The Redis Cluster face of real kura-node processes (issue 9): CLUSTER
// SLOTS/NODES/SHARDS/INFO/MYID/KEYSLOT/COUNTKEYSINSLOT/GETKEYSINSLOT agree
// across nodes and cover every slot, -MOVED for cluster-mode connections and
// kura.cluster.redirect=moved, READONLY, proxying for plain clients, and real
// cluster clients that no one here wrote: redis-cli -c, redis-benchmark
// --cluster and redis-py's RedisCluster (tests/cluster/faces_redis_py.py,
// with a node killed mid-session).
#include "cluster/cluster_harness.hpp"

#include <doctest/doctest.h>

#include <set>
#include <sstream>

using namespace kura::test;

namespace {

std::string call(uint16_t port, const std::vector<std::string>& args) {
  client c(port);
  auto r = c.call(args);
  return r ? *r : std::string("<no reply>");
}

/// The text of a bulk-string reply ("" for anything else).
std::string bulk_text(const std::string& r) {
  if (r.empty() || r[0] != '$')
    return {};
  auto nl = r.find("\r\n");
  return r.substr(nl + 2, std::stoul(r.substr(1, nl - 1)));
}

/// The first element of a RESP array of bulk strings (KURA.OWNERS' owner).
std::string first_bulk(const std::string& r) {
  auto p = r.find("\r\n");
  return p == std::string::npos ? std::string{} : bulk_text(r.substr(p + 2));
}

std::string field(const std::string& text, const std::string& name) {
  auto p = text.find(name + ":");
  if (p == std::string::npos)
    return {};
  auto e = text.find("\r\n", p);
  return text.substr(p + name.size() + 1, e - p - name.size() - 1);
}

/// n1 and n2 proxy (the default), n3 answers -MOVED to every connection.
void start_three(test_cluster& c) {
  REQUIRE(c.start("n1").ready);
  REQUIRE(c.start("n2").ready);
  REQUIRE(c.start("n3", {"--kura.cluster.redirect=moved"}).ready);
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }));
  REQUIRE(wait_for([&] {
    for (auto id : {"n1", "n2", "n3"})
      if (field(bulk_text(call(c[id].port, {"CLUSTER", "INFO"})), "cluster_state") != "ok")
        return false;
    return true;
  }));
}

/// The RESP port of node `id` ("n1" ...).
uint16_t port_of(test_cluster& c, const std::string& id) {
  return c[id].port;
}

} // namespace

TEST_CASE("CLUSTER SLOTS/NODES/SHARDS/INFO agree across nodes and cover every slot") {
  test_cluster c;
  start_three(c);
  INFO(c.logs());
  auto p1 = c["n1"].port, p2 = c["n2"].port, p3 = c["n3"].port;

  // the same map on every node once the views agree (and every node is
  // placed: "alive" in every view comes before the last joiner's slots, so
  // the views can agree on a two-node ring for a moment)
  REQUIRE(wait_for(
      [&] {
        for (auto p : {p1, p2, p3})
          if (field(bulk_text(call(p, {"CLUSTER", "INFO"})), "cluster_size") != "3")
            return false;
        auto s = call(p1, {"CLUSTER", "SLOTS"});
        return s == call(p2, {"CLUSTER", "SLOTS"}) && s == call(p3, {"CLUSTER", "SLOTS"});
      },
      60000));
  auto shards = call(p1, {"CLUSTER", "SHARDS"});
  CHECK(shards.rfind("*", 0) == 0);
  CHECK(shards.find("$6\r\nmaster\r\n") != std::string::npos);
  CHECK(shards.find("$7\r\nreplica\r\n") != std::string::npos);
  CHECK(shards == call(p2, {"CLUSTER", "SHARDS"}));

  // INFO
  auto info = bulk_text(call(p2, {"CLUSTER", "INFO"}));
  CHECK(field(info, "cluster_state") == "ok");
  CHECK(field(info, "cluster_slots_assigned") == "16384");
  CHECK(field(info, "cluster_slots_ok") == "16384");
  CHECK(field(info, "cluster_known_nodes") == "3");
  CHECK(field(info, "cluster_size") == "3");
  CHECK(field(bulk_text(call(p3, {"CLUSTER", "INFO"})), "kura_redirect") == "moved");
  CHECK(c["n1"].info_field("cluster_enabled") == "1");
  CHECK(call(p1, {"CONFIG", "GET", "cluster-enabled"}).find("yes") != std::string::npos);

  // MYID: 40 hex digits, distinct, "myself" in NODES
  std::set<std::string> ids;
  for (auto id : {"n1", "n2", "n3"}) {
    auto me = bulk_text(call(c[id].port, {"CLUSTER", "MYID"}));
    CHECK(me.size() == 40);
    CHECK(me.find_first_not_of("0123456789abcdef") == std::string::npos);
    ids.insert(me);
    auto nodes = bulk_text(call(c[id].port, {"CLUSTER", "NODES"}));
    auto line = nodes.substr(nodes.find(me));
    line = line.substr(0, line.find('\n'));
    CHECK(line.find(" myself,master ") != std::string::npos);
    CHECK(line.find("127.0.0.1:" + std::to_string(c[id].port) + "@" +
                    std::to_string(c[id].cluster_port)) != std::string::npos);
  }
  CHECK(ids.size() == 3);

  // NODES: three masters whose slot ranges cover 0..16383 exactly once
  std::vector<int> owner_count(16384, 0);
  std::istringstream in(bulk_text(call(p1, {"CLUSTER", "NODES"})));
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    std::istringstream ls(line);
    std::string tok;
    for (int i = 0; i < 8; ++i)
      ls >> tok;
    while (ls >> tok) {
      auto dash = tok.find('-');
      int a = std::stoi(tok.substr(0, dash));
      int b = dash == std::string::npos ? a : std::stoi(tok.substr(dash + 1));
      for (int s = a; s <= b; ++s)
        ++owner_count[static_cast<size_t>(s)];
    }
  }
  CHECK(lines == 3);
  CHECK(std::count(owner_count.begin(), owner_count.end(), 1) == 16384);

  // KEYSLOT, COUNTKEYSINSLOT, GETKEYSINSLOT
  CHECK(call(p1, {"CLUSTER", "KEYSLOT", "foo"}) == ":12182\r\n");
  CHECK(call(p1, {"CLUSTER", "KEYSLOT", "{user1000}.following"}) ==
        call(p1, {"CLUSTER", "KEYSLOT", "user1000"}));
  CHECK(call(p1, {"SET", "foo", "bar"}) == "+OK\r\n");
  auto owner = first_bulk(call(p1, {"KURA.OWNERS", "foo"}));
  REQUIRE(!owner.empty());
  CHECK(call(c[owner].port, {"CLUSTER", "COUNTKEYSINSLOT", "12182"}) == ":1\r\n");
  CHECK(call(c[owner].port, {"CLUSTER", "GETKEYSINSLOT", "12182", "10"}) == "*1\r\n$3\r\nfoo\r\n");
  CHECK(call(p1, {"CLUSTER", "COUNTKEYSINSLOT", "16384"}) == "-ERR Invalid slot\r\n");
  CHECK(call(p1, {"CLUSTER", "GETKEYSINSLOT", "1", "-1"}) ==
        "-ERR Invalid slot or number of keys\r\n");
  CHECK(call(p1, {"CLUSTER", "MEET", "127.0.0.1", "1"}).rfind("-ERR CLUSTER MEET", 0) == 0);
  CHECK(call(p1, {"CLUSTER", "NOPE"}).rfind("-ERR unknown subcommand 'NOPE'", 0) == 0);
  CHECK(call(p1, {"CLUSTER", "KEYSLOT"}) ==
        "-ERR wrong number of arguments for 'cluster|keyslot' command\r\n");
}

TEST_CASE("MOVED in cluster mode, proxying for plain clients, READONLY, redis-cli -c and "
          "redis-benchmark --cluster") {
  test_cluster c;
  start_three(c);
  INFO(c.logs());
  auto p1 = c["n1"].port, p3 = c["n3"].port;

  // keys owned by n2 (primary) and replicated by n3 (not by n1), and keys
  // owned by n2 and replicated by n1 (not by n3)
  std::vector<std::string> n2_n3, n2_n1;
  for (int i = 0; i < 1000 && (n2_n3.size() < 5 || n2_n1.size() < 5); ++i) {
    auto k = "k" + std::to_string(i);
    auto owners = call(p1, {"KURA.OWNERS", k});
    if (owners == "*2\r\n$2\r\nn2\r\n$2\r\nn3\r\n")
      n2_n3.push_back(k);
    if (owners == "*2\r\n$2\r\nn2\r\n$2\r\nn1\r\n")
      n2_n1.push_back(k);
  }
  REQUIRE(n2_n3.size() >= 5);
  REQUIRE(n2_n1.size() >= 5);
  for (auto* ks : {&n2_n3, &n2_n1})
    for (auto& k : *ks)
      REQUIRE(call(p1, {"SET", k, "v" + k}) == "+OK\r\n");
  auto p2s = std::to_string(port_of(c, "n2"));
  auto val = [](const std::string& k) {
    return "$" + std::to_string(k.size() + 1) + "\r\nv" + k + "\r\n";
  };
  auto moved_to_n2 = [&](const std::string& k) {
    auto slot = call(p1, {"CLUSTER", "KEYSLOT", k}).substr(1);
    return "-MOVED " + slot.substr(0, slot.find('\r')) + " 127.0.0.1:" + p2s + "\r\n";
  };

  {
    // n1 proxies a plain connection; once it asked for the slot map it is in
    // cluster mode: MOVED for what n1 does not hold, reads of what it
    // replicates served here (READONLY or not), writes to the primary
    client k(p1);
    CHECK(k.call({"GET", n2_n3[0]}) == val(n2_n3[0]));
    CHECK(k.call({"SET", n2_n3[0], "v" + n2_n3[0]}) == "+OK\r\n");
    CHECK(k.call({"CLUSTER", "SLOTS"})->rfind("*", 0) == 0);
    CHECK(k.call({"GET", n2_n3[0]}) == moved_to_n2(n2_n3[0]));
    CHECK(k.call({"GET", n2_n1[0]}) == val(n2_n1[0]));
    CHECK(k.call({"SET", n2_n1[0], "x"}) == moved_to_n2(n2_n1[0]));
    CHECK(k.call({"READONLY"}) == "+OK\r\n");
    CHECK(k.call({"GET", n2_n1[1]}) == val(n2_n1[1]));
    CHECK(k.call({"READWRITE"}) == "+OK\r\n");
    CHECK(k.call({"ASKING"}) == "+OK\r\n");
    // n1 holds no copy of that key: ASKING does not stop the MOVED (as on a
    // Redis node that does not import the slot; move_ask_test has the -ASK)
    CHECK(k.call({"GET", n2_n3[1]}) == moved_to_n2(n2_n3[1]));
    // keys of several slots are split and served; kura's own commands anywhere
    CHECK(k.call({"MGET", n2_n3[2], n2_n1[2]}) == "*2\r\n" + val(n2_n3[2]) + val(n2_n1[2]));
    CHECK(k.call({"KURA.OWNERS", n2_n3[0]}) == "*2\r\n$2\r\nn2\r\n$2\r\nn3\r\n");
  }
  // n3 (redirect=moved) redirects every connection
  CHECK(call(p3, {"GET", n2_n1[3]}) == moved_to_n2(n2_n1[3]));
  CHECK(call(p3, {"GET", n2_n3[3]}) == val(n2_n3[3])); // a replica's read
  CHECK(call(p3, {"SET", n2_n3[3], "y"}) == moved_to_n2(n2_n3[3]));

  // cluster mode: DBSIZE per node; the nodes' counts add up to the cluster's
  REQUIRE(wait_for([&] {
    int64_t sum = 0;
    for (auto id : {"n1", "n2", "n3"}) {
      client k(c[id].port);
      k.call({"READWRITE"});
      auto r = k.call({"DBSIZE"});
      sum += r ? std::stoll(r->substr(1)) : -1000;
    }
    return ":" + std::to_string(sum) + "\r\n" == call(p1, {"DBSIZE"});
  }));

  // redis-cli -c: writes through the moved node, reads through the others
  for (int i = 0; i < 30; ++i) {
    auto k = "cli:" + std::to_string(i);
    CHECK(c["n3"].cli("-c set " + k + " val" + std::to_string(i)) == "OK\n");
  }
  for (int i = 0; i < 30; ++i) {
    auto k = "cli:" + std::to_string(i);
    CHECK(c["n3"].cli("-c get " + k) == "val" + std::to_string(i) + "\n");
    CHECK(c["n1"].cli("-c get " + k) == "val" + std::to_string(i) + "\n");
  }
  // a plain redis-cli on n3 sees the redirect itself
  CHECK(c["n3"].cli("get " + n2_n1[4]).find("MOVED") != std::string::npos);

  // redis-benchmark --cluster runs to completion against both kinds of node
  for (auto port : {p1, p3}) {
    int rc = -1;
    auto out = run_shell("timeout 120 redis-benchmark --cluster -h 127.0.0.1 -p " +
                             std::to_string(port) + " -t set,get -n 3000 -c 10 -q 2>&1",
                         &rc);
    INFO(out);
    CHECK(rc == 0);
    CHECK(out.find("Cluster has 3 master nodes") != std::string::npos);
    CHECK(out.find("SET: ") != std::string::npos);
    CHECK(out.find("GET: ") != std::string::npos);
  }
}

TEST_CASE("redis-py RedisCluster: a scripted session survives a node killed mid-session") {
  test_cluster c;
  start_three(c);
  INFO(c.logs());
  const char* src = std::getenv("KURA_SOURCE_DIR");
  std::string script = std::string(src ? src : ".") + "/tests/cluster/faces_redis_py.py";
  std::string ports = std::to_string(c["n1"].port) + "," + std::to_string(c["n2"].port) + "," +
                      std::to_string(c["n3"].port);
  std::string pids = std::to_string(c["n1"].pid) + "," + std::to_string(c["n2"].pid) + "," +
                     std::to_string(c["n3"].pid);
  int rc = -1;
  auto out =
      run_shell("timeout 240 /usr/bin/python3 " + script + " " + ports + " " + pids + " 2>&1", &rc);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.size() >= 3);
  CHECK(out.substr(out.size() - 3) == "ok\n");
}

TEST_CASE("a node outside a cluster answers the cluster commands as Redis does") {
  node_process n;
  REQUIRE(n.ready);
  CHECK(call(n.port, {"CLUSTER", "SLOTS"}) ==
        "-ERR This instance has cluster support disabled\r\n");
  CHECK(call(n.port, {"READONLY"}) == "-ERR This instance has cluster support disabled\r\n");
  CHECK(n.info_field("cluster_enabled") == "0");
}

TEST_CASE("ioredis Cluster (npm): a scripted session") {
  int rc = -1;
  std::string install;
  auto modules = npm_ioredis(rc, install); // ioredis 5 from npm, in the build tree
  if (modules.empty()) {
    MESSAGE("node or npm missing: ioredis session not run");
    return;
  }
  INFO(install);
  REQUIRE(rc == 0);
  test_cluster c;
  start_three(c);
  INFO(c.logs());
  const char* src = std::getenv("KURA_SOURCE_DIR");
  std::string script = std::string(src ? src : ".") + "/tests/cluster/faces_ioredis.js";
  std::string ports = std::to_string(c["n1"].port) + "," + std::to_string(c["n2"].port) + "," +
                      std::to_string(c["n3"].port);
  auto out = run_shell(
      "NODE_PATH=" + modules + " timeout 120 node " + script + " " + ports + " 2>&1", &rc);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out == "ok\n");
}
