// The command table against a real keyspace (memory shards, L3 off; the L3
// path is covered by the integration tests with the real node). Replies are
// compared byte for byte with what Redis answers.
#include "command_fixture.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace kura;
using namespace kura::node;
using fixture = kura::node::testing::command_fixture;

TEST_CASE_FIXTURE(fixture, "PING, ECHO and unknown commands") {
  CHECK(run("PING") == "+PONG\r\n");
  CHECK(run("ping hello") == "$5\r\nhello\r\n");
  CHECK(run("ECHO hi") == "$2\r\nhi\r\n");
  CHECK(run("ECHO") == "-ERR wrong number of arguments for 'echo' command\r\n");
  CHECK(run("FOO a b") == "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n");
  CHECK(run("FOO") == "-ERR unknown command 'FOO', with args beginning with: \r\n");
}

TEST_CASE_FIXTURE(fixture, "GET, SET and its options") {
  CHECK(run("GET k") == "$-1\r\n");
  CHECK(run("SET k v") == "+OK\r\n");
  CHECK(run("GET k") == "$1\r\nv\r\n");
  CHECK(run("SET k v2 NX") == "$-1\r\n");
  CHECK(run("SET k v2 XX GET") == "$1\r\nv\r\n");
  CHECK(run("GET k") == "$2\r\nv2\r\n");
  CHECK(run("SET n v XX") == "$-1\r\n");
  CHECK(run("SET k v NX XX") == "-ERR syntax error\r\n");
  CHECK(run("SET k v EX 10 PX 10") == "-ERR syntax error\r\n");
  CHECK(run("SET k v EX 0") == "-ERR invalid expire time in 'set' command\r\n");
  CHECK(run("SET k v EX -5") == "-ERR invalid expire time in 'set' command\r\n");
  CHECK(run("SET k v EX abc") == "-ERR value is not an integer or out of range\r\n");
  CHECK(run("SET k v BOGUS") == "-ERR syntax error\r\n");
  CHECK(run("SET k") == "-ERR wrong number of arguments for 'set' command\r\n");
  CHECK(run("SET k v EX 10") == "+OK\r\n");
  CHECK(run("TTL k") == ":10\r\n");
  CHECK(run("SET k v2 KEEPTTL") == "+OK\r\n");
  CHECK(run("PTTL k") == ":10000\r\n");
  CHECK(run("SET k v3") == "+OK\r\n");
  CHECK(run("TTL k") == ":-1\r\n");
  CHECK(run("TTL nokey") == ":-2\r\n");
}

TEST_CASE_FIXTURE(fixture, "binary values survive") {
  std::string v("a\r\nb\0c", 6);
  CHECK(run_args({"SET", "bin", v}) == "+OK\r\n");
  CHECK(run_args({"GET", "bin"}) == "$6\r\n" + v + "\r\n");
  CHECK(run_args({"STRLEN", "bin"}) == ":6\r\n");
}

TEST_CASE_FIXTURE(fixture, "expiry: keys vanish when their time passes, active sweep too") {
  CHECK(run("SET a 1 PX 100") == "+OK\r\n");
  CHECK(run("SETEX b 1 x") == "+OK\r\n");
  CHECK(run("PSETEX c 50 x") == "+OK\r\n");
  CHECK(run("SETEX b 0 x") == "-ERR invalid expire time in 'setex' command\r\n");
  CHECK(run("EXISTS a b c") == ":3\r\n");
  clk.advance_ms(101);
  CHECK(run("GET a") == "$-1\r\n");
  CHECK(run("EXISTS a b c") == ":1\r\n");
  clk.advance_ms(1000);
  ks.sweep(1000);
  CHECK(run("DBSIZE") == ":0\r\n");
}

