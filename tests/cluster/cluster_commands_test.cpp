// Every key command on a cluster node (issue 8): hashes, bit commands and the
// other read-modify-write commands run at their slot's owner with kura's own
// command table; multi-key commands in one slot run there atomically, across
// slots they get CROSSSLOT; MULTI/EXEC/WATCH run as a unit at the owner of
// the transaction's one slot. Three real kura-node processes on loopback.
#include "cluster/cluster_harness.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>

using namespace kura::test;

namespace {

// No node fails in these tests, so no command should time out: give the
// owners a long request timeout. With the harness's 1 s, a pipeline of 200
// HINCRBYs forwarded to one owner answered -TIMEOUT for every command under
// ASan on a loaded machine (CI's sanitizer stage), while it passed in the
// Release build.
const std::vector<std::string> patient = {"--kura.cluster.request-timeout=10s"};

const std::string ok = "+OK\r\n";

bool starts(const std::optional<std::string>& r, const std::string& prefix) {
  return r && r->rfind(prefix, 0) == 0;
}

} // namespace

TEST_CASE("hashes, bits and string commands work through any node of a cluster") {
  test_cluster c;
  c.start_ring(3, patient);
  INFO(c.logs());
  client k1(c["n1"].port), k2(c["n2"].port), k3(c["n3"].port);

  // hashes: written through one node, read through the others
  CHECK(k1.call({"HSET", "h", "a", "1", "b", "2"}) == std::string(":2\r\n"));
  CHECK(k2.call({"HGET", "h", "a"}) == bulk("1"));
  CHECK(k3.call({"HINCRBY", "h", "a", "41"}) == std::string(":42\r\n"));
  CHECK(k1.call({"HGET", "h", "a"}) == bulk("42"));
  CHECK(k2.call({"HLEN", "h"}) == std::string(":2\r\n"));
  CHECK(k3.call({"HGETALL", "h"}) ==
        std::string("*4\r\n$1\r\na\r\n$2\r\n42\r\n$1\r\nb\r\n$1\r\n2\r\n"));
  CHECK(k1.call({"HDEL", "h", "b"}) == std::string(":1\r\n"));
  CHECK(k2.call({"HEXISTS", "h", "b"}) == std::string(":0\r\n"));
  CHECK(k3.call({"TYPE", "h"}) == std::string("+hash\r\n"));
  CHECK(starts(k1.call({"GET", "h"}), "-WRONGTYPE"));
  CHECK(starts(k2.call({"INCR", "h"}), "-WRONGTYPE"));
  CHECK(k3.call({"MGET", "h", "nothing"}) == std::string("*2\r\n$-1\r\n$-1\r\n"));
  // 200 pipelined HINCRBYs through three nodes: atomic at the owner
  {
    std::string batch;
    for (int i = 0; i < 100; ++i)
      batch += client::multibulk({"HINCRBY", "hc", "f", "1"});
    REQUIRE(k1.send(batch));
    REQUIRE(k2.send(batch));
    for (int i = 0; i < 100; ++i) {
      CHECK(starts(k1.reply(), ":"));
      CHECK(starts(k2.reply(), ":"));
    }
    CHECK(k3.call({"HGET", "hc", "f"}) == bulk("200"));
  }

  // bits
  CHECK(k1.call({"SETBIT", "b", "7", "1"}) == std::string(":0\r\n"));
  CHECK(k2.call({"SETBIT", "b", "0", "1"}) == std::string(":0\r\n"));
  CHECK(k3.call({"GETBIT", "b", "7"}) == std::string(":1\r\n"));
  CHECK(k3.call({"BITCOUNT", "b"}) == std::string(":2\r\n"));
  CHECK(k1.call({"GET", "b"}) == bulk("\x81"));
  CHECK(k2.call({"SET", "{bt}x", "\xff"}) == ok);
  CHECK(k3.call({"SET", "{bt}y", "\x0f"}) == ok);
  CHECK(k1.call({"BITOP", "AND", "{bt}d", "{bt}x", "{bt}y"}) == std::string(":1\r\n"));
  CHECK(k2.call({"GET", "{bt}d"}) == bulk("\x0f"));
  CHECK(starts(k1.call({"BITOP", "OR", "dest", "{bt}x", "other"}), "-CROSSSLOT"));

  // string commands that read or write at the owner
  CHECK(k1.call({"SET", "s", "hello"}) == ok);
  CHECK(k2.call({"STRLEN", "s"}) == std::string(":5\r\n"));
  CHECK(k3.call({"GETRANGE", "s", "1", "3"}) == bulk("ell"));
  CHECK(k1.call({"SETRANGE", "s", "5", " world"}) == std::string(":11\r\n"));
  CHECK(k2.call({"GETEX", "s", "EX", "100"}) == bulk("hello world"));
  CHECK(starts(k3.call({"TTL", "s"}), ":"));
  CHECK(k3.call({"TTL", "s"}) != std::string(":-1\r\n"));
  CHECK(k1.call({"GETDEL", "s"}) == bulk("hello world"));
  CHECK(k2.call({"EXISTS", "s"}) == std::string(":0\r\n"));
  CHECK(starts(k3.call({"HSET", "h"}), "-ERR wrong number of arguments"));
  // DEL across slots: each key deleted at its owner, the counts summed
  CHECK(k1.call({"MSET", "d1", "1", "d2", "2", "d3", "3"}) == ok);
  CHECK(k2.call({"DEL", "d1", "d2", "nothere", "d3"}) == std::string(":3\r\n"));
  CHECK(k3.call({"UNLINK", "d1", "d2"}) == std::string(":0\r\n"));
  CHECK(k3.call({"HSET", "d4", "f", "v"}) == std::string(":1\r\n"));
  CHECK(k1.call({"DEL", "d4"}) == std::string(":1\r\n"));
  // EVAL with its keys in one slot runs at the slot's owner
  for (auto* k : {&k1, &k2, &k3})
    CHECK(starts(k->call({"EVAL", "return redis.call('INCR', KEYS[1])", "1", "{ev}n"}), ":"));
  CHECK(k1.call({"GET", "{ev}n"}) == bulk("3"));
  CHECK(starts(k2.call({"EVAL", "return 1", "2", "a1", "b2"}), "-CROSSSLOT"));
  // Scripts must declare their keys (Redis Cluster): a script that names a
  // key not in KEYS gets an error instead of reading it as absent or writing
  // it at a node that may not own it; a keyless script that touches no key
  // still runs on the node the client talks to.
  auto non_local = [](const std::optional<std::string>& r) {
    return starts(r, "-") && r->find("non local key") != std::string::npos &&
           r->find("'undeclared'") != std::string::npos;
  };
  for (auto* k : {&k1, &k2, &k3}) {
    CHECK(k->call({"EVAL", "return 1", "0"}) == std::string(":1\r\n"));
    CHECK(non_local(k->call({"EVAL", "return redis.call('GET', 'undeclared')", "0"})));
    CHECK(
        non_local(k->call({"EVAL", "return redis.call('SET', 'undeclared', 'x')", "1", "{ev}n"})));
    CHECK(k->call({"EVAL", "return redis.pcall('GET', 'undeclared')['err'] ~= nil", "0"}) ==
          std::string(":1\r\n"));
  }
  CHECK(k1.call({"EXISTS", "undeclared"}) == std::string(":0\r\n"));
  CHECK(k2.call({"GET", "{ev}n"}) == bulk("3"));
  // EVALSHA of a script loaded on the node the client talks to runs at the
  // key's owner, wherever that is (the body travels with it); a node that
  // did not load it answers NOSCRIPT, as a Redis Cluster node
  {
    const std::string body = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    auto sha = k1.call({"SCRIPT", "LOAD", body}).value_or("");
    REQUIRE(sha.size() == 47); // $40\r\n<sha>\r\n
    sha = sha.substr(5, 40);
    int owners_elsewhere = 0;
    for (int i = 0; i < 8; ++i) {
      auto key = "{es" + std::to_string(i) + "}n";
      auto own = bulk_array(k1.call({"KURA.OWNERS", key}).value_or(""));
      owners_elsewhere += !own.empty() && own[0] != "n1";
      CHECK(k1.call({"EVALSHA", sha, "1", key, "5"}) == std::string(":5\r\n"));
      CHECK(k1.call({"EVALSHA", sha, "1", key, "2"}) == std::string(":7\r\n"));
      CHECK(k2.call({"GET", key}) == bulk("7"));
    }
    CHECK(owners_elsewhere > 0); // some ran on another node than n1
    CHECK(starts(k2.call({"EVALSHA", sha, "1", "{es0}n", "1"}), "-NOSCRIPT"));
    const std::string ro = "#!lua flags=no-writes\nreturn redis.call('GET', KEYS[1])";
    auto sha_ro = k3.call({"SCRIPT", "LOAD", ro}).value_or("");
    REQUIRE(sha_ro.size() == 47);
    sha_ro = sha_ro.substr(5, 40);
    for (int i = 0; i < 8; ++i)
      CHECK(k3.call({"EVALSHA_RO", sha_ro, "1", "{es" + std::to_string(i) + "}n"}) == bulk("7"));
    CHECK(k1.call({"SCRIPT", "FLUSH"}) == ok);
    CHECK(starts(k1.call({"EVALSHA", sha, "1", "{es0}n", "1"}), "-NOSCRIPT"));
    CHECK(k1.call({"GET", "{es0}n"}) == bulk("7"));
  }
  // SCAN's TYPE filter over the cluster
  auto scan_type = k1.call({"SCAN", "0", "COUNT", "1000", "TYPE", "hash"}).value_or("");
  CHECK(scan_type.find("$1\r\nh\r\n") != std::string::npos);
  CHECK(scan_type.find("$2\r\nhc\r\n") != std::string::npos);
  CHECK(scan_type.find("$1\r\nb\r\n") == std::string::npos);

  // multi-key commands: one slot runs at the owner, several get CROSSSLOT
  CHECK(k1.call({"SET", "{u}a", "1"}) == ok);
  CHECK(k2.call({"RENAME", "{u}a", "{u}b"}) == ok);
  CHECK(k3.call({"GET", "{u}a"}) == std::string("$-1\r\n"));
  CHECK(k3.call({"GET", "{u}b"}) == bulk("1"));
  CHECK(k1.call({"COPY", "{u}b", "{u}c"}) == std::string(":1\r\n"));
  CHECK(k2.call({"GET", "{u}c"}) == bulk("1"));
  CHECK(k3.call({"RENAMENX", "{u}b", "{u}c"}) == std::string(":0\r\n"));
  CHECK(k1.call({"MSETNX", "{u}d", "4", "{u}e", "5"}) == std::string(":1\r\n"));
  CHECK(k2.call({"MSETNX", "{u}e", "x", "{u}f", "6"}) == std::string(":0\r\n"));
  CHECK(k3.call({"GET", "{u}f"}) == std::string("$-1\r\n"));
  CHECK(k1.call({"HSET", "{u}h", "f", "v"}) == std::string(":1\r\n"));
  CHECK(k2.call({"RENAME", "{u}h", "{u}h2"}) == ok);
  CHECK(k3.call({"HGET", "{u}h2", "f"}) == bulk("v"));
  for (auto* cmd : {"MSETNX", "RENAME", "RENAMENX", "COPY"}) {
    std::vector<std::string> a{cmd, "x1", "y1"};
    if (std::string(cmd) == "MSETNX")
      a = {cmd, "x1", "v", "y1", "v"};
    CHECK_MESSAGE(starts(k1.call(a), "-CROSSSLOT Keys in request don't hash to the same slot"),
                  cmd);
  }
}

