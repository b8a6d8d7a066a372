// Real kura-node processes on loopback forming a cluster (issue 8): the ring
// forms through a seed, kill -9 makes a peer suspect and then dead, the node
// id is kept in the data dir, the cluster secret keeps strangers out, bad
// input on the cluster port is logged and dropped, and any node serves any
// key with reads failing over to a replica when the owner is gone.
#include "cluster/cluster_harness.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <set>
#include <thread>

using namespace kura::test;

namespace {

std::string poke(uint16_t port, const std::string& args, int* rc) {
  return run_shell(bin_dir() + "/tests/cluster_poke " + std::to_string(port) + " " + args + " 2>&1",
                   rc);
}

/// n1, n2 joining through n1, n3 joining through n1; waits until all see 3 alive.
void start_three(test_cluster& c) {
  c.start_ring(3);
}

} // namespace

TEST_CASE("three nodes form a ring; kill -9 makes one suspect at once, then dead") {
  test_cluster c;
  start_three(c);
  INFO(c.logs());
  auto json = members_json(c["n1"].cluster_port);
  CHECK(member_state(json, "n1") == "alive");
  CHECK(member_state(json, "n2") == "alive");
  CHECK(member_state(json, "n3") == "alive");
  CHECK(json.find("\"address\": \"127.0.0.1:" + std::to_string(c["n2"].cluster_port) + "\"") !=
        std::string::npos);
  CHECK(share_sum(json) == doctest::Approx(1.0).epsilon(0.01));
  // The human table has one row per member.
  auto table =
      run_shell(bin_dir() + "/kura --port=" + std::to_string(c["n2"].cluster_port) + " members");
  CHECK(table.find("INCARNATION") != std::string::npos);
  CHECK(table.find("n3") != std::string::npos);

  c["n3"].stop(SIGKILL);
  // The connection drop is noticed at once (the peer becomes suspect without
  // waiting for a failed probe), and the suspicion runs out into dead.
  CHECK(wait_for([&] { return c["n1"].log().find("lost connection to n3") != std::string::npos; }));
  CHECK(wait_for([&] {
    return member_state(members_json(c["n1"].cluster_port), "n3") == "dead" &&
           member_state(members_json(c["n2"].cluster_port), "n3") == "dead";
  }));
  CHECK(count_state(members_json(c["n2"].cluster_port), "alive") == 2);
}

TEST_CASE("any node serves any key; owners; reads fail over when the owner is killed") {
  test_cluster c;
  start_three(c);
  INFO(c.logs());
  // The example.
  CHECK(c["n2"].cli("set user:1 alice") == "OK\n");
  CHECK(c["n3"].cli("get user:1") == "alice\n");
  client k1(c["n1"].port);
  auto owners = bulk_array(k1.call({"KURA.OWNERS", "user:1"}).value_or(""));
  REQUIRE(owners.size() == 2);
  CHECK(owners[0] != owners[1]);
  for (auto& o : owners)
    CHECK((o == "n1" || o == "n2" || o == "n3"));
  // Every node gives the same placement.
  client k3(c["n3"].port);
  CHECK(bulk_array(k3.call({"KURA.OWNERS", "user:1"}).value_or("")) == owners);

  // Pipelined writes through every node, many in flight per connection,
  // replies in order; then every key reads back from every node.
  const int n = 300;
  for (auto& id : c.order) {
    client w(c[id].port);
    std::string batch;
    for (int i = 0; i < n; ++i)
      batch += client::multibulk({"SET", id + ":k" + std::to_string(i), "v" + std::to_string(i)});
    REQUIRE(w.send(batch));
    for (int i = 0; i < n; ++i)
      REQUIRE(w.reply() == std::string("+OK\r\n"));
  }
  for (auto& reader : c.order) {
    client r(c[reader].port);
    std::string batch;
    for (auto& writer : c.order)
      for (int i = 0; i < n; i += 7)
        batch += client::multibulk({"GET", writer + ":k" + std::to_string(i)});
    REQUIRE(r.send(batch));
    for (size_t w = 0; w < c.order.size(); ++w)
      for (int i = 0; i < n; i += 7)
        CHECK(r.reply() == bulk("v" + std::to_string(i)));
  }
  // Multi-key commands split per key.
  CHECK(k1.call({"MSET", "a", "1", "b", "2", "c", "3"}) == std::string("+OK\r\n"));
  CHECK(k3.call({"MGET", "a", "b", "c", "nope"}) ==
        std::string("*4\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$-1\r\n"));
  CHECK(k3.call({"EXISTS", "a", "b", "nope"}) == std::string(":2\r\n"));
  CHECK(k1.call({"DEL", "a", "b", "nope"}) == std::string(":2\r\n"));
  CHECK(k3.call({"EXISTS", "a", "b", "c"}) == std::string(":1\r\n"));
  // Atomic multi-key commands across slots are refused as Redis Cluster does.
  CHECK(k1.call({"MSETNX", "a", "1", "b", "2"}).value_or("").rfind("-CROSSSLOT", 0) == 0);
  CHECK(k1.call({"RENAME", "a", "b"}).value_or("").rfind("-CROSSSLOT", 0) == 0);
  CHECK(k1.call({"PING"}) == std::string("+PONG\r\n"));
  // WAIT: every write above was held by write-acks (2) copies before its
  // reply, so one replica acknowledged them all.
  CHECK(k1.call({"WAIT", "1", "100"}) == std::string(":1\r\n"));
  CHECK(k1.call({"WAIT", "2", "50"}) == std::string(":1\r\n")); // after the timeout
  CHECK(k1.call({"INCR", "c"}) == std::string(":4\r\n"));       // runs at c's owner

  // Kill the owner of user:1: a surviving non-owner still reads it from the
  // replica (the fetch to the owner fails over), before and after the owner
  // is declared dead.
  auto dead = owners[0];
  std::string reader;
  for (auto& id : c.order)
    if (id != dead)
      reader = id;
  c[dead].stop(SIGKILL);
  // A reader still in its catch-up window (one sync interval after it joined:
  // docs/cluster.md "A catching-up node does not serve what too few replicas
  // confirmed") answers TRYAGAIN, Redis Cluster's retryable error, while the
  // killed owner is the only other replica and not yet declared dead; any
  // other answer than alice or TRYAGAIN fails.
  std::string first;
  CHECK(wait_for([&] {
    first = c[reader].cli("get user:1");
    return first.rfind("TRYAGAIN", 0) != 0;
  }));
  CHECK(first == "alice\n");
  CHECK(
      wait_for([&] { return member_state(members_json(c[reader].cluster_port), dead) == "dead"; }));
  CHECK(c[reader].cli("get user:1") == "alice\n");
  // Writes go on with one node down (the ring now has two members).
  CHECK(c[reader].cli("set after:kill yes") == "OK\n");
  for (auto& id : c.order)
    if (id != dead)
      CHECK(c[id].cli("get after:kill") == "yes\n");
}

TEST_CASE("the node id is kept in the data dir; another id on the same data is refused") {
  temp_dir dir;
  {
    test_cluster c;
    REQUIRE(c.start("n1", {}, dir.path).ready);
    CHECK(c["n1"].stop(SIGTERM) == 0);
  }
  std::string out;
  int rc = run_node_once({"--port=" + std::to_string(free_port()),
                          "--cluster-port=" + std::to_string(free_port()), "--metrics-port=0",
                          "--data-dir=" + dir.path, "--kura.cluster.node-id=n2"},
                         out);
  CHECK(rc == 1);
  CHECK(out.find("belongs to cluster node 'n1'") != std::string::npos);
  // The recorded id is used when none is given (a restart with seeds only).
  test_cluster c;
  REQUIRE(c.start("n1", {}, dir.path).ready);
  auto json = members_json(c["n1"].cluster_port);
  CHECK(member_state(json, "n1") == "alive");
}

