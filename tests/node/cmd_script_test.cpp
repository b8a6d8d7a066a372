// EVAL/EVALSHA/EVAL_RO/SCRIPT against the command table (memory keyspace, L3
// off): the Lua bridge's conversion rules both ways, errors as Redis 7.0
// words them (redis.call raising, redis.pcall's error table, script errors
// with their position), the caller's ACL on every redis.call (ACL LOG context
// "lua"), read-only scripts and shebang flags, the script cache, tracking of
// the keys a script declared, and a busy script that answers others -BUSY
// and stops on SCRIPT KILL.
#include "command_fixture.hpp"

#include "node/lua_engine.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace kura;
using namespace kura::node;
using fixture = kura::node::testing::command_fixture;

namespace {

std::string eval(fixture& f, const std::string& body, std::vector<std::string> rest = {"0"}) {
  std::vector<std::string> a{"EVAL", body};
  a.insert(a.end(), rest.begin(), rest.end());
  return f.run_args(a);
}

bool starts_with(const std::string& s, std::string_view p) {
  return s.compare(0, p.size(), p) == 0;
}

} // namespace

TEST_CASE_FIXTURE(fixture, "Lua to RESP conversion") {
  CHECK(eval(*this, "return 1") == ":1\r\n");
  CHECK(eval(*this, "return 3.99") == ":3\r\n"); // numbers are truncated
  CHECK(eval(*this, "return -2.5") == ":-2\r\n");
  CHECK(eval(*this, "return 'hello'") == "$5\r\nhello\r\n");
  CHECK(eval(*this, "return true") == ":1\r\n");
  CHECK(eval(*this, "return false") == "$-1\r\n");
  CHECK(eval(*this, "return nil") == "$-1\r\n");
  CHECK(eval(*this, "return {1, 'two', {3, 'four'}}") ==
        "*3\r\n:1\r\n$3\r\ntwo\r\n*2\r\n:3\r\n$4\r\nfour\r\n");
  CHECK(eval(*this, "return {1, 2, nil, 4}") == "*2\r\n:1\r\n:2\r\n"); // up to the first nil
  CHECK(eval(*this, "return {ok = 'FINE'}") == "+FINE\r\n");
  CHECK(eval(*this, "return redis.status_reply('GOOD')") == "+GOOD\r\n");
  CHECK(eval(*this, "return {err = 'MYERR oops'}") == "-MYERR oops\r\n");
  CHECK(eval(*this, "return redis.error_reply('MY boom')") == "-MY boom\r\n");
  CHECK(eval(*this, "return redis.error_reply('boom')") == "-ERR boom\r\n");
  CHECK(eval(*this, "return {double = 3.5}") == "$3\r\n3.5\r\n"); // RESP2 caller
  CHECK(eval(*this, "return KEYS[1] .. ARGV[2]", {"1", "k", "a", "b"}) == "$2\r\nkb\r\n");
  CHECK(eval(*this, "return redis.sha1hex('')") ==
        "$40\r\nda39a3ee5e6b4b0d3255bfef95601890afd80709\r\n");
}

TEST_CASE_FIXTURE(fixture, "RESP to Lua conversion of redis.call replies") {
  CHECK(eval(*this, "return redis.call('set', KEYS[1], ARGV[1])", {"1", "k", "v"}) == "+OK\r\n");
  CHECK(eval(*this, "return redis.call('set', KEYS[1], ARGV[1])['ok']", {"1", "k", "v"}) ==
        "$2\r\nOK\r\n");
  CHECK(eval(*this, "return redis.call('get', 'k')") == "$1\r\nv\r\n");
  CHECK(eval(*this, "return redis.call('get', 'nokey') == false") == ":1\r\n");
  CHECK(eval(*this, "return type(redis.call('incr', 'n'))") == "$6\r\nnumber\r\n");
  CHECK(eval(*this, "return redis.call('incr', 'n') + 10") == ":12\r\n");
  CHECK(eval(*this, "return redis.call('incrbyfloat', 'fl', 1.5)") == "$3\r\n1.5\r\n");
  run("HSET h f1 v1");
  CHECK(eval(*this, "return redis.call('hgetall', 'h')") == "*2\r\n$2\r\nf1\r\n$2\r\nv1\r\n");
  CHECK(eval(*this, "return #redis.call('mget', 'k', 'nokey', 'n')") == ":3\r\n");
  // RESP3 inside the script: a map is {map = {...}}; a RESP2 caller gets it flat
  CHECK(eval(*this,
             "redis.setresp(3); local r = redis.call('hgetall', 'h'); return r['map']['f1']") ==
        "$2\r\nv1\r\n");
  CHECK(eval(*this, "redis.setresp(3); return redis.call('hgetall', 'h')") ==
        "*2\r\n$2\r\nf1\r\n$2\r\nv1\r\n");
  CHECK(eval(*this, "redis.setresp(3); return redis.call('get', 'nokey') == nil") == ":1\r\n");
  CHECK(starts_with(eval(*this, "redis.setresp(4)"), "-ERR RESP version must be 2 or 3."));
  // numbers as arguments keep their precision
  CHECK(eval(*this, "redis.call('set', 'big', 123456789012); return redis.call('get', 'big')") ==
        "$12\r\n123456789012\r\n");
  CHECK(starts_with(eval(*this, "return redis.call('set', 'x', {})"),
                    "-ERR Lua redis lib command arguments must be strings or integers"));
  CHECK(starts_with(eval(*this, "return redis.call()"),
                    "-ERR Please specify at least one argument for this redis lib call"));
}