TEST_CASE("MULTI/EXEC/WATCH on a cluster node: one slot runs at its owner, as a unit") {
  test_cluster c;
  c.start_ring(3, patient);
  INFO(c.logs());
  client k1(c["n1"].port), k2(c["n2"].port), k3(c["n3"].port);
  // every node runs a transaction whose keys live elsewhere or here
  for (auto* k : {&k1, &k2, &k3}) {
    CHECK(k->call({"MULTI"}) == ok);
    CHECK(k->call({"INCR", "{t}n"}) == std::string("+QUEUED\r\n"));
    CHECK(k->call({"HSET", "{t}h", "f", "1"}) == std::string("+QUEUED\r\n"));
    CHECK(k->call({"GET", "{t}n"}) == std::string("+QUEUED\r\n"));
    auto r = k->call({"EXEC"}).value_or("");
    CHECK(r.rfind("*3\r\n:", 0) == 0);
  }
  CHECK(k2.call({"GET", "{t}n"}) == bulk("3"));
  // keys in two slots: CROSSSLOT while queueing, EXECABORT at EXEC
  CHECK(k1.call({"MULTI"}) == ok);
  CHECK(k1.call({"SET", "{t}a", "1"}) == std::string("+QUEUED\r\n"));
  CHECK(starts(k1.call({"SET", "elsewhere", "1"}), "-CROSSSLOT"));
  CHECK(starts(k1.call({"EXEC"}), "-EXECABORT"));
  CHECK(k2.call({"EXISTS", "{t}a"}) == std::string(":0\r\n"));
  // a pipelined transaction (MULTI ... EXEC in one write)
  {
    std::string batch = client::multibulk({"MULTI"}) + client::multibulk({"SET", "{p}a", "1"}) +
                        client::multibulk({"INCR", "{p}a"}) + client::multibulk({"EXEC"}) +
                        client::multibulk({"GET", "{p}a"});
    REQUIRE(k3.send(batch));
    CHECK(k3.reply() == ok);
    CHECK(k3.reply() == std::string("+QUEUED\r\n"));
    CHECK(k3.reply() == std::string("+QUEUED\r\n"));
    CHECK(k3.reply() == std::string("*2\r\n+OK\r\n:2\r\n"));
    CHECK(k3.reply() == bulk("2"));
  }
  // WATCH: a write through another node in between aborts EXEC
  CHECK(k1.call({"SET", "{w}k", "1"}) == ok);
  CHECK(k1.call({"WATCH", "{w}k"}) == ok);
  CHECK(k2.call({"SET", "{w}k", "2"}) == ok);
  CHECK(k1.call({"MULTI"}) == ok);
  CHECK(k1.call({"SET", "{w}k", "3"}) == std::string("+QUEUED\r\n"));
  CHECK(k1.call({"EXEC"}) == std::string("*-1\r\n"));
  CHECK(k3.call({"GET", "{w}k"}) == bulk("2"));
  // ... and without one it runs; a watched key that did not exist
  CHECK(k1.call({"WATCH", "{w}k", "{w}new"}) == ok);
  CHECK(k1.call({"MULTI"}) == ok);
  CHECK(k1.call({"SET", "{w}k", "3"}) == std::string("+QUEUED\r\n"));
  CHECK(k1.call({"EXEC"}) == std::string("*1\r\n+OK\r\n"));
  CHECK(k2.call({"GET", "{w}k"}) == bulk("3"));
  // WATCH across slots, and WATCH then a key of another slot
  CHECK(starts(k2.call({"WATCH", "a1", "b2"}), "-CROSSSLOT"));
  CHECK(k2.call({"WATCH", "{w}k"}) == ok);
  CHECK(k2.call({"MULTI"}) == ok);
  CHECK(starts(k2.call({"GET", "other"}), "-CROSSSLOT"));
  CHECK(starts(k2.call({"EXEC"}), "-EXECABORT"));
  // DISCARD, and a transaction without keys runs locally
  CHECK(k3.call({"MULTI"}) == ok);
  CHECK(k3.call({"SET", "{d}x", "1"}) == std::string("+QUEUED\r\n"));
  CHECK(k3.call({"DISCARD"}) == ok);
  CHECK(k1.call({"EXISTS", "{d}x"}) == std::string(":0\r\n"));
  CHECK(k3.call({"MULTI"}) == ok);
  CHECK(k3.call({"PING"}) == std::string("+QUEUED\r\n"));
  CHECK(k3.call({"EXEC"}) == std::string("*1\r\n+PONG\r\n"));
  // keyspace-wide commands inside MULTI are refused while queueing (a
  // transaction runs as a unit on its slot's owner; they need every member):
  // EXEC answers EXECABORT and nothing of the transaction ran. Outside MULTI
  // they answer for the whole cluster.
  const std::vector<std::vector<std::string>> wide{{"DBSIZE"},    {"KEYS", "*"}, {"SCAN", "0"},
                                                   {"RANDOMKEY"}, {"FLUSHALL"},  {"FLUSHDB"}};
  for (auto& cmd : wide) {
    INFO(cmd[0]);
    CHECK(k1.call({"MULTI"}) == ok);
    CHECK(k1.call({"SET", "{m}x", "1"}) == std::string("+QUEUED\r\n"));
    auto r = k1.call(cmd).value_or("");
    CHECK_MESSAGE((starts(r, "-ERR") && r.find("inside MULTI") != std::string::npos), r);
    CHECK(starts(k1.call({"EXEC"}), "-EXECABORT"));
    CHECK(k2.call({"EXISTS", "{m}x"}) == std::string(":0\r\n"));
  }
  CHECK(k3.call({"MULTI"}) == ok);
  CHECK(starts(k3.call({"DBSIZE"}), "-ERR"));
  CHECK(starts(k3.call({"EXEC"}), "-EXECABORT"));
  CHECK(k3.call({"DBSIZE"}) != std::string(":0\r\n")); // the keys written above
}