TEST_CASE("the cluster secret: peers prove it, strangers are refused and logged") {
  test_cluster c;
  REQUIRE(c.start("n1", {"--kura.cluster.secret=s3cret"}).ready);
  REQUIRE(c.start("n2", {"--kura.cluster.secret=s3cret"}).ready);
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(2); }));
  int rc = 0;
  poke(c["n1"].cluster_port, "handshake wrong", &rc);
  CHECK(rc == 3);
  CHECK(wait_for(
      [&] { return c["n1"].log().find("does not know the cluster secret") != std::string::npos; }));
  poke(c["n1"].cluster_port, "handshake s3cret", &rc);
  CHECK(rc == 0);
  // A node started with the wrong secret finds out at its first handshake
  // and never joins.
  auto& n3 = c.start("n3", {"--kura.cluster.secret=guess"});
  REQUIRE(n3.ready);
  CHECK(wait_for([&] { return n3.log().find("cluster secret mismatch") != std::string::npos; }));
  CHECK(member_state(members_json(c["n1"].cluster_port), "n3").empty());
  CHECK(c["n2"].cli("set k v") == "OK\n");
  CHECK(c["n1"].cli("get k") == "v\n");
}

TEST_CASE(
    "garbage, truncated msgpack and strangers on the cluster port: logged, dropped, node lives") {
  test_cluster c;
  // One node: it can hold only one copy, so it acknowledges after one.
  REQUIRE(c.start("n1", {"--kura.cluster.secret=s3cret", "--kura.cluster.write-acks=1"}).ready);
  INFO(c.logs());
  auto& n1 = c["n1"];
  {
    client raw(n1.cluster_port); // not CAF at all
    REQUIRE(raw.ok());
    std::string junk(4096, '\0');
    for (size_t i = 0; i < junk.size(); ++i)
      junk[i] = static_cast<char>((i * 131 + 7) & 0xff);
    raw.send(junk);
    CHECK(raw.closed_by_peer(5000));
  }
  {
    client raw(n1.cluster_port);
    raw.send(std::string("\x00\x00\x00\x10", 4)); // a BASP header cut short
  }
  int rc = 0;
  poke(n1.cluster_port, "stranger", &rc);
  CHECK(rc == 0);
  CHECK(wait_for([&] { return n1.log().find("unauthenticated peer") != std::string::npos; }));
  poke(n1.cluster_port, "truncated s3cret", &rc);
  CHECK(rc == 0);
  CHECK(wait_for([&] { return n1.log().find("dropped a bad message") != std::string::npos; }));
  // A peer batch cut short or with a wrong length (actors/cluster_wire.hpp):
  // refused whole with the reason, the link's trust dropped (its next gossip
  // is held for a new handshake, which the poke cannot answer).
  auto before = n1.log().size();
  poke(n1.cluster_port, "badframe s3cret", &rc);
  CHECK(rc == 0);
  CHECK(wait_for([&] {
    auto log = n1.log().substr(before);
    return log.find("dropped a corrupt batch") != std::string::npos &&
           log.find("peer batch: frame 1: length") != std::string::npos &&
           log.find("peer batch: frame 0: length 127 exceeds") != std::string::npos;
  }));
  CHECK(wait_for(
      [&] { return n1.log().substr(before).find("unauthenticated peer") != std::string::npos; }));
  CHECK(n1.alive());
  CHECK(n1.cli("ping") == "PONG\n");
  CHECK(n1.cli("set x 1") == "OK\n");
  CHECK(n1.cli("get x") == "1\n");
  CHECK(member_state(members_json(n1.cluster_port), "n1") == "alive");
}

// A member whose link dropped while it was frozen (SIGSTOP) forwards its
// first command on resuming, before either side ran a new handshake. The
// node used to refuse that command at once ("dropped a forwarded command from
// an unauthenticated peer": catch_up_test saw it with middleman.workers=0,
// session 17); now it holds it while it asks the sender to prove itself,
// then runs it.
TEST_CASE("a forwarded command that arrives before its sender's handshake runs once the sender "
          "proves itself") {
  test_cluster c;
  REQUIRE(c.start("n1", {"--kura.cluster.secret=s3cret", "--kura.cluster.write-acks=1"}).ready);
  INFO(c.logs());
  auto& n1 = c["n1"];
  int rc = 0;
  auto out = poke(n1.cluster_port, "exec-early s3cret", &rc);
  INFO("cluster_poke: " << out);
  CHECK(rc == 0);
  CHECK(out.find("+PONG") != std::string::npos);
  CHECK(n1.log().find("dropped a forwarded command") == std::string::npos);
  // A sender that cannot prove itself gets the refusal, not the command run.
  out = poke(n1.cluster_port, "exec-early wrong", &rc);
  CHECK(rc == 3);
  CHECK(out.find("not authenticated") != std::string::npos);
  CHECK(n1.alive());
}

// Two handshakes with the same peer in flight at once (both sides dialling,
// or a re-dial while one runs): the pending hellos were keyed by the peer's
// CAF node, so the second hello overwrote the first's nonces and one auth was
// refused ("auth without hello", or a secret mismatch for a peer that knows
// the secret), session 17. Each auth now finds its own hello.
TEST_CASE("two handshakes with the same peer at once both succeed") {
  test_cluster c;
  REQUIRE(c.start("n1", {"--kura.cluster.secret=s3cret", "--kura.cluster.write-acks=1"}).ready);
  INFO(c.logs());
  int rc = 0;
  auto out = poke(c["n1"].cluster_port, "double-hello s3cret", &rc);
  INFO("cluster_poke: " << out);
  CHECK(rc == 0);
  CHECK(c["n1"].log().find("refused") == std::string::npos);
  // a wrong secret is still refused, for each of the two
  out = poke(c["n1"].cluster_port, "double-hello wrong", &rc);
  CHECK(rc == 3);
  CHECK(out.find("accepted 0 of 2") != std::string::npos);
  // without a secret (macs empty): both accepted too
  node_process lone(
      {"--kura.cluster.node-id=m1", "--kura.cluster.write-acks=1", "--kura.archive.enabled=false"});
  REQUIRE(lone.ready);
  out = poke(lone.cluster_port, "double-hello none", &rc);
  INFO("cluster_poke (no secret): " << out << "\n" << lone.log());
  CHECK(rc == 0);
  CHECK(lone.log().find("auth without hello") == std::string::npos);
}

