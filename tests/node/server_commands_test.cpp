// Server, client, pub/sub and tracking commands against the command table
// (memory only): CLIENT, OBJECT, MEMORY, FUNCTION, CONFIG, INFO, SHUTDOWN,
// HELLO 3 / RESP3, SUBSCRIBE/PUBLISH and CLIENT TRACKING's invalidations.
// Several clients are sessions registered with the table's client hub; what
// the hub pushes to them is captured per client id.
#include "command_fixture.hpp"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

using namespace kura;
using namespace kura::node;

namespace {

struct hub_fixture : kura::node::testing::command_fixture {
  session s2, s3;
  std::map<uint64_t, std::string> pushed;
  hub_fixture() {
    sess.id = 1;
    sess.peer = "127.0.0.1:5001";
    s2.id = 2;
    s2.peer = "127.0.0.1:5002";
    s3.id = 3;
    s3.peer = "127.0.0.1:5003";
    for (auto* s : {&sess, &s2, &s3})
      cmds.hub().add_client(*s);
    cmds.hub().set_deliver(
        [this](uint64_t id, std::string_view b) { pushed[id].append(b.data(), b.size()); });
  }
  /// Runs `line` as client `s`.
  std::string as(session& s, std::string_view line) {
    std::vector<std::string> parts;
    REQUIRE(split_inline_args(line, parts));
    std::vector<std::string_view> args(parts.begin(), parts.end());
    out_buffer out;
    cmds.execute(args, s, out);
    return std::string(out.begin(), out.end());
  }
  std::string take(uint64_t id) {
    auto r = pushed[id];
    pushed[id].clear();
    return r;
  }
};

const std::string inval_k = ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n";

} // namespace

TEST_CASE_FIXTURE(hub_fixture, "CLIENT LIST, INFO and KILL with Redis's filters") {
  CHECK(run("CLIENT SETNAME me") == "+OK\r\n");
  auto list = run("CLIENT LIST");
  CHECK(list.find("id=1 addr=127.0.0.1:5001 ") != std::string::npos);
  CHECK(list.find("id=2 addr=127.0.0.1:5002 ") != std::string::npos);
  CHECK(list.find(" name=me ") != std::string::npos);
  CHECK(list.find(" cmd=client|list user=default redir=-1 resp=2\n") != std::string::npos);
  CHECK(run("CLIENT LIST ID 2").find("id=1 ") == std::string::npos);
  CHECK(run("CLIENT LIST ID 0") == "-ERR Invalid client ID\r\n");
  CHECK(run("CLIENT LIST TYPE bogus") == "-ERR Unknown client type 'bogus'\r\n");
  CHECK(run("CLIENT INFO").rfind("$", 0) == 0);
  CHECK(run("CLIENT INFO").find("id=1 addr=127.0.0.1:5001") != std::string::npos);
  // new form: filters; SKIPME yes by default
  CHECK(run("CLIENT KILL ID 2") == ":1\r\n");
  CHECK(s2.killed);
  CHECK(cmds.take_kills());
  CHECK(run("CLIENT KILL ID 1") == ":0\r\n"); // skipme
  CHECK(run("CLIENT KILL ADDR 127.0.0.1:5003 SKIPME no") == ":1\r\n");
  CHECK(s3.killed);
  CHECK(run("CLIENT KILL LADDR 1.2.3.4:5") == ":0\r\n");
  CHECK(run("CLIENT KILL USER nobody") == "-ERR No such user 'nobody'\r\n");
  CHECK(run("CLIENT KILL ID 0") == "-ERR client-id should be greater than 0\r\n");
  CHECK(run("CLIENT KILL ID") == "-ERR No such client\r\n"); // 3 arguments: the old form
  CHECK(run("CLIENT KILL ID 2 SKIPME") == "-ERR syntax error\r\n");
  CHECK(run("CLIENT KILL BOGUS 1") == "-ERR syntax error\r\n");
  // old form
  CHECK(run("CLIENT KILL 9.9.9.9:1") == "-ERR No such client\r\n");
  CHECK(run("CLIENT KILL 127.0.0.1:5001") == "+OK\r\n");
  CHECK(sess.quit); // itself: after the reply
}

