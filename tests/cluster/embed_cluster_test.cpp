// An application that embeds kura (actors/kura.hpp) joins a cluster of
// kura-node processes as a full member (issue 8): this test binary is the
// embedding application, beside two real kura-node processes on loopback.
// Its typed key/value API takes the same routing, replication and
// invalidation paths as RESP clients, and it runs the commands its peers
// forward to it (INCR of keys it owns) without setting cluster.exec (it
// links kura_cluster), with an archive (L4) below its L3 as kura-node has.
#include "actors/kura.hpp"
#include "cluster/cluster_harness.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <doctest/doctest.h>

#include <string>

using namespace kura::test;
using namespace kura::actors;

namespace {

/// The first element of a RESP array of bulk strings ("" if none).
std::string first_bulk(const std::string& r) {
  auto p = r.find('$');
  if (p == std::string::npos)
    return {};
  auto nl = r.find("\r\n", p);
  auto n = std::stoul(r.substr(p + 1, nl - p - 1));
  return r.substr(nl + 2, n);
}

struct embedded_member {
  temp_dir dir;
  uint16_t port = free_port();
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<instance> db;
  std::string error;

  embedded_member(const std::string& id, uint16_t seed_port) {
    embedded_options o;
    o.data_dir = dir.path;
    o.memory_bytes = 16ull << 20;
    o.cluster.node_id = id;
    o.cluster.port = port;
    o.cluster.seeds = {"127.0.0.1:" + std::to_string(seed_port)};
    o.cluster.heartbeat_ms = 300; // as fast_cluster_flags()
    o.cluster.sync_ms = 1000;
    o.cluster.request_timeout_ms = 1000;
    // cluster.exec unset: kura-node's command execution (library kura_cluster)
    // L3 holds 256 KiB, so the coldest keys go to the archive (L4)
    o.l3_max_bytes = 256 << 10;
    cfg.load<caf::io::middleman>();
    prepare_cluster_config(cfg, o.cluster.heartbeat_ms);
    sys = std::make_unique<caf::actor_system>(cfg);
    auto r = spawn_kura(*sys, o);
    if (r)
      db = std::move(*r);
    else
      error = sys->render(r.error());
  }
  ~embedded_member() {
    if (db)
      db->stop();
    db.reset();
  }
};

} // namespace

