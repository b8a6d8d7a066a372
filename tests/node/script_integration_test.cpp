// Lua scripting end to end against the real kura-node: a python3-redis
// session (EVAL, EVALSHA through register_script, SCRIPT EXISTS/FLUSH, error
// replies as redis-py raises them), redis-cli EVAL, a declared key that only
// L3 holds after a restart, and a busy script that answers other clients
// -BUSY until SCRIPT KILL stops it.
#include "node_process.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include <sys/wait.h>

using namespace kura::test;

namespace {

const char* redis_py_session = R"PY(
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
print("eval", r.eval("return redis.call('set', KEYS[1], ARGV[1])", 1, "greeting", "hello"))
print("get", r.eval("return redis.call('get', KEYS[1])", 1, "greeting"))
incr = r.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
print("script", incr(keys=["counter"], args=[5]), incr(keys=["counter"], args=[2]))
print("exists", r.script_exists(incr.sha))
print("table", r.eval("return {1, 'two', {3}, redis.status_reply('OK')}", 0))
try:
    r.eval("return redis.call('hget', KEYS[1], 'f')", 1, "greeting")
except redis.exceptions.ResponseError as e:
    print("error", e)
print("flush", r.script_flush())
print("exists", r.script_exists(incr.sha))
print("again", incr(keys=["counter"], args=[1]))
)PY";

/// Connections opened (and answered) before a script starts: a busy node
/// accepts no new connection until the script ends.
std::vector<std::unique_ptr<client>> open_probes(uint16_t port, int n = 50) {
  std::vector<std::unique_ptr<client>> probes;
  for (int i = 0; i < n; ++i) {
    probes.push_back(std::make_unique<client>(port));
    REQUIRE(probes.back()->call({"PING"}) == std::optional<std::string>("+PONG\r\n"));
  }
  return probes;
}

/// Waits until a script is past busy-reply-threshold: a probe's PING is
/// answered -BUSY. Each try uses another probe: a PING that the node answered
/// in the very loop turn the script started in keeps its PONG in CAF's write
/// buffer until the script ends (docs/protocol.md, busy scripts), so such a
/// probe is left behind, not waited for.
bool wait_busy(std::vector<std::unique_ptr<client>>& probes) {
  for (auto& p : probes) {
    if (!p->send(client::multibulk({"PING"})))
      continue;
    auto r = p->reply(1000);
    if (r && r->rfind("-BUSY Redis is busy running a script.", 0) == 0)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

} // namespace

TEST_CASE("python3-redis and redis-cli run scripts; declared keys come from L3") {
  temp_dir dir;
  {
    node_process n({}, dir.path);
    REQUIRE(n.ready);
    std::string script = dir.path + ".py";
    std::ofstream(script) << redis_py_session;
    int rc = -1;
    auto out =
        run_shell("/usr/bin/python3 " + script + " " + std::to_string(n.port) + " 2>&1", &rc);
    std::remove(script.c_str());
    INFO(out);
    CHECK(rc == 0);
    CHECK(out.find("eval b'OK'") != std::string::npos);
    CHECK(out.find("get b'hello'") != std::string::npos);
    CHECK(out.find("script 5 7") != std::string::npos);
    CHECK(out.find("exists [True]") != std::string::npos);
    CHECK(out.find("table [1, b'two', [3], b'OK']") != std::string::npos);
    CHECK(out.find("error WRONGTYPE Operation against a key holding the wrong kind of value "
                   "script: f_") != std::string::npos);
    CHECK(out.find("flush True") != std::string::npos);
    CHECK(out.find("exists [False]") != std::string::npos);
    CHECK(out.find("again 8") != std::string::npos); // redis-py loads it again on NOSCRIPT
    CHECK(n.cli("EVAL \"return redis.call('incr', KEYS[1])\" 1 counter") == "9\n");
    CHECK(n.stop() == 0);
  }
  // after a restart memory is empty: the script's declared key is read from L3
  node_process again({}, dir.path);
  REQUIRE(again.ready);
  CHECK(again.cli("EVAL \"return redis.call('get', KEYS[1])\" 1 greeting") == "hello\n");
  CHECK(again.cli("EVAL_RO \"return redis.call('get', KEYS[1])\" 1 counter") == "9\n");
}

TEST_CASE("a busy script answers others -BUSY until SCRIPT KILL") {
  node_process n;
  REQUIRE(n.ready);
  client runner(n.port), other(n.port);
  REQUIRE(runner.ok());
  REQUIRE(other.ok());
  CHECK(other.call({"CONFIG", "SET", "busy-reply-threshold", "50"}) ==
        std::optional<std::string>("+OK\r\n"));
  CHECK(other.call({"CONFIG", "GET", "lua-time-limit"}) ==
        std::optional<std::string>("*2\r\n$14\r\nlua-time-limit\r\n$2\r\n50\r\n"));
  auto probes = open_probes(n.port);
  REQUIRE(runner.send(client::multibulk({"EVAL", "while true do end", "0"})));
  // PING is answered -BUSY once the script passed the threshold
  REQUIRE(wait_busy(probes));
  CHECK(other.call({"PING"})->rfind("-BUSY Redis is busy running a script.", 0) == 0);
  CHECK(other.call({"MULTI"}) == std::optional<std::string>("+OK\r\n"));
  CHECK(other.call({"INCR", "x"})->rfind("-BUSY", 0) == 0);
  CHECK(other.call({"DISCARD"}) == std::optional<std::string>("+OK\r\n"));
  CHECK(other.call({"SCRIPT", "KILL"}) == std::optional<std::string>("+OK\r\n"));
  auto killed = runner.reply(30000);
  REQUIRE(killed);
  CHECK(killed->rfind("-ERR Script killed by user with SCRIPT KILL...", 0) == 0);
  CHECK(other.call({"PING"}) == std::optional<std::string>("+PONG\r\n"));
  CHECK(runner.call({"PING"}) == std::optional<std::string>("+PONG\r\n"));
  CHECK(other.call({"SCRIPT", "KILL"}) ==
        std::optional<std::string>("-NOTBUSY No scripts in execution right now.\r\n"));
}

TEST_CASE("SHUTDOWN stops a busy script that wrote, and the node") {
  node_process n;
  REQUIRE(n.ready);
  client runner(n.port), other(n.port);
  REQUIRE(runner.ok());
  REQUIRE(other.ok());
  CHECK(other.call({"CONFIG", "SET", "lua-time-limit", "50"}) ==
        std::optional<std::string>("+OK\r\n"));
  auto probes = open_probes(n.port);
  REQUIRE(runner.send(client::multibulk(
      {"EVAL", "redis.call('set', KEYS[1], 'v'); while true do end", "1", "written"})));
  REQUIRE(wait_busy(probes));
  CHECK(other.call({"SCRIPT", "KILL"})->rfind("-UNKILLABLE", 0) == 0);
  REQUIRE(other.send(client::multibulk({"SHUTDOWN", "NOSAVE"})));
  // the node exits by itself (it was not signalled)
  int status = -1;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < until && ::waitpid(n.pid, &status, WNOHANG) != n.pid)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(WIFEXITED(status));
  n.pid = -1;
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(runner.reply(10000)->rfind("-ERR Script killed by user", 0) == 0);
}