TEST_CASE_FIXTURE(fixture, "EXPIRE family with NX XX GT LT") {
  CHECK(run("EXPIRE k 10") == ":0\r\n");
  run("SET k v");
  CHECK(run("EXPIRE k 10 XX") == ":0\r\n");
  CHECK(run("EXPIRE k 10 GT") == ":0\r\n");
  CHECK(run("EXPIRE k 10 NX") == ":1\r\n");
  CHECK(run("EXPIRE k 20 NX") == ":0\r\n");
  CHECK(run("EXPIRE k 5 GT") == ":0\r\n");
  CHECK(run("EXPIRE k 50 GT") == ":1\r\n");
  CHECK(run("EXPIRE k 60 LT") == ":0\r\n");
  CHECK(run("PEXPIRE k 30000 LT") == ":1\r\n");
  CHECK(run("TTL k") == ":30\r\n");
  CHECK(run("EXPIRE k 10 NX XX") ==
        "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n");
  CHECK(run("EXPIRE k 10 GT LT") ==
        "-ERR GT and LT options at the same time are not compatible\r\n");
  CHECK(run("EXPIRE k 10 FOO") == "-ERR Unsupported option FOO\r\n");
  CHECK(run("EXPIRE k abc") == "-ERR value is not an integer or out of range\r\n");
  CHECK(run("EXPIRE k 9223372036854775807") == "-ERR invalid expire time in 'expire' command\r\n");
  auto now = clk.now_ms();
  CHECK(run("PEXPIREAT k " + std::to_string(now + 5000)) == ":1\r\n");
  CHECK(run("PEXPIRETIME k") == ":" + std::to_string(now + 5000) + "\r\n");
  CHECK(run("EXPIRETIME k") == ":" + std::to_string((now + 5000 + 500) / 1000) + "\r\n");
  CHECK(run("PERSIST k") == ":1\r\n");
  CHECK(run("PERSIST k") == ":0\r\n");
  CHECK(run("EXPIRETIME k") == ":-1\r\n");
  CHECK(run("EXPIRE k -1") == ":1\r\n");
  CHECK(run("EXISTS k") == ":0\r\n");
}

TEST_CASE_FIXTURE(fixture, "counters") {
  CHECK(run("INCR c") == ":1\r\n");
  CHECK(run("INCRBY c 41") == ":42\r\n");
  CHECK(run("DECR c") == ":41\r\n");
  CHECK(run("DECRBY c 1") == ":40\r\n");
  CHECK(run("INCRBY c x") == "-ERR value is not an integer or out of range\r\n");
  run("SET s abc");
  CHECK(run("INCR s") == "-ERR value is not an integer or out of range\r\n");
  run("SET big 9223372036854775807");
  CHECK(run("INCR big") == "-ERR increment or decrement would overflow\r\n");
  run("SET f 10.50");
  CHECK(run("INCRBYFLOAT f 0.1") == "$4\r\n10.6\r\n");
  CHECK(run("INCRBYFLOAT f -5") == "$3\r\n5.6\r\n");
  CHECK(run("INCRBYFLOAT f abc") == "-ERR value is not a valid float\r\n");
  CHECK(run("INCRBYFLOAT nf 3") == "$1\r\n3\r\n");
  run("SET e 5 EX 100");
  CHECK(run("INCR e") == ":6\r\n");
  CHECK(run("TTL e") == ":100\r\n"); // INCR keeps the TTL
}

TEST_CASE_FIXTURE(fixture, "string manipulation") {
  CHECK(run("APPEND s Hello") == ":5\r\n");
  CHECK(run("APPEND s \" World\"") == ":11\r\n");
  CHECK(run("GETRANGE s 0 4") == "$5\r\nHello\r\n");
  CHECK(run("GETRANGE s -5 -1") == "$5\r\nWorld\r\n");
  CHECK(run("GETRANGE s 5 2") == "$0\r\n\r\n");
  CHECK(run("GETRANGE s 0 100") == "$11\r\nHello World\r\n");
  CHECK(run("SETRANGE s 6 Redis") == ":11\r\n");
  CHECK(run("GET s") == "$11\r\nHello Redis\r\n");
  CHECK(run("SETRANGE pad 3 x") == ":4\r\n");
  CHECK(run_args({"GET", "pad"}) == std::string("$4\r\n\0\0\0x\r\n", 10));
  CHECK(run("SETRANGE s -1 x") == "-ERR offset is out of range\r\n");
  CHECK(run("SETRANGE none 0 \"\"") == ":0\r\n");
  CHECK(run("EXISTS none") == ":0\r\n");
  CHECK(run("STRLEN nothing") == ":0\r\n");
  CHECK(run("TYPE s") == "+string\r\n");
  CHECK(run("TYPE nothing") == "+none\r\n");
}

