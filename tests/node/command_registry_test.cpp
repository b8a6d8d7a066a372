// The command registry: lookup, key positions, COMMAND's replies (compared
// byte for byte with what redis-server 7.0.15 answers), subcommand dispatch.
#include "command_fixture.hpp"
#include "node/backpressure.hpp"
#include "node/command_registry.hpp"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

using namespace kura;
using namespace kura::node;

namespace {

struct fixture : testing::command_fixture {
  const command_registry& reg = cmds.registry();
};

/// Splits an inline command line into owned strings and views on them.
struct argv {
  std::vector<std::string> parts;
  command_args args;
  explicit argv(std::string_view line) {
    REQUIRE(split_inline_args(line, parts));
    args.assign(parts.begin(), parts.end());
  }
};

std::vector<std::string> keys_of(const command_registry& r, std::string_view line,
                                 keys_status expect = keys_status::ok) {
  argv a(line);
  std::vector<std::string_view> keys;
  CHECK(r.keys_of(a.args, keys) == expect);
  return {keys.begin(), keys.end()};
}

using strings = std::vector<std::string>;

} // namespace

TEST_CASE_FIXTURE(fixture, "lookup is case-insensitive and finds subcommands") {
  int get = reg.find("get");
  REQUIRE(get >= 0);
  CHECK(reg.find("GET") == get);
  CHECK(reg.find("gEt") == get);
  CHECK(reg.spec(get).name == "get");
  CHECK(reg.find("nosuch") == -1);
  CHECK(reg.find("") == -1);
  int cfg = reg.find("CONFIG");
  int cfg_get = reg.find("Config|GET");
  REQUIRE(cfg >= 0);
  REQUIRE(cfg_get >= 0);
  CHECK(reg.spec(cfg_get).name == "config|get");
  CHECK(reg.spec(cfg_get).parent == cfg);
  CHECK(reg.find_sub(cfg, "gEt") == cfg_get);
  CHECK(reg.find_sub(cfg, "nope") == -1);
  argv a("config GET maxmemory");
  CHECK(reg.resolve(a.args) == cfg_get);
  argv b("get k");
  CHECK(reg.resolve(b.args) == get);
}

TEST_CASE_FIXTURE(fixture, "ids run in registration order; names and stats line up") {
  REQUIRE(reg.entries() == reg.names().size());
  REQUIRE(reg.entries() == reg.stats().size());
  size_t top = 0;
  for (size_t i = 0; i < reg.entries(); ++i) {
    auto& sp = reg.spec(static_cast<int>(i));
    CHECK(reg.names()[i] == sp.name);
    CHECK(reg.find(sp.name) == static_cast<int>(i));
    CHECK(sp.summary[0] != '\0'); // every command is documented
    if (sp.parent < 0)
      ++top;
    else
      CHECK(sp.parent < static_cast<int>(i));
  }
  CHECK(top == reg.size());
  CHECK(reg.names().front() == "ping");
}

TEST_CASE_FIXTURE(fixture, "unknown commands and subcommands get Redis's error text") {
  CHECK(run("NOSUCH a b") == "-ERR unknown command 'NOSUCH', with args beginning with: 'a' "
                             "'b' \r\n");
  CHECK(run("nosuch") == "-ERR unknown command 'nosuch', with args beginning with: \r\n");
  CHECK(run("client foo") == "-ERR unknown subcommand 'foo'. Try CLIENT HELP.\r\n");
  CHECK(run("COMMAND nope") == "-ERR unknown subcommand 'nope'. Try COMMAND HELP.\r\n");
  CHECK(run("config") == "-ERR wrong number of arguments for 'config' command\r\n");
  CHECK(run("client setname") == "-ERR wrong number of arguments for 'client|setname' command\r\n");
  CHECK(run("command count x") == "-ERR wrong number of arguments for 'command|count' command\r\n");
  CHECK(run("GET") == "-ERR wrong number of arguments for 'get' command\r\n");
}