TEST_CASE_FIXTURE(fixture, "script errors as Redis words them") {
  run("SET s abc");
  auto e = eval(*this, "return redis.call('incr', 's')");
  CHECK(starts_with(e, "-ERR value is not an integer or out of range script: f_"));
  CHECK(e.find(", on @user_script:1.") != std::string::npos);
  // pcall returns the error table instead of raising
  CHECK(eval(*this, "local r = redis.pcall('incr', 's'); return r['err']") ==
        "$43\r\nERR value is not an integer or out of range\r\n");
  CHECK(eval(*this, "return redis.pcall('incr', 's')") ==
        "-ERR value is not an integer or out of range\r\n");
  CHECK(eval(*this, "local ok, err = pcall(function() redis.call('incr', 's') end); return err") ==
        "$43\r\nERR value is not an integer or out of range\r\n");
  CHECK(starts_with(eval(*this, "redis.call('nosuchcommand')"),
                    "-ERR Unknown Redis command called from script"));
  CHECK(starts_with(eval(*this, "redis.call('get')"),
                    "-ERR Wrong number of args calling Redis command from script"));
  CHECK(starts_with(eval(*this, "redis.call('multi')"),
                    "-ERR This Redis command is not allowed from script"));
  CHECK(starts_with(eval(*this, "redis.call('eval', 'return 1', 0)"),
                    "-ERR This Redis command is not allowed from script"));
  // globals: none created, none read that do not exist
  auto g = eval(*this, "a = 5");
  CHECK(g.find("Attempt to modify a readonly table") != std::string::npos);
  g = eval(*this, "return nosuchvar");
  CHECK(starts_with(g, "-ERR user_script:1: Script attempted to access nonexistent global "
                       "variable 'nosuchvar' script: f_"));
  CHECK(eval(*this, "redis.call = nil").find("Attempt to modify a readonly table") !=
        std::string::npos);
  CHECK(starts_with(eval(*this, "return ("), "-ERR Error compiling script (new function): "));
  CHECK(run("EVAL x y") == "-ERR value is not an integer or out of range\r\n");
  CHECK(run("EVAL x 2 k") == "-ERR Number of keys can't be greater than number of args\r\n");
  CHECK(run("EVAL x -1") == "-ERR Number of keys can't be negative\r\n");
  // the key survives an error after a write: scripts are not rolled back
  CHECK(starts_with(eval(*this, "redis.call('set', 'w', '1'); redis.call('incr', 's')"), "-ERR"));
  CHECK(run("GET w") == "$1\r\n1\r\n");
}

TEST_CASE_FIXTURE(fixture, "script cache: SCRIPT LOAD, EXISTS, FLUSH and EVALSHA") {
  auto sha = lua_engine::sha1hex("return ARGV[1]");
  CHECK(run_args({"SCRIPT", "LOAD", "return ARGV[1]"}) == "$40\r\n" + sha + "\r\n");
  CHECK(run_args({"EVALSHA", sha, "0", "hi"}) == "$2\r\nhi\r\n");
  std::string upper = sha;
  for (auto& ch : upper)
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  CHECK(run_args({"EVALSHA", upper, "0", "hi"}) == "$2\r\nhi\r\n");
  CHECK(run_args({"SCRIPT", "EXISTS", sha, "ffff"}) == "*2\r\n:1\r\n:0\r\n");
  CHECK(run("SCRIPT FLUSH ASYNC") == "+OK\r\n");
  CHECK(run("SCRIPT FLUSH bogus") == "-ERR SCRIPT FLUSH only support SYNC|ASYNC option\r\n");
  CHECK(run_args({"EVALSHA", sha, "0", "hi"}) ==
        "-NOSCRIPT No matching script. Please use EVAL.\r\n");
  CHECK(run_args({"SCRIPT", "EXISTS", sha}) == "*1\r\n:0\r\n");
  // EVAL caches the script too
  eval(*this, "return ARGV[1]", {"0", "x"});
  CHECK(run_args({"SCRIPT", "EXISTS", sha}) == "*1\r\n:1\r\n");
  CHECK(run("SCRIPT KILL") == "-NOTBUSY No scripts in execution right now.\r\n");
  CHECK(run("FCALL f 0") == "-ERR Function not found\r\n");
}