TEST_CASE_FIXTURE(fixture, "GETSET, GETDEL, GETEX, SETNX") {
  CHECK(run("GETSET k 1") == "$-1\r\n");
  CHECK(run("GETSET k 2") == "$1\r\n1\r\n");
  CHECK(run("SETNX k 3") == ":0\r\n");
  CHECK(run("SETNX k2 3") == ":1\r\n");
  CHECK(run("GETEX k EX 100") == "$1\r\n2\r\n");
  CHECK(run("TTL k") == ":100\r\n");
  CHECK(run("GETEX k PERSIST") == "$1\r\n2\r\n");
  CHECK(run("TTL k") == ":-1\r\n");
  CHECK(run("GETEX k EX 1 PX 1") == "-ERR syntax error\r\n");
  CHECK(run("GETEX k EX 0") == "-ERR invalid expire time in 'getex' command\r\n");
  CHECK(run("GETDEL k") == "$1\r\n2\r\n");
  CHECK(run("GETDEL k") == "$-1\r\n");
}

TEST_CASE_FIXTURE(fixture, "multi-key commands") {
  CHECK(run("MSET a 1 b 2 c 3") == "+OK\r\n");
  CHECK(run("MSET a 1 b") == "-ERR wrong number of arguments for 'mset' command\r\n");
  CHECK(run("MGET a x c") == "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n3\r\n");
  CHECK(run("MSETNX a 9 z 9") == ":0\r\n");
  CHECK(run("EXISTS z") == ":0\r\n");
  CHECK(run("MSETNX y 9 z 9") == ":1\r\n");
  CHECK(run("DEL a b nope") == ":2\r\n");
  CHECK(run("UNLINK c") == ":1\r\n");
  CHECK(run("EXISTS a b c y y") == ":2\r\n");
}

TEST_CASE_FIXTURE(fixture, "RENAME, RENAMENX, COPY") {
  CHECK(run("RENAME a b") == "-ERR no such key\r\n");
  run("SET a 1 EX 100");
  CHECK(run("RENAME a b") == "+OK\r\n");
  CHECK(run("GET a") == "$-1\r\n");
  CHECK(run("TTL b") == ":100\r\n");
  run("SET c 3");
  CHECK(run("RENAMENX b c") == ":0\r\n");
  CHECK(run("RENAMENX b d") == ":1\r\n");
  CHECK(run("COPY d c") == ":0\r\n");
  CHECK(run("COPY d c REPLACE") == ":1\r\n");
  CHECK(run("GET c") == "$1\r\n1\r\n");
  CHECK(run("COPY d d") == "-ERR source and destination objects are the same\r\n");
  CHECK(run("COPY d e DB 1") == "-ERR DB index is out of range\r\n");
}

TEST_CASE_FIXTURE(fixture, "keyspace listing: KEYS, SCAN, DBSIZE, RANDOMKEY, FLUSHALL") {
  CHECK(run("RANDOMKEY") == "$-1\r\n");
  for (int i = 0; i < 25; ++i)
    run("SET key:" + std::to_string(i) + " v");
  run("SET other v");
  CHECK(run("DBSIZE") == ":26\r\n");
  CHECK(run("KEYS other") == "*1\r\n$5\r\nother\r\n");
  CHECK(run("KEYS key:1?").rfind("*10\r\n", 0) == 0);
  // SCAN visits every key exactly once
  std::string cursor = "0";
  size_t seen = 0;
  int rounds = 0;
  do {
    auto r = run("SCAN " + cursor + " MATCH key:* COUNT 7");
    REQUIRE(r.rfind("*2\r\n$", 0) == 0);
    auto p = r.find("\r\n", 4);
    auto q = r.find("\r\n", p + 2);
    cursor = r.substr(p + 2, q - p - 2);
    auto n = std::stoul(r.substr(q + 3, r.find("\r\n", q + 2) - q - 3));
    seen += n;
    ++rounds;
  } while (cursor != "0" && rounds < 100);
  CHECK(seen == 25);
  CHECK(run("SCAN abc") == "-ERR invalid cursor\r\n");
  CHECK(run("SCAN 0 COUNT 0") == "-ERR syntax error\r\n");
  CHECK(run("RANDOMKEY") != "$-1\r\n");
  CHECK(run("FLUSHALL") == "+OK\r\n");
  CHECK(run("DBSIZE") == ":0\r\n");
  CHECK(run("FLUSHDB ASYNC") == "+OK\r\n");
  CHECK(run("FLUSHALL BOGUS") == "-ERR syntax error\r\n");
}

