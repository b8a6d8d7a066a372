// L3's listing without commits (KEYS, SCAN, RANDOMKEY): scan_live merges the
// committed records with the pending batch in key order, hides pending
// deletes, expired entries and tombstones, resumes after any key, and commits
// nothing (no fsync per call); random_key finds pending and committed keys.
#include "tiers/clock.hpp"
#include "tiers/l3_lmdb.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

using namespace kura;
namespace fs = std::filesystem;

namespace {

struct scan_dir {
  fs::path path;
  scan_dir() {
    char tmpl[] = "/tmp/kura-l3-scan-XXXXXX";
    char* p = ::mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    path = p;
  }
  ~scan_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::unique_ptr<l3_lmdb> open_l3(const std::string& dir, const kura::clock& clk) {
  l3_config c;
  c.path = dir;
  c.map_size = 64ull << 20;
  c.batch_max_writes = 1000000; // commits only when the test says so
  c.batch_max_ms = 1000000;
  c.fsync_batches = false;
  auto r = l3_lmdb::open(c, clk);
  REQUIRE(r.ok());
  return std::move(*r);
}

entry make(std::string key, uint64_t expiry = 0) {
  entry e;
  e.key = std::move(key);
  e.value = "v";
  e.expiry_ms = expiry;
  e.ver = version{1, 1};
  return e;
}

/// Every live key, `step` records per call, resuming after the last one.
std::vector<std::string> scan_all(l3_lmdb& t, uint64_t now, size_t step) {
  std::vector<std::string> keys;
  std::string after;
  for (int calls = 0; calls < 100000; ++calls) {
    auto r = t.scan_live(after, step, now, [&](const entry& e) { keys.push_back(e.key); });
    REQUIRE(r.ok());
    if (!*r)
      return keys;
    after = **r;
  }
  FAIL("scan_live did not end");
  return keys;
}

} // namespace

TEST_CASE("l3 scan_live: committed and pending keys in order, without a commit") {
  scan_dir d;
  fake_clock clk;
  clk.set_ms(1000);
  auto t = open_l3(d.path.string(), clk);
  std::set<std::string> want;
  for (int i = 0; i < 50; i += 2) {
    auto k = "k" + std::to_string(100 + i);
    REQUIRE(t->put(make(k), 1000).ok());
    want.insert(k);
  }
  REQUIRE(t->sync().ok());
  // pending: new keys between the committed ones, a delete, an overwrite, an
  // expired write, and a long (hashed) key
  for (int i = 1; i < 50; i += 4) {
    auto k = "k" + std::to_string(100 + i);
    REQUIRE(t->put(make(k), 1000).ok());
    want.insert(k);
  }
  REQUIRE(t->erase("k104").ok());
  want.erase("k104");
  REQUIRE(t->put(make("k106"), 1000).ok());
  REQUIRE(t->put(make("k999", 1500), 1000).ok()); // expires at 1500
  std::string long_key(600, 'L');
  REQUIRE(t->put(make(long_key), 1000).ok());
  want.insert(long_key);
  auto commits = t->commits();
  auto pending = t->pending();
  REQUIRE(pending > 0);

  clk.set_ms(2000);
  for (size_t step : {1, 3, 7, 1000}) {
    CAPTURE(step);
    auto keys = scan_all(*t, 2000, step);
    CHECK(std::set<std::string>(keys.begin(), keys.end()) == want);
    CHECK(keys.size() == want.size()); // no key twice
    CHECK(std::is_sorted(keys.begin(), keys.end()));
  }
  CHECK(t->commits() == commits); // nothing committed, nothing fsynced
  CHECK(t->pending() == pending);

  // resuming after a key that is not there (a cursor's prefix)
  std::vector<std::string> after_k12;
  auto r = t->scan_live("k12", 1000, 2000, [&](const entry& e) { after_k12.push_back(e.key); });
  REQUIRE(r.ok());
  CHECK(!*r);
  for (auto& k : after_k12)
    CHECK(k > "k12");
  CHECK(std::count(after_k12.begin(), after_k12.end(), "k121") == 1);
  CHECK(std::count(after_k12.begin(), after_k12.end(), "k118") == 0);
}

TEST_CASE("l3 random_key: finds pending and committed keys, nothing in an empty tier") {
  scan_dir d;
  fake_clock clk;
  clk.set_ms(1000);
  auto t = open_l3(d.path.string(), clk);
  std::mt19937_64 rng(42);
  auto rnd = [&] { return rng(); };
  auto none = t->random_key(1000, rnd);
  REQUIRE(none.ok());
  CHECK(!*none);
  // pending only
  REQUIRE(t->put(make("alpha"), 1000).ok());
  auto one = t->random_key(1000, rnd);
  REQUIRE(one.ok());
  REQUIRE(*one);
  CHECK(**one == "alpha");
  REQUIRE(t->sync().ok());
  REQUIRE(t->put(make("omega"), 1000).ok());
  REQUIRE(t->put(make("dead", 1001), 1000).ok());
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    auto k = t->random_key(2000, rnd);
    REQUIRE(k.ok());
    REQUIRE(*k);
    seen.insert(**k);
  }
  std::string all;
  for (auto& k : seen)
    all += k + " ";
  CAPTURE(all);
  CHECK(seen == std::set<std::string>{"alpha", "omega"});
  // committed only, keys with a long common prefix
  REQUIRE(t->clear().ok());
  for (int i = 0; i < 100; ++i)
    REQUIRE(t->put(make("user:session:" + std::to_string(1000 + i)), 1000).ok());
  REQUIRE(t->sync().ok());
  seen.clear();
  for (int i = 0; i < 300; ++i) {
    auto k = t->random_key(2000, rnd);
    REQUIRE(k.ok());
    REQUIRE(*k);
    seen.insert(**k);
  }
  CHECK(seen.size() > 20); // spread over the key range, not one key
}
