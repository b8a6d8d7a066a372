// AUTH, HELLO AUTH, ACL commands, the dispatcher's checks (NOAUTH, NOPERM on
// commands and keys from the registry's key specs) and the audit log, through
// the command table.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "command_fixture.hpp"

#include "node/security.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

using namespace kura::node;
using kura::node::testing::command_fixture;

namespace {

std::string temp_dir() {
  auto d = std::filesystem::temp_directory_path() /
           ("kura-security-test-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()));
  std::filesystem::create_directories(d);
  return d.string();
}

std::string read_file(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string err(std::string_view m) {
  return "-" + std::string(m) + "\r\n";
}

} // namespace

TEST_CASE("requirepass: NOAUTH until AUTH; WRONGPASS for a bad password") {
  command_fixture f;
  security_config sc;
  sc.requirepass = "pw";
  REQUIRE(f.cmds.configure_security(sc) == "");
  CHECK(f.run("GET k") == err("NOAUTH Authentication required."));
  CHECK(f.run("PING") == err("NOAUTH Authentication required."));
  CHECK(f.run("AUTH nope") == err("WRONGPASS invalid username-password pair or user is disabled."));
  CHECK(f.run("AUTH default nope") == err(err_wrongpass));
  CHECK(f.run("AUTH pw") == "+OK\r\n");
  CHECK(f.run("PING") == "+PONG\r\n");
  CHECK(f.run("ACL WHOAMI") == "$7\r\ndefault\r\n");
  auto& log = f.cmds.security().log;
  REQUIRE(log.entries().size() == 1);
  CHECK(log.entries()[0].count == 2);
  CHECK(log.entries()[0].reason == acl_verdict::denied_auth);
  CHECK(log.entries()[0].object == "AUTH"); // as typed
}

TEST_CASE("AUTH without a configured password is Redis's error") {
  command_fixture f;
  CHECK(f.run("AUTH x") ==
        err("ERR AUTH <password> called without any password configured for the default "
            "user. Are you sure your configuration is correct?"));
  CHECK(f.run("AUTH a b c") == err("ERR syntax error"));
}

TEST_CASE("HELLO AUTH authenticates; HELLO without it needs an authenticated client") {
  command_fixture f;
  security_config sc;
  sc.requirepass = "pw";
  REQUIRE(f.cmds.configure_security(sc) == "");
  CHECK(f.run("HELLO 2").rfind("-NOAUTH HELLO must be called with the client already "
                               "authenticated",
                               0) == 0);
  CHECK(f.run("HELLO 2 AUTH default bad") == err(err_wrongpass));
  auto r = f.run("HELLO 2 AUTH default pw SETNAME me");
  CHECK(r.rfind("*14\r\n", 0) == 0);
  CHECK(f.sess.name == "me");
  CHECK(f.run("GET k") == "$-1\r\n");
}

TEST_CASE("alice on >p ~cached:* +get through the dispatcher") {
  command_fixture f;
  CHECK(f.run("SET cached:x 1") == "+OK\r\n");
  CHECK(f.run("ACL SETUSER alice on >p ~cached:* +get") == "+OK\r\n");
  CHECK(f.run("AUTH alice p") == "+OK\r\n");
  CHECK(f.run("ACL WHOAMI") == err("NOPERM this user has no permissions to run the 'acl|whoami' "
                                   "command"));
  CHECK(f.run("GET cached:x") == "$1\r\n1\r\n");
  CHECK(f.run("GET other") ==
        err("NOPERM this user has no permissions to access one of the keys used as "
            "arguments"));
  CHECK(f.run("SET cached:x 2") ==
        err("NOPERM this user has no permissions to run the 'set' command"));
  auto& log = f.cmds.security().log;
  REQUIRE(log.entries().size() == 3);
  CHECK(log.entries()[0].reason == acl_verdict::denied_command);
  CHECK(log.entries()[0].object == "set");
  CHECK(log.entries()[1].reason == acl_verdict::denied_key);
  CHECK(log.entries()[1].object == "other");
  CHECK(log.entries()[1].username == "alice");
}

TEST_CASE("every key of a multi-key command is checked, read or write by its key spec") {
  command_fixture f;
  CHECK(f.run("ACL SETUSER u on nopass +@all %R~r:* ~rw:*") == "+OK\r\n");
  CHECK(f.run("AUTH u x") == "+OK\r\n");
  CHECK(f.run("MGET r:1 rw:1") == "*2\r\n$-1\r\n$-1\r\n");
  CHECK(f.run("MGET r:1 x").rfind("-NOPERM", 0) == 0);
  CHECK(f.run("MSET rw:1 a rw:2 b") == "+OK\r\n");
  CHECK(f.run("MSET rw:1 a r:2 b").rfind("-NOPERM", 0) == 0);
  CHECK(f.run("SET r:1 v").rfind("-NOPERM", 0) == 0);
  CHECK(f.run("DEL rw:1") == ":1\r\n");
}

TEST_CASE("ACL DRYRUN, GETUSER, LIST, USERS, DELUSER, CAT, GENPASS, LOG") {
  command_fixture f;
  CHECK(f.run("ACL SETUSER bob on >x ~k* +get") == "+OK\r\n");
  CHECK(f.run("ACL DRYRUN bob GET k1") == "+OK\r\n");
  CHECK(f.run("ACL DRYRUN bob GET z") ==
        "$50\r\nThis user has no permissions to access the 'z' key\r\n");
  CHECK(f.run("ACL DRYRUN bob SET k1 v") ==
        "$53\r\nThis user has no permissions to run the 'set' command\r\n");
  CHECK(f.run("ACL DRYRUN nobody GET k") == err("ERR User 'nobody' not found"));
  CHECK(f.run("ACL DRYRUN bob NOSUCH") == err("ERR Command 'NOSUCH' not found"));
  auto gu = f.run("ACL GETUSER bob");
  CHECK(gu.find("$8\r\ncommands\r\n$10\r\n-@all +get\r\n") != std::string::npos);
  CHECK(gu.find("$4\r\nkeys\r\n$3\r\n~k*\r\n") != std::string::npos);
  CHECK(f.run("ACL GETUSER nobody") == "$-1\r\n");
  CHECK(f.run("ACL USERS") == "*2\r\n$3\r\nbob\r\n$7\r\ndefault\r\n");
  auto list = f.run("ACL LIST");
  CHECK(list.find("user default on nopass ~* &* +@all") != std::string::npos);
  CHECK(f.run("ACL DELUSER default") == err("ERR The 'default' user cannot be removed"));
  CHECK(f.run("ACL DELUSER bob nobody") == ":1\r\n");
  CHECK(f.run("ACL CAT").rfind("*21\r\n$8\r\nkeyspace\r\n", 0) == 0);
  CHECK(f.run("ACL CAT nosuch") == err("ERR Unknown category 'nosuch'"));
  CHECK(f.run("ACL CAT dangerous").find("$8\r\nflushall\r\n") != std::string::npos);
  CHECK(f.run("ACL GENPASS").size() == 64 + 5 + 2);
  CHECK(f.run("ACL GENPASS 0").rfind("-ERR ACL GENPASS argument must be", 0) == 0);
  CHECK(
      f.run("ACL LOAD").rfind("-ERR This Redis instance is not configured to use an ACL file", 0) ==
      0);
  CHECK(f.run("ACL SETUSER x +@bogus") ==
        err("ERR Error in ACL SETUSER modifier '+@bogus': Unknown command or category name "
            "in ACL"));
  CHECK(f.run("ACL LOG") == "*0\r\n");
  f.run("AUTH bob wrong");
  auto lg = f.run("ACL LOG 1");
  CHECK(lg.find("$6\r\nreason\r\n$4\r\nauth\r\n") != std::string::npos);
  CHECK(lg.find("$8\r\nusername\r\n$3\r\nbob\r\n") != std::string::npos);
  CHECK(f.run("ACL LOG RESET") == "+OK\r\n");
  CHECK(f.run("ACL LOG") == "*0\r\n");
}

TEST_CASE("a deleted user's connection is closed at its next command") {
  command_fixture f;
  CHECK(f.run("ACL SETUSER gone on nopass +@all ~*") == "+OK\r\n");
  CHECK(f.run("AUTH gone x") == "+OK\r\n");
  auto& sec = f.cmds.security();
  CHECK(sec.acl->del_user("gone"));
  CHECK(f.run("PING") == "");
  CHECK(f.sess.quit);
}

TEST_CASE("ACL SAVE and LOAD with an ACL file") {
  command_fixture f;
  auto dir = temp_dir();
  security_config sc;
  sc.aclfile = dir + "/users.acl";
  {
    std::ofstream o(sc.aclfile);
    o << "user default on nopass ~* &* +@all\nuser carol on >c ~c:* +@read\n";
  }
  REQUIRE(f.cmds.configure_security(sc) == "");
  CHECK(f.run("ACL USERS") == "*2\r\n$5\r\ncarol\r\n$7\r\ndefault\r\n");
  CHECK(f.run("ACL SETUSER dan on >d +get ~*") == "+OK\r\n");
  CHECK(f.run("ACL SAVE") == "+OK\r\n");
  auto text = read_file(sc.aclfile);
  CHECK(text.find("user dan on #") != std::string::npos);
  CHECK(text.find(">d") == std::string::npos); // hashes only
  CHECK(f.run("ACL DELUSER dan") == ":1\r\n");
  CHECK(f.run("ACL LOAD") == "+OK\r\n");
  CHECK(f.run("ACL USERS") == "*3\r\n$5\r\ncarol\r\n$3\r\ndan\r\n$7\r\ndefault\r\n");
  {
    std::ofstream o(sc.aclfile);
    o << "user broken +nosuch\n";
  }
  CHECK(f.run("ACL LOAD").rfind("-ERR " + sc.aclfile + ":1: Error in applying operation", 0) == 0);
  CHECK(f.run("ACL USERS") == "*3\r\n$5\r\ncarol\r\n$3\r\ndan\r\n$7\r\ndefault\r\n");
  std::filesystem::remove_all(dir);
}

TEST_CASE("a bad ACL file or both requirepass and aclfile refuse to configure") {
  auto dir = temp_dir();
  {
    command_fixture f;
    security_config sc;
    sc.aclfile = dir + "/bad.acl";
    std::ofstream(sc.aclfile) << "user x +nosuch\n";
    CHECK(f.cmds.configure_security(sc).rfind("cannot load ACL file:", 0) == 0);
  }
  {
    command_fixture f;
    security_config sc;
    sc.aclfile = dir + "/ok.acl";
    sc.requirepass = "x";
    CHECK(f.cmds.configure_security(sc).find("mutually exclusive") != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("the audit log records refusals, admin commands and ACL changes, redacted") {
  command_fixture f;
  auto dir = temp_dir();
  security_config sc;
  sc.requirepass = "topsecret";
  sc.audit_log = dir + "/audit.log";
  sc.node_name = "n1";
  sc.audit_fsync_every = 1;
  REQUIRE(f.cmds.configure_security(sc) == "");
  f.sess.peer = "10.1.2.3:5555";
  f.run("GET k");
  f.run("AUTH wrong");
  f.run("AUTH topsecret");
  f.run("SET k v");
  f.run("FLUSHALL");
  f.run("ACL SETUSER eve on >evepass ~e:* +get");
  f.run("CONFIG SET maxmemory 1");
  std::vector<std::string> lines;
  REQUIRE(read_audit_lines(sc.audit_log, 5, lines) == "");
  REQUIRE(lines.size() == 5);
  auto l0 = parse_audit_line(lines[0]);
  CHECK(l0.ok);
  CHECK(l0.event == "noauth");
  CHECK(l0.client == "10.1.2.3:5555");
  CHECK(l0.command == "GET");
  CHECK(l0.result == "NOAUTH Authentication required.");
  auto l1 = parse_audit_line(lines[1]);
  CHECK(l1.event == "auth");
  CHECK(l1.result == std::string(err_wrongpass));
  CHECK(parse_audit_line(lines[2]).command == "FLUSHALL");
  CHECK(parse_audit_line(lines[2]).result == "ok");
  CHECK(parse_audit_line(lines[3]).command == "ACL SETUSER");
  CHECK(parse_audit_line(lines[4]).command == "CONFIG SET");
  CHECK(lines[0].find("\"node\":\"n1\"") != std::string::npos);
  for (auto& l : lines) {
    CHECK(l.find("topsecret") == std::string::npos);
    CHECK(l.find("evepass") == std::string::npos);
    CHECK(l.find("wrong") == std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("audit log rotation keeps the newest lines within the limit") {
  auto dir = temp_dir();
  audit_log::options o;
  o.path = dir + "/a.log";
  o.max_bytes = 1000;
  o.keep = 2;
  o.fsync_every = 4;
  {
    audit_log a(o);
    REQUIRE(a.open() == "");
    for (int i = 0; i < 100; ++i) {
      audit_event e;
      e.time_ms = 1700000000000ull + static_cast<uint64_t>(i);
      e.event = "command";
      e.command = "FLUSHALL";
      e.result = "ok " + std::to_string(i);
      a.record(e);
    }
    CHECK(a.write_errors() == 0);
  }
  CHECK(std::filesystem::file_size(o.path) <= 1000);
  CHECK(std::filesystem::exists(o.path + ".1"));
  CHECK(std::filesystem::exists(o.path + ".2"));
  CHECK_FALSE(std::filesystem::exists(o.path + ".3"));
  std::vector<std::string> lines;
  REQUIRE(read_audit_lines(o.path, 2, lines) == "");
  REQUIRE(!lines.empty());
  CHECK(parse_audit_line(lines.back()).result == "ok 99");
  // oldest first, and in order
  uint64_t prev = 0;
  for (auto& l : lines) {
    auto p = parse_audit_line(l);
    CHECK(p.ok);
    CHECK(p.time_ms >= prev);
    prev = p.time_ms;
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("audit log: repeated refusals from one address are one line per window with a count") {
  auto dir =
      std::filesystem::temp_directory_path() / ("kura-audit-repeat-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  audit_log::options o;
  o.path = (dir / "audit.log").string();
  o.node = "n";
  o.repeat_window_ms = 60000;
  const uint64_t t0 = 1700000000000ull;
  auto refusal = [&](uint64_t t, const std::string& client, const std::string& why) {
    audit_event e;
    e.time_ms = t;
    e.event = "tls";
    e.client = client;
    e.result = "DENIED " + why;
    return e;
  };
  std::vector<std::string> lines;
  auto read = [&] {
    lines.clear();
    REQUIRE(read_audit_lines(o.path, 5, lines) == "");
    return lines.size();
  };
  {
    audit_log a(o);
    REQUIRE(a.open() == "");
    // a stranger retrying every second from new ports, for 90 s
    for (int i = 0; i < 90; ++i)
      a.record(refusal(t0 + 1000ull * i, "10.0.0.9:" + std::to_string(40000 + i), "unknown ca"));
    // another address, another reason: lines of their own
    a.record(refusal(t0 + 500, "10.0.0.7:5000", "unknown ca"));
    a.record(refusal(t0 + 600, "10.0.0.9:5001", "no certificate"));
    // a command is never folded
    for (int i = 0; i < 3; ++i) {
      audit_event e;
      e.time_ms = t0 + 700;
      e.event = "command";
      e.command = "FLUSHALL";
      e.result = "ok";
      a.record(e);
    }
    // 0..59 s: the first written, 59 counted; at 60 s the summary, then 60 s
    // written and 61..89 counted
    CHECK(read() == 1 + 1 + 1 + 1 + 1 + 3);
    CHECK(a.suppressed() == 59 + 29);
    auto sum = parse_audit_line(lines[1]);
    CHECK(sum.event == "tls");
    CHECK(sum.client == "10.0.0.9");
    CHECK(sum.repeated == 59);
    CHECK(sum.since == iso8601_ms(t0));
    CHECK(sum.time_ms == t0 + 59000);
    CHECK(sum.result == "DENIED unknown ca");
    a.tick(t0 + 100000); // the window of the refusal at 60 s has not ended
    CHECK(read() == 8);
    a.tick(t0 + 130000); // now it has
    CHECK(read() == 9);
    CHECK(parse_audit_line(lines.back()).repeated == 29);
    CHECK(parse_audit_line(lines.back()).since == iso8601_ms(t0 + 60000));
    a.tick(t0 + 200000); // nothing more to say
    CHECK(read() == 9);
    a.record(refusal(t0 + 300000, "10.0.0.9:1", "unknown ca"));
    a.record(refusal(t0 + 300001, "10.0.0.9:2", "unknown ca"));
  } // closing writes what it counted
  CHECK(read() == 11);
  CHECK(parse_audit_line(lines.back()).repeated == 1);
  CHECK(lines.back().find("\"repeated\":1,\"since\":") != std::string::npos);
  // window 0: every refusal is a line
  std::filesystem::remove_all(dir);
  o.repeat_window_ms = 0;
  {
    audit_log a(o);
    REQUIRE(a.open() == "");
    for (int i = 0; i < 5; ++i)
      a.record(refusal(t0 + i, "10.0.0.9:1", "unknown ca"));
  }
  CHECK(read() == 5);
  std::filesystem::remove_all(dir);
}

TEST_CASE("times: ISO 8601 both ways, epoch seconds") {
  CHECK(iso8601_ms(1700000000123ull) == "2023-11-14T22:13:20.123Z");
  uint64_t ms = 0;
  REQUIRE(parse_time("2023-11-14T22:13:20.123Z", ms));
  CHECK(ms == 1700000000123ull);
  REQUIRE(parse_time("2023-11-14", ms));
  CHECK(ms == 1699920000000ull);
  REQUIRE(parse_time("1700000000", ms));
  CHECK(ms == 1700000000000ull);
  CHECK_FALSE(parse_time("yesterday", ms));
  CHECK_FALSE(parse_time("2023-13-01", ms));
}

TEST_CASE("protected mode: non-loopback bind, no password, no users, remote peer") {
  command_fixture f;
  auto& sec = f.cmds.security();
  CHECK(sec.refuses("0.0.0.0", "10.0.0.5"));
  CHECK_FALSE(sec.refuses("0.0.0.0", "127.0.0.1"));
  CHECK_FALSE(sec.refuses("127.0.0.1", "10.0.0.5"));
  CHECK_FALSE(sec.refuses("0.0.0.0", "::ffff:127.0.0.1"));
  f.run("ACL SETUSER someone on >x");
  CHECK_FALSE(sec.refuses("0.0.0.0", "10.0.0.5"));
  f.run("ACL DELUSER someone");
  CHECK(sec.refuses("0.0.0.0", "10.0.0.5"));
  sec.acl->set_default_password("pw");
  CHECK_FALSE(sec.refuses("0.0.0.0", "10.0.0.5"));
  CHECK(std::string(protected_mode_denied).rfind("DENIED Redis is running in protected mode", 0) ==
        0);
}

TEST_CASE("protected mode: CONFIG SET protected-mode yes|no at run time, as Redis") {
  command_fixture f;
  auto& sec = f.cmds.security();
  CHECK(f.run("CONFIG GET protected-mode") == "*2\r\n$14\r\nprotected-mode\r\n$3\r\nyes\r\n");
  CHECK(sec.refuses("0.0.0.0", "10.0.0.5"));
  CHECK(f.run("CONFIG SET protected-mode no") == "+OK\r\n");
  CHECK(f.run("CONFIG GET protected-mode") == "*2\r\n$14\r\nprotected-mode\r\n$2\r\nno\r\n");
  CHECK_FALSE(sec.refuses("0.0.0.0", "10.0.0.5"));
  // a bad value changes nothing, nor does a CONFIG SET whose other part fails
  CHECK(f.run("CONFIG SET protected-mode maybe").rfind("-ERR CONFIG SET failed", 0) == 0);
  CHECK(f.run("CONFIG SET protected-mode yes maxmemory-policy lru").rfind("-ERR", 0) == 0);
  CHECK_FALSE(sec.refuses("0.0.0.0", "10.0.0.5"));
  CHECK(f.run("CONFIG SET protected-mode YES") == "+OK\r\n");
  CHECK(sec.refuses("0.0.0.0", "10.0.0.5"));
  CHECK_FALSE(sec.refuses("0.0.0.0", "127.0.0.1"));
}

TEST_CASE("ACL selectors through the dispatcher: SETUSER, GETUSER, LIST, DRYRUN, the checks") {
  command_fixture f;
  CHECK(f.run_args({"ACL", "SETUSER", "sel", "on", ">p", "~r:*", "+get", "(~w:*", "+set)",
                    "(&chan +publish)"}) == "+OK\r\n");
  auto list = f.run("ACL LIST");
  CHECK(list.find("~r:* resetchannels -@all +get (~w:* resetchannels -@all +set) (resetchannels "
                  "&chan -@all +publish)") != std::string::npos);
  auto getuser = f.run("ACL GETUSER sel");
  CHECK(getuser.find("$9\r\nselectors\r\n*2\r\n*6\r\n$8\r\ncommands\r\n$10\r\n-@all "
                     "+set\r\n$4\r\nkeys\r\n$4\r\n~w:*\r\n$8\r\nchannels\r\n$0\r\n\r\n*6\r\n") !=
        std::string::npos);
  CHECK(f.run("ACL DRYRUN sel SET w:1 v") == "+OK\r\n");
  CHECK(f.run("ACL DRYRUN sel SET r:1 v") ==
        "$52\r\nThis user has no permissions to access the 'r:1' key\r\n");
  CHECK(f.run("ACL DRYRUN sel PUBLISH other m") ==
        "$58\r\nThis user has no permissions to access the 'other' channel\r\n");
  CHECK(f.run("ACL DRYRUN sel PUBLISH chan m") == "+OK\r\n");
  CHECK(f.run("AUTH sel p") == "+OK\r\n");
  CHECK(f.run("SET w:1 v") == "+OK\r\n");
  CHECK(f.run("GET r:1") == "$-1\r\n");
  CHECK(f.run("SET r:1 v") ==
        "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n");
  CHECK(f.run("GET w:1") ==
        "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n");
  CHECK(f.run("DEL w:1") == "-NOPERM this user has no permissions to run the 'del' command\r\n");
  CHECK(f.run("PUBLISH chan m") == ":0\r\n");
  CHECK(f.run("PUBLISH other m") ==
        "-NOPERM this user has no permissions to access one of the channels used as arguments\r\n");
}

TEST_CASE("SET reads its key only with GET, BITFIELD writes only with SET/INCRBY (%R~, %W~)") {
  command_fixture f;
  CHECK(f.run("ACL SETUSER w on nopass %W~w* %R~r* +@all") == "+OK\r\n");
  CHECK(f.run("AUTH w x") == "+OK\r\n");
  CHECK(f.run("SET wk bar") == "+OK\r\n");
  CHECK(f.run("SET wk get") == "+OK\r\n"); // "get" is the value here
  auto noperm_keys =
      "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n";
  CHECK(f.run("SET wk bar GET") == noperm_keys);
  CHECK(f.run("SET wk bar get ex 100") == noperm_keys);
  CHECK(f.run("BITFIELD rk GET u4 0") == "*1\r\n:0\r\n");
  CHECK(f.run("BITFIELD rk SET u4 0 1") == noperm_keys);
  CHECK(f.run("BITFIELD rk GET u4 0 INCRBY u4 0 1") == noperm_keys);
  CHECK(f.run("ACL DRYRUN w SET wk v") == "+OK\r\n");
  CHECK(f.run("ACL DRYRUN w SET wk v GET") ==
        "$51\r\nThis user has no permissions to access the 'wk' key\r\n");
}
