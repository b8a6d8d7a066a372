// MULTI/EXEC/DISCARD/WATCH/UNWATCH against the command table (memory
// keyspace, L3 off): replies as Redis 7.0 gives them, EXECABORT after queueing
// errors, WATCH broken by another connection's write, by expiry and by
// FLUSHALL (live keys only), and the cluster CROSSSLOT hook.
#include "command_fixture.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace kura;
using namespace kura::node;
using fixture = kura::node::testing::command_fixture;

namespace {

/// A second connection on the same table.
struct two_clients : fixture {
  session other;
  std::string run2(std::string_view line) {
    std::vector<std::string> parts;
    REQUIRE(split_inline_args(line, parts));
    std::vector<std::string_view> args(parts.begin(), parts.end());
    out_buffer out;
    cmds.execute(args, other, out);
    return std::string(out.begin(), out.end());
  }
};

} // namespace

TEST_CASE_FIXTURE(fixture, "MULTI/EXEC basics and DISCARD") {
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("SET a 1") == "+QUEUED\r\n");
  CHECK(run("INCR a") == "+QUEUED\r\n");
  CHECK(run("GET a") == "+QUEUED\r\n");
  CHECK(run("HSET h f v") == "+QUEUED\r\n");
  CHECK(run("GET nokey") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*5\r\n+OK\r\n:2\r\n$1\r\n2\r\n:1\r\n$-1\r\n");
  CHECK(run("GET a") == "$1\r\n2\r\n");
  CHECK(run("EXEC") == "-ERR EXEC without MULTI\r\n");
  CHECK(run("DISCARD") == "-ERR DISCARD without MULTI\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("MULTI") == "-ERR MULTI calls can not be nested\r\n");
  CHECK(run("SET a 99") == "+QUEUED\r\n");
  CHECK(run("DISCARD") == "+OK\r\n");
  CHECK(run("GET a") == "$1\r\n2\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("EXEC") == "*0\r\n");
}

TEST_CASE_FIXTURE(fixture, "errors: EXECABORT for queueing errors, runtime errors in the reply") {
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("SET a 1") == "+QUEUED\r\n");
  CHECK(run("NOSUCH x") == "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n");
  CHECK(run("EXEC") == "-EXECABORT Transaction discarded because of previous errors.\r\n");
  CHECK(run("GET a") == "$-1\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("GET") == "-ERR wrong number of arguments for 'get' command\r\n");
  CHECK(run("EXEC") == "-EXECABORT Transaction discarded because of previous errors.\r\n");
  CHECK(run("MULTI") == "+OK\r\n"); // the aborted state was cleared
  CHECK(run("CONFIG NOSUCH") != "+QUEUED\r\n");
  CHECK(run("EXEC") == "-EXECABORT Transaction discarded because of previous errors.\r\n");
  CHECK(run("HSET h f v") == ":1\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("SET s 1") == "+QUEUED\r\n");
  CHECK(run("INCR h") == "+QUEUED\r\n");
  CHECK(run("INCR s") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*3\r\n+OK\r\n-WRONGTYPE Operation against a key holding the wrong kind of "
                       "value\r\n:2\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("WATCH x") == "-ERR WATCH inside MULTI is not allowed\r\n");
  CHECK(run("PING") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*1\r\n+PONG\r\n"); // WATCH inside MULTI does not abort
}

TEST_CASE_FIXTURE(two_clients,
                  "WATCH: another client's write aborts EXEC; own untouched keys do not") {
  CHECK(run("SET x 30") == "+OK\r\n");
  CHECK(run("WATCH x y z") == "+OK\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("PING") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*1\r\n+PONG\r\n");
  CHECK(run("WATCH a b x k z") == "+OK\r\n");
  CHECK(run2("SET x 40") == "+OK\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("SET k v") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*-1\r\n");
  CHECK(run("GET k") == "$-1\r\n");
  // after a failed EXEC the keys are no longer watched
  CHECK(run2("SET x 50") == "+OK\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("PING") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*1\r\n+PONG\r\n");
  // a key created and deleted again while watched was touched
  CHECK(run("WATCH fresh") == "+OK\r\n");
  CHECK(run2("SET fresh 1") == "+OK\r\n");
  CHECK(run2("DEL fresh") == ":1\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("PING") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*-1\r\n");
  // UNWATCH forgets; DISCARD too
  CHECK(run("WATCH x") == "+OK\r\n");
  CHECK(run("UNWATCH") == "+OK\r\n");
  CHECK(run2("SET x 60") == "+OK\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("PING") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*1\r\n+PONG\r\n");
  CHECK(run("WATCH x") == "+OK\r\n");
  CHECK(run("SET x 10") == "+OK\r\n"); // its own write counts too
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("DISCARD") == "+OK\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("INCR x") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*1\r\n:11\r\n");
  CHECK(cmds.registry().spec(cmds.find("watch")).first_key == 1);
}

TEST_CASE_FIXTURE(two_clients, "WATCH: expiry, EXPIRE and FLUSHALL") {
  CHECK(run("SET e v PX 100") == "+OK\r\n");
  CHECK(run("WATCH e") == "+OK\r\n");
  clk.advance_ms(101); // expired while watched
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("INCR e") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*-1\r\n");
  // a key already expired when watched is not live either way
  CHECK(run("SET st v PX 1") == "+OK\r\n");
  clk.advance_ms(2);
  CHECK(run("WATCH st") == "+OK\r\n");
  CHECK(run("EXISTS st") == ":0\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("PING") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*1\r\n+PONG\r\n");
  CHECK(run("SET x foo") == "+OK\r\n");
  CHECK(run("WATCH x") == "+OK\r\n");
  CHECK(run2("EXPIRE x 10") == ":1\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("PING") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*-1\r\n");
  CHECK(run("WATCH x") == "+OK\r\n");
  CHECK(run2("FLUSHALL") == "+OK\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("PING") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*-1\r\n");
  CHECK(run("WATCH x") == "+OK\r\n"); // x does not exist: FLUSHALL does not touch it
  CHECK(run2("FLUSHALL") == "+OK\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("PING") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*1\r\n+PONG\r\n");
}

TEST_CASE_FIXTURE(fixture, "cluster hook: keys of a transaction share one slot or CROSSSLOT") {
  cmds.set_slot_function([](std::string_view k) { return static_cast<uint16_t>(k[0]); });
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("SET a1 1") == "+QUEUED\r\n");
  CHECK(run("SET a2 2") == "+QUEUED\r\n");
  CHECK(run("MSET a3 3 b1 1") == "-CROSSSLOT Keys in request don't hash to the same slot\r\n");
  CHECK(run("EXEC") == "-EXECABORT Transaction discarded because of previous errors.\r\n");
  CHECK(run("WATCH a1 b1") == "-CROSSSLOT Keys in request don't hash to the same slot\r\n");
  CHECK(run("UNWATCH") == "+OK\r\n");
  CHECK(run("WATCH b1") == "+OK\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("SET a1 1") == "-CROSSSLOT Keys in request don't hash to the same slot\r\n");
  CHECK(run("SET b2 1") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "-EXECABORT Transaction discarded because of previous errors.\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("SET c1 1") == "+QUEUED\r\n");
  CHECK(run("GET c2") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*2\r\n+OK\r\n$-1\r\n");
}

TEST_CASE("a closed connection's watches do not dangle (sanitizer build)") {
  fake_clock clk;
  actors::keyspace ks{actors::keyspace_config{}, clk, nullptr};
  node_facts facts;
  command_table cmds{ks, facts};
  out_buffer out;
  {
    session s;
    std::vector<std::string_view> args{"WATCH", "k1", "k2"};
    cmds.execute(args, s, out);
  }
  session s2;
  std::vector<std::string_view> args{"WATCH", "k1"};
  cmds.execute(args, s2, out);
  std::vector<std::string_view> set{"SET", "k1", "v"};
  cmds.execute(set, s2, out);
  std::vector<std::string_view> multi{"MULTI"}, exec{"EXEC"};
  cmds.execute(multi, s2, out);
  out.clear();
  cmds.execute(exec, s2, out);
  CHECK(std::string(out.begin(), out.end()) == "*-1\r\n");
}

TEST_CASE_FIXTURE(two_clients, "run-time maxmemory ceiling, min-replicas-to-write, no_multi") {
  CHECK(run("SET a 1") == "+OK\r\n");
  CHECK(run("CONFIG GET maxmemory") ==
        "*2\r\n$9\r\nmaxmemory\r\n$" +
            std::to_string(std::to_string(ks.config().memory_bytes).size()) + "\r\n" +
            std::to_string(ks.config().memory_bytes) + "\r\n");
  CHECK(run("CONFIG SET maxmemory bla") ==
        "-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a "
        "memory value\r\n");
  // a queued command is checked when queued; EXEC for its queued commands' flags
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("SET b 1") == "+QUEUED\r\n");
  CHECK(run("GET a") == "+QUEUED\r\n");
  CHECK(run2("CONFIG SET maxmemory 1") == "+OK\r\n");
  CHECK(run("EXEC") == "-EXECABORT Transaction discarded because of: OOM command not allowed when "
                       "used memory > 'maxmemory'.\r\n");
  CHECK(run("GET b") == "$-1\r\n");
  CHECK(run("SET b 1") == "-OOM command not allowed when used memory > 'maxmemory'.\r\n");
  CHECK(run("DEL a") == ":1\r\n"); // not denyoom: frees memory
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("GET a") == "+QUEUED\r\n");
  CHECK(run("PING") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*2\r\n$-1\r\n+PONG\r\n"); // read-only: not refused
  CHECK(run("SET a 1") == "+OK\r\n");             // memory empty again: under the ceiling
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("SET b 1") == "-OOM command not allowed when used memory > 'maxmemory'.\r\n");
  CHECK(run("DISCARD") == "+OK\r\n");
  CHECK(run("CONFIG GET maxmemory") == "*2\r\n$9\r\nmaxmemory\r\n$1\r\n1\r\n");
  CHECK(run("CONFIG SET maxmemory 0") == "+OK\r\n"); // 0: no ceiling, as in Redis
  CHECK(run("SET b 1") == "+OK\r\n");

  CHECK(run("CONFIG SET min-replicas-to-write 2") == "+OK\r\n");
  CHECK(run("SET c 1") == "-NOREPLICAS Not enough good replicas to write.\r\n");
  CHECK(run("GET b") == "$1\r\n1\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("GET b") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*1\r\n$1\r\n1\r\n");
  CHECK(run("CONFIG SET min-replicas-max-lag 0") == "+OK\r\n"); // 0 turns the check off
  CHECK(run("SET c 1") == "+OK\r\n");
  CHECK(run("CONFIG SET min-replicas-max-lag 10") == "+OK\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("INCR c") == "-NOREPLICAS Not enough good replicas to write.\r\n");
  CHECK(run("EXEC") == "-EXECABORT Transaction discarded because of previous errors.\r\n");
  CHECK(run("CONFIG SET min-replicas-to-write 0") == "+OK\r\n");
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("INCR c") == "+QUEUED\r\n");
  CHECK(run2("CONFIG SET min-replicas-to-write 1") == "+OK\r\n");
  CHECK(run("EXEC") ==
        "-EXECABORT Transaction discarded because of: NOREPLICAS Not enough good replicas to "
        "write.\r\n");
  CHECK(run2("CONFIG SET min-replicas-to-write 0") == "+OK\r\n");
  CHECK(run("INCR c") == ":2\r\n");

  // commands flagged no_multi are refused while queueing and abort EXEC
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(run("SET d 1") == "+QUEUED\r\n");
  CHECK(run("SAVE") == "-ERR Command not allowed inside a transaction\r\n");
  CHECK(run("SHUTDOWN") == "-ERR Command not allowed inside a transaction\r\n");
  CHECK(run("EXEC") == "-EXECABORT Transaction discarded because of previous errors.\r\n");
  CHECK(run("GET d") == "$-1\r\n");
  CHECK(run("SAVE") == "-ERR kura runs without L3: there is nothing to save to\r\n");
}
