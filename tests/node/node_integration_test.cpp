// Integration tests against the real kura-node process: redis-cli and raw
// sockets, pipelining, binary values, malformed input, abrupt disconnects,
// a thousand connections, limits, L3 misses and promotion, active expiry,
// restart after SIGKILL, clean shutdown, start-up validation, /metrics.
#include "node_process.hpp"

#include <doctest/doctest.h>

#include <algorithm>

using namespace kura::test;

namespace {

/// After each abuse the node must still serve a fresh client.
void check_serves(node_process& n) {
  REQUIRE(n.alive());
  client c(n.port);
  REQUIRE(c.ok());
  CHECK(c.call({"PING"}) == std::optional<std::string>{"+PONG\r\n"});
  CHECK(c.call({"SET", "alive", "yes"}) == std::optional<std::string>{"+OK\r\n"});
  CHECK(c.call({"GET", "alive"}) == std::optional<std::string>{"$3\r\nyes\r\n"});
}

/// Waits until L3 has applied and committed every write (INFO l3).
bool wait_l3_committed(node_process& n) {
  for (int i = 0; i < 400; ++i) {
    if (n.info_field("l3_write_behind_queue") == "0" &&
        n.info_field("l3_uncommitted_writes") == "0")
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return false;
}

} // namespace

TEST_CASE("redis-cli talks to kura-node") {
  node_process n;
  REQUIRE_MESSAGE(n.ready, n.log());
  CHECK(n.cli("PING") == "PONG\n");
  CHECK(n.cli("SET greeting hello") == "OK\n");
  CHECK(n.cli("GET greeting") == "hello\n");
  CHECK(n.cli("SET s abc") == "OK\n");
  CHECK(n.cli("INCR s").find("ERR value is not an integer or out of range") != std::string::npos);
  CHECK(n.cli("DBSIZE") == "2\n");
  CHECK(n.cli("KEYS 'gree*'") == "greeting\n");
  CHECK(n.cli("CONFIG GET save") == "save\n\n");
  auto tier = n.cli("KURA.TIER greeting");
  CHECK((tier == "l1\n" || tier == "l2\n"));
  check_serves(n);
}

TEST_CASE("pipelined batch: replies come back complete and in order") {
  node_process n;
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  std::string batch;
  const int count = 2000;
  for (int i = 0; i < count; ++i) {
    batch += client::multibulk({"SET", "k" + std::to_string(i), "v" + std::to_string(i)});
    batch += client::multibulk({"GET", "k" + std::to_string(i)});
    batch += "INCR counter\r\n"; // inline commands mixed in
  }
  REQUIRE(c.send(batch));
  for (int i = 0; i < count; ++i) {
    auto v = "v" + std::to_string(i);
    REQUIRE(c.reply() == std::optional<std::string>{"+OK\r\n"});
    REQUIRE(c.reply() == "$" + std::to_string(v.size()) + "\r\n" + v + "\r\n");
    REQUIRE(c.reply() == ":" + std::to_string(i + 1) + "\r\n");
  }
  // redis-cli --pipe style mass insertion
  check_serves(n);
}

TEST_CASE("binary values with CR, LF and NUL round-trip") {
  node_process n;
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  std::string v("\r\n\0\r\n*1\r\n$3\r\n\xff\x00", 16);
  std::string k("key\0with\nnul", 12);
  CHECK(c.call({"SET", k, v}) == std::optional<std::string>{"+OK\r\n"});
  CHECK(c.call({"GET", k}) == "$16\r\n" + v + "\r\n");
  CHECK(c.call({"STRLEN", k}) == std::optional<std::string>{":16\r\n"});
  CHECK(c.call({"APPEND", k, std::string("\0", 1)}) == std::optional<std::string>{":17\r\n"});
  check_serves(n);
}

TEST_CASE("malformed input gets Redis's protocol error, closes only that connection") {
  node_process n;
  REQUIRE_MESSAGE(n.ready, n.log());
  struct abuse {
    std::string bytes;
    std::string reply;
  };
  std::vector<abuse> cases = {
      {"*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
      {"*-5x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
      {"SET k \"unbalanced\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
      {"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2147483648\r\n",
       "-ERR Protocol error: invalid bulk length\r\n"},
      {"*1\r\n:5\r\n", "-ERR Protocol error: expected '$', got ':'\r\n"},
  };
  client bystander(n.port);
  REQUIRE(bystander.call({"SET", "b", "1"}) == std::optional<std::string>{"+OK\r\n"});
  for (auto& a : cases) {
    CAPTURE(a.bytes);
    client c(n.port);
    REQUIRE(c.send(a.bytes));
    CHECK(c.reply() == a.reply);
    CHECK(c.closed_by_peer());
    check_serves(n);
    CHECK(bystander.call({"GET", "b"}) == std::optional<std::string>{"$1\r\n1\r\n"});
  }
  // a line longer than the inline limit without a newline
  client c(n.port);
  c.send(std::string(70 * 1024, 'x'));
  CHECK(c.reply() == std::optional<std::string>{"-ERR Protocol error: too big inline request\r\n"});
  CHECK(c.closed_by_peer());
  check_serves(n);
}

TEST_CASE("a client that disconnects mid-request loses nothing for others") {
  node_process n;
  REQUIRE_MESSAGE(n.ready, n.log());
  {
    client c(n.port);
    c.send("*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$100\r\nonly-a-part");
  } // closed mid-bulk
  {
    client c(n.port);
    c.send(client::multibulk({"SET", "whole", "1"}) + "*2\r\n$3\r\nGET");
  } // one full command, then a torn one
  check_serves(n);
  client c(n.port);
  CHECK(c.call({"EXISTS", "half"}) == std::optional<std::string>{":0\r\n"});
  CHECK(c.call({"GET", "whole"}) == std::optional<std::string>{"$1\r\n1\r\n"});
}

TEST_CASE("a thousand concurrent connections") {
  raise_fd_limit(4096);
  node_process n;
  REQUIRE_MESSAGE(n.ready, n.log());
  std::vector<client> cs;
  cs.reserve(1000);
  for (int i = 0; i < 1000; ++i) {
    cs.emplace_back(n.port);
    REQUIRE(cs.back().ok());
  }
  for (size_t i = 0; i < cs.size(); ++i)
    REQUIRE(cs[i].send(client::multibulk({"SET", "c" + std::to_string(i), std::to_string(i)})));
  for (auto& c : cs)
    REQUIRE(c.reply() == std::optional<std::string>{"+OK\r\n"});
  for (size_t i = 0; i < cs.size(); ++i)
    REQUIRE(cs[i].send(client::multibulk({"GET", "c" + std::to_string((i + 1) % 1000)})));
  for (size_t i = 0; i < cs.size(); ++i) {
    auto v = std::to_string((i + 1) % 1000);
    REQUIRE(cs[i].reply() == "$" + std::to_string(v.size()) + "\r\n" + v + "\r\n");
  }
  CHECK(n.info_field("connected_clients") == "1001");
  cs.clear();
  check_serves(n);
}

TEST_CASE("limits: bulk length, argument count and output buffer close only the offender") {
  node_process n({"--kura.limits.proto-max-bulk-len=1048576", "--kura.limits.max-args=8",
                  "--kura.limits.max-client-output-bytes=65536"});
  REQUIRE_MESSAGE(n.ready, n.log());
  {
    client c(n.port);
    c.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n");
    CHECK(c.reply() == std::optional<std::string>{"-ERR Protocol error: invalid bulk length\r\n"});
    CHECK(c.closed_by_peer());
  }
  {
    client c(n.port);
    c.send("*9\r\n");
    CHECK(c.reply() ==
          std::optional<std::string>{"-ERR Protocol error: invalid multibulk length\r\n"});
    CHECK(c.closed_by_peer());
  }
  {
    client setter(n.port);
    REQUIRE(setter.call({"SET", "big", std::string(60000, 'v')}) ==
            std::optional<std::string>{"+OK\r\n"});
    // ask for ~60 MB of replies and never read: the node cuts this client off
    client c(n.port);
    std::string gets;
    for (int i = 0; i < 1000; ++i)
      gets += "GET big\r\n";
    c.send(gets);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(c.closed_by_peer(20000));
    CHECK(c.buffer().size() < size_t{1000} * 60000);
  }
  check_serves(n);
}

TEST_CASE("memory misses are served from L3 and promoted") {
  // 1 MiB of memory for ~4 MB of data: most keys live only in L3
  node_process n({"--memory-bytes=1048576", "--kura.memory.shards=2"});
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  const int count = 4000;
  std::string batch;
  for (int i = 0; i < count; ++i)
    batch +=
        client::multibulk({"SET", "key:" + std::to_string(i), std::string(1000, 'a' + i % 26)});
  REQUIRE(c.send(batch));
  for (int i = 0; i < count; ++i)
    REQUIRE(c.reply() == std::optional<std::string>{"+OK\r\n"});
  CHECK(c.call({"KURA.TIER", "key:0"}) == std::optional<std::string>{"$2\r\nl3\r\n"});
  // read everything back, pipelined: misses wait for L3, order is kept
  batch.clear();
  for (int i = 0; i < count; ++i)
    batch += client::multibulk({"GET", "key:" + std::to_string(i)});
  REQUIRE(c.send(batch));
  for (int i = 0; i < count; ++i)
    REQUIRE(c.reply() == "$1000\r\n" + std::string(1000, 'a' + i % 26) + "\r\n");
  CHECK(c.call({"GET", "key:none"}) == std::optional<std::string>{"$-1\r\n"});
  CHECK(c.call({"DBSIZE"}) == ":" + std::to_string(count) + "\r\n");
  CHECK(c.call({"EXISTS", "key:1", "key:2", "nope"}) == std::optional<std::string>{":2\r\n"});
  CHECK(c.call({"DEL", "key:3", "key:4"}) == std::optional<std::string>{":2\r\n"});
  CHECK(c.call({"GET", "key:3"}) == std::optional<std::string>{"$-1\r\n"});
  CHECK(c.call({"INCR", "key:5"}) ==
        std::optional<std::string>{"-ERR value is not an integer or out of range\r\n"});
  // SCAN walks every key once
  std::string cursor = "0";
  size_t seen = 0;
  for (int round = 0; round < 10000; ++round) {
    auto r = c.call({"SCAN", cursor, "COUNT", "500"});
    REQUIRE(r);
    auto p = r->find("\r\n", 4);
    auto q = r->find("\r\n", p + 2);
    cursor = r->substr(p + 2, q - p - 2);
    seen += std::stoul(r->substr(q + 3));
    if (cursor == "0")
      break;
  }
  CHECK(seen == count - 2);
  check_serves(n);
}

TEST_CASE("write-behind back-pressure: a tiny high-water mark slows clients, loses nothing") {
  node_process n(
      {"--kura.l3.write-behind-high-water=50", "--kura.l3.write-behind-high-water-bytes=65536"});
  REQUIRE_MESSAGE(n.ready, n.log());
  std::vector<client> cs;
  for (int k = 0; k < 4; ++k)
    cs.emplace_back(n.port);
  const int per = 1500;
  for (int k = 0; k < 4; ++k) {
    std::string batch;
    for (int i = 0; i < per; ++i)
      batch += client::multibulk(
          {"SET", "bp" + std::to_string(k) + ":" + std::to_string(i), std::string(100, 'x')});
    REQUIRE(cs[static_cast<size_t>(k)].send(batch));
  }
  for (auto& c : cs)
    for (int i = 0; i < per; ++i)
      REQUIRE(c.reply() == std::optional<std::string>{"+OK\r\n"});
  REQUIRE(wait_l3_committed(n));
  CHECK(cs[0].call({"DBSIZE"}) == ":" + std::to_string(4 * per) + "\r\n");
  check_serves(n);
}

TEST_CASE("expired keys disappear on their own (active expiry)") {
  node_process n({"--kura.expiry.sweep-interval=20ms"});
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  for (int i = 0; i < 200; ++i)
    REQUIRE(c.call({"SET", "e" + std::to_string(i), "v", "PX", "100"}) ==
            std::optional<std::string>{"+OK\r\n"});
  REQUIRE(c.call({"SET", "keep", "v"}) == std::optional<std::string>{"+OK\r\n"});
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    auto l1 = std::stoul(n.info_field("l1_entries"));
    auto l2 = std::stoul(n.info_field("l2_entries"));
    gone = l1 + l2 == 1;
  }
  CHECK(gone); // nobody read the expired keys: the sweep removed them
  // DBSIZE is O(1) (L3's record count): as in Redis, expired keys count until
  // a sweep removes them, and L3's sweep runs on its own timer
  std::optional<std::string> size;
  for (int i = 0; i < 200; ++i) {
    size = c.call({"DBSIZE"});
    if (size == std::optional<std::string>{":1\r\n"})
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  CHECK(size == std::optional<std::string>{":1\r\n"});
}

TEST_CASE("restart: everything L3 committed survives SIGKILL") {
  temp_dir dir;
  const int count = 3000;
  {
    node_process n({}, dir.path);
    REQUIRE_MESSAGE(n.ready, n.log());
    client c(n.port);
    std::string batch;
    for (int i = 0; i < count; ++i)
      batch += client::multibulk({"SET", "r" + std::to_string(i), "value-" + std::to_string(i)});
    batch += client::multibulk({"SET", "ttl", "x", "EX", "1000"});
    batch += client::multibulk({"DEL", "r7"});
    REQUIRE(c.send(batch));
    for (int i = 0; i < count + 2; ++i)
      REQUIRE(c.reply());
    REQUIRE(wait_l3_committed(n));
    CHECK(n.stop(SIGKILL) == 128 + SIGKILL);
  }
  node_process n({}, dir.path);
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  std::string batch;
  for (int i = 0; i < count; ++i)
    batch += client::multibulk({"GET", "r" + std::to_string(i)});
  REQUIRE(c.send(batch));
  for (int i = 0; i < count; ++i) {
    auto v = "value-" + std::to_string(i);
    if (i == 7)
      CHECK(c.reply() == std::optional<std::string>{"$-1\r\n"});
    else
      REQUIRE(c.reply() == "$" + std::to_string(v.size()) + "\r\n" + v + "\r\n");
  }
  auto ttl = c.call({"TTL", "ttl"});
  REQUIRE(ttl);
  CHECK(std::stol(ttl->substr(1)) > 900);
  CHECK(c.call({"DBSIZE"}) == ":" + std::to_string(count) + "\r\n");
}

TEST_CASE("SIGTERM and SIGINT shut down cleanly and flush L3") {
  temp_dir dir;
  for (int sig : {SIGTERM, SIGINT}) {
    {
      node_process n({"--kura.l3.batch-max-age=10s", "--kura.l3.batch-max-writes=100000"},
                     dir.path);
      REQUIRE_MESSAGE(n.ready, n.log());
      client c(n.port);
      REQUIRE(c.call({"SET", "s" + std::to_string(sig), "kept"}) ==
              std::optional<std::string>{"+OK\r\n"});
      c.close();
      CHECK(n.stop(sig) == 0);
      CHECK(n.log().find("stopped cleanly") != std::string::npos);
    }
    node_process n({}, dir.path);
    REQUIRE_MESSAGE(n.ready, n.log());
    client c(n.port);
    CHECK(c.call({"GET", "s" + std::to_string(sig)}) ==
          std::optional<std::string>{"$4\r\nkept\r\n"});
    CHECK(n.stop(SIGTERM) == 0);
  }
}

TEST_CASE("bad configuration stops start-up with one clear line") {
  temp_dir dir;
  auto data = "--data-dir=" + dir.path + "/d";
  auto port = "--port=" + std::to_string(free_port());
  auto mport = "--metrics-port=" + std::to_string(free_port());
  auto cport = "--cluster-port=" + std::to_string(free_port());
  std::string out;
  auto expect_fail = [&](std::vector<std::string> args, const std::string& says) {
    CAPTURE(args);
    int rc = run_node_once(args, out);
    CHECK(rc != 0);
    CHECK(out.find(says) != std::string::npos);
    CHECK(std::count(out.begin(), out.end(), '\n') == 1);
    CAPTURE(out);
  };
  expect_fail({port, mport, cport, data, "--port=abc"}, "error");
  expect_fail({port, mport, cport, data, "--no-such-flag=1"}, "error");
  expect_fail({port, mport, cport, data, "--memory-bytes=5"}, "memory-bytes");
  expect_fail({port, mport, cport, data, "--kura.memory.shards=0"}, "kura.memory.shards");
  expect_fail({port, mport, cport, "--data-dir=/proc/kura-cannot-write"}, "data dir");
  {
    std::ofstream f(dir.path + "/file");
    f << "x";
  }
  expect_fail({port, mport, cport, "--data-dir=" + dir.path + "/file"}, "data dir");
  {
    std::ofstream f(dir.path + "/bad.conf");
    f << "[kura.l3]\nsycn=true\n";
  }
  expect_fail({port, mport, cport, data, "--config-file=" + dir.path + "/bad.conf"},
              "unknown key 'kura.l3.sycn'");
  {
    std::ofstream f(dir.path + "/typo.conf");
    f << "[kura.memory]\nshards=\"four\"\n";
  }
  expect_fail({port, mport, cport, data, "--config-file=" + dir.path + "/typo.conf"}, "error");
  // port in use
  node_process running;
  REQUIRE(running.ready);
  expect_fail({"--port=" + std::to_string(running.port), mport, cport, data}, "cannot listen");
  expect_fail({port, "--metrics-port=" + std::to_string(running.metrics_port), cport, data},
              "metrics");
  // a good config file is accepted
  {
    std::ofstream f(dir.path + "/good.conf");
    f << "port=1\n[kura.memory]\nshards=2\n[kura.l3]\nsync=false\nbatch-max-age=20ms\n";
  }
  // values from the file apply; flags on the command line win over the file
  node_process ok({"--config-file=" + dir.path + "/good.conf", "--kura.l3.enabled=true"});
  CHECK(ok.ready);
  // the node answers PING a moment before it prints its ready line
  auto logged = [&] { return ok.log().find("shards=2") != std::string::npos; };
  for (int i = 0; i < 400 && !logged(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  CHECK_MESSAGE(logged(), ok.log());
  expect_fail({port, mport, cport, data, "--kura.l3.enabled=maybe"}, "kura.l3.enabled");
}

TEST_CASE("with L3 off kura-node is a pure memory cache") {
  node_process n({"--kura.l3.enabled=false"});
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  CHECK(c.call({"SET", "a", "1"}) == std::optional<std::string>{"+OK\r\n"});
  CHECK(c.call({"GET", "a"}) == std::optional<std::string>{"$1\r\n1\r\n"});
  CHECK(c.call({"DBSIZE"}) == std::optional<std::string>{":1\r\n"});
  CHECK(n.info_field("l3_enabled") == "0");
  CHECK(n.stop() == 0);
}

TEST_CASE("/metrics is Prometheus text that promtool accepts") {
  node_process n;
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  c.call({"SET", "m", "1"});
  c.call({"GET", "m"});
  c.call({"GET", "nope"});
  std::string body;
  for (int i = 0; i < 100; ++i) { // pushed once per second
    body = http_get(n.metrics_port, "/metrics");
    if (body.find("kura_command_calls_total{command=\"get\"} 2") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(body.find("kura_command_calls_total{command=\"get\"} 2") != std::string::npos);
  CHECK(body.find("kura_command_duration_seconds_bucket{command=\"get\"") != std::string::npos);
  CHECK(body.find("kura_tier_entries{tier=\"l1\"}") != std::string::npos);
  CHECK(body.find("kura_tier_hits_total{tier=\"l3\"}") != std::string::npos);
  CHECK(body.find("kura_connected_clients 1") != std::string::npos);
  CHECK(body.find("kura_l3_write_behind_queue") != std::string::npos);
  if (run_shell("command -v promtool").empty()) {
    MESSAGE("promtool not installed: format check skipped");
    return;
  }
  temp_dir d;
  {
    std::ofstream f(d.path + "/m.txt");
    f << body;
  }
  int rc = 0;
  auto out = run_shell("promtool check metrics < " + d.path + "/m.txt 2>&1", &rc);
  CAPTURE(out);
  CHECK(rc == 0);
}

TEST_CASE("a pipelined read of a key that left memory earlier in the pipeline asks L3") {
  // The read-ahead finds `a` in memory for both GETs; DEBUG RELOAD empties
  // memory in between, so the second GET must plan its L3 lookup again
  // (resp_server.cpp, prefetch_ahead: keyspace::removals changed).
  node_process n;
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  REQUIRE(c.ok());
  REQUIRE(c.call({"SET", "a", "hello"}) == std::optional<std::string>{"+OK\r\n"});
  REQUIRE(c.call({"GET", "a"}) == std::optional<std::string>{"$5\r\nhello\r\n"});
  for (int round = 0; round < 3; ++round) {
    std::string batch = client::multibulk({"GET", "a"}) + client::multibulk({"DEBUG", "RELOAD"}) +
                        client::multibulk({"GET", "a"}) + client::multibulk({"GET", "a"});
    REQUIRE(c.send(batch));
    CHECK(c.reply() == std::optional<std::string>{"$5\r\nhello\r\n"});
    CHECK(c.reply() == std::optional<std::string>{"+OK\r\n"});
    CHECK(c.reply() == std::optional<std::string>{"$5\r\nhello\r\n"});
    CHECK(c.reply() == std::optional<std::string>{"$5\r\nhello\r\n"});
  }
  check_serves(n);
}

TEST_CASE("a command that arrived in pieces, then a pipeline, then a command in pieces") {
  // The read-ahead parses whole commands and process() runs them with its
  // arguments (resp_server.cpp): the connection's own parser, which held the
  // first pieces of the first command, must forget them, or it misreads the
  // next command that arrives in pieces.
  node_process n;
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  REQUIRE(c.ok());
  for (int round = 0; round < 3; ++round) {
    const std::string v = "v" + std::to_string(round);
    std::string set = client::multibulk({"SET", "k", v});
    REQUIRE(c.send(set.substr(0, set.size() - 3)));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    REQUIRE(c.send(set.substr(set.size() - 3) + client::multibulk({"GET", "k"}) +
                   client::multibulk({"APPEND", "k", "x"})));
    CHECK(c.reply() == std::optional<std::string>{"+OK\r\n"});
    CHECK(c.reply() == std::optional<std::string>{"$2\r\n" + v + "\r\n"});
    CHECK(c.reply() == std::optional<std::string>{":3\r\n"});
    // a longer command in pieces: a stale parser would read its first piece
    // as the rest of the old command
    const std::string big(100, static_cast<char>('a' + round));
    std::string set2 = client::multibulk({"SET", "k", big});
    REQUIRE(c.send(set2.substr(0, set2.size() - 10)));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    REQUIRE(c.send(set2.substr(set2.size() - 10) + client::multibulk({"GET", "k"})));
    CHECK(c.reply() == std::optional<std::string>{"+OK\r\n"});
    CHECK(c.reply() == std::optional<std::string>{"$100\r\n" + big + "\r\n"});
  }
  check_serves(n);
}