// A member that has just learnt of a peer forwards a command to it while
// its handshake with that peer is still running. The command used to fail
// at once (and a read-modify-write ran at the next replica instead, or a
// keyspace-wide command answered -CLUSTERDOWN: tracking_cluster_test under
// load, session 17); now it waits for the handshake. The links between n2
// and n3 go through a proxy that delays every chunk, so their handshakes
// take more than a second while n3 already knows n2 from n1.
TEST_CASE("a command forwarded while the handshake with its target runs waits for it") {
  uint16_t c2 = free_port(), c3 = free_port(), p2 = free_port(), p3 = free_port();
  fault_proxy proxy({{p2, c2}, {p3, c3}});
  REQUIRE(proxy.ready);
  test_cluster c;
  std::vector<std::string> common{"--kura.cluster.request-timeout=8s"};
  REQUIRE(c.start("n1", common).ready);
  auto with = [&](uint16_t cp, uint16_t pp) {
    auto v = common;
    v.push_back("--cluster-port=" + std::to_string(cp));
    v.push_back("--kura.cluster.advertise=127.0.0.1:" + std::to_string(pp));
    return v;
  };
  REQUIRE(c.start("n2", with(c2, p2)).ready);
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(2); }));
  client k2(c["n2"].port);
  for (int i = 0; i < 20; ++i)
    REQUIRE(k2.call({"SET", "dbs:" + std::to_string(i), "v"}) == std::string("+OK\r\n"));
  REQUIRE(proxy.command("delay 250"));
  auto& n3 = c.start("n3", with(c3, p3));
  REQUIRE(n3.ready);
  client k3(n3.port);
  auto knows_n2 = [&] {
    for (int i = 0; i < 16; ++i)
      for (auto& o : bulk_array(k3.call({"KURA.OWNERS", "probe" + std::to_string(i)}).value_or("")))
        if (o == "n2")
          return true;
    return false;
  };
  REQUIRE(wait_for(knows_n2, 30000));
  // n3 knows n2 now; its link to n2 is at best being set up.
  bool connected = n3.log().find("connected to n2") != std::string::npos;
  auto got = k3.call({"DBSIZE"});
  INFO("connected to n2 before DBSIZE: " << connected << "; DBSIZE: " << got.value_or("(none)"));
  // (the count itself may be off while the members' ring views differ)
  CHECK((got && got->rfind(":", 0) == 0));
  CHECK(wait_for([&] { return n3.log().find("connected to n2") != std::string::npos; }));
  REQUIRE(proxy.command("heal"));
  CHECK(wait_for([&] { return k3.call({"DBSIZE"}) == std::string(":20\r\n"); }));
}

TEST_CASE("a lone node without seeds or node id is not in a cluster") {
  node_process n({"--kura.archive.enabled=false"});
  REQUIRE(n.ready);
  int rc = 0;
  auto out = run_shell(
      bin_dir() + "/kura --port=" + std::to_string(n.cluster_port) + " members 2>&1", &rc);
  CHECK(rc == 1);
  CHECK(out.find("not in a cluster") != std::string::npos);
  CHECK(n.cli("set a 1") == "OK\n");
  CHECK(n.cli("incr a") == "2\n");
  CHECK(n.cli("wait 0 0") == "0\n");
  CHECK(n.cli("kura.owners a").rfind("ERR This instance has cluster support disabled", 0) == 0);
}

namespace {

/// Writes distinct keys `prefix:i` through one node in pipelined batches and
/// records every acknowledged one, until `stop` or the connection is gone.
struct load_writer {
  std::string prefix;
  uint16_t port = 0;
  std::atomic<bool>* stop = nullptr;
  std::vector<std::string> acked;
  std::atomic<size_t> attempts{0};
  void run() {
    client w(port);
    for (int i = 0; !stop->load() && w.ok(); i += 16) {
      std::string batch;
      for (int j = i; j < i + 16; ++j)
        batch +=
            client::multibulk({"SET", prefix + ":" + std::to_string(j), "v" + std::to_string(j)});
      if (!w.send(batch))
        return;
      for (int j = i; j < i + 16; ++j) {
        auto r = w.reply(15000);
        if (!r)
          return; // the node died: its connection is gone
        if (*r == "+OK\r\n")
          acked.push_back(prefix + ":" + std::to_string(j));
      }
      attempts += 16;
    }
  }
};

/// Keys of `keys` that node `port` does not return with their value.
std::vector<std::string> missing_on(uint16_t port, const std::vector<std::string>& keys) {
  std::vector<std::string> miss;
  client r(port);
  for (size_t i = 0; i < keys.size(); i += 64) {
    std::string batch;
    size_t end = std::min(keys.size(), i + 64);
    for (size_t j = i; j < end; ++j)
      batch += client::multibulk({"GET", keys[j]});
    if (!r.send(batch))
      return keys;
    for (size_t j = i; j < end; ++j) {
      auto v = r.reply();
      auto want = "v" + keys[j].substr(keys[j].rfind(':') + 1);
      if (!v || *v != bulk(want))
        miss.push_back(keys[j]);
    }
  }
  return miss;
}

} // namespace

TEST_CASE("kill -9 under load: no acknowledged write is lost; the restarted node converges") {
  test_cluster c;
  start_three(c);
  INFO(c.logs());
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<load_writer>> ws;
  for (auto& id : c.order) {
    auto w = std::make_unique<load_writer>();
    w->prefix = "load-" + id;
    w->port = c[id].port;
    w->stop = &stop;
    ws.push_back(std::move(w));
  }
  std::vector<std::thread> threads;
  for (auto& w : ws)
    threads.emplace_back([&w] { w->run(); });
  auto total = [&] {
    size_t n = 0;
    for (auto& w : ws)
      n += w->attempts.load();
    return n;
  };
  CHECK(wait_for([&] { return total() >= 1500; }, 60000));
  auto data_dir = c["n2"].data_dir;
  c["n2"].stop(SIGKILL); // mid-stream
  CHECK(wait_for([&] { return member_state(members_json(c["n1"].cluster_port), "n2") == "dead"; }));
  size_t after = total();
  CHECK(wait_for([&] { return total() >= after + 600; }, 60000)); // writes go on without n2
  stop = true;
  for (auto& t : threads)
    t.join();
  std::vector<std::string> acked;
  for (auto& w : ws)
    acked.insert(acked.end(), w->acked.begin(), w->acked.end());
  MESSAGE("acknowledged writes: " << acked.size());
  REQUIRE(acked.size() > 1000);
  // Every acknowledged write is readable from the survivors.
  for (std::string id : {"n1", "n3"}) {
    auto miss = missing_on(c[id].port, acked);
    std::string more;
    if (!miss.empty()) {
      std::string other = id == "n1" ? "n3" : "n1";
      more = "; owners " + c[id].cli("kura.owners " + miss.front()) + "; " + other + " says " +
             c[other].cli("get " + miss.front()) + "; " + id + " now says " +
             c[id].cli("get " + miss.front());
    }
    CHECK_MESSAGE(miss.empty(), id << " lost " << miss.size() << " acknowledged writes, e.g. "
                                   << (miss.empty() ? "" : miss.front()) << more);
  }
  // n2 comes back on its data dir; once the cluster converged every node
  // (a replica answers from its own store) returns every acknowledged write.
  auto& n2 = c.start("n2", {}, data_dir, "n2b");
  REQUIRE(n2.ready);
  CHECK(
      wait_for([&] { return member_state(members_json(c["n1"].cluster_port), "n2") == "alive"; }));
  for (auto id : {"n1", "n2b", "n3"})
    CHECK_MESSAGE(wait_for([&] { return missing_on(c[id].port, acked).empty(); }, 60000),
                  id << " still misses " << missing_on(c[id].port, acked).size() << " keys");
}