TEST_CASE_FIXTURE(hub_fixture, "CLIENT REPLY OFF/SKIP drop replies; NO-EVICT is a flag") {
  CHECK(run("CLIENT NO-EVICT on") == "+OK\r\n");
  CHECK(run("CLIENT INFO").find(" flags=e ") != std::string::npos);
  CHECK(run("CLIENT NO-EVICT maybe") == "-ERR syntax error\r\n");
  CHECK(run("CLIENT REPLY SKIP") == "");
  CHECK(run("SET a 1") == "");
  CHECK(run("GET a") == "$1\r\n1\r\n");
  CHECK(run("CLIENT REPLY OFF") == "");
  CHECK(run("GET a") == "");
  CHECK(run("CLIENT REPLY ON") == "+OK\r\n");
  CHECK(run("GET a") == "$1\r\n1\r\n");
  CHECK(run("CLIENT REPLY x") == "-ERR syntax error\r\n");
}

TEST_CASE_FIXTURE(hub_fixture, "OBJECT, MEMORY USAGE and FUNCTION") {
  run("SET i 12345");
  run("SET e hello");
  run("SET r " + std::string(45, 'x'));
  CHECK(run("OBJECT ENCODING i") == "$3\r\nint\r\n");
  CHECK(run("OBJECT ENCODING e") == "$6\r\nembstr\r\n");
  CHECK(run("OBJECT ENCODING r") == "$3\r\nraw\r\n");
  CHECK(run("OBJECT ENCODING none") == "$-1\r\n");
  // SETRANGE and APPEND modify in place: "raw" whatever the size, until the
  // next write (Redis 7.0's "SETRANGE against integer-encoded key")
  run("SET sr 1234");
  CHECK(run("SETRANGE sr 0 \"\"") == ":4\r\n"); // nothing set: still int
  CHECK(run("OBJECT ENCODING sr") == "$3\r\nint\r\n");
  CHECK(run("SETRANGE sr 0 2") == ":4\r\n");
  CHECK(run("OBJECT ENCODING sr") == "$3\r\nraw\r\n");
  CHECK(run("GET sr") == "$4\r\n2234\r\n");
  CHECK(run("DEBUG OBJECT sr").find(" encoding:raw ") != std::string::npos);
  run("SET sr 1234");
  CHECK(run("OBJECT ENCODING sr") == "$3\r\nint\r\n");
  run("SET ap 1");
  CHECK(run("APPEND ap 2") == ":2\r\n");
  CHECK(run("OBJECT ENCODING ap") == "$3\r\nraw\r\n");
  CHECK(run("INCR ap") == ":13\r\n"); // a new write: encoded afresh
  CHECK(run("OBJECT ENCODING ap") == "$3\r\nint\r\n");
  CHECK(run("APPEND fresh 12") == ":2\r\n"); // a new key: as SET makes it
  CHECK(run("OBJECT ENCODING fresh") == "$3\r\nint\r\n");
  CHECK(run("OBJECT FREQ e").rfind(":", 0) == 0);
  CHECK(run("OBJECT FREQ none") == "$-1\r\n");
  CHECK(run("OBJECT REFCOUNT e") == ":1\r\n");
  // Redis's shared integers 0-9999 (no maxmemory set): INT_MAX references
  run("SET shared 9999");
  CHECK(run("OBJECT REFCOUNT shared") == ":2147483647\r\n");
  CHECK(run("OBJECT REFCOUNT i") == ":1\r\n"); // 12345: its own object
  run("SET shared 0999");                      // not canonical: a string
  CHECK(run("OBJECT REFCOUNT shared") == ":1\r\n");
  CHECK(run("OBJECT REFCOUNT none") == "$-1\r\n");
  CHECK(run("OBJECT IDLETIME e").rfind("-ERR An LRU maxmemory policy is not selected", 0) == 0);
  CHECK(run("OBJECT HELP").rfind("*", 0) == 0);
  CHECK(run("OBJECT BOGUS x") == "-ERR unknown subcommand 'BOGUS'. Try OBJECT HELP.\r\n");
  auto usage = run("MEMORY USAGE r");
  REQUIRE(usage.rfind(":", 0) == 0);
  CHECK(std::stoll(usage.substr(1)) >= 46);
  CHECK(run("MEMORY USAGE none") == "$-1\r\n");
  auto stats = run("MEMORY STATS");
  CHECK(stats.rfind("*22\r\n$14\r\npeak.allocated\r\n:", 0) == 0);
  CHECK(stats.find("$10\r\nkeys.count\r\n:") != std::string::npos);
  CHECK(run("MEMORY DOCTOR").find("Sam") != std::string::npos);
  CHECK(run("MEMORY USAGE r SAMPLES 5").rfind(":", 0) == 0);
  CHECK(run("MEMORY USAGE r SAMPLES") == "-ERR syntax error\r\n");
  CHECK(run("FUNCTION LIST") == "*0\r\n");
  CHECK(run("FUNCTION FLUSH") == "+OK\r\n");
  CHECK(run("FUNCTION FLUSH ASYNC") == "+OK\r\n");
  CHECK(run("FUNCTION FLUSH LATER") == "-ERR FUNCTION FLUSH only supports SYNC|ASYNC option\r\n");
}