TEST_CASE("an embedding application joins two kura-node processes as a full cluster member") {
  test_cluster c;
  REQUIRE(c.start("n1").ready);
  embedded_member app("app3", c["n1"].cluster_port);
  REQUIRE_MESSAGE(app.db != nullptr, app.error);
  REQUIRE(c.start("n2").ready);
  INFO(c.logs());
  // the ring has three members, seen alike by the processes and the app
  // (`kura members` against the application's cluster port)
  REQUIRE(wait_for(
      [&] { return c.all_see_alive(3) && count_state(members_json(app.port), "alive") == 3; }));
  CHECK(members_json(app.port).find("\"app3\"") != std::string::npos);
  blocking_client kv{*app.sys, app.db->handle()};
  client k1(c["n1"].port), k2(c["n2"].port);

  // the app owns some keys: KURA.OWNERS names it first
  std::vector<std::string> owned, elsewhere;
  for (int i = 0; owned.size() < 5 || elsewhere.size() < 5; ++i) {
    auto key = "k:" + std::to_string(i);
    auto owners = k1.call({"KURA.OWNERS", key}).value_or("");
    (first_bulk(owners) == "app3" ? owned : elsewhere).push_back(key);
    REQUIRE(i < 1000);
  }

  // typed writes are replicated writes: every node reads them
  REQUIRE(wait_for([&] { return !kv.set("probe", "1"); })); // once the ring settled
  for (int i = 0; i < 40; ++i)
    REQUIRE(!kv.set("e:" + std::to_string(i), "v" + std::to_string(i)));
  for (int i = 0; i < 40; ++i) {
    CHECK(k1.call({"GET", "e:" + std::to_string(i)}) == bulk("v" + std::to_string(i)));
    CHECK(k2.call({"GET", "e:" + std::to_string(i)}) == bulk("v" + std::to_string(i)));
  }
  // RESP writes through the processes: the app reads them
  for (int i = 0; i < 20; ++i)
    REQUIRE(k2.call({"SET", "r:" + std::to_string(i), "w" + std::to_string(i)}) ==
            std::string("+OK\r\n"));
  for (int i = 0; i < 20; ++i) {
    auto v = kv.get("r:" + std::to_string(i));
    REQUIRE(v);
    CHECK(*v == std::optional<std::string>("w" + std::to_string(i)));
  }

  // read-modify-write of keys the app owns is forwarded to it and runs there
  for (auto& key : owned) {
    std::string batch;
    for (int i = 0; i < 25; ++i)
      batch += client::multibulk({"INCR", key});
    REQUIRE(k1.send(batch));
    REQUIRE(k2.send(batch));
    for (int i = 0; i < 25; ++i) {
      CHECK(k1.reply().value_or("").rfind(":", 0) == 0);
      CHECK(k2.reply().value_or("").rfind(":", 0) == 0);
    }
    auto v = kv.get(key);
    REQUIRE(v);
    CHECK(*v == std::optional<std::string>("50"));
    CHECK(k1.call({"HSET", key + ":h", "f", "1"}) == std::string(":1\r\n"));
  }

  // invalidation: a near copy the app keeps is not served after a write
  // through another node returned
  for (auto& key : elsewhere) {
    REQUIRE(k1.call({"SET", key, "old"}) == std::string("+OK\r\n"));
    auto a = kv.get(key);
    REQUIRE(a);
    CHECK(*a == std::optional<std::string>("old"));
    a = kv.get(key); // served from the near copy if it is one
    REQUIRE(k2.call({"SET", key, "new"}) == std::string("+OK\r\n"));
    auto b = kv.get(key);
    REQUIRE(b);
    CHECK(*b == std::optional<std::string>("new"));
  }

  // del / expire run at the owner; their answers say whether the key existed
  auto d = kv.del("e:1");
  REQUIRE(d);
  CHECK(*d);
  CHECK(k1.call({"EXISTS", "e:1"}) == std::string(":0\r\n"));
  d = kv.del("e:1");
  REQUIRE(d);
  CHECK(!*d);
  auto x = kv.expire("e:2", 100000);
  REQUIRE(x);
  CHECK(*x);
  auto ttl = std::strtoll(k2.call({"PTTL", "e:2"}).value_or(":0").c_str() + 1, nullptr, 10);
  CHECK(ttl > 0);
  CHECK(ttl <= 100000);
  x = kv.expire("e:2", 0);
  REQUIRE(x);
  CHECK(*x);
  CHECK(k1.call({"PTTL", "e:2"}) == std::string(":-1\r\n"));
  x = kv.expire("nothing", 0);
  REQUIRE(x);
  CHECK(!*x);
  auto h = kv.get(owned[0] + ":h");
  CHECK(!h); // a hash: WRONGTYPE, as GET

  // L4 on the embedded member: counters the app owns, then 1 MiB more of
  // data, so L3 (256 KiB) demotes the cold counters to the archive; they are
  // read from there, and INCRs forwarded to the app run on the archived copy
  std::vector<std::string> counters;
  for (int i = 0; counters.size() < 8; ++i) {
    auto key = "c:" + std::to_string(i);
    if (first_bulk(k1.call({"KURA.OWNERS", key}).value_or("")) == "app3")
      counters.push_back(key);
    REQUIRE(i < 2000);
  }
  for (auto& key : counters)
    REQUIRE(k1.call({"SET", key, "7"}) == std::string("+OK\r\n"));
  std::string filler(2048, 'f');
  for (int i = 0; i < 512; ++i)
    REQUIRE(k2.call({"SET", "fill:" + std::to_string(i), filler}) == std::string("+OK\r\n"));
  std::vector<std::string> archived;
  REQUIRE(wait_for([&] {
    archived.clear();
    for (auto& key : counters)
      if (auto t = kv.tier(key); t && *t == "l4")
        archived.push_back(key);
    return !archived.empty();
  }));
  for (auto& key : archived) {
    auto v = kv.get(key);
    REQUIRE(v);
    CHECK(*v == std::optional<std::string>("7"));
    CHECK(k1.call({"INCR", key}) == std::string(":8\r\n")); // forwarded to the app
    CHECK(k2.call({"INCR", key}) == std::string(":9\r\n"));
    CHECK(k1.call({"GET", key}) == bulk("9"));
    CHECK(k2.call({"GET", key}) == bulk("9"));
  }

  // the app holds its share of the data: each key on RF = 2 members
  size_t here = 0;
  for (int i = 0; i < 40; ++i) {
    auto t = kv.tier("e:" + std::to_string(i));
    here += t && (*t == "l3" || *t == "l4") ? 1 : 0; // L3, or demoted to L4 by now
  }
  CHECK(here > 0);
  CHECK(here < 40);

  // flush reaches every member
  REQUIRE(!kv.flush());
  CHECK(k1.call({"DBSIZE"}) == std::string(":0\r\n"));
}
