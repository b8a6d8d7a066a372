// Authentication, ACLs and the audit log in a real kura-node: redis-cli
// --user/--pass, python3-redis and ioredis authenticate; strangers (no credentials,
// wrong password, a user lacking the key pattern or the command) are refused
// and appear in the audit log (read back with `kura audit`) while the node
// keeps serving an authenticated client; ACL SAVE survives a restart;
// /metrics with basic auth.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "node_process.hpp"

#include <chrono>
#include <fstream>
#include <thread>

using namespace kura::test;

namespace {

std::string auth_cli(const node_process& n, const std::string& user, const std::string& pass,
                     const std::string& args) {
  return n.cli("--user " + user + " --pass " + pass + " --no-auth-warning " + args);
}

/// redis-cli prints an error reply followed by an empty line.
bool says(const std::string& out, const std::string& what) {
  return out.rfind(what, 0) == 0;
}

std::string kura_audit(const node_process& n, const std::string& extra = "") {
  return run_shell(bin_dir() + "/kura audit --data-dir=" + n.data_dir + " " + extra + " 2>&1");
}

/// An HTTP GET with optional basic auth ("user:pass" base64); the whole answer.
std::string http_raw(uint16_t port, const std::string& auth_b64) {
  client c(port);
  if (!c.ok())
    return {};
  std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n";
  if (!auth_b64.empty())
    req += "Authorization: Basic " + auth_b64 + "\r\n";
  c.send(req + "Connection: close\r\n\r\n");
  while (c.fill(5000)) {
  }
  return c.buffer();
}

} // namespace