TEST_CASE_FIXTURE(fixture, "read-only scripts and shebang flags") {
  auto ro = [&](const std::string& body) { return run_args({"EVAL_RO", body, "1", "k"}); };
  CHECK(starts_with(ro("return redis.call('set', KEYS[1], 'v')"),
                    "-ERR Write commands are not allowed from read-only scripts."));
  CHECK(run("EXISTS k") == ":0\r\n");
  run("SET k v");
  CHECK(ro("return redis.call('get', KEYS[1])") == "$1\r\nv\r\n");
  CHECK(starts_with(eval(*this, "#!lua flags=no-writes\nreturn redis.call('del', 'k')"),
                    "-ERR Write commands are not allowed from read-only scripts."));
  CHECK(ro("#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])") == "$1\r\nv\r\n");
  CHECK(ro("#!lua\nreturn 1") ==
        "-ERR Can not execute a script with write flag using *_ro command.\r\n");
  CHECK(eval(*this, "#!lua flags=bogus\nreturn 1") ==
        "-ERR Unexpected flag in script shebang: bogus\r\n");
  CHECK(eval(*this, "#!python\nreturn 1") ==
        "-ERR Unexpected engine in script shebang: #!python\r\n");
  // a shebang keeps the line numbers of the rest
  auto e = eval(*this, "#!lua\nreturn nosuch");
  CHECK(e.find("user_script:2:") != std::string::npos);
}

TEST_CASE_FIXTURE(fixture, "the caller's ACL on every redis.call, logged with context lua") {
  CHECK(run("ACL SETUSER scripter on >pw +eval +get +set ~* -incr") == "+OK\r\n");
  CHECK(run("AUTH scripter pw") == "+OK\r\n");
  auto e = eval(*this, "return redis.call('incr', 'foo')");
  CHECK(starts_with(e, "-ERR The user executing the script can't run this command or subcommand "
                       "script: f_"));
  CHECK(eval(*this, "return redis.call('set', 'foo', '1')") == "+OK\r\n");
  CHECK(eval(*this, "return redis.acl_check_cmd('incr', 'foo')") == "$-1\r\n");
  CHECK(eval(*this, "return redis.acl_check_cmd('get', 'foo')") == ":1\r\n");
  CHECK(run("AUTH default \"\"").substr(0, 1) == "+");
  auto log = run("ACL LOG 1");
  CHECK(log.find("lua") != std::string::npos);
  CHECK(log.find("incr") != std::string::npos);
  // keys: a user without the key pattern
  run("ACL SETUSER keyed on >pw +eval +get ~allowed:*");
  run("AUTH keyed pw");
  CHECK(starts_with(eval(*this, "return redis.call('get', 'secret')"),
                    "-ERR The user executing the script can't access at least one of the keys "
                    "mentioned in the command arguments"));
  CHECK(eval(*this, "return redis.call('get', 'allowed:1')") == "$-1\r\n");
}

TEST_CASE_FIXTURE(fixture, "EVAL inside MULTI and the COMMAND facts") {
  CHECK(run("MULTI") == "+OK\r\n");
  CHECK(eval(*this, "return redis.call('incr', KEYS[1])", {"1", "c"}) == "+QUEUED\r\n");
  CHECK(run("INCR c") == "+QUEUED\r\n");
  CHECK(run("EXEC") == "*2\r\n:1\r\n:2\r\n");
  auto info = run("COMMAND INFO eval");
  CHECK(info.find("movablekeys") != std::string::npos);
  CHECK(info.find("keynum") != std::string::npos);
  CHECK(run("COMMAND GETKEYS EVAL x 2 a b c").find("$1\r\na\r\n$1\r\nb\r\n") != std::string::npos);
}

namespace {

/// A clock whose monotonic time moves 1 ms at every reading, so a busy loop
/// passes busy-reply-threshold without a real wait.
class ticking_clock final : public kura::clock {
public:
  uint64_t now_ms() const override { return 1'700'000'000'000ull; }
  uint64_t mono_ns() const override { return ns_ += 1'000'000; }

private:
  mutable uint64_t ns_ = 0;
};

} // namespace

