// Hashes and transactions in a real kura-node, through redis-cli and a raw
// client: a hash survives a restart through L3 and is read back from L3 when
// memory no longer holds it; MULTI/EXEC through redis-cli; EXEC reads keys
// that only L3 holds (its plan looks them up before the queue runs).
#include "node_process.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace kura::test;

namespace {

void wait_l3_drained(node_process& n) {
  if (!n.l3_idle())
    FAIL("L3 did not drain its write-behind queue");
}

std::string filler(int i) {
  return "filler-" + std::to_string(i) + std::string(400, 'x');
}

} // namespace

TEST_CASE("a hash survives a restart via L3 and is served from L3") {
  temp_dir dir;
  {
    node_process n({"--memory-bytes=1048576"}, dir.path);
    REQUIRE_MESSAGE(n.ready, n.log());
    CHECK(n.cli("HSET user:1 name ada lang c++ visits 1") == "3\n");
    CHECK(n.cli("HINCRBY user:1 visits 41") == "42\n");
    CHECK(n.cli("EXPIRE user:1 100000") == "1\n");
    CHECK(n.cli("SET plain v") == "OK\n");
    wait_l3_drained(n);
    CHECK(n.stop() == 0);
  }
  node_process n({"--memory-bytes=1048576"}, dir.path);
  REQUIRE_MESSAGE(n.ready, n.log());
  CHECK(n.cli("KURA.TIER user:1") == "l3\n"); // a fresh process: only L3 has it
  CHECK(n.cli("TYPE user:1") == "hash\n");
  CHECK(n.cli("HGETALL user:1") == "name\nada\nlang\nc++\nvisits\n42\n");
  auto ttl = std::atoi(n.cli("TTL user:1").c_str());
  CHECK(ttl > 99000);
  const std::string wrongtype = "WRONGTYPE Operation against a key holding the wrong kind";
  CHECK(n.cli("GET user:1").find(wrongtype) == 0);
  CHECK(n.cli("HGET plain f").find(wrongtype) == 0);
  // 4 MB of strings through 1 MB of memory: the first ones only L3 holds
  client c(n.port);
  REQUIRE(c.ok());
  std::string buf;
  for (int i = 0; i < 10000; ++i)
    buf += client::multibulk({"SET", "f:" + std::to_string(i), filler(i)});
  REQUIRE(c.send(buf));
  for (int i = 0; i < 10000; ++i)
    REQUIRE(c.reply(20000));
  wait_l3_drained(n);
  CHECK(n.cli("HGET user:1 lang") == "c++\n");
  // EXEC reads keys only L3 holds: the early fillers left memory long ago
  CHECK(n.cli("KURA.TIER f:0") == "l3\n");
  CHECK(c.send(client::multibulk({"MULTI"}) + client::multibulk({"GET", "f:0"}) +
               client::multibulk({"HGET", "user:1", "name"}) + client::multibulk({"GET", "f:1"}) +
               client::multibulk({"EXEC"})));
  CHECK(c.reply(5000) == std::string("+OK\r\n"));
  for (int i = 0; i < 3; ++i)
    CHECK(c.reply(5000) == std::string("+QUEUED\r\n"));
  auto f0 = filler(0), f1 = filler(1);
  CHECK(c.reply(20000) == "*3\r\n$" + std::to_string(f0.size()) + "\r\n" + f0 +
                              "\r\n$3\r\nada\r\n$" + std::to_string(f1.size()) + "\r\n" + f1 +
                              "\r\n");
}

TEST_CASE("MULTI/EXEC and WATCH through redis-cli") {
  node_process n;
  REQUIRE_MESSAGE(n.ready, n.log());
  // one redis-cli session reading commands from stdin keeps one connection
  auto out = run_shell("printf 'MULTI\\nSET a 1\\nINCR a\\nHSET h f v\\nEXEC\\nGET a\\n' | "
                       "redis-cli -p " +
                       std::to_string(n.port));
  CHECK(out == "OK\nQUEUED\nQUEUED\nQUEUED\nOK\n2\n1\n2\n");
  out = run_shell("printf 'MULTI\\nNOSUCH\\nEXEC\\n' | redis-cli -p " + std::to_string(n.port) +
                  " 2>&1");
  CHECK(out.find("EXECABORT Transaction discarded because of previous errors.") !=
        std::string::npos);
  // WATCH broken by another connection: EXEC answers a null array
  client c(n.port);
  REQUIRE(c.ok());
  CHECK(c.send(client::multibulk({"WATCH", "a"})));
  CHECK(c.reply(5000) == std::string("+OK\r\n"));
  CHECK(n.cli("SET a 100") == "OK\n");
  CHECK(c.send(client::multibulk({"MULTI"}) + client::multibulk({"INCR", "a"}) +
               client::multibulk({"EXEC"})));
  CHECK(c.reply(5000) == std::string("+OK\r\n"));
  CHECK(c.reply(5000) == std::string("+QUEUED\r\n"));
  CHECK(c.reply(5000) == std::string("*-1\r\n"));
  CHECK(n.cli("GET a") == "100\n");
}
