#include "gossip/ring.hpp"
#include "tiers/slot.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>

using namespace kura::gossip;
using kura::key_slot;
using kura::slot_count;

namespace {

std::vector<node_id> ids(node_id n) {
  std::vector<node_id> v;
  for (node_id i = 1; i <= n; ++i)
    v.push_back(i);
  return v;
}

} // namespace

TEST_CASE("ring is a function of the member set, not of its order") {
  ring_config cfg;
  auto a = ids(7);
  auto b = a;
  std::reverse(b.begin(), b.end());
  b.push_back(3); // duplicates are ignored
  ring ra(a, cfg), rb(b, cfg);
  CHECK(ra.fingerprint() == rb.fingerprint());
  CHECK(ra.members() == rb.members());
  for (int k = 0; k < 2000; ++k) {
    std::string key = "key" + std::to_string(k);
    REQUIRE(ra.replicas(key) == rb.replicas(key));
  }
  ring rc(ids(6), cfg);
  CHECK(rc.fingerprint() != ra.fingerprint());
}

TEST_CASE("replicas are the owner plus rf-1 distinct successors") {
  ring_config cfg;
  cfg.rf = 3;
  ring r(ids(5), cfg);
  for (int k = 0; k < 2000; ++k) {
    std::string key = "k" + std::to_string(k);
    auto reps = r.replicas(key);
    REQUIRE(reps.size() == 3);
    CHECK(reps[0] == r.owner(key));
    CHECK(std::set<node_id>(reps.begin(), reps.end()).size() == 3);
    for (node_id n : reps)
      CHECK(r.is_replica(n, key));
  }
  // Fewer members than rf: everyone, once.
  ring small(ids(2), cfg);
  CHECK(small.replicas("x").size() == 2);
  CHECK(ring({}, cfg).replicas("x").empty());
  CHECK(ring({}, cfg).owner("x") == no_node);
}

TEST_CASE("balance: max/mean keys per node <= 1.1 at 10 nodes with default vnodes") {
  ring r(ids(10), ring_config{});
  std::map<node_id, int> owned;
  const int keys = 100'000;
  for (int k = 0; k < keys; ++k)
    ++owned[r.owner("user:" + std::to_string(k))];
  int mx = 0;
  for (auto& [n, c] : owned)
    mx = std::max(mx, c);
  double ratio = mx / (keys / 10.0);
  CHECK(ratio <= 1.1);
  CHECK(owned.size() == 10);
}

TEST_CASE("a join moves only ranges to the new node, about 1/n of the keys") {
  ring_config cfg;
  ring before(ids(9), cfg), after(ids(10), cfg);
  int moved = 0, keys = 20'000;
  for (int k = 0; k < keys; ++k) {
    std::string key = "k" + std::to_string(k);
    if (before.owner(key) != after.owner(key)) {
      ++moved;
      CHECK(after.owner(key) == 10);
    }
  }
  CHECK(moved > keys / 20);
  CHECK(moved < keys / 5);
  auto plan = transfer_plan(before, after);
  REQUIRE(!plan.empty());
  for (auto& t : plan) {
    CHECK(t.to == 10); // only the new node receives anything
    CHECK(t.from != 10);
    CHECK(before.contains(t.from));
  }
  // Every key the new node replicates lies in a planned range whose source
  // replicated it before.
  for (int k = 0; k < keys; ++k) {
    std::string key = "k" + std::to_string(k);
    if (!after.is_replica(10, key))
      continue;
    uint64_t p = after.position(key);
    auto it = std::find_if(plan.begin(), plan.end(),
                           [&](const transfer& t) { return t.range.contains(p); });
    REQUIRE(it != plan.end());
    CHECK(before.is_replica(it->from, key));
  }
}

TEST_CASE("a leave streams the leaver's ranges from surviving replicas") {
  ring_config cfg;
  ring before(ids(5), cfg);
  std::vector<node_id> rest = {1, 2, 4, 5};
  ring after(rest, cfg);
  auto plan = transfer_plan(before, after);
  REQUIRE(!plan.empty());
  for (auto& t : plan) {
    CHECK(t.to != 3);
    CHECK(t.from != 3); // rf 2: another old replica survives
    CHECK(after.contains(t.to));
  }
  // With rf 1 the leaver is the only source of its ranges.
  cfg.rf = 1;
  auto plan1 = transfer_plan(ring(ids(5), cfg), ring(rest, cfg));
  REQUIRE(!plan1.empty());
  for (auto& t : plan1)
    CHECK(t.from == 3);
  CHECK(transfer_plan(before, before).empty());
}

TEST_CASE("key_range wraps past zero") {
  key_range r{100, 10};
  CHECK(r.contains(5));
  CHECK(r.contains(101));
  CHECK(r.contains(10));
  CHECK(!r.contains(100));
  CHECK(!r.contains(50));
  key_range whole{7, 7};
  CHECK(whole.contains(7));
  CHECK(whole.contains(0));
}

TEST_CASE("placement is a function of the slot: keys of one slot share replicas") {
  ring r(ids(7), ring_config{});
  for (int k = 0; k < 5'000; ++k) {
    std::string key = "user:" + std::to_string(k);
    uint16_t s = key_slot(key);
    CHECK(ring::slot_of(r.position(key)) == s);
    CHECK(r.replicas(key) == r.replicas_of_slot(s));
  }
  // hash tags put related keys on the same replicas
  CHECK(r.replicas("{user1000}.following") == r.replicas("{user1000}.followers"));
  // every position inside a slot's arc has the slot's replicas
  for (uint32_t s = 0; s < slot_count; s += 97) {
    auto want = r.replicas_of_slot(s);
    CHECK(r.replicas_at(ring::slot_base(s)) == want);
    CHECK(r.replicas_at(ring::slot_base(s) + (uint64_t{1} << 49)) == want);
    CHECK(r.replicas_at(ring::slot_base(s + 1) - 1) == want);
  }
  // tokens never cut a slot: each token is the last position of a slot
  for (uint64_t t : r.tokens())
    CHECK(ring::slot_of(t) != ring::slot_of(t + 1));
}

TEST_CASE("two nodes with the same view compute the same slot placement") {
  std::vector<node_id> a = {9, 3, 27, 4, 12}, b = {12, 27, 3, 9, 4};
  ring_config cfg;
  cfg.rf = 3;
  ring ra(a, cfg), rb(b, cfg);
  for (uint32_t s = 0; s < slot_count; ++s) {
    auto reps = ra.replicas_of_slot(s);
    REQUIRE(reps == rb.replicas_of_slot(s));
    REQUIRE(reps.size() == 3);
    CHECK(reps[0] != reps[1]);
    CHECK(reps[1] != reps[2]);
    CHECK(reps[0] != reps[2]);
  }
}

TEST_CASE("balance: max/mean owned slots <= 1.1 at 10 nodes with default vnodes") {
  ring r(ids(10), ring_config{});
  auto owned = r.owned_slots();
  REQUIRE(owned.size() == 10);
  uint32_t total = 0, mx = 0;
  for (uint32_t c : owned) {
    total += c;
    mx = std::max(mx, c);
  }
  CHECK(total == slot_count);
  double ratio = mx / (slot_count / 10.0);
  MESSAGE("owned slots max/mean at 10 nodes: " << ratio);
  CHECK(ratio <= 1.1);
}
