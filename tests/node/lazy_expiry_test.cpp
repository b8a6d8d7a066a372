// Lazy expiry reaches L3 (a read that finds a key expired drops L3's copy
// too), DEBUG LOADAOF / RELOAD (memory emptied, L3 kept), DEBUG OBJECT's
// address and CONFIG appendonly, on a keyspace whose L3 port records what it
// is handed.
#include "command_fixture.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace kura;
using namespace kura::node;

namespace {

/// The write-behind port: what the keyspace hands to L3, in order.
struct recording_port final : actors::l3_port {
  std::vector<std::string> writes, erases;
  int clears = 0;
  void write(const entry& e) override { writes.push_back(e.key); }
  void erase(std::string_view key) override { erases.emplace_back(key); }
  void clear() override { ++clears; }
};

actors::keyspace_config config(bool lazy_below = true) {
  actors::keyspace_config k;
  k.shards = 2;
  k.filter_bits = 1u << 12;
  k.lazy_expire_below = lazy_below;
  return k;
}

/// A command table over a keyspace with the recording port as L3.
struct l3_fixture {
  fake_clock clk;
  recording_port port;
  actors::keyspace ks{config(), clk, &port};
  node_facts facts;
  command_table cmds{ks, facts};
  session sess;
  int saves = 0;
  l3_fixture() {
    clk.set_ms(1'000'000);
    facts.save = [this] { ++saves; };
  }
  std::string run(std::string_view line) {
    std::vector<std::string> parts;
    REQUIRE(split_inline_args(line, parts));
    std::vector<std::string_view> args(parts.begin(), parts.end());
    out_buffer out;
    cmds.execute(args, sess, out);
    return std::string(out.begin(), out.end());
  }
  uint64_t memory_entries() const { return ks.l1_stats().entries + ks.l2_stats().entries; }
};

} // namespace

TEST_CASE("a read that finds a key expired in memory erases L3's copy") {
  fake_clock clk;
  clk.set_ms(1'000'000);
  recording_port port;
  actors::keyspace ks{config(), clk, &port};
  REQUIRE(ks.write("k1", "a", clk.now_ms() + 500).ok());
  REQUIRE(ks.write("k2", "b", clk.now_ms() + 5000).ok());
  REQUIRE(ks.write("k3", "c", 0).ok());
  clk.advance_ms(1000);
  CHECK(port.erases.empty()); // expiry alone erases nothing: a read finds it
  CHECK_FALSE(ks.exists("k1"));
  CHECK(port.erases == std::vector<std::string>{"k1"});
  CHECK(ks.exists("k2"));
  CHECK(ks.exists("k3"));
  CHECK_FALSE(ks.exists("k1")); // gone from memory: no second erase
  CHECK(port.erases.size() == 1);
}

TEST_CASE("an expired L3 answer in the overlay is erased from L3 on read") {
  fake_clock clk;
  clk.set_ms(1'000'000);
  recording_port port;
  actors::keyspace ks{config(), clk, &port};
  actors::staged_entries staged;
  entry old;
  old.key = "cold";
  old.value = "v";
  old.expiry_ms = clk.now_ms() - 1;
  staged.emplace("cold", old);
  entry live = old;
  live.key = "warm";
  live.expiry_ms = clk.now_ms() + 60'000;
  staged.emplace("warm", live);
  staged.emplace("absent", std::nullopt);
  ks.set_overlay(&staged);
  CHECK_FALSE(ks.get("cold"));
  CHECK(ks.get("warm"));
  CHECK_FALSE(ks.exists("absent"));
  ks.set_overlay(nullptr);
  CHECK(port.erases == std::vector<std::string>{"cold"});
  CHECK_FALSE(staged.at("cold")); // the command sees it gone
}

TEST_CASE("lazy_expire_below off: reads leave L3 alone (the cluster's scratch keyspace)") {
  fake_clock clk;
  clk.set_ms(1'000'000);
  recording_port port;
  actors::keyspace ks{config(false), clk, &port};
  REQUIRE(ks.write("k", "v", clk.now_ms() + 10).ok());
  clk.advance_ms(100);
  CHECK_FALSE(ks.exists("k"));
  CHECK(port.erases.empty());
}