TEST_CASE("a busy script answers others -BUSY and stops on SCRIPT KILL") {
  ticking_clock clk;
  actors::keyspace ks{actors::keyspace_config{}, clk, nullptr};
  node_facts facts;
  facts.busy_reply_threshold_ms = 5;
  command_table cmds{ks, facts};
  session caller, other, killer;
  caller.id = 1;
  other.id = 2;
  killer.id = 3;
  auto exec = [&](session& s, std::vector<std::string> parts, bool busy) {
    std::vector<std::string_view> args(parts.begin(), parts.end());
    out_buffer out;
    if (busy)
      cmds.execute_busy(args, s, out);
    else
      cmds.execute(args, s, out);
    return std::string(out.begin(), out.end());
  };
  exec(other, {"MULTI"}, false);
  exec(other, {"INCR", "xx"}, false);
  std::vector<std::string> seen;
  int pumps = 0;
  cmds.set_busy_pump([&](uint64_t running) {
    CHECK(running == 1);
    if (++pumps == 1) {
      seen.push_back(exec(other, {"INCR", "xx"}, true));
      seen.push_back(exec(other, {"GET", "xx"}, true));
      seen.push_back(exec(other, {"EXEC"}, true));
      seen.push_back(exec(other, {"MULTI"}, true)); // allow_busy
      seen.push_back(exec(other, {"INCR", "xx"}, true));
      seen.push_back(exec(other, {"SCRIPT", "KILL"}, true)); // queued: inside MULTI
    }
    if (pumps == 2)
      seen.push_back(exec(killer, {"SCRIPT", "KILL"}, true));
  });
  auto r = exec(caller, {"EVAL", "while true do end", "0"}, false);
  CHECK(starts_with(r, "-ERR Script killed by user with SCRIPT KILL... script: f_"));
  REQUIRE(seen.size() == 7);
  std::string busy = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or "
                     "SHUTDOWN NOSAVE.";
  CHECK(seen[0] == "-" + busy + "\r\n");
  CHECK(seen[1] == "-" + busy + "\r\n");
  CHECK(seen[2] == "-EXECABORT Transaction discarded because of: " + busy + "\r\n");
  CHECK(seen[3] == "+OK\r\n");
  CHECK(seen[4] == "-" + busy + "\r\n");
  CHECK(seen[5] == "+QUEUED\r\n");
  CHECK(seen[6] == "+OK\r\n");
  // the transaction opened during the script saw a BUSY: EXEC aborts it
  CHECK(exec(other, {"INCR", "xx"}, false) == "+QUEUED\r\n");
  CHECK(exec(other, {"EXEC"}, false) ==
        "-EXECABORT Transaction discarded because of previous errors.\r\n");
  CHECK(exec(other, {"PING"}, false) == "+PONG\r\n");
  CHECK(exec(other, {"GET", "xx"}, false) == "$-1\r\n");
  // a script that wrote cannot be killed
  pumps = 0;
  seen.clear();
  cmds.set_busy_pump([&](uint64_t) {
    if (++pumps == 1)
      seen.push_back(exec(killer, {"SCRIPT", "KILL"}, true));
  });
  r = exec(
      caller,
      {"EVAL", "redis.call('set', 'w', 1); local i = 0; while i < 2000000 do i = i + 1 end", "0"},
      false);
  CHECK(r == "$-1\r\n");
  REQUIRE(seen.size() >= 1);
  CHECK(starts_with(seen[0], "-UNKILLABLE Sorry the script already executed write commands"));
}

TEST_CASE_FIXTURE(fixture, "tracking: a script that reads tracks the keys it declared") {
  session writer;
  writer.id = 77;
  sess.id = 5;
  cmds.hub().add_client(sess);
  cmds.hub().add_client(writer);
  std::string pushed;
  cmds.hub().set_deliver([&](uint64_t id, std::string_view b) {
    if (id == 5)
      pushed.append(b);
  });
  run("HELLO 3");
  CHECK(run("CLIENT TRACKING on") == "+OK\r\n");
  auto w = [&](std::vector<std::string> parts) {
    std::vector<std::string_view> args(parts.begin(), parts.end());
    out_buffer out;
    cmds.execute(args, writer, out);
  };
  // a script that only writes tracks nothing
  eval(*this, "redis.call('set', 'k3', 'bar')", {"2", "k1", "k2"});
  w({"MSET", "k1", "1", "k2", "1"});
  CHECK(pushed.empty());
  // a script that reads tracks its declared keys (not the key it read)
  eval(*this, "redis.call('get', 'k3')", {"2", "k1", "k2"});
  w({"SET", "k3", "2"});
  CHECK(pushed.empty());
  w({"MSET", "k1", "2", "k2", "2"});
  CHECK(pushed.find("k1") != std::string::npos);
  CHECK(pushed.find("k2") != std::string::npos);
  cmds.hub().remove_client(writer.id);
  cmds.hub().remove_client(sess.id);
}
