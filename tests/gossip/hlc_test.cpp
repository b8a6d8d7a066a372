#include "gossip/hlc.hpp"

#include <doctest/doctest.h>

using namespace kura;
using namespace kura::gossip;

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
  version a{version::make_hlc(5, 0), 2}, b{version::make_hlc(5, 0), 3}, c{version::make_hlc(5, 1), 1};
  CHECK(a < b);
  CHECK(b < c);
  CHECK(a < c);
}
