// SCAN's cursor against the command table (memory keyspace, L3 off): a
// cursor is a position, so it works on a table that never issued it (a
// reconnected client, a restarted node), a hand-made number resumes instead
// of ending the iteration, keys present throughout come back at least once
// while others come and go, and TYPE filters strings and hashes.
#include "command_fixture.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

using namespace kura;
using namespace kura::node;
using fixture = kura::node::testing::command_fixture;

namespace {

/// SCAN's reply: the cursor and the keys.
std::pair<std::string, std::vector<std::string>> scan_reply(const std::string& r) {
  std::vector<std::string> parts;
  size_t p = 0;
  while ((p = r.find('$', p)) != std::string::npos) {
    size_t eol = r.find("\r\n", p);
    auto n = static_cast<size_t>(std::stol(r.substr(p + 1, eol - p - 1)));
    parts.push_back(r.substr(eol + 2, n));
    p = eol + 2 + n + 2;
  }
  REQUIRE(!parts.empty());
  return {parts[0], std::vector<std::string>(parts.begin() + 1, parts.end())};
}

} // namespace

TEST_CASE_FIXTURE(fixture, "a SCAN cursor works on a table that never issued it") {
  for (int i = 0; i < 300; ++i)
    run("SET session:" + std::to_string(1000 + i) + " v");
  auto [cursor, first] = scan_reply(run("SCAN 0 COUNT 20"));
  REQUIRE(cursor != "0");
  std::set<std::string> seen(first.begin(), first.end());
  // a second table over the same keyspace: its cursor memory is empty
  command_table other{ks, facts};
  int calls = 0;
  while (cursor != "0") {
    std::vector<std::string_view> args{"SCAN", cursor, "COUNT", "20"};
    out_buffer out;
    other.execute(args, sess, out);
    auto r = scan_reply(std::string(out.begin(), out.end()));
    cursor = r.first;
    seen.insert(r.second.begin(), r.second.end());
    REQUIRE(++calls < 1000);
  }
  CHECK(seen.size() == 300);
}

TEST_CASE_FIXTURE(fixture, "a hand-made cursor resumes at its position") {
  run("MSET apple 1 banana 2 cherry 3 date 4");
  // the prefix "c" (0x63 in the fifth byte from the right) as position
  uint64_t pos = static_cast<uint64_t>('c') << 32;
  auto [cursor, keys] = scan_reply(run("SCAN " + std::to_string(pos) + " COUNT 100"));
  CHECK(cursor == "0");
  CHECK(keys == std::vector<std::string>{"cherry", "date"});
  CHECK(run("SCAN 18446744073709551615").rfind("*2\r\n$1\r\n0\r\n", 0) == 0);
  CHECK(run("SCAN 18446744073709551616") == "-ERR invalid cursor\r\n");
  CHECK(run("SCAN -1") == "-ERR invalid cursor\r\n");
}

TEST_CASE_FIXTURE(fixture, "SCAN under churn returns every key present throughout") {
  for (int i = 0; i < 500; ++i)
    run("SET k" + std::to_string(i) + " v");
  std::set<std::string> seen;
  std::string cursor = "0";
  int step = 0;
  do {
    auto r = scan_reply(run("SCAN " + cursor + " COUNT 9"));
    cursor = r.first;
    seen.insert(r.second.begin(), r.second.end());
    run("SET tmp" + std::to_string(step) + " v"); // keys come and go
    run("DEL tmp" + std::to_string(step / 2));
    ++step;
    REQUIRE(step < 1000);
  } while (cursor != "0");
  for (int i = 0; i < 500; ++i)
    CHECK_MESSAGE(seen.count("k" + std::to_string(i)) == 1, i);
}

TEST_CASE_FIXTURE(fixture, "SCAN TYPE") {
  run("SET s v");
  run("HSET h f v");
  CHECK(scan_reply(run("SCAN 0 TYPE hash")).second == std::vector<std::string>{"h"});
  CHECK(scan_reply(run("SCAN 0 TYPE string")).second == std::vector<std::string>{"s"});
  CHECK(scan_reply(run("SCAN 0 TYPE list")).second.empty());
}