TEST_CASE("kill -9 of both replicas right after acknowledged writes: the restarted replica "
          "holds every one on its own disk") {
  // Both copies of every key are killed 300 ms after the last write was
  // acknowledged: more than the write-ahead log's writer interval (5 ms),
  // and L3 commits nothing meanwhile (batch-max-age 10 s here; auto is 1 s
  // with the log). The restarted replica starts alone (its seed stays dead),
  // so what it answers comes from its own disk: its log, replayed into L3 at
  // the start. (With --kura.l3.wal=false added to `flags`, n2 restarts with
  // none of these keys: the test fails.)
  const std::vector<std::string> flags{"--kura.l3.batch-max-age=10s"};
  test_cluster c;
  c.start_ring(2, flags); // RF 2, write-acks 2: every key on both nodes, acked by both
  INFO(c.logs());
  std::vector<std::string> keys;
  {
    client w(c["n1"].port);
    for (int i = 0; i < 3000; i += 16) {
      std::string batch;
      for (int j = i; j < i + 16; ++j)
        batch += client::multibulk({"SET", "kill9:" + std::to_string(j), "v" + std::to_string(j)});
      REQUIRE(w.send(batch));
      for (int j = i; j < i + 16; ++j) {
        auto r = w.reply(15000);
        REQUIRE(r);
        REQUIRE(*r == "+OK\r\n");
        keys.push_back("kill9:" + std::to_string(j));
      }
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto data_dir = c["n2"].data_dir;
  c["n2"].stop(SIGKILL);
  c["n1"].stop(SIGKILL);
  auto& n2 = c.start("n2", flags, data_dir, "n2b");
  REQUIRE(n2.ready);
  std::vector<std::string> miss;
  CHECK_MESSAGE(wait_for(
                    [&] {
                      miss = missing_on(n2.port, keys);
                      return miss.empty();
                    },
                    30000),
                "n2 lost " << miss.size() << " of " << keys.size() << " acknowledged writes, e.g. "
                           << (miss.empty() ? "" : miss.front()) << ": "
                           << (miss.empty() ? "" : n2.cli("kura.held " + miss.front())));
  CHECK(n2.log().find("write-ahead log records of the cluster store") != std::string::npos);
}

TEST_CASE("a frozen node (SIGSTOP) is declared dead; SIGCONT brings it back at a new incarnation") {
  test_cluster c;
  start_three(c);
  INFO(c.logs());
  CHECK(c["n1"].cli("set frozen:1 before") == "OK\n");
  auto inc_of = [&](const std::string& json, const std::string& id) {
    auto p = json.find("{\"id\": \"" + id + "\"");
    auto q = json.find("\"incarnation\": ", p);
    return std::strtoull(json.c_str() + q + 15, nullptr, 10);
  };
  auto inc_before = inc_of(members_json(c["n1"].cluster_port), "n3");
  ::kill(c["n3"].pid, SIGSTOP);
  CHECK(wait_for([&] {
    return member_state(members_json(c["n1"].cluster_port), "n3") == "dead" &&
           member_state(members_json(c["n2"].cluster_port), "n3") == "dead";
  }));
  // Its slots are served by the others meanwhile.
  CHECK(c["n2"].cli("get frozen:1") == "before\n");
  CHECK(c["n2"].cli("set frozen:1 during") == "OK\n");
  CHECK(c["n1"].cli("get frozen:1") == "during\n");
  ::kill(c["n3"].pid, SIGCONT);
  CHECK(
      wait_for([&] { return member_state(members_json(c["n1"].cluster_port), "n3") == "alive"; }));
  CHECK(inc_of(members_json(c["n1"].cluster_port), "n3") > inc_before);
  // The write it missed reaches it (hint / anti-entropy).
  CHECK(wait_for([&] { return c["n3"].cli("get frozen:1") == "during\n"; }));
}

// Catch-up after a pause: n3, frozen past the failure detector while the
// others overwrote keys it owns, answers reads that were waiting in its socket
// when it resumed. Those are its very first events (before any tick or gossip
// message), so it must notice the pause itself (the gap since it last ran)
// and ask the other replicas, not serve its own older copy as current.
TEST_CASE("a node resumed after SIGSTOP serves no value older than writes made meanwhile") {
  test_cluster c;
  start_three(c);
  INFO(c.logs());
  client k1(c["n1"].port);
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < 40 && i < 5000; ++i) {
    auto key = "paused:" + std::to_string(i);
    auto owners = bulk_array(k1.call({"KURA.OWNERS", key}).value_or(""));
    if (!owners.empty() && owners.front() == "n3")
      keys.push_back(key);
  }
  REQUIRE(keys.size() == 40);
  for (auto& k : keys)
    REQUIRE(k1.call({"SET", k, "before"}) == std::string("+OK\r\n"));
  client r3(c["n3"].port);
  for (auto& k : keys)
    REQUIRE(r3.call({"GET", k}) == bulk("before"));
  ::kill(c["n3"].pid, SIGSTOP);
  CHECK(wait_for([&] {
    return member_state(members_json(c["n1"].cluster_port), "n3") == "dead" &&
           member_state(members_json(c["n2"].cluster_port), "n3") == "dead";
  }));
  for (auto& k : keys)
    REQUIRE(k1.call({"SET", k, "during"}) == std::string("+OK\r\n"));
  std::string batch;
  for (auto& k : keys)
    batch += client::multibulk({"GET", k});
  REQUIRE(r3.send(batch)); // queued in n3's socket while it is stopped
  ::kill(c["n3"].pid, SIGCONT);
  size_t stale = 0, other = 0;
  std::string example;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto v = r3.reply(30000);
    REQUIRE(v);
    if (*v == bulk("before"))
      ++stale;
    else if (*v != bulk("during")) {
      ++other; // an error (no replica answered in time) is not a stale value
      example = *v;
    }
  }
  CHECK_MESSAGE(stale == 0, stale << " of " << keys.size() << " reads on n3 served the value "
                                  << "overwritten while it was stopped");
  MESSAGE("replies that were neither value: " << other << " " << example);
  CHECK(metric_value(c["n3"].metrics_port, "kura_cluster_catch_ups_total") >= 1);
  // And it converges: every key reads "during" from n3 once the cluster healed.
  CHECK(
      wait_for([&] { return member_state(members_json(c["n1"].cluster_port), "n3") == "alive"; }));
  CHECK(wait_for([&] {
    for (auto& k : keys)
      if (r3.call({"GET", k}) != bulk("during"))
        return false;
    return true;
  }));
}

