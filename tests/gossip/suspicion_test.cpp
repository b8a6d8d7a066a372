#include "gossip/local_health.hpp"
#include "gossip/suspicion.hpp"

#include <doctest/doctest.h>

using namespace kura::gossip;

TEST_CASE("suspicion timeout shrinks from max to min with independent confirmations") {
  suspicion_timers s;
  CHECK(s.start(7, 1, 2, 1'000, 4'000, 24'000, 3));
  CHECK(s.deadline(7) == 25'000);
  uint64_t prev = s.deadline(7);
  CHECK(s.confirm(7, 3));
  CHECK(s.deadline(7) < prev);
  prev = s.deadline(7);
  CHECK(!s.confirm(7, 3)); // the same confirmer counts once
  CHECK(s.deadline(7) == prev);
  CHECK(s.confirm(7, 4));
  CHECK(s.confirm(7, 5));
  CHECK(s.deadline(7) == 5'000); // k = 3 confirmations reached: min
  CHECK(s.confirm(7, 6));
  CHECK(s.deadline(7) == 5'000); // never below min
}

TEST_CASE("expired suspicions are reported once with their incarnation") {
  suspicion_timers s;
  s.start(1, 3, 9, 0, 100, 100, 0);
  s.start(2, 1, 9, 0, 500, 500, 0);
  CHECK(s.expired(99).empty());
  auto e = s.expired(100);
  REQUIRE(e.size() == 1);
  CHECK(e[0].first == 1);
  CHECK(e[0].second == 3);
  CHECK(s.expired(200).empty());
  CHECK(s.active(2));
  s.stop(2);
  CHECK(!s.active(2));
  CHECK(s.expired(10'000).empty());
}

TEST_CASE("a suspicion at a newer incarnation restarts the timer") {
  suspicion_timers s;
  s.start(1, 1, 9, 0, 100, 1'000, 2);
  CHECK(!s.start(1, 1, 8, 50, 100, 1'000, 2)); // same incarnation: a confirmation
  CHECK(s.start(1, 2, 8, 500, 100, 1'000, 2));
  CHECK(s.deadline(1) == 1'500);
}

TEST_CASE("local health scales periods and is bounded") {
  local_health h(3);
  CHECK(h.scale(100) == 100);
  h.failed();
  h.failed();
  CHECK(h.scale(100) == 300);
  for (int i = 0; i < 10; ++i)
    h.failed();
  CHECK(h.score() == 3);
  for (int i = 0; i < 10; ++i)
    h.succeeded();
  CHECK(h.score() == 0);
}
