// The server/client half of Redis compatibility end to end, against a real
// kura-node: redis-cli SHUTDOWN (L3 flushed, exit 0, data there after a
// restart), client tracking as redis-py (python3-redis) and a RESP3 client see
// it, CLIENT KILL, INFO keyspace's expires with L3.
#include "node_process.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <sys/wait.h>

using namespace kura::test;

namespace {

/// Waits for the node process to exit on its own; its exit code (-1: still up).
int wait_exit(node_process& n, int timeout_ms = 30000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    int st = 0;
    if (::waitpid(n.pid, &st, WNOHANG) == n.pid) {
      n.pid = -1;
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

/// redis-py (RESP2, as Debian 12 ships it): a listener subscribed to
/// __redis__:invalidate, a tracking client redirecting to it, another client
/// writing. Prints what the listener received.
const char* redis_py_tracking = R"PY(
import sys, redis
port = int(sys.argv[1])
listener = redis.Connection(host="127.0.0.1", port=port)
listener.connect()
listener.send_command("CLIENT", "ID")
lid = listener.read_response()
listener.send_command("SUBSCRIBE", "__redis__:invalidate")
print("subscribed", listener.read_response())
tracker = redis.Redis(host="127.0.0.1", port=port, single_connection_client=True)
tracker.execute_command("CLIENT", "TRACKING", "on", "REDIRECT", lid)
tracker.set("cached", "v1")
print("read", tracker.get("cached"))
writer = redis.Redis(host="127.0.0.1", port=port)
writer.set("cached", "v2")
if not listener.can_read(timeout=10):
    print("no invalidation")
    sys.exit(1)
print("invalidation", listener.read_response())
)PY";

std::string info_line(node_process& n, const std::string& section, const std::string& prefix) {
  auto out = n.cli("INFO " + section);
  auto p = out.find(prefix);
  return p == std::string::npos ? std::string{} : out.substr(p, out.find('\n', p) - p);
}

} // namespace

TEST_CASE("redis-cli SHUTDOWN flushes L3 and exits 0; a restart has the data") {
  temp_dir dir;
  {
    node_process n({}, dir.path);
    REQUIRE(n.ready);
    for (int i = 0; i < 200; ++i)
      REQUIRE(n.cli("SET key:" + std::to_string(i) + " v" + std::to_string(i)) == "OK\n");
    CHECK(n.cli("SHUTDOWN ABORT").rfind("ERR No shutdown in progress.", 0) == 0);
    n.cli("SHUTDOWN");
    CHECK(wait_exit(n) == 0);
    CHECK(n.log().find("SHUTDOWN received") != std::string::npos);
    CHECK(n.log().find("stopped cleanly") != std::string::npos);
  }
  node_process again({}, dir.path);
  REQUIRE(again.ready);
  CHECK(again.cli("GET key:0") == "v0\n");
  CHECK(again.cli("GET key:199") == "v199\n");
  CHECK(again.cli("DBSIZE") == "200\n");
  again.cli("SHUTDOWN NOSAVE");
  CHECK(wait_exit(again) == 0);
}

TEST_CASE("client tracking: redis-py's REDIRECT listener and a RESP3 client get invalidations") {
  node_process n;
  REQUIRE(n.ready);
  temp_dir dir;
  std::string script = dir.path + "/tracking.py";
  std::ofstream(script) << redis_py_tracking;
  int rc = -1;
  // Debian's python3, which scripts/setup gives python3-redis
  auto out = run_shell("/usr/bin/python3 " + script + " " + std::to_string(n.port) + " 2>&1", &rc);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("read b'v1'") != std::string::npos);
  CHECK(out.find("invalidation [b'message', b'__redis__:invalidate', [b'cached']]") !=
        std::string::npos);

  // RESP3: the push comes on the tracking connection itself
  client a(n.port), b(n.port);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  auto hello = a.call({"HELLO", "3"});
  REQUIRE(hello);
  CHECK(hello->rfind("%7\r\n", 0) == 0);
  CHECK(a.call({"CLIENT", "TRACKING", "on"}) == std::optional<std::string>("+OK\r\n"));
  CHECK(a.call({"GET", "k3"}) == std::optional<std::string>("_\r\n"));
  CHECK(b.call({"SET", "k3", "x"}) == std::optional<std::string>("+OK\r\n"));
  CHECK(a.reply() == std::optional<std::string>(">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\nk3\r\n"));
  CHECK(a.call({"GET", "k3"}) == std::optional<std::string>("$1\r\nx\r\n"));
  CHECK(b.call({"FLUSHALL"}) == std::optional<std::string>("+OK\r\n"));
  CHECK(a.reply() == std::optional<std::string>(">2\r\n$10\r\ninvalidate\r\n_\r\n"));
  CHECK(info_line(n, "clients", "tracking_clients:") == "tracking_clients:1\r");
}

TEST_CASE("CLIENT KILL closes the named connection; CLIENT LIST shows who is there") {
  node_process n;
  REQUIRE(n.ready);
  client victim(n.port);
  REQUIRE(victim.ok());
  auto id = victim.call({"CLIENT", "ID"});
  REQUIRE(id);
  std::string vid = id->substr(1, id->size() - 3);
  CHECK(victim.call({"CLIENT", "SETNAME", "victim"}) == std::optional<std::string>("+OK\r\n"));
  auto list = n.cli("CLIENT LIST");
  CHECK(list.find("id=" + vid + " ") != std::string::npos);
  CHECK(list.find("name=victim") != std::string::npos);
  CHECK(n.cli("CLIENT KILL ID " + vid) == "1\n");
  CHECK_FALSE(victim.reply(5000)); // closed: EOF
  CHECK(n.cli("CLIENT LIST").find("name=victim") == std::string::npos);
  CHECK(n.cli("CLIENT KILL ID " + vid) == "0\n");
  CHECK(n.cli("PING") == "PONG\n"); // the node lives
}

