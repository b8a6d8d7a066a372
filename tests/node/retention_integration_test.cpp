// kura.retention.max-age in a real kura-node (issue 13) on real tiers (a tiny
// memory and L3 budget push entries into L3 and L4):
//   - writes under the cap get an expiry of at most max-age (TTL shows it,
//     PERSIST cannot lift it) and leave memory, L3 and L4;
//   - entries written before the cap was set (restart with it) are swept out
//     of L3 and the L4 index by the retention sweep, and never served.
// Conditions are polled with generous deadlines (no timing assertions).
#include "tests/node/erase_test_util.hpp"

#include <doctest/doctest.h>

using namespace kura::test;

namespace {

constexpr int n_keys = 1500;

std::string key_of(int i) {
  return "ret:" + std::to_string(i);
}
std::string value_of(int i) {
  std::string v = "RETV" + std::to_string(i) + ":";
  uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(i + 1);
  for (int j = 0; j < 150; ++j) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v += static_cast<char>('a' + x % 26);
  }
  return v;
}

const std::vector<std::string> tiny = {"--memory-bytes=1048576", "--kura.l3.max-bytes=120000",
                                       "--kura.archive.segment-bytes=65536",
                                       "--kura.archive.compact-interval=0s"};

std::vector<std::string> with(std::vector<std::string> a, const std::string& more) {
  a.push_back(more);
  return a;
}

uint64_t num(node_process& n, const char* field) {
  auto v = n.info_field(field);
  return v.empty() ? ~0ull : std::stoull(v);
}

/// Polls (up to 60 s) until no tier holds an entry.
void wait_all_gone(node_process& n) {
  std::string last;
  for (int i = 0; i < 1200; ++i) {
    uint64_t l1 = num(n, "l1_entries"), l2 = num(n, "l2_entries"), l3 = num(n, "l3_entries"),
             l4 = num(n, "l4_entries");
    last = "l1 " + std::to_string(l1) + " l2 " + std::to_string(l2) + " l3 " + std::to_string(l3) +
           " l4 " + std::to_string(l4);
    if (l1 == 0 && l2 == 0 && l3 == 0 && l4 == 0)
      return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL("entries older than max-age are still there after 60 s: " << last);
}

void write_all(node_process& n) {
  client c(n.port);
  REQUIRE(c.ok());
  std::vector<std::vector<std::string>> sets;
  for (int i = 0; i < n_keys; ++i)
    sets.push_back({"SET", key_of(i), value_of(i)});
  pipeline(c, sets);
}

} // namespace

TEST_CASE("kura.retention.max-age caps every write and empties every tier") {
  node_process n(with(tiny, "--kura.retention.max-age=2s"));
  REQUIRE_MESSAGE(n.ready, n.log());
  write_all(n);
  client c(n.port);
  REQUIRE(c.ok());
  // an expiry beyond the cap is capped, PERSIST cannot lift it
  CHECK(*c.call({"SET", "long", "v", "EX", "100000"}) == "+OK\r\n");
  CHECK(c.call({"PERSIST", "long"})->rfind(":", 0) == 0);
  for (const char* k : {"long", "ret:1", "ret:1499"}) {
    auto r = c.call({"PTTL", k});
    REQUIRE(r);
    CAPTURE(k);
    CAPTURE(*r);
    REQUIRE(r->size() > 3);
    REQUIRE((*r)[0] == ':');
    auto ttl = std::stoll(r->substr(1));
    CHECK((ttl == -2 || (ttl > 0 && ttl <= 2000))); // -2: already gone
  }
  wait_all_gone(n);
  CHECK(*c.call({"DBSIZE"}) == ":0\r\n");
  CHECK(*c.call({"GET", "ret:7"}) == "$-1\r\n");
  CHECK(*c.call({"KURA.TIER", "ret:7"}) == "$4\r\nnone\r\n");
}

TEST_CASE("entries written before the cap are swept out of L3 and L4 after a restart") {
  auto first = std::make_unique<node_process>(tiny);
  REQUIRE_MESSAGE(first->ready, first->log());
  std::string dir = first->data_dir;
  write_all(*first);
  wait_l3_idle(*first);
  // the tiny budgets pushed entries into both lower tiers
  bool both = false;
  for (int i = 0; i < 400 && !both; ++i) {
    both = num(*first, "l3_entries") > 0 && num(*first, "l4_entries") > 0 &&
           num(*first, "l4_entries") != ~0ull;
    if (!both)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(both);
  REQUIRE(first->stop(SIGTERM) == 0);

  node_process second(with(tiny, "--kura.retention.max-age=1s"), dir);
  REQUIRE_MESSAGE(second.ready, second.log());
  wait_all_gone(second);
  client c(second.port);
  REQUIRE(c.ok());
  for (int i = 0; i < n_keys; i += 97) {
    auto r = c.call({"GET", key_of(i)});
    REQUIRE(r);
    CHECK_MESSAGE(*r == "$-1\r\n", key_of(i));
  }
  CHECK(*c.call({"DBSIZE"}) == ":0\r\n");
  // new writes still work, under the cap
  CHECK(*c.call({"SET", "fresh", "v"}) == "+OK\r\n");
  auto ttl = c.call({"PTTL", "fresh"});
  REQUIRE(ttl);
  CHECK(std::stoll(ttl->substr(1)) <= 1000);
}

TEST_CASE("kura.retention.max-age: bad values are refused at start") {
  std::string out;
  CHECK(run_node_once({"--port=" + std::to_string(free_port()), "--cluster-port=0",
                       "--metrics-port=0", "--kura.retention.max-age=10ms"},
                      out) != 0);
  CHECK(out.find("bad value for kura.retention.max-age: at least 1s") != std::string::npos);
}