TEST_CASE_FIXTURE(hub_fixture, "CONFIG GET globs; CONFIG SET changes run-time settings only") {
  auto all = run("CONFIG GET *");
  CHECK(all.find("$10\r\nmaxclients\r\n") != std::string::npos);
  CHECK(run("CONFIG GET max*clients") == "*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n");
  CHECK(run("CONFIG SET maxclients 7 timeout 30") == "+OK\r\n");
  CHECK(facts.max_clients == 7);
  CHECK(facts.idle_timeout_s == 30);
  CHECK(run("CONFIG SET client-query-buffer-limit 2mb") == "+OK\r\n");
  CHECK(facts.query_buffer_limit == 2u << 20);
  CHECK(run("CONFIG SET maxclients x") ==
        "-ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument couldn't "
        "be parsed into an integer\r\n");
  CHECK(run("CONFIG SET port 1") ==
        "-ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable "
        "config\r\n");
  CHECK(run("CONFIG SET nope 1") ==
        "-ERR Unknown option or number of arguments for CONFIG SET - 'nope'\r\n");
  // atomic: one bad pair changes nothing
  CHECK(run("CONFIG SET maxclients 9 port 1").rfind("-ERR", 0) == 0);
  CHECK(facts.max_clients == 7);
  CHECK(run("CONFIG SET save \"\"") == "+OK\r\n");
  CHECK(run("CONFIG SET maxmemory-policy allkeys-lru").rfind("-ERR CONFIG SET failed", 0) == 0);
  CHECK(run("CONFIG RESETSTAT") == "+OK\r\n");
}

TEST_CASE_FIXTURE(hub_fixture, "INFO: real figures, sections as Redis, keyspace counts expires") {
  run("SET a 1");
  run("SET b 2 EX 100");
  run("SET c 3 PX 50000");
  auto info = run("INFO");
  for (auto s : {"# Server", "redis_version:7.0.15\r\n", "# Clients", "# Memory", "# Persistence",
                 "# Stats", "# Replication", "role:master\r\n", "# CPU", "# Keyspace", "# L1"})
    CHECK(info.find(s) != std::string::npos);
  CHECK(info.find("# Commandstats") == std::string::npos);
  CHECK(run("INFO everything").find("# Commandstats") != std::string::npos);
  CHECK(run("INFO all").find("cmdstat_set:calls=3") != std::string::npos);
  auto ks = run("INFO keyspace");
  CHECK(ks.find("db0:keys=3,expires=2,avg_ttl=") != std::string::npos);
  auto ttl = std::stoll(ks.substr(ks.find("avg_ttl=") + 8));
  CHECK(ttl == 75000); // (100000 + 50000) / 2 on the fake clock
  run("GET a");
  run("GET none");
  auto st = run("INFO stats");
  CHECK(st.find("keyspace_hits:1\r\n") != std::string::npos);
  CHECK(st.find("keyspace_misses:1\r\n") != std::string::npos);
  CHECK(run("INFO clients").find("connected_clients:") != std::string::npos);
  CHECK(run("INFO server replication").find("# Replication") != std::string::npos);
}