TEST_CASE("OBJECT ENCODING is raw after SETRANGE and APPEND until the next write") {
  node_process n;
  REQUIRE(n.ready);
  CHECK(n.cli("SET k 1234") == "OK\n");
  CHECK(n.cli("OBJECT ENCODING k") == "int\n");
  CHECK(n.cli("SETRANGE k 1 3") == "4\n");
  CHECK(n.cli("OBJECT ENCODING k") == "raw\n");
  CHECK(n.cli("GET k") == "1334\n");
  CHECK(n.cli("SET k hello") == "OK\n");
  CHECK(n.cli("OBJECT ENCODING k") == "embstr\n");
  CHECK(n.cli("APPEND k x") == "6\n");
  CHECK(n.cli("OBJECT ENCODING k") == "raw\n");
  CHECK(n.cli("SET k 5") == "OK\n");
  CHECK(n.cli("OBJECT ENCODING k") == "int\n");
}

TEST_CASE("INFO keyspace counts keys and expires in L3") {
  node_process n;
  REQUIRE(n.ready);
  for (int i = 0; i < 10; ++i)
    n.cli("SET p" + std::to_string(i) + " v");
  for (int i = 0; i < 4; ++i)
    n.cli("SET e" + std::to_string(i) + " v EX 1000");
  // L3 commits in the background: its figures follow within a batch interval
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    line = info_line(n, "keyspace", "db0:");
    if (line.rfind("db0:keys=14,expires=4,", 0) == 0)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(line.rfind("db0:keys=14,expires=4,avg_ttl=", 0) == 0);
  auto ttl = std::stoll(line.substr(line.find("avg_ttl=") + 8));
  CHECK(ttl > 900000);
  CHECK(ttl <= 1000000);
  CHECK(info_line(n, "server", "redis_version:") == "redis_version:7.0.15\r");
}

TEST_CASE("lazy expiry drops L3's copy; DEBUG LOADAOF reloads from L3 with absolute expiries") {
  node_process n;
  REQUIRE(n.ready);
  // Redis's "Redis should lazy expire keys": with the sweeps off, DBSIZE (an
  // L3 count) counts expired keys until a read finds them expired
  CHECK(n.cli("DEBUG SET-ACTIVE-EXPIRE 0") == "OK\n");
  for (int i = 1; i <= 3; ++i)
    n.cli("PSETEX lazy" + std::to_string(i) + " 300 a");
  n.cli("SET stays v");
  CHECK(n.cli("DBSIZE") == "4\n");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline && n.cli("PTTL lazy3") != "-2\n")
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(n.cli("MGET lazy1 lazy2 lazy3") == "\n\n\n");
  CHECK(n.cli("DBSIZE") == "1\n");
  CHECK(n.cli("DEBUG SET-ACTIVE-EXPIRE 1") == "OK\n");

  // DEBUG LOADAOF: memory emptied, every key read again from L3
  CHECK(n.cli("CONFIG GET appendonly") == "appendonly\nyes\n");
  CHECK(n.cli("CONFIG SET appendonly yes") == "OK\n");
  n.cli("SET foo bar EX 100");
  n.cli("SET foo bar2 KEEPTTL");
  n.cli("SET p v EX 100");
  n.cli("GETEX p PERSIST");
  CHECK(n.cli("DEBUG LOADAOF") == "OK\n");
  CHECK(n.cli("GET foo") == "bar2\n");
  auto ttl = std::stoll(n.cli("TTL foo"));
  CHECK(ttl > 90);
  CHECK(ttl <= 100);
  CHECK(n.cli("TTL p") == "-1\n");
  CHECK(n.cli("GET stays") == "v\n");
  CHECK(n.cli("DEBUG RELOAD") == "OK\n");
  CHECK(n.cli("MGET foo p stays") == "bar2\nv\nv\n");
}

TEST_CASE("client tracking hears of writes made through the ops port (kura set/del/flush)") {
  node_process n;
  REQUIRE(n.ready);
  client a(n.port);
  REQUIRE(a.ok());
  REQUIRE(a.call({"HELLO", "3"}));
  CHECK(a.call({"CLIENT", "TRACKING", "on"}) == std::optional<std::string>("+OK\r\n"));
  CHECK(a.call({"SET", "opkey", "v1"}) == std::optional<std::string>("+OK\r\n"));
  CHECK(a.call({"GET", "opkey"}) == std::optional<std::string>("$2\r\nv1\r\n"));
  auto kura = [&](const std::string& args) {
    int rc = -1;
    auto out = run_shell(bin_dir() + "/kura --port=" + std::to_string(n.cluster_port) +
                             " --timeout=10000 " + args + " 2>&1",
                         &rc);
    INFO(out);
    CHECK(rc == 0);
  };
  kura("set opkey v2");
  CHECK(a.reply() ==
        std::optional<std::string>(">2\r\n$10\r\ninvalidate\r\n*1\r\n$5\r\nopkey\r\n"));
  CHECK(a.call({"GET", "opkey"}) == std::optional<std::string>("$2\r\nv2\r\n"));
  kura("del opkey");
  CHECK(a.reply() ==
        std::optional<std::string>(">2\r\n$10\r\ninvalidate\r\n*1\r\n$5\r\nopkey\r\n"));
}
