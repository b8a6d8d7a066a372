#include "gossip/dissemination.hpp"

#include <doctest/doctest.h>

using namespace kura::gossip;

namespace {
member_update upd(node_id id, uint64_t inc, member_state st = member_state::alive) {
  return member_update{id, "", inc, static_cast<uint8_t>(st), 1};
}
} // namespace

TEST_CASE("retransmit limit grows like log(n)") {
  dissemination_queue q(4);
  CHECK(q.limit(1) == 4);
  CHECK(q.limit(9) == 4);
  CHECK(q.limit(10) == 8);
  CHECK(q.limit(99) == 8);
  CHECK(q.limit(100) == 12);
  CHECK(q.limit(999) == 12);
}

TEST_CASE("an update is sent limit(n) times, then dropped") {
  dissemination_queue q(2);
  q.push(upd(5, 1));
  size_t n = 50; // limit = 2 * 2 = 4
  int sent = 0;
  for (int i = 0; i < 10; ++i)
    sent += static_cast<int>(q.take(8, n).size());
  CHECK(sent == 4);
  CHECK(q.empty());
}

TEST_CASE("newer news about a member replaces older news") {
  dissemination_queue q;
  q.push(upd(5, 1));
  q.take(8, 3); // transmitted once
  q.push(upd(5, 2, member_state::suspect));
  CHECK(q.size() == 1);
  auto out = q.take(8, 3);
  REQUIRE(out.size() == 1);
  CHECK(out[0].inc == 2);
  CHECK(out[0].state == static_cast<uint8_t>(member_state::suspect));
}

TEST_CASE("the least transmitted updates go first and max bounds a message") {
  dissemination_queue q(10);
  for (node_id i = 1; i <= 5; ++i)
    q.push(upd(i, 0));
  auto first = q.take(3, 10);
  CHECK(first.size() == 3);
  q.push(upd(9, 0));
  auto second = q.take(3, 10);
  REQUIRE(second.size() == 3);
  // the three never sent (two old + the new one) come before any resend
  for (auto& u : second)
    for (auto& f : first)
      CHECK(u.id != f.id);
}