TEST_CASE("MGET of expired keys drops them from L3 (DBSIZE with L3 stops counting them)") {
  l3_fixture f;
  f.run("DEBUG SET-ACTIVE-EXPIRE 0");
  CHECK(f.run("PSETEX key1{t} 500 a") == "+OK\r\n");
  CHECK(f.run("PSETEX key2{t} 500 a") == "+OK\r\n");
  CHECK(f.run("SET key3{t} a") == "+OK\r\n");
  f.clk.advance_ms(1000);
  CHECK(f.run("MGET key1{t} key2{t} key3{t}") == "*3\r\n$-1\r\n$-1\r\n$1\r\na\r\n");
  CHECK(f.port.erases == std::vector<std::string>{"key1{t}", "key2{t}"});
}

TEST_CASE("DEBUG LOADAOF and DEBUG RELOAD hand L3 the queue and empty memory, L3 kept") {
  l3_fixture f;
  CHECK(f.run("SET foo bar EX 100") == "+OK\r\n");
  CHECK(f.run("SET n 7") == "+OK\r\n");
  REQUIRE(f.memory_entries() == 2);
  CHECK(f.run("DEBUG LOADAOF") == "+OK\r\n");
  CHECK(f.saves == 1);
  CHECK(f.memory_entries() == 0);
  CHECK(f.port.clears == 0);
  CHECK(f.port.erases.empty());
  // memory lost nothing L3 does not hold: the keys are "maybe in L3", so the
  // broker looks them up there (here nobody answers: the overlay is empty)
  CHECK(f.ks.maybe_in_l3("foo"));
  CHECK(f.ks.maybe_in_l3("n"));
  CHECK(f.run("SET m 1") == "+OK\r\n");
  CHECK(f.run("DEBUG RELOAD") == "+OK\r\n");
  CHECK(f.saves == 2);
  CHECK(f.memory_entries() == 0);
  CHECK(f.run("DEBUG RELOAD NOSAVE").rfind("-ERR unknown subcommand", 0) == 0);
}

TEST_CASE("DEBUG LOADAOF without L3 is refused and keeps memory") {
  testing::command_fixture f;
  CHECK(f.run("SET k v") == "+OK\r\n");
  CHECK(f.run("DEBUG LOADAOF").rfind("-ERR kura runs without L3", 0) == 0);
  CHECK(f.run("GET k") == "$1\r\nv\r\n");
}

// (the fake clock stands still, so the node's version field keeps its size;
// on a real clock it can grow by a byte and move the value, docs/protocol.md)
TEST_CASE("DEBUG OBJECT: the value's address stays when INCR overwrites it in place") {
  testing::command_fixture f;
  CHECK(f.run("SET foo 20000") == "+OK\r\n");
  CHECK(f.run("INCR foo") == ":20001\r\n");
  auto a = f.run("DEBUG OBJECT foo");
  REQUIRE(a.rfind("+Value at:0x", 0) == 0);
  CHECK(a.find(" refcount:1 encoding:int serializedlength:5") != std::string::npos);
  CHECK(f.run("INCR foo") == ":20002\r\n");
  auto b = f.run("DEBUG OBJECT foo");
  CHECK(a.substr(0, a.find(' ', 7)) == b.substr(0, b.find(' ', 7)));
  CHECK(f.run("DEBUG OBJECT nokey") == "-ERR no such key\r\n");
}

TEST_CASE("CONFIG appendonly follows L3's write-ahead log and cannot be switched") {
  testing::command_fixture f;
  CHECK(f.run("CONFIG GET appendonly") == "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
  CHECK(f.run("CONFIG SET appendonly no") == "+OK\r\n");
  CHECK(f.run("CONFIG SET appendonly yes").find("is off") != std::string::npos);
  bool wal = true;
  f.facts.append_only = [&] { return wal; };
  CHECK(f.run("CONFIG GET appendonly") == "*2\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n");
  CHECK(f.run("CONFIG SET appendonly yes") == "+OK\r\n");
  CHECK(f.run("CONFIG SET appendonly no").find("cannot be turned off") != std::string::npos);
  CHECK(f.run("CONFIG SET appendonly maybe").rfind("-ERR", 0) == 0);
  CHECK(f.run("INFO persistence").find("aof_enabled:1\r\n") != std::string::npos);
}