TEST_CASE_FIXTURE(fixture, "server and connection commands") {
  CHECK(run("SELECT 0") == "+OK\r\n");
  CHECK(run("SELECT 1") == "-ERR DB index is out of range\r\n");
  CHECK(run("SELECT x") == "-ERR value is not an integer or out of range\r\n");
  CHECK(run("CONFIG GET save") == "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
  CHECK(run("CONFIG GET appendonly") == "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
  CHECK(run("CONFIG GET nothing-like-this") == "*0\r\n");
  CHECK(run("CONFIG FOO") == "-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n");
  CHECK(run("CLIENT GETNAME") == "$-1\r\n");
  CHECK(run("CLIENT SETNAME app") == "+OK\r\n");
  CHECK(run("CLIENT GETNAME") == "$3\r\napp\r\n");
  CHECK(run("CLIENT SETNAME \"a b\"") ==
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n");
  sess.id = 7;
  CHECK(run("CLIENT ID") == ":7\r\n");
  CHECK(run("HELLO 4") == "-NOPROTO unsupported protocol version\r\n");
  CHECK(run("HELLO 2").rfind("*14\r\n$6\r\nserver\r\n", 0) == 0);
  CHECK(run("COMMAND COUNT") == ":" + std::to_string(cmds.registry().size()) + "\r\n");
  CHECK(run("COMMAND DOCS")
            .rfind("*" + std::to_string(2 * cmds.registry().size()) + "\r\n$4\r\nping\r\n", 0) ==
        0);
  CHECK(run("TIME").rfind("*2\r\n$", 0) == 0);
  CHECK(run("INFO keyspace").find("# Keyspace") != std::string::npos);
  auto info = run("INFO");
  for (auto s :
       {"# Server", "# Clients", "# Memory", "# Stats", "# Keyspace", "# L1", "# L2", "# L3"})
    CHECK(info.find(s) != std::string::npos);
  run("SET k v");
  auto t = run("KURA.TIER k");
  CHECK((t == "$2\r\nl1\r\n" || t == "$2\r\nl2\r\n")); // memory
  CHECK(run("KURA.TIER nope") == "$4\r\nnone\r\n");
  CHECK(run("QUIT") == "+OK\r\n");
  CHECK(sess.quit);
}

TEST_CASE_FIXTURE(fixture, "limits: oversized keys are refused with a clear error") {
  std::string big(70 * 1024, 'k');
  auto r = run_args({"SET", big, "v"});
  CHECK(r.rfind("-ERR ", 0) == 0);
  CHECK(run_args({"GET", big}) == "$-1\r\n");
}

TEST_CASE_FIXTURE(fixture, "stats count calls and errors per command") {
  run("GET a");
  run("GET a");
  run("GET");
  int id = cmds.find("get");
  REQUIRE(id >= 0);
  CHECK(cmds.stats()[static_cast<size_t>(id)].calls == 3);
  CHECK(cmds.stats()[static_cast<size_t>(id)].errors == 1);
  CHECK(cmds.stats()[static_cast<size_t>(id)].latency.samples == 2);
}

TEST_CASE("glob patterns follow Redis") {
  using kura::actors::glob_match;
  CHECK(glob_match("*", "anything"));
  CHECK(glob_match("h?llo", "hello"));
  CHECK(!glob_match("h?llo", "hllo"));
  CHECK(glob_match("h*llo", "heeeello"));
  CHECK(glob_match("h[ae]llo", "hallo"));
  CHECK(!glob_match("h[ae]llo", "hillo"));
  CHECK(glob_match("h[^e]llo", "hallo"));
  CHECK(!glob_match("h[^e]llo", "hello"));
  CHECK(glob_match("h[a-b]llo", "hbllo"));
  CHECK(glob_match("h\\*llo", "h*llo"));
  CHECK(!glob_match("h\\*llo", "hallo"));
  CHECK(glob_match("a*b*c", "aXXbYYc"));
  CHECK(!glob_match("a*b*c", "aXXbYY"));
  CHECK(glob_match("CONFIG", "config", true));
}

// Found by tests/fuzz/command_fuzz: an error reply that quotes client input
// with CR/LF in it split into several lines, which a client reads as more
// replies. Redis turns CR and LF into spaces; so does kura.
TEST_CASE_FIXTURE(fixture, "error replies quoting client input stay one line") {
  CHECK(run_args({"EXPIRE", "k", "100", "e\r\n$3\r\n100"}) ==
        "-ERR Unsupported option e  $3  100\r\n");
  auto r = run_args({"NO\r\nPE", "a\nb"});
  CHECK(r.find('\r') == r.size() - 2);
  CHECK(r.find('\n') == r.size() - 1);
  CHECK(run("PING") == "+PONG\r\n");
}
