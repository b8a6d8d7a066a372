// Replication plan, pending writes, hints, invalidation and tombstone tracking.
#include "gossip/hints.hpp"
#include "gossip/invalidation.hpp"
#include "gossip/replication.hpp"
#include "gossip/tombstones.hpp"

#include <doctest/doctest.h>

using namespace kura;
using namespace kura::gossip;

namespace {
entry make(const std::string& k, uint64_t hlc) {
  return entry{k, "v", 0, version{hlc, 1}, 0};
}
} // namespace

TEST_CASE("write plan: the replicas, and acks bounded by their number") {
  ring_config cfg;
  cfg.rf = 3;
  ring r({1, 2, 3, 4}, cfg);
  auto p = plan_write(r, "key", 2);
  CHECK(p.targets == r.replicas("key"));
  CHECK(p.acks_needed == 2);
  CHECK(plan_write(r, "key", 9).acks_needed == 3);
  CHECK(plan_write(r, "key", 0).acks_needed == 1);
  CHECK(plan_write(ring({1}, cfg), "key", 2).acks_needed == 1);
}

TEST_CASE("pending writes count each target's ack once and only for the version") {
  pending_writes pw;
  pw.add(1, make("k", 10), {2, 3}, 1, 2, 100, 50);
  CHECK(pw.ack(1, 2, version{9, 1}) == nullptr); // older than the write
  auto* w = pw.ack(1, 2, version{10, 1});
  REQUIRE(w);
  CHECK(w->acks == 2);
  CHECK(pw.ack(1, 2, version{10, 1}) == nullptr); // duplicate
  CHECK(pw.ack(1, 4, version{10, 1}) == nullptr); // not a target
  CHECK(pw.ack(7, 3, version{10, 1}) == nullptr); // unknown write
  CHECK(w->waiting == std::set<node_id>{3});
}

TEST_CASE("hints keep the newest entry per key and go away when covered") {
  hint_store h(2);
  h.add(5, make("a", 1));
  h.add(5, make("a", 3));
  h.add(5, make("a", 2));
  h.add(5, make("b", 1));
  h.add(5, make("c", 1)); // over the bound: dropped and counted
  CHECK(h.size(5) == 2);
  CHECK(h.dropped() == 1);
  auto p = h.peek(5, 10);
  REQUIRE(p.size() == 2);
  CHECK(p[0].ver.hlc == 3);
  CHECK(!h.acknowledge(5, "a", version{2, 1})); // an older version does not cover it
  CHECK(h.acknowledge(5, "a", version{3, 1}));
  CHECK(h.acknowledge(5, "b", version{4, 1}));
  CHECK(h.size() == 0);
  CHECK(h.targets().empty());
}

TEST_CASE("invalidations are retried until acknowledged or the holder is dead") {
  invalidation_tracker t;
  t.add_holder("k", 2, 1'000);
  t.add_holder("k", 3, 1'000);
  t.add_holder("k", 4, 10); // its copy expires before the change
  t.on_change("k", version{5, 1}, 100);
  auto d = t.due(100, 50);
  CHECK(d.size() == 2);
  CHECK(t.due(120, 50).empty());
  CHECK(t.due(150, 50).size() == 2); // retry
  CHECK(!t.acknowledge(2, key_version{"k", 4, 1})); // older than the change
  CHECK(t.acknowledge(2, key_version{"k", 5, 1}));
  CHECK(t.pending() == 1);
  t.drop_holder(3);
  CHECK(t.pending() == 0);
  CHECK(t.holders("k") == 0);
  t.on_change("k", version{6, 1}, 200); // nobody holds it any more
  CHECK(t.due(200, 50).empty());
}

TEST_CASE("a tombstone is collectable only when every other replica confirmed it") {
  tombstone_tracker t;
  version v{100, 1};
  CHECK(t.missing("k", v, {2, 3}) == std::vector<node_id>{2, 3});
  t.confirm("k", 2, version{99, 1}); // older: does not count
  CHECK(!t.confirmed_by_all("k", v, {2, 3}));
  t.confirm("k", 2, v);
  CHECK(t.missing("k", v, {2, 3}) == std::vector<node_id>{3});
  t.confirm("k", 3, version{101, 1});
  CHECK(t.confirmed_by_all("k", v, {2, 3}));
  CHECK(!t.confirmed_by_all("k", v, {2, 3, 4})); // a new replica has not
  t.forget("k");
  CHECK(!t.confirmed_by_all("k", v, {2}));
}