TEST_CASE_FIXTURE(hub_fixture, "SHUTDOWN asks the process to stop and closes the connection") {
  CHECK(run("SHUTDOWN") == "-ERR Errors trying to SHUTDOWN. Check logs.\r\n");
  int asked = 0;
  facts.shutdown = [&] { ++asked; };
  CHECK(run("SHUTDOWN ABORT") == "-ERR No shutdown in progress.\r\n");
  CHECK(run("SHUTDOWN SAVE NOSAVE") == "-ERR syntax error\r\n");
  CHECK(run("SHUTDOWN BOGUS") == "-ERR syntax error\r\n");
  CHECK(asked == 0);
  CHECK(run("SHUTDOWN NOSAVE") == "");
  CHECK(asked == 1);
  CHECK(sess.quit);
}

TEST_CASE_FIXTURE(hub_fixture, "HELLO 3 switches to RESP3: maps, sets and nulls") {
  auto h = run("HELLO 3");
  CHECK(h.rfind("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\n"
                "proto\r\n:3\r\n",
                0) == 0);
  CHECK(sess.resp == 3);
  CHECK(run("GET nothing") == "_\r\n");
  run("SET x v");
  CHECK(run("MGET x nothing") == "*2\r\n$1\r\nv\r\n_\r\n");
  run("SET y $-1");
  CHECK(run("GET y") == "$3\r\n$-1\r\n"); // a value that looks like a null stays a value
  CHECK(run("CONFIG GET maxclients") == "%1\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n");
  CHECK(run("HELLO 2").rfind("*14\r\n", 0) == 0);
  CHECK(run("GET nothing") == "$-1\r\n");
  CHECK(run("HELLO 4") == "-NOPROTO unsupported protocol version\r\n");
}