// Was flaky (~1 run in 10, session 3): when the owner, which served n1's
// near copy and alone knew n1 held it, was briefly suspect at the writer, the
// sloppy quorum acknowledged the write with the other replica plus a hint
// holder, and nobody had invalidated n1. Now every replica registers a near
// holder before its copy is served (hold_msg), and a hint holder drops its
// own older near copy (gossip_node_test: "a write acknowledged by a hint
// holder leaves no stale near copy").
TEST_CASE("invalidation: a near copy on A is not served after B's write returned") {
  test_cluster c;
  start_three(c);
  INFO(c.logs());
  // Keys for which n1 is not a replica: n1 reads them from the owner and keeps
  // a near copy; then another node writes them.
  client k1(c["n1"].port);
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < 50 && i < 5000; ++i) {
    auto key = "near:" + std::to_string(i);
    auto owners = bulk_array(k1.call({"KURA.OWNERS", key}).value_or(""));
    if (std::find(owners.begin(), owners.end(), "n1") == owners.end())
      keys.push_back(key);
  }
  REQUIRE(keys.size() == 50);
  client k2(c["n2"].port), k3(c["n3"].port);
  for (size_t round = 0; round < 3; ++round) {
    for (size_t i = 0; i < keys.size(); ++i) {
      auto& writer = (i % 2) ? k2 : k3;
      auto v1 = "a" + std::to_string(round);
      auto v2 = "b" + std::to_string(round);
      REQUIRE(writer.call({"SET", keys[i], v1}) == std::string("+OK\r\n"));
      REQUIRE(k1.call({"GET", keys[i]}) == bulk(v1)); // near copy on n1
      REQUIRE(writer.call({"SET", keys[i], v2}) == std::string("+OK\r\n"));
      auto got = k1.call({"GET", keys[i]}).value_or("(none)");
      CHECK_MESSAGE(got == bulk(v2), "n1 served " << got); // never the near copy
    }
  }
  // The cluster metrics (pushed once a second): members by state, slots,
  // reads n1 fetched remotely, invalidations the replicas sent and got acked.
  auto metric = [&](const std::string& id, const std::string& name) {
    return metric_value(c[id].metrics_port, name);
  };
  CHECK(wait_for([&] { return metric("n1", "kura_cluster_members{state=\"alive\"}") == 3; }));
  CHECK(metric("n1", "kura_cluster_members{state=\"dead\"}") == 0);
  // The gauges are pushed once a second: a node's last push may predate its
  // join (alone in its ring it owns and replicates all 16384 slots) when the
  // loop above ran in less than that (it did with middleman.workers=0 at load
  // ~10, session 17), so wait for a push with the ring of three.
  for (auto id : {"n1", "n2", "n3"}) {
    CAPTURE(id);
    CHECK(wait_for([&] {
      return metric(id, "kura_cluster_slots_replicated") > metric(id, "kura_cluster_slots_owned");
    }));
  }
  CHECK(wait_for([&] { // every node's view of the same ring: each slot owned once
    double owned = 0;
    for (auto id : {"n1", "n2", "n3"})
      owned += metric(id, "kura_cluster_slots_owned");
    return owned == 16384;
  }));
  CHECK(wait_for([&] { return metric("n1", "kura_cluster_remote_reads_total") >= 150; }));
  CHECK(wait_for([&] {
    return metric("n2", "kura_cluster_invalidations_acknowledged_total") +
               metric("n3", "kura_cluster_invalidations_acknowledged_total") >=
           150;
  }));
  // Each pair from two scrapes: the one bounded by the other first (the
  // counters only grow), in separate statements (C++ leaves the order of a
  // comparison's operands open). Read the other way round, a batch count
  // scraped a second after the message count exceeded it (CI, ASan).
  const double acked = metric("n2", "kura_cluster_invalidations_acknowledged_total");
  CHECK(metric("n2", "kura_cluster_invalidations_sent_total") >= acked);
  const double batches = metric("n1", "kura_cluster_gossip_batches_total");
  CHECK(metric("n1", "kura_cluster_gossip_messages_total") >= batches);
  CHECK(metric("n1", "kura_cluster_hints_queued") >= 0);
  CHECK(metric("n1", "kura_cluster_anti_entropy_rounds_total") > 0); // 1 s sync interval
  // a sync interval (1 s) after the joins every node serves its slots' reads
  // from its own copy
  for (auto id : {"n1", "n2", "n3"}) {
    CAPTURE(id);
    CHECK(wait_for([&] { return metric(id, "kura_cluster_slots_gathering") == 0; }));
    client k(c[id].port);
    auto info = k.call({"INFO", "cluster"});
    CHECK(info.value_or("").find("cluster_slots_gathering:0\r\n") != std::string::npos);
  }
}

TEST_CASE("a ring just formed reports the slots whose reads gather until a sync interval passed") {
  test_cluster c;
  c.start_ring(3, {"--kura.cluster.sync-interval=120s"});
  INFO(c.logs());
  // n3 joined last: its reads ask the other replicas for a sync interval
  // (catch-up after a join; docs/cluster.md "Cost")
  client k3(c["n3"].port);
  auto info = k3.call({"INFO", "cluster"}).value_or("");
  auto p = info.find("cluster_slots_gathering:");
  REQUIRE(p != std::string::npos);
  CHECK(std::strtoull(info.c_str() + p + 24, nullptr, 10) > 0);
  CHECK(wait_for(
      [&] { return metric_value(c["n3"].metrics_port, "kura_cluster_slots_gathering") > 0; }));
}

TEST_CASE("partition through the fault proxy, then heal: membership and data converge") {
  // Every node is reached only through the proxy (kura.cluster.advertise), so
  // cutting the proxy cuts every link between nodes, whoever dialed.
  std::vector<uint16_t> cport, pport;
  std::vector<std::pair<uint16_t, uint16_t>> routes;
  for (int i = 0; i < 3; ++i) {
    cport.push_back(free_port());
    pport.push_back(free_port());
    routes.emplace_back(pport[i], cport[i]);
  }
  fault_proxy proxy(routes);
  REQUIRE(proxy.ready);
  test_cluster c;
  auto seed = "--kura.cluster.seeds=127.0.0.1:" + std::to_string(pport[0]);
  for (int i = 0; i < 3; ++i) {
    std::vector<std::string> extra{"--cluster-port=" + std::to_string(cport[i]),
                                   "--kura.cluster.advertise=127.0.0.1:" + std::to_string(pport[i]),
                                   "--kura.cluster.write-acks=1", seed};
    REQUIRE(c.start("n" + std::to_string(i + 1), extra).ready);
  }
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }));
  CHECK(members_json(c["n1"].cluster_port).find(std::to_string(pport[1])) != std::string::npos);
  CHECK(c["n1"].cli("set shared before") == "OK\n");

  // A slow link still works.
  REQUIRE(proxy.command("delay 50"));
  CHECK(c["n2"].cli("get shared") == "before\n");

  // Cut: every node ends up alone and keeps serving (write-acks 1).
  REQUIRE(proxy.command("cut"));
  // (a suspect near-cache holder would hold writes back until it is dead)
  CHECK(wait_for([&] {
    for (auto& id : c.order)
      if (count_state(members_json(c[id].cluster_port), "dead") != 2)
        return false;
    return true;
  }));
  for (auto& id : c.order)
    CHECK(c[id].cli("set side:" + id + " " + id) == "OK\n");
  CHECK(c["n3"].cli("set shared n3") == "OK\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(c["n1"].cli("set shared n1-last") == "OK\n"); // the newest write wins

  // Heal: the members find each other again and the data converges.
  REQUIRE(proxy.command("heal"));
  CHECK(wait_for([&] { return c.all_see_alive(3); }, 60000));
  for (auto& reader : c.order) {
    CHECK(wait_for([&] { return c[reader].cli("get shared") == "n1-last\n"; }, 30000));
    for (auto& id : c.order)
      CHECK(wait_for([&] { return c[reader].cli("get side:" + id) == id + "\n"; }, 30000));
  }

  // Drop (no resets): only timeouts notice; the others declare the nodes dead.
  REQUIRE(proxy.command("drop"));
  CHECK(wait_for([&] { return c.all_see_alive(1); }, 60000));
  REQUIRE(proxy.command("heal"));
  CHECK(wait_for([&] { return c.all_see_alive(3); }, 60000));
}