TEST_CASE_FIXTURE(fixture, "key positions: exact, step 2, negative last, two keys") {
  CHECK(keys_of(reg, "GET k") == strings{"k"});
  CHECK(keys_of(reg, "set k v EX 10 GET") == strings{"k"});
  CHECK(keys_of(reg, "MSET a 1 b 2 c 3") == strings{"a", "b", "c"});
  CHECK(keys_of(reg, "MSETNX a 1 b 2") == strings{"a", "b"});
  CHECK(keys_of(reg, "DEL a b c") == strings{"a", "b", "c"});
  CHECK(keys_of(reg, "MGET a") == strings{"a"});
  CHECK(keys_of(reg, "RENAME a b") == strings{"a", "b"});
  CHECK(keys_of(reg, "COPY a b REPLACE") == strings{"a", "b"});
  CHECK(keys_of(reg, "kura.tier x") == strings{"x"});
  keys_of(reg, "PING", keys_status::no_keys);
  keys_of(reg, "config get maxmemory", keys_status::no_keys);
  keys_of(reg, "GET a b", keys_status::wrong_arity);
  keys_of(reg, "MSET a", keys_status::wrong_arity);
  keys_of(reg, "NOSUCH a", keys_status::unknown_command);
  keys_of(reg, "config nosuch a", keys_status::unknown_command);

  // The spec-level function alone, on a hand-made spec: negative last counts
  // from the end (-2: all but the last argument), step skips values.
  command_spec sp;
  sp.first_key = 2;
  sp.last_key = -2;
  sp.step = 1;
  argv a("cmd opt k1 k2 k3 tail");
  std::vector<std::string_view> keys;
  command_keys(sp, a.args, keys);
  CHECK(strings(keys.begin(), keys.end()) == strings{"k1", "k2", "k3"});
  sp.first_key = 0;
  keys.clear();
  command_keys(sp, a.args, keys);
  CHECK(keys.empty());
}