TEST_CASE_FIXTURE(hub_fixture,
                  "pub/sub: SUBSCRIBE, PSUBSCRIBE, PUBLISH, PUBSUB, the subscribed context") {
  CHECK(as(s2, "SUBSCRIBE news sport") == "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n*3\r\n$"
                                          "9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n");
  CHECK(as(s3, "PSUBSCRIBE n*") == "*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:1\r\n");
  CHECK(run("PUBLISH news hi") == ":2\r\n");
  CHECK(take(2) == "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
  CHECK(take(3) == "*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
  CHECK(run("PUBLISH zzz x") == ":0\r\n");
  CHECK(run("PUBSUB CHANNELS") == "*2\r\n$4\r\nnews\r\n$5\r\nsport\r\n");
  CHECK(run("PUBSUB NUMSUB news x") == "*4\r\n$4\r\nnews\r\n:1\r\n$1\r\nx\r\n:0\r\n");
  CHECK(run("PUBSUB NUMPAT") == ":1\r\n");
  CHECK(as(s2, "GET a").rfind("-ERR Can't execute 'get': only (P|S)SUBSCRIBE", 0) == 0);
  CHECK(as(s2, "PING") == "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
  CHECK(as(s2, "UNSUBSCRIBE") == "*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:1\r\n*3\r\n$"
                                 "11\r\nunsubscribe\r\n$5\r\nsport\r\n:0\r\n");
  CHECK(as(s2, "UNSUBSCRIBE") == "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
  CHECK(as(s2, "GET a") == "$-1\r\n");
  CHECK(as(s3, "PUNSUBSCRIBE n*") == "*3\r\n$12\r\npunsubscribe\r\n$2\r\nn*\r\n:0\r\n");
  CHECK(run("PUBSUB NUMPAT") == ":0\r\n");
  // a client that leaves takes its subscriptions along
  as(s3, "SUBSCRIBE gone");
  cmds.hub().remove_client(3);
  CHECK(run("PUBLISH gone x") == ":0\r\n");
}

TEST_CASE_FIXTURE(hub_fixture, "shard pub/sub: SSUBSCRIBE, SPUBLISH, SUNSUBSCRIBE apart from "
                               "SUBSCRIBE/PUBLISH") {
  CHECK(as(s2, "SSUBSCRIBE orders") == "*3\r\n$10\r\nssubscribe\r\n$6\r\norders\r\n:1\r\n");
  CHECK(as(s2, "SUBSCRIBE orders") == "*3\r\n$9\r\nsubscribe\r\n$6\r\norders\r\n:1\r\n");
  CHECK(run("SPUBLISH orders o1") == ":1\r\n");
  CHECK(take(2) == "*3\r\n$8\r\nsmessage\r\n$6\r\norders\r\n$2\r\no1\r\n");
  CHECK(run("PUBLISH orders o2") == ":1\r\n"); // the other namespace: one "message"
  CHECK(take(2) == "*3\r\n$7\r\nmessage\r\n$6\r\norders\r\n$2\r\no2\r\n");
  CHECK(run("SPUBLISH nobody x") == ":0\r\n");
  CHECK(as(s2, "GET a").rfind("-ERR Can't execute 'get'", 0) == 0);
  CHECK(as(s2, "SUNSUBSCRIBE") == "*3\r\n$12\r\nsunsubscribe\r\n$6\r\norders\r\n:0\r\n");
  CHECK(as(s2, "SUNSUBSCRIBE") == "*3\r\n$12\r\nsunsubscribe\r\n$-1\r\n:0\r\n");
  CHECK(run("SPUBLISH orders o3") == ":0\r\n");
  as(s2, "SSUBSCRIBE gone");
  cmds.hub().remove_client(2);
  CHECK(run("SPUBLISH gone x") == ":0\r\n");
}

TEST_CASE_FIXTURE(hub_fixture,
                  "tracking: RESP3 pushes after another client's write, once per read") {
  run("HELLO 3");
  CHECK(run("CLIENT TRACKING on") == "+OK\r\n");
  CHECK(run("CLIENT GETREDIR") == ":0\r\n");
  run("GET k");
  CHECK(as(s2, "SET k v") == "+OK\r\n");
  CHECK(take(1) == inval_k);
  CHECK(as(s2, "SET k v2") == "+OK\r\n");
  CHECK(take(1) == ""); // not read again: not tracked any more
  run("GET k");
  as(s2, "DEL k");
  CHECK(take(1) == inval_k);
  run("GET k");
  as(s2, "FLUSHALL");
  CHECK(take(1) == ">2\r\n$10\r\ninvalidate\r\n_\r\n");
  // its own writes notify it too, unless NOLOOP
  run("GET k");
  run("SET k mine");
  CHECK(take(1) == inval_k);
  CHECK(run("CLIENT TRACKING on NOLOOP") == "+OK\r\n");
  run("GET k");
  run("SET k mine2");
  CHECK(take(1) == "");
  CHECK(run("CLIENT TRACKING off") == "+OK\r\n");
  CHECK(run("CLIENT GETREDIR") == ":-1\r\n");
  run("GET k");
  as(s2, "SET k other");
  CHECK(take(1) == "");
}

TEST_CASE_FIXTURE(hub_fixture, "tracking: REDIRECT to a RESP2 client on __redis__:invalidate") {
  as(s2, "SUBSCRIBE __redis__:invalidate");
  CHECK(run("CLIENT TRACKING on REDIRECT 99") ==
        "-ERR The client ID you want redirect to does not exist\r\n");
  CHECK(run("CLIENT TRACKING on REDIRECT 2") == "+OK\r\n");
  CHECK(run("CLIENT GETREDIR") == ":2\r\n");
  run("GET k");
  as(s3, "SET k v");
  CHECK(take(2) == "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n");
  CHECK(take(1) == "");
  run("GET k");
  as(s3, "FLUSHALL");
  CHECK(take(2) == "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*-1\r\n");
  auto info = run("CLIENT TRACKINGINFO");
  CHECK(info ==
        "*6\r\n$5\r\nflags\r\n*1\r\n$2\r\non\r\n$8\r\nredirect\r\n:2\r\n$8\r\nprefixes\r\n*0\r\n");
}

TEST_CASE_FIXTURE(hub_fixture, "tracking: BCAST prefixes, OPTIN/OPTOUT, expiry and errors") {
  run("HELLO 3");
  CHECK(run("CLIENT TRACKING on PREFIX a") ==
        "-ERR PREFIX option requires BCAST mode to be enabled\r\n");
  CHECK(run("CLIENT TRACKING on BCAST PREFIX user: PREFIX us") ==
        "-ERR Prefix 'user:' overlaps with another provided prefix 'us'. Prefixes for a single "
        "client must not overlap.\r\n");
  CHECK(run("CLIENT TRACKING on BCAST PREFIX user: PREFIX job:") == "+OK\r\n");
  CHECK(run("CLIENT TRACKING on BCAST PREFIX us") ==
        "-ERR Prefix 'us' overlaps with an existing prefix 'user:'. Prefixes for a single client "
        "must not overlap.\r\n");
  as(s2, "SET user:1 x");
  CHECK(take(1) == ">2\r\n$10\r\ninvalidate\r\n*1\r\n$6\r\nuser:1\r\n");
  as(s2, "SET other x");
  CHECK(take(1) == "");
  CHECK(run("CLIENT TRACKING on OPTIN") ==
        "-ERR You can't switch BCAST mode on/off before disabling tracking for this client, and "
        "then re-enabling it with a different mode.\r\n");
  run("CLIENT TRACKING off");
  CHECK(run("CLIENT TRACKING on OPTIN OPTOUT") == "-ERR You can't use both OPTIN and OPTOUT\r\n");
  CHECK(run("CLIENT CACHING yes") ==
        "-ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or "
        "OPTOUT mode enabled\r\n");
  CHECK(run("CLIENT TRACKING on OPTIN") == "+OK\r\n");
  CHECK(run("CLIENT CACHING no") ==
        "-ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.\r\n");
  run("GET a"); // not opted in
  as(s2, "SET a 1");
  CHECK(take(1) == "");
  CHECK(run("CLIENT CACHING yes") == "+OK\r\n");
  run("GET a");
  as(s2, "SET a 2");
  CHECK(take(1) == ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n");
  // expiry: a tracked key whose time passes is invalidated by the timer
  run("CLIENT TRACKING off");
  run("CLIENT TRACKING on");
  as(s2, "SET t v PX 100");
  run("GET t");
  cmds.hub().expire_due(clk.now_ms() + 50);
  CHECK(take(1) == "");
  cmds.hub().expire_due(clk.now_ms() + 100);
  CHECK(take(1) == ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nt\r\n");
  auto ti = run("CLIENT TRACKINGINFO");
  CHECK(ti.rfind("%3\r\n$5\r\nflags\r\n~1\r\n$2\r\non\r\n", 0) == 0);
}

TEST_CASE_FIXTURE(hub_fixture, "tracking off costs nothing: no state is kept") {
  run("GET k");
  as(s2, "SET k v");
  CHECK_FALSE(cmds.hub().active());
  CHECK(cmds.hub().tracked_keys() == 0);
  CHECK(pushed.empty());
}

TEST_CASE_FIXTURE(hub_fixture, "tracking: the probe invalidates tracked keys that vanished") {
  run("HELLO 3");
  run("CLIENT TRACKING on");
  as(s2, "SET k v");
  run("GET k");       // present: probed
  run("GET missing"); // absent when read: not probed
  cmds.hub().probe(10, [](std::string_view) { return true; });
  CHECK(take(1) == "");
  cmds.hub().probe(10, [](std::string_view k) { return k != "k"; });
  CHECK(take(1) == inval_k);
  cmds.hub().probe(10, [](std::string_view) { return false; });
  CHECK(take(1) == ""); // once: k is no longer tracked, "missing" never was probed
}

TEST_CASE_FIXTURE(hub_fixture, "tracking: BCAST batches per prefix, NOLOOP per key, table limit") {
  run("HELLO 3");
  REQUIRE(run("CLIENT TRACKING on BCAST PREFIX a: PREFIX b:") == "+OK\r\n");
  // one command's changes: one message per prefix, keys in order
  as(s2, "MSET a:2 1 a:1 1 b:1 1 c:1 1");
  CHECK(take(1) == ">2\r\n$10\r\ninvalidate\r\n*2\r\n$3\r\na:1\r\n$3\r\na:2\r\n"
                   ">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nb:1\r\n");
  run("CLIENT TRACKING off");
  REQUIRE(run("CLIENT TRACKING on BCAST NOLOOP") == "+OK\r\n");
  // every key: the empty prefix, as Redis lists it
  CHECK(run("CLIENT TRACKINGINFO").find("$8\r\nprefixes\r\n*1\r\n$0\r\n\r\n") != std::string::npos);
  run("SET mine 1");
  CHECK(take(1) == "");
  as(s2, "SET theirs 1");
  CHECK(take(1) == ">2\r\n$10\r\ninvalidate\r\n*1\r\n$6\r\ntheirs\r\n");
  run("CLIENT TRACKING off");
  // tracking-table-max-keys: the table sheds keys with an invalidation
  REQUIRE(run("CLIENT TRACKING on") == "+OK\r\n");
  run("MSET k1 1 k2 2 k3 3");
  run("MGET k1 k2 k3");
  CHECK(cmds.hub().tracked_keys() == 3);
  CHECK(run("CONFIG SET tracking-table-max-keys 1") == "+OK\r\n");
  CHECK(cmds.hub().tracked_keys() == 1);
  CHECK(take(1).find("invalidate") != std::string::npos);
  CHECK(run("CONFIG GET tracking-table-max-keys") ==
        "%1\r\n$23\r\ntracking-table-max-keys\r\n$1\r\n1\r\n");
  run("CONFIG SET tracking-table-max-keys 1000000");
}

TEST_CASE_FIXTURE(hub_fixture, "tracking: BCAST NOLOOP hears of a key that expired as it was set") {
  // Redis's "Tracking gets notification of lazy expired keys" on a slow
  // machine: the key's expiry passed before the write was looked at again
  run("HELLO 3");
  REQUIRE(run("CLIENT TRACKING on BCAST NOLOOP") == "+OK\r\n");
  run("SET gone v PXAT " + std::to_string(clk.now_ms() - 1));
  CHECK(take(1) == "");
  cmds.hub().expire_due(clk.now_ms(), [this](std::string_view k) { return ks.exists(k); });
  CHECK(take(1) == ">2\r\n$10\r\ninvalidate\r\n*1\r\n$4\r\ngone\r\n");
}

TEST_CASE_FIXTURE(hub_fixture, "tracking: a client's own invalidation follows EXEC's reply") {
  run("HELLO 3");
  REQUIRE(run("CLIENT TRACKING on") == "+OK\r\n");
  run("SET a 1");
  run("GET a");
  run("MULTI");
  run("INCR a");
  CHECK(take(1) == "");
  CHECK(run("EXEC") == "*1\r\n:2\r\n"); // the push is not inside the array
  CHECK(take(1) == ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n");
}

TEST_CASE_FIXTURE(hub_fixture, "DEBUG PROTOCOL, DIGEST-VALUE, OBJECT and errors") {
  CHECK(run("DEBUG PROTOCOL true") == ":1\r\n");
  CHECK(run("DEBUG PROTOCOL attrib") == "$39\r\nSome real reply following the attribute\r\n");
  run("HELLO 3");
  CHECK(run("DEBUG PROTOCOL true") == "#t\r\n");
  CHECK(run("DEBUG PROTOCOL bignum") == "(1234567999999999999999999999999999999\r\n");
  CHECK(run("DEBUG PROTOCOL map") == "%3\r\n:0\r\n#f\r\n:1\r\n#t\r\n:2\r\n#f\r\n");
  CHECK(run("DEBUG PROTOCOL nope").rfind("-ERR Wrong protocol type name", 0) == 0);
  run("SET a hello");
  run("SET b hello");
  run("HSET h f hello");
  auto d = run("DEBUG DIGEST-VALUE a b h missing");
  std::vector<std::string> parts;
  size_t p = 0;
  while ((p = d.find("$40\r\n", p)) != std::string::npos) {
    parts.push_back(d.substr(p + 5, 40));
    p += 45;
  }
  REQUIRE(parts.size() == 4);
  CHECK(parts[0] == parts[1]);
  CHECK(parts[0] != parts[2]); // a hash is not the string of its bytes
  CHECK(parts[3] == std::string(40, '0'));
  auto obj = run("DEBUG OBJECT a");
  CHECK(obj.rfind("+Value at:0x", 0) == 0);
  CHECK(obj.find(" refcount:1 encoding:embstr serializedlength:5\r\n") != std::string::npos);
  CHECK(run("DEBUG OBJECT missing") == "-ERR no such key\r\n");
  CHECK(run("DEBUG SLEEP 0") == "+OK\r\n");
  CHECK(run("DEBUG NOPE")
            .rfind("-ERR unknown subcommand or wrong number of arguments for 'NOPE'", 0) == 0);
}

TEST_CASE_FIXTURE(hub_fixture, "LATENCY HISTOGRAM: Redis 7's cumulative map per command") {
  run("SET a 1");
  run("SET b 2");
  run("GET a");
  auto r = run("LATENCY HISTOGRAM set");
  // *2 (RESP2 map as array): "set" then [calls 2 histogram_usec [bound count ...]]
  CHECK(r.rfind("*2\r\n$3\r\nset\r\n*4\r\n$5\r\ncalls\r\n:2\r\n$14\r\nhistogram_usec\r\n*", 0) ==
        0);
  // the last cumulative count is every call
  CHECK(r.size() > 4);
  CHECK(r.substr(r.size() - 4) == ":2\r\n");
  auto all = run("LATENCY HISTOGRAM");
  CHECK(all.find("$3\r\nget\r\n") != std::string::npos);
  CHECK(all.find("$3\r\nset\r\n") != std::string::npos);
  CHECK(run("LATENCY HISTOGRAM nosuchcommand") == "*0\r\n");
  run("HELLO 3");
  CHECK(run("LATENCY HISTOGRAM get").rfind("%1\r\n$3\r\nget\r\n%2\r\n$5\r\ncalls\r\n:1\r\n", 0) ==
        0);
}

TEST_CASE_FIXTURE(hub_fixture, "HRANDFIELD WITHVALUES in RESP3: field/value pairs") {
  run("HSET h f v");
  CHECK(run("HRANDFIELD h 1 WITHVALUES") == "*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
  run("HELLO 3");
  CHECK(run("HRANDFIELD h 1 WITHVALUES") == "*1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
  CHECK(run("HRANDFIELD h -2 WITHVALUES") ==
        "*2\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
}

TEST_CASE_FIXTURE(hub_fixture,
                  "DEBUG PAUSE-CRON and SET-ACTIVE-EXPIRE drive the expiry sweeps together") {
  CHECK(run("DEBUG PAUSE-CRON 1") == "-ERR the cron cannot be paused in this process\r\n");
  std::vector<bool> calls;
  facts.set_active_expire = [&](bool on) { calls.push_back(on); };
  CHECK(run("DEBUG PAUSE-CRON x") == "-ERR value is not an integer or out of range\r\n");
  CHECK(run("DEBUG PAUSE-CRON 1") == "+OK\r\n");
  CHECK(run("DEBUG SET-ACTIVE-EXPIRE 0") == "+OK\r\n");
  CHECK(run("DEBUG PAUSE-CRON 0") == "+OK\r\n"); // SET-ACTIVE-EXPIRE 0 still holds
  CHECK(run("DEBUG SET-ACTIVE-EXPIRE 1") == "+OK\r\n");
  CHECK(calls == std::vector<bool>{false, false, false, true});
}
