#include "tiers/hlc.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace kura;

TEST_CASE("hlc follows wall time and stays monotonic when it goes back") {
  hlc c(7);
  auto a = c.now(1'000);
  CHECK(a.ms() == 1'000);
  CHECK(a.counter() == 0);
  CHECK(a.node == 7);
  auto b = c.now(1'000);
  CHECK(b > a);
  CHECK(b.ms() == 1'000);
  CHECK(b.counter() == 1);
  auto d = c.now(500); // the wall clock jumped back
  CHECK(d > b);
  auto e = c.now(2'000);
  CHECK(e.ms() == 2'000);
  CHECK(e.counter() == 0);
}

TEST_CASE("after observing a version from a fast clock the next one is greater") {
  hlc slow(1);
  version remote{version::make_hlc(50'000, 3), 9};
  slow.observe(remote, 1'000);
  auto v = slow.now(1'000);
  CHECK(v > remote);
  CHECK(v.ms() == 50'000);
  CHECK(v.counter() == 4);
}

TEST_CASE("counter overflow carries into the ms part") {
  hlc c(1);
  version prev = c.now(10);
  for (int i = 0; i < 70'000; ++i) {
    auto v = c.now(10);
    REQUIRE(v > prev);
    prev = v;
  }
  CHECK(prev.ms() == 11);
}

TEST_CASE("last-writer-wins: higher hlc wins, equal hlc -> higher node id") {
  version a{version::make_hlc(5, 0), 2}, b{version::make_hlc(5, 0), 3},
      c{version::make_hlc(5, 1), 1};
  CHECK(a < b);
  CHECK(b < c);
  CHECK(a < c);
}

TEST_CASE("observe(version) alone moves the clock past the version") {
  hlc c(3);
  version seen{version::make_hlc(90'000, 12), 8};
  c.observe(seen);
  CHECK(c.last() == seen.hlc);
  auto v = c.now(1); // wall clock far behind
  CHECK(v > seen);
  CHECK(v.node == 3);
  c.observe(version{version::make_hlc(5, 0), 1}); // older: no effect
  CHECK(c.now(1) > v);
}

TEST_CASE("two nodes never mint the same version, whatever they observe") {
  hlc a(node_id_of("n1")), b(node_id_of("n2"));
  REQUIRE(a.node_id() != b.node_id());
  std::set<std::pair<uint64_t, uint32_t>> minted;
  uint64_t wall_a = 1'000, wall_b = 900;
  for (int i = 0; i < 5'000; ++i) {
    auto va = a.now(wall_a + static_cast<uint64_t>(i / 7));
    auto vb = b.now(wall_b + static_cast<uint64_t>(i / 3));
    CHECK(minted.insert({va.hlc, va.node}).second);
    CHECK(minted.insert({vb.hlc, vb.node}).second);
    if (i % 5 == 0)
      b.observe(va);
    if (i % 11 == 0)
      a.observe(vb, wall_a);
  }
}

TEST_CASE("a restarted node seeded from its highest stored version mints newer ones") {
  hlc before(5);
  version last;
  for (int i = 0; i < 100; ++i)
    last = before.now(2'000'000);
  hlc after(5); // same node id after a restart, wall clock went back
  after.observe(last);
  CHECK(after.now(1'000) > last);
}

TEST_CASE("node_id_of: FNV-1a of the name, stable, never 0") {
  CHECK(node_id_of("") == 2166136261u);  // FNV-1a's offset basis
  CHECK(node_id_of("a") == 0xe40c292cu); // FNV-1a 32 test vector
  CHECK(node_id_of("foobar") == 0xbf9cf968u);
  CHECK(node_id_of("n1") == node_id_of("n1"));
  CHECK(node_id_of("n1") != node_id_of("n2"));
  std::set<uint32_t> ids;
  for (int i = 0; i < 10'000; ++i) {
    uint32_t id = node_id_of("node-" + std::to_string(i));
    CHECK(id != 0);
    ids.insert(id);
  }
  CHECK(ids.size() == 10'000);
}