TEST_CASE("bad cluster settings are refused at start-up with one line") {
  temp_dir dir;
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"--port=" + std::to_string(free_port()),
                                  "--cluster-port=" + std::to_string(free_port()),
                                  "--metrics-port=0", "--data-dir=" + dir.path};
    args.insert(args.end(), extra.begin(), extra.end());
    std::string out;
    int rc = run_node_once(args, out);
    return std::make_pair(rc, out);
  };
  auto [rc1, out1] = run({"--kura.cluster.node-id=n1", "--kura.cluster.seeds=127.0.0.1"});
  CHECK(rc1 == 1);
  CHECK(out1.find("kura.cluster.seeds") != std::string::npos);
  auto [rc2, out2] = run({"--kura.cluster.node-id=n1", "--kura.cluster.write-acks=3"});
  CHECK(rc2 == 1);
  CHECK(out2.find("kura.cluster.write-acks") != std::string::npos);
  auto [rc3, out3] = run({"--kura.cluster.node-id=a@b"});
  CHECK(rc3 == 1);
  CHECK(out3.find("kura.cluster.node-id") != std::string::npos);
  auto [rc4, out4] = run({"--kura.cluster.node-id=n1", "--kura.cluster.advertise=nope"});
  CHECK(rc4 == 1);
  CHECK(out4.find("kura.cluster.advertise") != std::string::npos);
}

TEST_CASE("routed commands pass the same AUTH / ACL check as local ones") {
  test_cluster c;
  REQUIRE(c.start("n1", {"--kura.security.requirepass=pw", "--kura.cluster.write-acks=1"}).ready);
  INFO(c.logs());
  client k(c["n1"].port);
  CHECK(k.call({"SET", "a", "1"}).value_or("").rfind("-NOAUTH", 0) == 0);
  CHECK(k.call({"KURA.OWNERS", "a"}).value_or("").rfind("-NOAUTH", 0) == 0);
  CHECK(k.call({"AUTH", "pw"}) == std::string("+OK\r\n"));
  CHECK(k.call({"SET", "a", "1"}) == std::string("+OK\r\n"));
  CHECK(k.call({"GET", "a"}) == bulk("1"));
  CHECK(k.call({"MULTI"}) == std::string("+OK\r\n")); // tests/cluster/cluster_commands_test
  CHECK(k.call({"DISCARD"}) == std::string("+OK\r\n"));
  // The ops port's `members` checks the CLI's credentials as INFO does.
  int rc = 0;
  auto kura = bin_dir() + "/kura --timeout=3000 --port=" + std::to_string(c["n1"].cluster_port);
  auto out = run_shell(kura + " members 2>&1", &rc);
  CHECK(rc == 1);
  CHECK(out.find("NOAUTH") != std::string::npos);
  out = run_shell(kura + " --password=wrong members 2>&1", &rc);
  CHECK(rc == 1);
  out = run_shell(kura + " --password=pw members 2>&1", &rc);
  CHECK(rc == 0);
  CHECK(out.find("n1") != std::string::npos);
}

TEST_CASE(
    "cluster data lives in the node's tiers: a kill -9'd node serves its keys from its disk") {
  test_cluster c;
  std::vector<std::string> fast_commit{"--kura.l3.batch-max-age=20ms"};
  for (auto id : {"n1", "n2", "n3"})
    REQUIRE_MESSAGE(c.start(id, fast_commit).ready, c.logs());
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }));
  // Keys n2 replicates, written through n1.
  client k1(c["n1"].port);
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < 100 && i < 5000; ++i) {
    auto key = "disk:" + std::to_string(i);
    auto owners = bulk_array(k1.call({"KURA.OWNERS", key}).value_or(""));
    if (std::find(owners.begin(), owners.end(), "n2") != owners.end())
      keys.push_back(key);
  }
  REQUIRE(keys.size() == 100);
  for (size_t i = 0; i < keys.size(); ++i)
    REQUIRE(k1.call({"SET", keys[i], "v" + std::to_string(i)}) == std::string("+OK\r\n"));
  CHECK(k1.call({"DEL", keys[0]}) == std::string(":1\r\n")); // a tombstone on disk too
  // n2 commits its group (20 ms window here; its metrics refresh once a
  // second; under load the commit's fdatasync may take much longer than
  // that: a fixed sleep made this test flaky); then n2 dies hard.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100)); // a refresh after the last write
  CHECK(wait_for(
      [&] {
        return metric_value(c["n2"].metrics_port, "kura_cluster_store_uncommitted_writes") == 0;
      },
      30000));
  auto data_dir = c["n2"].data_dir;
  c["n2"].stop(SIGKILL);
  // Nobody else can answer: n1 and n3 are frozen.
  ::kill(c["n1"].pid, SIGSTOP);
  ::kill(c["n3"].pid, SIGSTOP);
  struct resume {
    test_cluster& c;
    ~resume() {
      for (auto id : {"n1", "n3"})
        if (c[id].pid > 0)
          ::kill(c[id].pid, SIGCONT);
    }
  } guard{c};
  auto& n2 = c.start("n2", fast_commit, data_dir, "n2b");
  REQUIRE(n2.ready);
  client k2(n2.port);
  // It serves alone once its seed stays silent (2 x request-timeout).
  CHECK(wait_for([&] { return k2.call({"GET", keys[1]}) == bulk("v1"); }, 20000));
  size_t served = 0;
  for (size_t i = 1; i < keys.size(); ++i)
    served += k2.call({"GET", keys[i]}) == bulk("v" + std::to_string(i)) ? 1 : 0;
  CHECK(served == keys.size() - 1);
  CHECK(k2.call({"GET", keys[0]}) == std::string("$-1\r\n")); // still deleted
  CHECK(n2.log().find("serving this node's data alone") != std::string::npos);
  // The others come back: n2 merges into their cluster and writes work again.
  ::kill(c["n1"].pid, SIGCONT);
  ::kill(c["n3"].pid, SIGCONT);
  CHECK(wait_for([&] {
    return count_state(members_json(n2.cluster_port), "alive") == 3 &&
           member_state(members_json(c["n1"].cluster_port), "n2") == "alive";
  }));
  CHECK(wait_for([&] { return k2.call({"SET", "after:restart", "x"}) == std::string("+OK\r\n"); }));
  CHECK(c["n3"].cli("get after:restart") == "x\n");
}