TEST_CASE("INFO persistence, the write-behind gauges and MEMORY STATS describe the cluster store") {
  // L3 commits only after a minute here: the writes wait in the store's
  // queue or L3's batch, and a cluster node reports them as a single node
  // reports its write-behind queue (they read 0 before session 15).
  test_cluster c;
  c.start_ring(2, {"--kura.l3.batch-max-age=60s", "--kura.l3.batch-max-writes=1000000"});
  INFO(c.logs());
  client k1(c["n1"].port);
  for (int i = 0; i < 50; ++i)
    REQUIRE(k1.call({"SET", "wb:" + std::to_string(i), "v"}) == ok);
  auto info_num = [](const std::string& info, const std::string& name) {
    auto p = info.find("\n" + name + ":");
    return p == std::string::npos ? -1
                                  : std::strtoll(info.c_str() + p + name.size() + 2, nullptr, 10);
  };
  std::string info;
  CHECK(wait_for([&] {
    info = k1.call({"INFO", "persistence"}).value_or("");
    return info_num(info, "kura_l3_write_behind_queue") +
               info_num(info, "kura_l3_uncommitted_writes") >=
           50;
  }));
  INFO("INFO persistence on n1: " << info);
  CHECK(wait_for([&] {
    return metric_value(c["n1"].metrics_port, "kura_l3_write_behind_queue") +
               metric_value(c["n1"].metrics_port, "kura_l3_uncommitted_writes") >=
           50;
  }));
  // MEMORY STATS counts the read cache in front of the cluster data (the
  // local keyspace, which stays empty on a cluster node, before).
  for (int i = 0; i < 50; ++i)
    REQUIRE(k1.call({"GET", "wb:" + std::to_string(i)}) == bulk("v"));
  auto stats = k1.call({"MEMORY", "STATS"}).value_or("");
  INFO("MEMORY STATS on n1: " << stats);
  auto field = [&](const std::string& name) {
    auto p = stats.find("$" + std::to_string(name.size()) + "\r\n" + name + "\r\n:");
    return p == std::string::npos ? -1
                                  : std::strtoll(stats.c_str() + p + name.size() + 6 +
                                                     std::to_string(name.size()).size(),
                                                 nullptr, 10);
  };
  CHECK(field("keys.count") >= 1);
  CHECK(field("total.allocated") > 0);
}

