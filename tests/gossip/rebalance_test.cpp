// The weighted ring and kura rebalance's planner (gossip/rebalance.hpp).
#include "gossip/rebalance.hpp"

#include "tiers/slot.hpp"

#include <doctest/doctest.h>

#include <algorithm>

using namespace kura;
using namespace kura::gossip;

namespace {

const std::vector<node_id> three{11, 22, 33};

} // namespace

TEST_CASE("weighted ring: token counts set each member's share; default counts change nothing") {
  ring_config cfg;
  ring plain(three, cfg);
  ring same(three, cfg, {{22, cfg.vnodes}});
  CHECK(plain.fingerprint() == same.fingerprint());
  CHECK(plain.tokens() == same.tokens());
  ring heavy(three, cfg, {{22, cfg.vnodes * 2}});
  CHECK(heavy.fingerprint() != plain.fingerprint());
  CHECK(heavy.tokens_of(22) == cfg.vnodes * 2);
  CHECK(heavy.tokens_of(11) == cfg.vnodes);
  auto owned = heavy.owned_slots(); // by member order 11, 22, 33
  CHECK(owned[1] > owned[0] * 3 / 2);
  CHECK(owned[1] > owned[2] * 3 / 2);
  // The same input gives the same ring, whatever the order of the members.
  ring again({33, 11, 22}, cfg, {{22, cfg.vnodes * 2}});
  CHECK(again.fingerprint() == heavy.fingerprint());
  CHECK(again.tokens() == heavy.tokens());
}

TEST_CASE("weighted ring: adding tokens to one member moves only slots to that member") {
  ring_config cfg;
  ring before(three, cfg);
  ring after(three, cfg, {{33, cfg.vnodes + 64}});
  uint32_t moved = 0;
  for (uint32_t s = 0; s < slot_count; ++s) {
    auto a = before.replicas_of_slot(s)[0], b = after.replicas_of_slot(s)[0];
    if (a != b) {
      ++moved;
      CHECK(b == 33); // a slot only changes owner to the member that got tokens
    }
  }
  CHECK(moved > 0);
  CHECK(moved < slot_count / 8);
}

TEST_CASE("plan_rebalance evens out a skewed load and predicts it exactly") {
  ring_config cfg;
  ring r(three, cfg);
  // Heavy slots: 60 slots that members 11 and 22 replicate (not 33).
  std::vector<uint64_t> load(slot_count, 10);
  int heavy = 0;
  for (uint32_t s = 0; s < slot_count && heavy < 60; s += 7) {
    auto reps = r.replicas_of_slot(s);
    if (std::find(reps.begin(), reps.end(), node_id{33}) == reps.end()) {
      load[s] = 100'000;
      ++heavy;
    }
  }
  REQUIRE(heavy == 60);
  auto before = max_over_mean(held_load(r, load));
  CHECK(before > 1.3);
  auto p = plan_rebalance(three, {}, cfg, load);
  CHECK(p.before == doctest::Approx(before));
  CHECK(p.after < before - 0.1);
  CHECK(p.rounds > 0);
  CHECK(p.slots_moved > 0);
  ring planned(three, cfg, p.tokens);
  CHECK(max_over_mean(held_load(planned, load)) == doctest::Approx(p.after));
  // Deterministic.
  auto q = plan_rebalance(three, {}, cfg, load);
  CHECK(q.tokens == p.tokens);
}

TEST_CASE("plan_rebalance leaves a balanced or empty cluster alone") {
  ring_config cfg;
  std::vector<uint64_t> none(slot_count, 0);
  auto p = plan_rebalance(three, {}, cfg, none);
  CHECK(p.rounds == 0);
  CHECK(p.slots_moved == 0);
  auto one = plan_rebalance({11}, {}, cfg, std::vector<uint64_t>(slot_count, 5));
  CHECK(one.rounds == 0);
  // Uniform load: whatever it does never makes it worse.
  auto u = plan_rebalance(three, {}, cfg, std::vector<uint64_t>(slot_count, 5));
  CHECK(u.after <= u.before);
}