TEST_CASE("requirepass and ACL users with redis-cli, python3-redis and strangers") {
  temp_dir dir;
  {
    std::ofstream acl(dir.path + "/users.acl");
    acl << "user default on nopass ~* &* +@all\n"
           "user admin on >adminpw ~* &* +@all\n"
           "user alice on >p ~cached:* +get\n";
  }
  node_process n({"--kura.security.aclfile=" + dir.path + "/users.acl"});
  REQUIRE_MESSAGE(n.ready, n.log());
  // lock the default user: every client must now authenticate
  CHECK(auth_cli(n, "admin", "adminpw", "ACL SETUSER default resetpass off") == "OK\n");
  CHECK(says(n.cli("PING"), "NOAUTH Authentication required."));

  CHECK(auth_cli(n, "admin", "adminpw", "SET cached:x hello") == "OK\n");
  CHECK(auth_cli(n, "admin", "adminpw", "SET other secret") == "OK\n");
  CHECK(auth_cli(n, "alice", "p", "GET cached:x") == "hello\n");

  // an authenticated connection that must keep being served
  client steady(n.port);
  REQUIRE(steady.call({"AUTH", "alice", "p"}) == std::optional<std::string>{"+OK\r\n"});

  // strangers
  CHECK(says(n.cli("GET cached:x"), "NOAUTH Authentication required."));
  CHECK(auth_cli(n, "alice", "wrong", "GET cached:x").find("WRONGPASS") != std::string::npos);
  CHECK(auth_cli(n, "mallory", "x", "GET cached:x").find("WRONGPASS") != std::string::npos);
  CHECK(says(auth_cli(n, "alice", "p", "GET other"),
             "NOPERM this user has no permissions to access one of the keys used as arguments"));
  CHECK(says(auth_cli(n, "alice", "p", "SET cached:x 1"),
             "NOPERM this user has no permissions to run the 'set' command"));
  CHECK(says(auth_cli(n, "alice", "p", "FLUSHALL"),
             "NOPERM this user has no permissions to run the 'flushall' command"));
  CHECK(steady.call({"GET", "cached:x"}) == std::optional<std::string>{"$5\r\nhello\r\n"});
  CHECK(auth_cli(n, "admin", "adminpw", "GET other") == "secret\n");

  // python3-redis (Debian's, not a virtualenv's)
  int rc = -1;
  auto py = run_shell("/usr/bin/python3 -c \"import redis\n"
                      "r = redis.Redis(host='127.0.0.1', port=" +
                          std::to_string(n.port) +
                          ", username='alice', password='p')\n"
                          "print(r.get('cached:x').decode())\n"
                          "try:\n"
                          "    r.set('cached:x', 'no')\n"
                          "except redis.exceptions.NoPermissionError as e:\n"
                          "    print('denied', e)\n"
                          "try:\n"
                          "    redis.Redis(port=" +
                          std::to_string(n.port) +
                          ", username='alice', password='bad').ping()\n"
                          "except redis.exceptions.ResponseError as e:\n"
                          "    print('auth failed', e)\n\" 2>&1",
                      &rc);
  CHECK(rc == 0);
  CHECK(py.find("hello\n") != std::string::npos);
  CHECK(py.find("denied") != std::string::npos);
  CHECK(py.find("auth failed") != std::string::npos);

  // ioredis (npm, installed once into the build tree)
  std::string install;
  if (auto modules = npm_ioredis(rc, install); modules.empty()) {
    MESSAGE("node or npm missing: the ioredis session was not run");
  } else {
    INFO(install);
    REQUIRE(rc == 0);
    const char* src = std::getenv("KURA_SOURCE_DIR");
    auto io =
        run_shell("NODE_PATH=" + modules + " timeout 60 node " + std::string(src ? src : ".") +
                      "/tests/node/acl_ioredis.js " + std::to_string(n.port) + " 2>&1",
                  &rc);
    INFO(io);
    CHECK(rc == 0);
    CHECK(io.find("get hello\n") != std::string::npos);
    CHECK(io.find("denied NOPERM") != std::string::npos);
    CHECK(io.find("WRONGPASS") != std::string::npos);
  }

  // the audit log names every refusal and the admin's changes, never a password
  std::string audit;
  for (int i = 0; i < 100 && audit.find("FLUSHALL") == std::string::npos; ++i) {
    audit = kura_audit(n);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  INFO(audit);
  CHECK(audit.find("noauth") != std::string::npos);
  CHECK(audit.find("auth ") != std::string::npos);
  CHECK(audit.find("mallory") != std::string::npos);
  CHECK(audit.find("acl-denied") != std::string::npos);
  CHECK(audit.find("ACL SETUSER") != std::string::npos);
  CHECK(audit.find("FLUSHALL") != std::string::npos);
  CHECK(audit.find("adminpw") == std::string::npos);
  CHECK(audit.find("wrong") == std::string::npos);
  auto json = kura_audit(n, "--json --since=1h");
  CHECK(json.find("{\"time\":") == 0);
  CHECK(kura_audit(n, "--since=2999-01-01").find("acl-denied") == std::string::npos);
  CHECK(kura_audit(n, "--since=never").find("bad --since") != std::string::npos);

  // ACL SAVE writes hashes only; a restart with the file keeps the users
  CHECK(auth_cli(n, "admin", "adminpw", "ACL SETUSER bob on '>bobpw' '~b:*' +@read") == "OK\n");
  CHECK(auth_cli(n, "admin", "adminpw", "ACL SAVE") == "OK\n");
  std::ifstream f(dir.path + "/users.acl");
  std::string saved((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(saved.find("user bob on #") != std::string::npos);
  CHECK(saved.find("bobpw") == std::string::npos);
  CHECK(n.stop() == 0);
  node_process again({"--kura.security.aclfile=" + dir.path + "/users.acl"}, n.data_dir);
  REQUIRE_MESSAGE(again.ready, again.log());
  CHECK(says(again.cli("PING"), "NOAUTH Authentication required."));
  CHECK(says(auth_cli(again, "bob", "bobpw", "ACL WHOAMI"),
             "NOPERM this user has no permissions to run the 'acl|whoami' command"));
  CHECK(auth_cli(again, "bob", "bobpw", "GET b:1") == "\n");
}

TEST_CASE("requirepass: AUTH and HELLO AUTH on the wire") {
  node_process n({"--kura.security.requirepass=s3cret"});
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  CHECK(c.call({"GET", "k"}) == std::optional<std::string>{"-NOAUTH Authentication required.\r\n"});
  CHECK(c.call({"AUTH", "nope"}) ==
        std::optional<std::string>{
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n"});
  auto h = c.call({"HELLO", "2", "AUTH", "default", "s3cret"});
  REQUIRE(h);
  CHECK(h->rfind("*14\r\n", 0) == 0);
  CHECK(c.call({"SET", "k", "v"}) == std::optional<std::string>{"+OK\r\n"});
  CHECK(n.cli("-a s3cret --no-auth-warning GET k") == "v\n");
  CHECK(says(n.cli("GET k"), "NOAUTH Authentication required."));
}

TEST_CASE("a bad ACL file or conflicting settings stop the node with one line") {
  temp_dir dir;
  {
    std::ofstream acl(dir.path + "/bad.acl");
    acl << "user x on +nosuchcommand\n";
  }
  std::string out;
  CHECK(run_node_once({"--port=" + std::to_string(free_port()), "--metrics-port=0",
                       "--cluster-port=0", "--data-dir=" + dir.path + "/d",
                       "--kura.security.aclfile=" + dir.path + "/bad.acl"},
                      out) != 0);
  CHECK(out.find("cannot load ACL file") != std::string::npos);
  CHECK(out.find("Unknown command or category name in ACL") != std::string::npos);
  CHECK(run_node_once({"--port=" + std::to_string(free_port()), "--metrics-port=0",
                       "--cluster-port=0", "--data-dir=" + dir.path + "/d",
                       "--kura.security.aclfile=" + dir.path + "/bad.acl",
                       "--kura.security.requirepass=x"},
                      out) != 0);
  CHECK(out.find("not together with kura.security.aclfile") != std::string::npos);
}

TEST_CASE("/metrics with basic auth") {
  node_process n({"--kura.security.metrics-user=prom", "--kura.security.metrics-password=pw"});
  REQUIRE_MESSAGE(n.ready, n.log());
  auto denied = http_raw(n.metrics_port, "");
  CHECK(denied.find("401") != std::string::npos);
  CHECK(denied.find("kura_connected_clients") == std::string::npos);
  CHECK(http_raw(n.metrics_port, "cHJvbTp3cm9uZw==").find("401") !=
        std::string::npos); // prom:wrong
  std::string ok;
  for (int i = 0; i < 100 && ok.find("kura_connected_clients") == std::string::npos; ++i) {
    ok = http_raw(n.metrics_port, "cHJvbTpwdw=="); // prom:pw
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(ok.find("kura_connected_clients") != std::string::npos);
}

TEST_CASE("protected mode lets loopback clients in on a wildcard bind") {
  node_process n({"--bind=0.0.0.0"});
  REQUIRE_MESSAGE(n.ready, n.log());
  CHECK(n.cli("PING") == "PONG\n");
}

TEST_CASE("the kura CLI authenticates on the ops port with the node's users") {
  node_process n({"--kura.security.requirepass=opspw"});
  REQUIRE_MESSAGE(n.ready, n.log());
  auto kura = [&](const std::string& env, const std::string& args, int* rc) {
    return run_shell(env + " " + bin_dir() + "/kura --port=" + std::to_string(n.cluster_port) +
                         " --timeout=5000 " + args + " 2>&1",
                     rc);
  };
  int rc = -1;
  auto out = kura("", "set k v", &rc);
  CHECK(rc == 1);
  CHECK(out.find("NOAUTH Authentication required.") != std::string::npos);
  out = kura("", "--password=wrong get k", &rc);
  CHECK(rc == 1);
  CHECK(out.find("WRONGPASS") != std::string::npos);
  CHECK(kura("", "--password=opspw set k v", &rc) == "OK\n");
  CHECK(rc == 0);
  CHECK(kura("KURA_PASSWORD=opspw", "get k", &rc) == "v\n");
  CHECK(rc == 0);
  // a user without FLUSHALL cannot flush through the CLI either
  CHECK(n.cli("-a opspw --no-auth-warning ACL SETUSER reader on '>r' '~*' +@read +@connection") ==
        "OK\n");
  out = kura("KURA_USER=reader KURA_PASSWORD=r", "flush", &rc);
  CHECK(rc == 1);
  CHECK(out.find("NOPERM this user has no permissions to run the 'flushall' command") !=
        std::string::npos);
  CHECK(kura("", "--user=reader --password=r get k", &rc) == "v\n");
  CHECK(kura("", "--user=reader --password=r set k w", &rc).find("NOPERM") != std::string::npos);
  std::string audit;
  for (int i = 0; i < 100 && audit.find("FLUSHALL") == std::string::npos; ++i) {
    audit = kura_audit(n, "--json");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(audit.find("\"client\":\"ops\"") != std::string::npos);
  CHECK(audit.find("opspw") == std::string::npos);
}

// The dispatcher's ACL check comes before the L3 lookup (command_table::plan
// asks node/security.hpp's allowed()): a command that a user may not run,
// or that names a key outside the user's patterns, is refused without
// reading its keys from L3, so L3's hit counter does not move for it.
TEST_CASE("a refused command makes no L3 lookup before the refusal") {
  temp_dir dir;
  {
    std::ofstream acl(dir.path + "/users.acl");
    acl << "user default on nopass ~* &* +@all\n"
           "user alice on >p ~allowed:* +get +multi +exec\n";
  }
  std::vector<std::string> args{"--kura.security.aclfile=" + dir.path + "/users.acl"};
  std::string data_dir = dir.path + "/data";
  {
    node_process n(args, data_dir);
    REQUIRE_MESSAGE(n.ready, n.log());
    client w(n.port);
    for (auto k : {"cold:1", "cold:2", "cold:3", "cold:4"})
      REQUIRE(*w.call({"SET", k, std::string("value of ") + k}) == "+OK\r\n");
    REQUIRE(*w.call({"HSET", "coldh", "f", "v"}) == ":1\r\n");
    CHECK(n.stop() == 0);
  }
  node_process n(args, data_dir); // memory is empty: the keys are in L3 only
  REQUIRE_MESSAGE(n.ready, n.log());
  auto hits = [&] { return std::stoull(n.info_field("l3_hits")); };
  // L3's counters reach INFO through a snapshot L3 publishes: wait for `n`
  auto hits_reach = [&](uint64_t want) {
    for (int i = 0; i < 300 && hits() < want; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return hits() >= want;
  };
  auto before = hits();
  client a(n.port);
  REQUIRE(*a.call({"AUTH", "alice", "p"}) == "+OK\r\n");
  CHECK(*a.call({"GET", "cold:1"}) ==
        "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n");
  CHECK(*a.call({"HGET", "coldh", "f"}) ==
        "-NOPERM this user has no permissions to run the 'hget' command\r\n");
  CHECK(*a.call({"GET", "allowed:none"}) == "$-1\r\n");
  // inside MULTI the refusal is at queue time; EXEC looks up no refused key
  CHECK(*a.call({"MULTI"}) == "+OK\r\n");
  CHECK(a.call({"GET", "cold:2"})->rfind("-NOPERM", 0) == 0);
  CHECK(a.call({"EXEC"})->rfind("-EXECABORT", 0) == 0);
  // the default user reads one cold key: L3 counts exactly that one
  client d(n.port);
  CHECK(*d.call({"GET", "cold:3"}) == "$15\r\nvalue of cold:3\r\n");
  REQUIRE(hits_reach(before + 1));
  CHECK(hits() == before + 1);
  CHECK(*d.call({"GET", "cold:1"}) == "$15\r\nvalue of cold:1\r\n"); // it was still cold
  REQUIRE(hits_reach(before + 2));
  CHECK(hits() == before + 2);
}