TEST_CASE("a value larger than the whole L3 budget is refused on a cluster node, not acknowledged "
          "and then held only in memory") {
  // Session 20 (persist19 fixed it on a lone node): a 2 MiB SET with
  // --kura.l3.max-bytes=1048576 answered +OK; each replica's store then
  // refused the record ("needs more than the whole L3 budget") and held the
  // value in memory only (KURA.HELD: l3=none l4=none), gone on a restart.
  auto args = patient;
  args.push_back("--kura.l3.max-bytes=1048576");
  test_cluster c;
  c.start_ring(3, args);
  INFO(c.logs());
  client k1(c["n1"].port), k2(c["n2"].port), k3(c["n3"].port);
  const std::string big(2u << 20, 'b');
  auto refused = [](const std::optional<std::string>& r) {
    return starts(r, "-ERR out_of_space: value of 2097152 bytes is too large for L3") &&
           r->find("kura.l3.max-bytes") != std::string::npos;
  };
  for (auto* k : {&k1, &k2, &k3}) { // coordinators that own the key, replicate it, or neither
    CHECK(refused(k->call({"SET", "big", big})));
    CHECK(refused(k->call({"SET", "big", big, "EX", "100"})));
    CHECK(refused(k->call({"MSET", "{b}1", "small", "{b}2", big})));
  }
  // a value computed at the owner: APPEND past the budget
  REQUIRE(k1.call({"SET", "grow", std::string(600u << 10, 'g')}) == ok);
  auto grown = k2.call({"APPEND", "grow", std::string(600u << 10, 'h')});
  CHECK_MESSAGE(starts(grown, "-ERR out_of_space: value of "), grown.value_or("(none)"));
  // nothing of the refused writes exists anywhere; the rest is unchanged
  for (auto* k : {&k1, &k2, &k3}) {
    CHECK(k->call({"EXISTS", "big", "{b}1", "{b}2"}) == std::string(":0\r\n"));
    CHECK(k->call({"STRLEN", "grow"}) == std::string(":614400\r\n"));
  }
  CHECK(k3.call({"SET", "big", "small"}) == ok);
  CHECK(k1.call({"GET", "big"}) == std::string("$5\r\nsmall\r\n"));
}