TEST_CASE_FIXTURE(fixture, "COMMAND GETKEYS answers from the key positions") {
  CHECK(run("COMMAND GETKEYS MSET a 1 b 2") == "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
  CHECK(run("COMMAND GETKEYS get a b") ==
        "-ERR Invalid number of arguments specified for command\r\n");
  CHECK(run("COMMAND GETKEYS nosuch a") == "-ERR Invalid command specified\r\n");
  CHECK(run("COMMAND GETKEYS ping x") == "-ERR The command has no key arguments\r\n");
  CHECK(run("COMMAND GETKEYS get") ==
        "-ERR wrong number of arguments for 'command|getkeys' command\r\n");
}

TEST_CASE_FIXTURE(fixture, "COMMAND COUNT, LIST and the bare COMMAND agree with the registry") {
  CHECK(run("COMMAND COUNT") == ":" + std::to_string(reg.size()) + "\r\n");
  CHECK(run("command").rfind("*" + std::to_string(reg.size()) + "\r\n*10\r\n$4\r\nping\r\n", 0) ==
        0);
  CHECK(run("COMMAND INFO") == run("COMMAND"));
  auto list = run("COMMAND LIST");
  CHECK(list.rfind("*" + std::to_string(reg.entries()) + "\r\n", 0) == 0);
  CHECK(list.find("$10\r\nconfig|get\r\n") != std::string::npos);
  CHECK(run("COMMAND LIST FILTERBY PATTERN config*") ==
        "*4\r\n$6\r\nconfig\r\n$10\r\nconfig|get\r\n$10\r\nconfig|set\r\n"
        "$16\r\nconfig|resetstat\r\n");
  CHECK(run("COMMAND LIST FILTERBY ACLCAT string").find("$4\r\nmset\r\n") != std::string::npos);
  CHECK(run("COMMAND LIST FILTERBY ACLCAT string").find("$3\r\ndel\r\n") == std::string::npos);
  CHECK(run("COMMAND LIST FILTERBY ACLCAT nosuch") == "*0\r\n");
  CHECK(run("COMMAND LIST FILTERBY MODULE x") == "*0\r\n");
  CHECK(run("COMMAND LIST foo") == "-ERR syntax error\r\n");
}

TEST_CASE_FIXTURE(fixture, "COMMAND INFO for GET and MSET is what Redis 7.0 answers") {
  // Captured from redis-server 7.0.15.
  CHECK(run("COMMAND INFO get") ==
        "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@"
        "read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$"
        "12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$"
        "5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$"
        "4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:"
        "0\r\n*0\r\n");
  CHECK(run("COMMAND INFO MSET") ==
        "*1\r\n*10\r\n$4\r\nmset\r\n:-3\r\n*2\r\n+write\r\n+denyoom\r\n:1\r\n:-1\r\n:2\r\n*"
        "3\r\n+@write\r\n+@string\r\n+@slow\r\n*2\r\n$26\r\nrequest_policy:multi_shard\r\n$"
        "29\r\nresponse_policy:all_succeeded\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+OW\r\n+"
        "update\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*"
        "2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$"
        "4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:2\r\n$5\r\nlimit\r\n:"
        "0\r\n*0\r\n");
  CHECK(run("COMMAND INFO nosuch get").rfind("*2\r\n$-1\r\n*10\r\n$3\r\nget\r\n", 0) == 0);
  CHECK(run("COMMAND INFO config|get") ==
        "*1\r\n*10\r\n$10\r\nconfig|get\r\n:-3\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+"
        "stale\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*0\r\n*0\r\n*0\r\n");
  // SET's key spec carries a note, as Redis's does.
  CHECK(run("COMMAND INFO set")
            .find("$5\r\nnotes\r\n$48\r\nRW and ACCESS due to the optional "
                  "`GET` argument\r\n$5\r\nflags\r\n*4\r\n+RW\r\n+access\r\n+"
                  "update\r\n+variable_flags\r\n") != std::string::npos);
  // A container lists its subcommands as full entries.
  auto client = run("COMMAND INFO client");
  CHECK(client.rfind("*1\r\n*10\r\n$6\r\nclient\r\n:-2\r\n*0\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@"
                     "slow\r\n*0\r\n*0\r\n*",
                     0) == 0);
  CHECK(client.find("$14\r\nclient|setname\r\n:3\r\n") != std::string::npos);
}

TEST_CASE_FIXTURE(fixture, "COMMAND DOCS gives summary, since, group and complexity") {
  CHECK(run("COMMAND DOCS get nosuch") ==
        "*2\r\n$3\r\nget\r\n*8\r\n$7\r\nsummary\r\n$22\r\nGet the value of a key\r\n$"
        "5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$6\r\nstring\r\n$10\r\ncomplexity\r\n$"
        "4\r\nO(1)\r\n");
  auto cfg = run("COMMAND DOCS config");
  CHECK(cfg.rfind("*2\r\n$6\r\nconfig\r\n*10\r\n", 0) == 0);
  CHECK(cfg.find("$11\r\nsubcommands\r\n*6\r\n$10\r\nconfig|get\r\n*8\r\n") != std::string::npos);
  CHECK(run("COMMAND DOCS nosuch") == "*0\r\n");
}

TEST_CASE_FIXTURE(fixture, "flags, ACL categories and planning hints") {
  auto& get = reg.spec(reg.find("get"));
  CHECK(get.flags == (cmd_flag::readonly | cmd_flag::fast));
  CHECK(get.acl == (acl_cat::read | acl_cat::string | acl_cat::fast));
  auto& flushall = reg.spec(reg.find("flushall"));
  CHECK((flushall.acl & acl_cat::dangerous) != 0);
  CHECK((flushall.flags & cmd_flag::write) != 0);
  CHECK((reg.spec(reg.find("config|set")).flags & cmd_flag::admin) != 0);
  CHECK(reg.spec(reg.find("mset")).blind);
  CHECK(!reg.spec(reg.find("set")).blind);
  CHECK(reg.spec(reg.find("scan")).listing);
  CHECK(reg.spec(reg.find("keys")).listing);
  CHECK(reg.spec(reg.find("dbsize")).listing);
  CHECK(!reg.spec(reg.find("get")).listing);
  for (size_t i = 0; i < reg.entries(); ++i) {
    auto& sp = reg.spec(static_cast<int>(i));
    INFO(sp.name);
    CHECK(!((sp.flags & cmd_flag::write) && (sp.flags & cmd_flag::readonly)));
    CHECK((sp.parent >= 0 || sp.handler || !sp.subcommands.empty()));
    if (sp.listing)
      CHECK(static_cast<bool>(sp.planner));
  }
  CHECK(parse_command_flags("write may_replicate") == (cmd_flag::write | cmd_flag::may_replicate));
  CHECK(parse_acl_categories("@read read") == acl_cat::read);
  CHECK(acl_category_names(acl_cat::keyspace | acl_cat::dangerous) ==
        std::vector<std::string_view>{"keyspace", "dangerous"});
  CHECK(key_flag_names(key_flag::rw | key_flag::del) ==
        std::vector<std::string_view>{"RW", "delete"});
  CHECK_THROWS_AS(parse_command_flags("write bogus"), std::invalid_argument);
  CHECK_THROWS_AS(parse_acl_categories("@bogus"), std::invalid_argument);
}

TEST_CASE("a family registers commands and subcommands; duplicates are refused") {
  command_registry r;
  auto h = [](const command_args&, command_context& c) { put_ok(c.out); };
  r.add("demo", -2, "readonly fast", h).keys(1, -1, 2).acl("@read @fast");
  r.add("box", -2, "", nullptr).acl("@slow");
  r.add_sub("box", "open", 3, "write", h).keys(2, 2, 1).acl("@write @slow");
  CHECK(r.size() == 2);
  CHECK(r.entries() == 3);
  CHECK(r.names() == strings{"demo", "box", "box|open"});
  CHECK_THROWS_AS(r.add("DEMO", 1, "", h), std::invalid_argument);
  CHECK_THROWS_AS(r.add_sub("nosuch", "x", 2, "", h), std::invalid_argument);
  argv a("box OPEN k");
  std::vector<std::string_view> keys;
  CHECK(r.keys_of(a.args, keys) == keys_status::ok);
  CHECK(strings(keys.begin(), keys.end()) == strings{"k"});
}

TEST_CASE_FIXTURE(fixture, "subcommands keep their own stats; CONFIG RESETSTAT clears them") {
  run("CONFIG GET maxmemory");
  run("CONFIG GET maxmemory");
  run("client setname");
  int id = reg.find("config|get");
  CHECK(cmds.stats()[static_cast<size_t>(id)].calls == 2);
  CHECK(cmds.stats()[static_cast<size_t>(reg.find("client|setname"))].errors == 1);
  CHECK(cmds.total_commands() == 3);
  CHECK(run("CONFIG RESETSTAT") == "+OK\r\n");
  CHECK(cmds.stats()[static_cast<size_t>(id)].calls == 0);
  CHECK(cmds.total_commands() == 0);
}

TEST_CASE_FIXTURE(fixture,
                  "back-pressure: only commands that may write wait at the high-water mark") {
  auto waits = [&](std::string_view line) {
    argv a(line);
    return waits_at_high_water(reg, a.args);
  };
  for (auto line : {"SET k v", "set k v", "DEL k", "INCR k", "APPEND k v", "EXPIRE k 10",
                    "HSET h f v", "FLUSHALL", "EVAL \"return 1\" 0", "EVALSHA abc 0", "EXEC",
                    "MSET a 1 b 2", "SETRANGE k 0 v", "KURA.ERASE KEY k"})
    CHECK_MESSAGE(waits(line), line);
  for (auto line : {"GET k", "MGET a b", "EXISTS k", "TTL k", "KEYS *", "SCAN 0", "DBSIZE", "PING",
                    "INFO", "ECHO x", "CLIENT LIST", "MULTI", "HGET h f", "STRLEN k",
                    "NOSUCHCOMMAND x", "COMMAND COUNT"})
    CHECK_MESSAGE(!waits(line), line);
}