TEST_CASE("read-modify-write commands run at the key's owner; keyspace-wide commands fan out") {
  test_cluster c;
  start_three(c);
  INFO(c.logs());
  client k1(c["n1"].port), k2(c["n2"].port), k3(c["n3"].port);
  // INCR from three nodes at once, pipelined: atomic per key (no lost update).
  {
    std::vector<std::thread> ts;
    std::atomic<int> oks{0};
    for (auto id : {"n1", "n2", "n3"})
      ts.emplace_back([&, port = c[id].port] {
        client w(port);
        std::string batch;
        for (int i = 0; i < 100; ++i)
          batch += client::multibulk({"INCR", "counter"});
        if (!w.send(batch))
          return;
        for (int i = 0; i < 100; ++i) {
          auto r = w.reply();
          if (r && r->rfind(":", 0) == 0)
            ++oks;
        }
      });
    for (auto& t : ts)
      t.join();
    CHECK(oks.load() == 300);
    CHECK(k2.call({"GET", "counter"}) == bulk("300"));
    // Two of the three nodes forwarded their INCRs to the owner.
    CHECK(wait_for([&] {
      double fwd = 0;
      for (auto id : {"n1", "n2", "n3"})
        fwd += std::max(0.0,
                        metric_value(c[id].metrics_port, "kura_cluster_forwarded_commands_total"));
      return fwd >= 200;
    }));
  }
  CHECK(k1.call({"DECRBY", "counter", "50"}) == std::string(":250\r\n"));
  CHECK(k3.call({"INCRBYFLOAT", "f", "10.5"}) == bulk("10.5"));
  CHECK(k1.call({"INCRBYFLOAT", "f", "0.1"}) == bulk("10.6"));
  CHECK(k1.call({"SET", "s", "abc"}) == std::string("+OK\r\n"));
  CHECK(k2.call({"INCR", "s"}).value_or("").rfind("-ERR value is not an integer", 0) == 0);
  CHECK(k2.call({"APPEND", "s", "def"}) == std::string(":6\r\n"));
  CHECK(k3.call({"SETRANGE", "s", "1", "XY"}) == std::string(":6\r\n"));
  CHECK(k1.call({"GET", "s"}) == bulk("aXYdef"));
  CHECK(k1.call({"GETSET", "s", "new"}) == bulk("aXYdef"));
  CHECK(k2.call({"SETNX", "s", "no"}) == std::string(":0\r\n"));
  CHECK(k2.call({"SETNX", "fresh", "yes"}) == std::string(":1\r\n"));
  CHECK(k3.call({"SET", "fresh", "x", "NX"}) == std::string("$-1\r\n"));
  CHECK(k3.call({"SET", "fresh", "x", "XX", "GET"}) == bulk("yes"));
  CHECK(k3.call({"SET", "absent", "x", "XX"}) == std::string("$-1\r\n"));
  CHECK(k1.call({"GET", "fresh"}) == bulk("x"));
  CHECK(k1.call({"GETDEL", "fresh"}) == bulk("x"));
  CHECK(k2.call({"EXISTS", "fresh"}) == std::string(":0\r\n"));
  // Expiry: EXPIRE / TTL / PERSIST / GETEX / KEEPTTL.
  CHECK(k1.call({"EXPIRE", "s", "100"}) == std::string(":1\r\n"));
  auto ttl = std::strtoll(k2.call({"TTL", "s"}).value_or(":0").c_str() + 1, nullptr, 10);
  CHECK(ttl > 0);
  CHECK(ttl <= 100);
  CHECK(k3.call({"EXPIRE", "s", "200", "NX"}) == std::string(":0\r\n"));
  CHECK(k3.call({"SET", "s", "kept", "KEEPTTL"}) == std::string("+OK\r\n"));
  CHECK(k1.call({"TTL", "s"}).value_or("") != ":-1\r\n");
  CHECK(k2.call({"PERSIST", "s"}) == std::string(":1\r\n"));
  CHECK(k1.call({"TTL", "s"}) == std::string(":-1\r\n"));
  CHECK(k3.call({"GETEX", "s", "PX", "50000"}) == bulk("kept"));
  auto pttl = std::strtoll(k1.call({"PTTL", "s"}).value_or(":0").c_str() + 1, nullptr, 10);
  CHECK(pttl > 0);
  CHECK(pttl <= 50000);
  CHECK(k2.call({"EXPIRE", "s", "0"}) == std::string(":1\r\n")); // the past: deleted
  CHECK(k1.call({"GET", "s"}) == std::string("$-1\r\n"));
  CHECK(k1.call({"EXPIRE", "nothing", "10"}) == std::string(":0\r\n"));
  CHECK(k1.call({"INCR"}).value_or("").rfind("-ERR wrong number of arguments", 0) == 0);

  // Keyspace-wide: every key counted once, whichever node is asked.
  CHECK(k1.call({"FLUSHALL"}) == std::string("+OK\r\n"));
  CHECK(k2.call({"DBSIZE"}) == std::string(":0\r\n"));
  std::string batch;
  for (int i = 0; i < 200; ++i)
    batch += client::multibulk({"SET", "ks:" + std::to_string(i), "v"});
  batch += client::multibulk({"SET", "other", "v"});
  REQUIRE(k3.send(batch));
  for (int i = 0; i < 201; ++i)
    REQUIRE(k3.reply() == std::string("+OK\r\n"));
  for (auto* k : {&k1, &k2, &k3})
    CHECK(k->call({"DBSIZE"}) == std::string(":201\r\n"));
  auto keys = bulk_array(k2.call({"KEYS", "ks:1*"}).value_or(""));
  CHECK(keys.size() == 111); // ks:1, ks:10-19, ks:100-199
  std::set<std::string> seen;
  std::string cursor = "0";
  int rounds = 0;
  do {
    REQUIRE(k1.send(client::multibulk({"SCAN", cursor, "MATCH", "ks:*", "COUNT", "17"})));
    auto r = k1.reply().value_or("");
    // *2 $n cursor *k ...
    auto p = r.find("\r\n", r.find('$'));
    auto nl = r.find("\r\n", p + 2);
    cursor = r.substr(p + 2, nl - p - 2);
    auto rest = r.substr(nl + 2);
    for (auto& k : bulk_array(rest))
      CHECK_MESSAGE(seen.insert(k).second, "SCAN returned " << k << " twice");
    ++rounds;
  } while (cursor != "0" && rounds < 1000);
  CHECK(seen.size() == 200);
  CHECK(rounds > 5);
  CHECK(k3.call({"RANDOMKEY"}).value_or("").rfind("$", 0) == 0);
  CHECK(k3.call({"RANDOMKEY"}) != std::string("$-1\r\n"));
  CHECK(k2.call({"FLUSHALL"}) == std::string("+OK\r\n"));
  CHECK(k1.call({"DBSIZE"}) == std::string(":0\r\n"));
  CHECK(k3.call({"RANDOMKEY"}) == std::string("$-1\r\n"));
  CHECK(k1.call({"GET", "ks:5"}) == std::string("$-1\r\n"));
}

TEST_CASE("sloppy quorum: writes succeed while a replica is suspect; the hint reaches it later") {
  test_cluster c;
  start_three(c);
  INFO(c.logs());
  client k1(c["n1"].port);
  // Keys n3 replicates: some with n1 as the other replica (a hint goes to
  // n2), some without n1 (n1, the coordinator, holds the hint itself).
  std::vector<std::string> keys;
  int with_n1 = 0, without_n1 = 0;
  for (int i = 0; (with_n1 < 10 || without_n1 < 10) && i < 5000; ++i) {
    auto key = "sloppy:" + std::to_string(i);
    auto owners = bulk_array(k1.call({"KURA.OWNERS", key}).value_or(""));
    if (std::find(owners.begin(), owners.end(), "n3") == owners.end())
      continue;
    bool n1 = std::find(owners.begin(), owners.end(), "n1") != owners.end();
    if ((n1 && with_n1 < 10) || (!n1 && without_n1 < 10)) {
      (n1 ? with_n1 : without_n1)++;
      keys.push_back(key);
    }
  }
  REQUIRE(keys.size() == 20);
  ::kill(c["n3"].pid, SIGSTOP);
  struct resume {
    pid_t pid;
    ~resume() { ::kill(pid, SIGCONT); }
  } guard{c["n3"].pid};
  // n3 is not dead yet (suspect at most): every write is still acknowledged
  // by the other replica plus a hint holder.
  for (size_t i = 0; i < keys.size(); ++i)
    CHECK(k1.call({"SET", keys[i], "v" + std::to_string(i)}) == std::string("+OK\r\n"));
  auto state = member_state(members_json(c["n1"].cluster_port), "n3");
  MESSAGE("n3 was " << state << " after the writes");
  ::kill(c["n3"].pid, SIGCONT);
  CHECK(
      wait_for([&] { return member_state(members_json(c["n1"].cluster_port), "n3") == "alive"; }));
  // The hints (or anti-entropy) bring n3 every write; it serves them itself.
  client k3(c["n3"].port);
  for (size_t i = 0; i < keys.size(); ++i)
    CHECK(wait_for([&] { return k3.call({"GET", keys[i]}) == bulk("v" + std::to_string(i)); }));
}

