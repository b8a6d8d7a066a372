// gossip/position_index.hpp against the map it indexes: random inserts,
// erases and lookups (hits, misses, same position with another key) agree
// with the map's own find at every step, across growth and backward shifts.
#include "gossip/position_index.hpp"
#include "tiers/random.hpp"

#include <doctest/doctest.h>

#include <map>
#include <string>

using namespace kura;
using namespace kura::gossip;

namespace {
using test_map = std::map<std::pair<uint64_t, std::string>, int>;
}

TEST_CASE("position_index finds exactly what its map holds") {
  for (uint64_t seed : {1u, 2u, 3u}) {
    CAPTURE(seed);
    rng r(seed);
    test_map m;
    position_index<test_map> idx(m);
    // Few distinct positions (and clustered homes) so that runs, wrap-around
    // and same-position keys all happen; key "k<i>" at position pos_of(i).
    const uint64_t positions = seed == 1 ? 64 : 5000;
    auto pos_of = [&](uint64_t i) { return (i % positions) * 0x0123456789ABCDEFull; };
    for (int step = 0; step < 40000; ++step) {
      uint64_t i = r.below(8000);
      std::string key = "k" + std::to_string(i);
      uint64_t pos = pos_of(i);
      auto in_map = m.find({pos, key});
      REQUIRE(idx.find(pos, key) == in_map);
      if (r.below(3) == 0 && in_map != m.end()) {
        idx.erase(in_map);
        m.erase(in_map);
      } else if (in_map == m.end()) {
        idx.insert(m.emplace(std::make_pair(pos, key), step).first);
      }
      REQUIRE(idx.size() == m.size());
      // the same position under another key is not a hit
      CHECK(idx.find(pos, key + "x") == m.end());
    }
    for (auto it = m.begin(); it != m.end(); ++it)
      REQUIRE(idx.find(it->first.first, it->first.second) == it);
    idx.rebuild();
    CHECK(idx.size() == m.size());
    for (auto it = m.begin(); it != m.end(); ++it)
      REQUIRE(idx.find(it->first.first, it->first.second) == it);
    // erase everything: the table ends empty and finds nothing
    for (auto it = m.begin(); it != m.end();) {
      idx.erase(it);
      it = m.erase(it);
    }
    CHECK(idx.size() == 0);
    CHECK(idx.find(pos_of(1), "k1") == m.end());
  }
}

TEST_CASE("position_index: runs that wrap around the end of the table") {
  // At most 12 keys: the table stays at 16 slots, whose home slot is the
  // position's Fibonacci product's top 4 bits. Positions homed at slots 14,
  // 15, 0 and 1 make runs that wrap, and erases that shift across the end.
  std::vector<uint64_t> pos;
  for (uint64_t p = 1; pos.size() < 12; ++p) {
    auto home = (p * 0x9E3779B97F4A7C15ull) >> 60;
    if (home == 14 || home == 15 || home == 0 || home == 1)
      pos.push_back(p);
  }
  rng r(11);
  test_map m;
  position_index<test_map> idx(m);
  for (int step = 0; step < 20000; ++step) {
    size_t i = r.below(pos.size());
    std::string key = "w" + std::to_string(i);
    auto in_map = m.find({pos[i], key});
    REQUIRE(idx.find(pos[i], key) == in_map);
    if (in_map != m.end() && r.below(2) == 0) {
      idx.erase(in_map);
      m.erase(in_map);
    } else if (in_map == m.end()) {
      idx.insert(m.emplace(std::make_pair(pos[i], key), step).first);
    }
    for (auto it = m.begin(); it != m.end(); ++it)
      REQUIRE(idx.find(it->first.first, it->first.second) == it);
  }
  CHECK(idx.bytes() == 16 * 9);
}