TEST_CASE("a GET a node answers from its own copy replies as a routed GET does, in order") {
  // GETs of keys a node replicates are answered there without routing
  // (node/cluster_routing.hpp get_here); these replies must be those of the
  // routed path: values, nil, RESP3's null, WRONGTYPE, read-your-writes and
  // the order of a pipeline mixing them with routed commands.
  test_cluster c;
  c.start_ring(3, patient);
  INFO(c.logs());
  client k1(c["n1"].port), k2(c["n2"].port);
  auto own = [&](const std::string& tag) { return key_owned(k1, "n1", "n2", tag); };
  auto on = own("here"), miss = own("miss"), h = own("hash"), mine = own("mine");
  auto off = key_owned(k1, "n2", "n3", "there"); // n1 holds no copy
  auto off2 = key_owned(k1, "n2", "n3", "there2");
  REQUIRE(!on.empty());
  REQUIRE(!miss.empty());
  REQUIRE(!h.empty());
  REQUIRE(!mine.empty());
  REQUIRE(!off.empty());
  REQUIRE(!off2.empty());

  REQUIRE(k2.call({"SET", on, "v1"}) == ok);
  REQUIRE(k2.call({"SET", off, "w1"}) == ok);
  CHECK(k1.call({"GET", on}) == bulk("v1"));
  CHECK(k1.call({"GET", miss}) == std::string("$-1\r\n"));
  REQUIRE(k2.call({"HSET", h, "f", "v"}) == std::string(":1\r\n"));
  CHECK(starts(k1.call({"GET", h}), "-WRONGTYPE"));
  REQUIRE(k2.call({"DEL", on}) == std::string(":1\r\n"));
  CHECK(k1.call({"GET", on}) == std::string("$-1\r\n"));
  CHECK(starts(k1.call({"GET"}), "-ERR wrong number of arguments"));
  CHECK(starts(k1.call({"GET", on, "extra"}), "-ERR wrong number of arguments"));

  // n1 reads `off` from its replicas (routed); wait until the ring settled
  for (int i = 0; i < 100 && k1.call({"GET", off}) != bulk("w1"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  REQUIRE(k1.call({"GET", off}) == bulk("w1"));
  REQUIRE(k1.call({"SET", mine, "m1"}) == ok);

  // One pipeline: a routed read and a routed write (n1 fetches `off` from
  // its replicas, waits for the acks of `off2`'s copies) with GETs answered
  // here between them: every reply in command order. (No write of a key the
  // pipeline reads: a routed read may see a later write of the same
  // pipeline, on main too - bench/RESULTS.md, cluster23g.)
  std::string batch;
  for (const auto& cmd : std::vector<std::vector<std::string>>{{"GET", off},
                                                               {"GET", mine},
                                                               {"GET", miss},
                                                               {"SET", off2, "x"},
                                                               {"GET", mine},
                                                               {"GET", miss}})
    batch += client::multibulk(cmd);
  REQUIRE(k1.send(batch));
  CHECK(k1.reply() == bulk("w1"));
  CHECK(k1.reply() == bulk("m1"));
  CHECK(k1.reply() == std::string("$-1\r\n"));
  CHECK(k1.reply() == ok);
  CHECK(k1.reply() == bulk("m1"));
  CHECK(k1.reply() == std::string("$-1\r\n"));
  CHECK(k1.call({"GET", off2}) == bulk("x"));
  REQUIRE(k1.call({"SET", off, "w2"}) == ok);
  REQUIRE(k1.call({"SET", mine, "m2"}) == ok);

  // RESP3: the null is RESP3's, as on the routed path
  client r3(c["n1"].port);
  REQUIRE(r3.call({"HELLO", "3"}));
  CHECK(r3.call({"GET", miss}) == std::string("_\r\n"));
  CHECK(r3.call({"GET", mine}) == bulk("m2"));
  CHECK(r3.call({"GET", off}) == bulk("w2"));

  // a cluster-mode connection (it asked for the slot map): served here, no
  // redirection, for the keys n1 replicates; MOVED for the others
  client cm(c["n1"].port);
  REQUIRE(cm.call({"CLUSTER", "SLOTS"}));
  CHECK(cm.call({"GET", mine}) == bulk("m2"));
  CHECK(starts(cm.call({"GET", off}), "-MOVED"));
  CHECK(cm.call({"ASKING"}) == ok);
  CHECK(cm.call({"GET", mine}) == bulk("m2"));
  // inside MULTI a GET is queued, not answered
  CHECK(k1.call({"MULTI"}) == ok);
  CHECK(k1.call({"GET", mine}) == std::string("+QUEUED\r\n"));
  CHECK(k1.call({"EXEC"}) == std::string("*1\r\n") + bulk("m2"));
}

TEST_CASE("a pipelined read answers the writes before it, never a later one of its pipeline") {
  // `SET k m1`, `GET k`, `SET k m2` in one write: Redis answers m1 for the
  // GET. On main a node whose read was not answered from its copy at once
  // answered m2 (an owner or replica gathering after the ring changed: the
  // read finished after the second SET was applied) or TRYAGAIN (a
  // non-replica: its floor had risen to m2's version, the replica's m1
  // vouched for nothing); and `INCR k`, `SET k 5` through a non-owner ran
  // the SET first (the INCR, forwarded, answered 6). Through the owner, the
  // replica (also a READONLY connection) and a node with no copy, at once
  // after the ring formed (n2 and n3 gained slots: their reads gather) and
  // once it settled.
  test_cluster c;
  c.start_ring(3, patient);
  INFO(c.logs());
  client k1(c["n1"].port), k2(c["n2"].port), k3(c["n3"].port), ro(c["n2"].port);
  REQUIRE(ro.call({"READONLY"}) == ok);
  std::vector<std::pair<std::string, client*>> vias{
      {"owner", &k1}, {"replica", &k2}, {"readonly replica", &ro}, {"no copy", &k3}};
  std::vector<std::string> keys; // n2 owns them, n1 replicates them: n3 has no copy
  for (int i = 0; keys.size() < 6 * vias.size(); ++i) {
    REQUIRE(i < 5000);
    auto key = "{order" + std::to_string(i) + "}k";
    auto own = bulk_array(k1.call({"KURA.OWNERS", key}).value_or(""));
    if (own.size() == 2 && own[0] == "n2" && own[1] == "n1")
      keys.push_back(key);
  }
  // (keys owned by n2: "owner" is then k2, "replica" k1)
  std::swap(vias[0].second, vias[1].second);
  auto round = [&](size_t first) {
    for (size_t v = 0; v < vias.size(); ++v) {
      const std::string& name = vias[v].first; // (clang's C++17 cannot capture a binding)
      client* k = vias[v].second;
      for (size_t j = 0; j < 3; ++j) {
        const auto& key = keys[first + v * 3 + j];
        INFO(name << " " << key);
        std::string batch;
        for (const auto& cmd : std::vector<std::vector<std::string>>{{"SET", key, "m1"},
                                                                     {"GET", key},
                                                                     {"SET", key, "m2"},
                                                                     {"GET", key},
                                                                     {"SET", key, "10"},
                                                                     {"INCR", key},
                                                                     {"SET", key, "5"},
                                                                     {"GET", key}})
          batch += client::multibulk(cmd);
        REQUIRE(k->send(batch));
        for (const auto& want :
             {ok, bulk("m1"), ok, bulk("m2"), ok, std::string(":11\r\n"), ok, bulk("5")}) {
          auto got = k->reply(30000);
          CHECK_MESSAGE(got == want, "want " << want << " got " << got.value_or("(no reply)"));
        }
      }
    }
  };
  round(0);
  // settled: every node serves a key it holds no copy of
  for (int i = 0; i < 100 && k3.call({"GET", keys[0]}) != bulk("5"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms(3000)));
  round(3 * vias.size());
}

TEST_CASE("writes completed by one batch of acks answer every connection, in command order") {
  // A peer's acks come as one batch and complete many writes of several
  // connections at once; each connection's replies then leave together
  // (node/resp_server.cpp flush_delivered, after cluster_core delivered the
  // batch). Eight connections pipeline SET a, SET b, GET per key (owner n1,
  // replica n2 or n3) before any reply is read: every connection gets every
  // reply, in command order, and both copies hold b.
  test_cluster c;
  c.start_ring(3, patient);
  INFO(c.logs());
  client k1(c["n1"].port), k2(c["n2"].port), k3(c["n3"].port);
  auto t2 = key_owned(k1, "n1", "n2", "batch2"), t3 = key_owned(k1, "n1", "n3", "batch3");
  REQUIRE(!t2.empty());
  REQUIRE(!t3.empty());
  constexpr int conns = 8, per_conn = 40;
  std::vector<client> cs;
  for (int i = 0; i < conns; ++i) {
    cs.emplace_back(c["n1"].port);
    REQUIRE(cs.back().ok());
  }
  auto key = [&](int ci, int i) { // the tag's slot, so the same owners
    return (i % 2 == 0 ? t2 : t3) + ":" + std::to_string(ci) + ":" + std::to_string(i);
  };
  auto val = [](int ci, int i, char v) {
    return std::string("c") + std::to_string(ci) + "-" + std::to_string(i) + v;
  };
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    for (int ci = 0; ci < conns; ++ci) {
      std::string batch;
      for (int i = 0; i < per_conn; ++i) {
        batch += client::multibulk({"SET", key(ci, i), val(ci, i, char('a' + 2 * round))});
        batch += client::multibulk({"SET", key(ci, i), val(ci, i, char('b' + 2 * round))});
        batch += client::multibulk({"GET", key(ci, i)});
      }
      REQUIRE(cs[static_cast<size_t>(ci)].send(batch));
    }
    int wrong = 0;
    for (int ci = 0; ci < conns; ++ci)
      for (int i = 0; i < per_conn; ++i) {
        auto& k = cs[static_cast<size_t>(ci)];
        std::string want_b = bulk(val(ci, i, char('b' + 2 * round)));
        bool silent = false;
        for (const auto& want : {ok, ok, want_b}) {
          auto got = k.reply(30000);
          if (got != want && ++wrong <= 5)
            FAIL_CHECK("connection " << ci << " key " << i << ": want " << want << " got "
                                     << got.value_or("(no reply)"));
          if (!got) {
            silent = true; // a reply that never left: the rest of it cannot come
            break;
          }
        }
        if (silent)
          break;
      }
    CHECK(wrong == 0);
    // acknowledged by both copies (write-acks 2): the replica answers b at once
    for (int ci = 0; ci < conns; ++ci)
      for (int i = 0; i < per_conn; ++i) {
        auto& rep = i % 2 == 0 ? k2 : k3;
        auto got = rep.call({"GET", key(ci, i)});
        CHECK_MESSAGE(got == bulk(val(ci, i, char('b' + 2 * round))),
                      "replica of connection " << ci << " key " << i << " got "
                                               << got.value_or("(no reply)"));
      }
  }
}