TEST_CASE(
    "a restarted replica never serves a version older than one acknowledged while it was away") {
  test_cluster c;
  std::vector<std::string> fast_commit{"--kura.l3.batch-max-age=20ms"};
  for (auto id : {"n1", "n2", "n3"})
    REQUIRE(c.start(id, fast_commit).ready);
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }));
  client k1(c["n1"].port);
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < 30 && i < 5000; ++i) {
    auto key = "stale:" + std::to_string(i);
    auto owners = bulk_array(k1.call({"KURA.OWNERS", key}).value_or(""));
    if (std::find(owners.begin(), owners.end(), "n2") != owners.end())
      keys.push_back(key);
  }
  REQUIRE(keys.size() == 30);
  for (auto& k : keys)
    REQUIRE(k1.call({"SET", k, "v1"}) == std::string("+OK\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300)); // n2 commits v1
  auto data_dir = c["n2"].data_dir;
  c["n2"].stop(SIGKILL);
  for (auto& k : keys)
    REQUIRE(k1.call({"SET", k, "v2"}) == std::string("+OK\r\n"));
  auto& n2 = c.start("n2", fast_commit, data_dir, "n2b");
  REQUIRE(n2.ready);
  client k2(n2.port);
  // At once: the first answer that is not "not joined yet" is already v2.
  std::string first;
  REQUIRE(wait_for(
      [&] {
        first = k2.call({"GET", keys[0]}).value_or("");
        return first.rfind("-CLUSTERDOWN", 0) != 0;
      },
      20000));
  CHECK(first == bulk("v2"));
  std::string batch;
  for (auto& k : keys)
    batch += client::multibulk({"GET", k});
  REQUIRE(k2.send(batch));
  for (auto& k : keys)
    CHECK_MESSAGE(k2.reply() == bulk("v2"), "n2 served an old " << k);
  // The handshakes of the restarted n2 lost nothing: what its peers had
  // queued for it went out after the handshake's last reply, not before it
  // (before session 15 n2 dropped every queued message, catch-up fetches
  // included, as coming "from an unauthenticated peer").
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }));
  for (auto id : {"n1", "n3", "n2b"})
    CHECK_MESSAGE(c[id].log().find("unauthenticated peer") == std::string::npos,
                  id << " dropped messages of an authenticated member:\n"
                     << c[id].log());
}

TEST_CASE("a reply for a closed connection never lands in a newer one on the same socket fd") {
  // CAF's connection handles are socket fds, which the kernel reuses: a routed
  // command of a client that left could complete a slot of the next client
  // (a wrong reply) or one past its slots (kura-node crashed under
  // redis-benchmark, which drops its connections on an error reply).
  test_cluster c;
  start_three(c);
  INFO(c.logs());
  client k1(c["n1"].port);
  std::string key;
  for (int i = 0; key.empty() && i < 5000; ++i) {
    auto k = "fd:" + std::to_string(i);
    auto owners = bulk_array(k1.call({"KURA.OWNERS", k}).value_or(""));
    if (std::find(owners.begin(), owners.end(), "n1") == owners.end())
      key = k;
  }
  REQUIRE(!key.empty());
  ::kill(c["n2"].pid, SIGSTOP); // writes and reads of `key` wait (hint / failover)
  {
    client a(c["n1"].port);
    std::string batch;
    for (int i = 0; i < 64; ++i)
      batch += client::multibulk({"SET", key, "from-a"});
    REQUIRE(a.send(batch));
  } // a leaves with 64 writes in flight
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  client b(c["n1"].port); // most likely on a's fd
  // A routed command that outlasts a's writes (WAIT for more replicas than
  // there are waits its whole timeout), so a's replies meet b's slots.
  REQUIRE(b.send(client::multibulk({"WAIT", "5", "6000"})));
  auto r = b.reply(20000);
  REQUIRE(r);
  CHECK_MESSAGE(r->rfind(":", 0) == 0, "b got " << *r); // not a's +OK
  ::kill(c["n2"].pid, SIGCONT);
  CHECK(client(c["n1"].port).call({"PING"}) == std::string("+PONG\r\n"));
  CHECK(wait_for([&] { return k1.call({"GET", key}) == bulk("from-a"); }));
}

// Rolling upgrade (cluster22b): a node of the previous version in a ring
// with nodes of this one. This version sends a peer's gossip as one framed
// buffer (gbatch_atom) only to peers that announced cap_framed_batch in the
// handshake; the old node announces nothing, so it keeps getting the vector
// form, and it ignores the caps this version puts after its address. Needs
// the previous version's binaries: KURA_OLD_BIN_DIR (e.g. a build of main);
// skipped without it.
TEST_CASE("a node of the previous version in the ring: pipelined writes and reads across it") {
  const char* old_dir = std::getenv("KURA_OLD_BIN_DIR");
  if (old_dir == nullptr || *old_dir == '\0') {
    MESSAGE("KURA_OLD_BIN_DIR unset: the mixed-version case is skipped");
    return;
  }
  test_cluster c;
  REQUIRE(c.start("n1").ready);
  REQUIRE(c.start("n2", {}, {}, {}, std::string(old_dir) + "/kura-node").ready);
  REQUIRE(c.start("n3").ready);
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }));
  // Pipelines of SETs through every node: each owner replicates to its
  // replica in batches of many messages (old <-> new and new <-> new).
  const int per_node = 300;
  for (auto id : {"n1", "n2", "n3"}) {
    client k(c[id].port);
    REQUIRE(k.ok());
    std::string pipe;
    for (int i = 0; i < per_node; ++i)
      pipe += client::multibulk(
          {"SET", std::string("mv:") + id + ":" + std::to_string(i), "v" + std::to_string(i)});
    REQUIRE(k.send(pipe));
    for (int i = 0; i < per_node; ++i) {
      auto r = k.reply();
      REQUIRE(r.has_value());
      CHECK(*r == "+OK\r\n");
    }
  }
  // Every key reads back through every node, old and new.
  for (auto reader : {"n1", "n2", "n3"}) {
    client k(c[reader].port);
    REQUIRE(k.ok());
    for (auto id : {"n1", "n2", "n3"})
      for (int i = 0; i < per_node; i += 7) {
        auto v = "v" + std::to_string(i);
        CHECK(k.call({"GET", std::string("mv:") + id + ":" + std::to_string(i)}) ==
              "$" + std::to_string(v.size()) + "\r\n" + v + "\r\n");
      }
  }
  for (auto id : {"n1", "n2", "n3"}) {
    auto log = c[id].log();
    CHECK_MESSAGE(log.find("unexpected message") == std::string::npos, id);
    CHECK_MESSAGE(log.find("corrupt") == std::string::npos, id);
    CHECK_MESSAGE(log.find("dropped a bad message") == std::string::npos, id);
  }
}
