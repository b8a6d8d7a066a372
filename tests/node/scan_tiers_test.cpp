// KEYS, SCAN, DBSIZE and RANDOMKEY over every tier of a real kura-node: a tiny
// L3 budget pushes most keys (and every key longer than 400 bytes, written
// first) into L4; every key is then listed exactly once by KEYS and by a full
// SCAN, DBSIZE counts each once, SCAN TYPE and MATCH see archived keys,
// RANDOMKEY returns archived keys (KURA.TIER says l4), and a cursor handed out
// before a restart still finishes the iteration afterwards.
#include "node_process.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>

using namespace kura::test;

namespace {

/// One RESP2 reply parsed: bulk strings and integers as strings, arrays nested.
struct resp {
  std::string s;
  std::vector<resp> items;
  bool array = false;
};

resp parse(const std::string& r, size_t& p) {
  resp out;
  char t = r[p];
  size_t eol = r.find("\r\n", p);
  std::string line = r.substr(p + 1, eol - p - 1);
  p = eol + 2;
  if (t == '*') {
    out.array = true;
    long n = std::stol(line);
    for (long i = 0; i < n; ++i)
      out.items.push_back(parse(r, p));
  } else if (t == '$') {
    long n = std::stol(line);
    if (n >= 0) {
      out.s = r.substr(p, static_cast<size_t>(n));
      p += static_cast<size_t>(n) + 2;
    }
  } else {
    out.s = line;
  }
  return out;
}

resp call(client& c, const std::vector<std::string>& args) {
  auto r = c.call(args);
  REQUIRE(r);
  size_t p = 0;
  return parse(*r, p);
}

std::string value_of(int i) {
  std::string v = "value-" + std::to_string(i) + "-";
  uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(i + 1);
  for (int j = 0; j < 600; ++j) { // 3000 of them overflow memory
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v += static_cast<char>('a' + x % 26);
  }
  return v;
}

void wait_l3_idle(node_process& n) {
  if (!n.l3_idle())
    FAIL("L3 did not drain its write-behind queue");
}

/// SCAN from `cursor` until it returns 0 (or `max_calls` calls); appends the keys.
std::string scan_from(client& c, std::string cursor, std::vector<std::string>& keys,
                      std::vector<std::string> extra = {}, int max_calls = 100000) {
  for (int calls = 0; calls < max_calls; ++calls) {
    std::vector<std::string> args{"SCAN", cursor, "COUNT", "50"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = call(c, args);
    REQUIRE(r.items.size() == 2);
    cursor = r.items[0].s;
    for (auto& k : r.items[1].items)
      keys.push_back(k.s);
    if (cursor == "0")
      return cursor;
  }
  return cursor;
}

std::vector<std::string> l4_args() {
  return {"--memory-bytes=1048576", "--kura.l3.max-bytes=200000",
          "--kura.archive.segment-bytes=65536", "--kura.archive.compact-interval=0s",
          "--kura.archive.compact-rate=0"};
}

} // namespace

TEST_CASE("KEYS, SCAN, DBSIZE and RANDOMKEY list L3 and L4 keys, each once") {
  temp_dir dir;
  std::set<std::string> all, hashes, longs;
  node_process n(l4_args(), dir.path);
  REQUIRE_MESSAGE(n.ready, n.log());
  {
    client c(n.port);
    REQUIRE(c.ok());
    // written first, so evicted to L4 first: keys over 400 bytes (L4's
    // second listing phase)
    std::string batch;
    for (int i = 0; i < 5; ++i) {
      std::string k = std::string(450, 'L') + std::to_string(i);
      batch += client::multibulk({"SET", k, value_of(i)});
      all.insert(k);
      longs.insert(k);
    }
    for (int i = 0; i < 3000; ++i) {
      std::string k = "key:" + std::to_string(i);
      if (i % 30 == 0) {
        k = "h:" + std::to_string(i);
        batch += client::multibulk({"HSET", k, "f", value_of(i)});
        hashes.insert(k);
      } else {
        batch += client::multibulk({"SET", k, value_of(i)});
      }
      all.insert(k);
    }
    REQUIRE(c.send(batch));
    for (size_t i = 0; i < all.size(); ++i)
      REQUIRE(c.reply(20000));
  }
  wait_l3_idle(n);
  int rc = -1;
  auto js = run_shell(bin_dir() + "/kura --port=" + std::to_string(n.cluster_port) +
                          " --timeout=10000 --json archive 2>&1",
                      &rc);
  CAPTURE(js);
  REQUIRE(rc == 0);
  auto p = js.find("\"entries\": ");
  REQUIRE(p != std::string::npos);
  CHECK(std::atoll(js.c_str() + p + 11) > 1000); // most keys are archived

  client c(n.port);
  CHECK(call(c, {"DBSIZE"}).s == std::to_string(all.size()));

  auto keys = call(c, {"KEYS", "*"});
  std::vector<std::string> listed;
  for (auto& k : keys.items)
    listed.push_back(k.s);
  CHECK(listed.size() == all.size());
  CHECK(std::set<std::string>(listed.begin(), listed.end()) == all);

  std::vector<std::string> scanned;
  REQUIRE(scan_from(c, "0", scanned) == "0");
  CHECK(scanned.size() == all.size()); // nothing moved: no key twice
  CHECK(std::set<std::string>(scanned.begin(), scanned.end()) == all);

  std::vector<std::string> typed;
  REQUIRE(scan_from(c, "0", typed, {"TYPE", "hash"}) == "0");
  CHECK(std::set<std::string>(typed.begin(), typed.end()) == hashes);
  std::vector<std::string> matched;
  REQUIRE(scan_from(c, "0", matched, {"MATCH", "LLL*"}) == "0");
  CHECK(std::set<std::string>(matched.begin(), matched.end()) == longs);
  auto kh = call(c, {"KEYS", "h:*"});
  CHECK(kh.items.size() == hashes.size());

  // RANDOMKEY draws archived keys too (KURA.TIER reads through to L4)
  std::set<std::string> drawn;
  for (int i = 0; i < 200; ++i) {
    auto k = call(c, {"RANDOMKEY"}).s;
    REQUIRE(all.count(k) == 1);
    drawn.insert(k);
  }
  CHECK(drawn.size() > 20);
  int archived = 0;
  for (auto& k : drawn)
    archived += call(c, {"KURA.TIER", k}).s == "l4" ? 1 : 0;
  CHECK(archived > 0);

  // a cursor from before a restart finishes the iteration afterwards
  std::vector<std::string> before;
  auto cursor = scan_from(c, "0", before, {}, 20);
  REQUIRE(cursor != "0");
  c.close();
  REQUIRE(n.stop(SIGTERM) == 0);
  node_process n2(l4_args(), dir.path);
  REQUIRE_MESSAGE(n2.ready, n2.log());
  client c2(n2.port);
  CHECK(call(c2, {"DBSIZE"}).s == std::to_string(all.size()));
  std::vector<std::string> after;
  REQUIRE(scan_from(c2, cursor, after) == "0");
  std::set<std::string> got(before.begin(), before.end());
  got.insert(after.begin(), after.end());
  CHECK(got == all);
  CHECK(before.size() + after.size() < all.size() + 100); // few repeats
}

TEST_CASE("DBSIZE and KEYS follow deletes and expiry in every tier") {
  node_process n(l4_args());
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  std::string batch;
  for (int i = 0; i < 2000; ++i)
    batch += client::multibulk({"SET", "k" + std::to_string(i), value_of(i)});
  batch += client::multibulk({"SET", "short-lived", "x", "PX", "50"});
  REQUIRE(c.send(batch));
  for (int i = 0; i < 2001; ++i)
    REQUIRE(c.reply(20000));
  wait_l3_idle(n);
  std::this_thread::sleep_for(std::chrono::milliseconds(400)); // expired and swept
  CHECK(call(c, {"DBSIZE"}).s == "2000");
  // delete the oldest (archived) half and a few recent ones
  batch.clear();
  for (int i = 0; i < 1000; ++i)
    batch += client::multibulk({"DEL", "k" + std::to_string(i)});
  REQUIRE(c.send(batch));
  for (int i = 0; i < 1000; ++i)
    REQUIRE(c.reply(20000) == std::optional<std::string>{":1\r\n"});
  CHECK(call(c, {"DBSIZE"}).s == "1000");
  auto keys = call(c, {"KEYS", "k*"});
  CHECK(keys.items.size() == 1000);
  std::vector<std::string> scanned;
  REQUIRE(scan_from(c, "0", scanned) == "0");
  CHECK(std::set<std::string>(scanned.begin(), scanned.end()).size() == 1000);
  CHECK(call(c, {"FLUSHALL"}).s == "OK");
  CHECK(call(c, {"DBSIZE"}).s == "0");
  CHECK(call(c, {"RANDOMKEY"}).s.empty());
}
