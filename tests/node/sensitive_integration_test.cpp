// kura.security.sensitive-patterns in a real kura-node (issue 13): keys that
// match get at most kura.security.sensitive-max-ttl, a tracking client that
// read one is invalidated when it expires, and they never reach L4 (a tiny
// L3 budget evicts them: they are dropped, while the other keys are archived;
// after a restart none of them is in L4 and the archive's files,
// decompressed, hold none of their values).
// Conditions are polled with generous deadlines (no timing assertions).
#include "tests/node/erase_test_util.hpp"

#include <doctest/doctest.h>

using namespace kura::test;

namespace {

std::string value_of(const std::string& key) {
  std::string v = "SENS[" + key + "]";
  uint64_t x = std::hash<std::string>{}(key) | 1;
  for (int j = 0; j < 150; ++j) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v += static_cast<char>('a' + x % 26);
  }
  return v;
}

int64_t pttl(client& c, const std::string& key) {
  auto r = c.call({"PTTL", key});
  REQUIRE(r);
  REQUIRE(r->rfind(":", 0) == 0);
  return std::stoll(r->substr(1));
}

} // namespace

TEST_CASE("sensitive keys: capped TTL, tracking clients invalidated at expiry") {
  node_process n(
      {"--kura.security.sensitive-patterns=card:*, ssn:*", "--kura.security.sensitive-max-ttl=2s"});
  REQUIRE_MESSAGE(n.ready, n.log());
  client a(n.port), b(n.port);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(a.call({"HELLO", "3"}));
  CHECK(*a.call({"CLIENT", "TRACKING", "on"}) == "+OK\r\n");
  CHECK(*b.call({"SET", "card:1", "4111", "EX", "3600"}) == "+OK\r\n");
  CHECK(*b.call({"SET", "plain", "x"}) == "+OK\r\n");
  auto t = pttl(b, "card:1");
  CHECK((t == -2 || (t > 0 && t <= 2000)));
  CHECK(pttl(b, "plain") == -1);
  // a shorter TTL is kept
  CHECK(*b.call({"SET", "ssn:9", "x", "PX", "500"}) == "+OK\r\n");
  t = pttl(b, "ssn:9");
  CHECK(t <= 500);
  // the tracking client reads card:1, then hears of its expiry by itself
  auto got = a.call({"GET", "card:1"});
  REQUIRE(got);
  if (*got == "$4\r\n4111\r\n") {
    auto push = a.reply(30000);
    REQUIRE(push);
    CHECK(*push == ">2\r\n$10\r\ninvalidate\r\n*1\r\n$6\r\ncard:1\r\n");
  } else {
    CHECK(*got == "_\r\n"); // the machine stalled for 2 s: already expired
  }
  // an invalidation push for card:1 may still arrive before these replies
  auto call_skipping_pushes = [&](std::vector<std::string> cmd) {
    auto r = a.call(std::move(cmd));
    while (r && !r->empty() && (*r)[0] == '>')
      r = a.reply(30000);
    return r;
  };
  CHECK(*call_skipping_pushes({"GET", "card:1"}) == "_\r\n");
  CHECK(*call_skipping_pushes({"GET", "plain"}) == "$1\r\nx\r\n");
}

TEST_CASE("sensitive keys are never archived to L4") {
  std::vector<std::string> args = {"--memory-bytes=1048576",
                                   "--kura.l3.max-bytes=120000",
                                   "--kura.archive.segment-bytes=65536",
                                   "--kura.archive.compact-interval=0s",
                                   "--kura.security.sensitive-patterns=card:*",
                                   "--kura.security.sensitive-max-ttl=3600s"};
  std::vector<std::string> keys;
  std::vector<std::vector<std::string>> sets;
  for (int i = 0; i < 1500; ++i) {
    keys.push_back((i % 2 == 0 ? "card:" : "open:") + std::to_string(i));
    sets.push_back({"SET", keys.back(), value_of(keys.back())});
  }
  auto first = std::make_unique<node_process>(args);
  REQUIRE_MESSAGE(first->ready, first->log());
  {
    client c(first->port);
    REQUIRE(c.ok());
    pipeline(c, sets);
    wait_l3_idle(*first);
  }
  REQUIRE(first->stop(SIGTERM) == 0);
  // restarted with empty memory: KURA.TIER tells L3 from L4
  node_process n(args, first->data_dir);
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  REQUIRE(c.ok());
  // L3 evicted: the open keys went to L4, the card keys were dropped
  int card_gone = 0, open_l4 = 0;
  for (auto& k : keys) {
    auto tier = c.call({"KURA.TIER", k});
    REQUIRE(tier);
    if (k.rfind("card:", 0) == 0) {
      CHECK_MESSAGE(*tier != "$2\r\nl4\r\n", k);
      card_gone += *tier == "$4\r\nnone\r\n";
    } else {
      open_l4 += *tier == "$2\r\nl4\r\n";
    }
  }
  CHECK(card_gone > 0);
  CHECK(open_l4 > 0);
  // and no archive file holds a card value (blocks decompressed); the
  // archive's pending block reaches a segment file within its flush time
  std::string all;
  int open_found = 0;
  for (int round = 0; round < 300 && open_found == 0; ++round) {
    if (round > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    all.clear();
    for (auto& [name, bytes] : scan_dir(n.data_dir + "/archive"))
      all += bytes;
    for (auto& k : keys)
      if (k.rfind("open:", 0) == 0)
        open_found += all.find(value_of(k)) != std::string::npos;
  }
  for (auto& k : keys)
    if (k.rfind("card:", 0) == 0)
      CHECK_MESSAGE(all.find(value_of(k)) == std::string::npos, k);
  CHECK(open_found > 0); // the scan sees archived values
}
