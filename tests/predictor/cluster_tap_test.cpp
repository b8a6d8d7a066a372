// The predictor's hooks in the cluster store (gossip/tier_store.hpp): the tap
// sees the reads get() answers (with the tier: read cache L1/L2, L3) and the
// writes apply() stores, not the prewarm's own reads; prewarm() loads a key
// from L3 into the read cache (resident, absent, refused without a cache);
// drop_cached() drops from the cache only. The tap is the node's
// (actors/predictor_cluster_tap.hpp over actors/predictor_tap.hpp), sampling
// every event here.
#include "../test_util.hpp"
#include "actors/predictor_cluster_tap.hpp"
#include "gossip/tier_store.hpp"

#include <doctest/doctest.h>

using namespace kura;
using namespace kura::gossip;
using kura::actors::cluster_tap;
using kura::actors::tap_event;
using kura::actors::tap_tier;

namespace {

std::unique_ptr<tier_store> open_store(const testing::temp_dir& d, const kura::clock& clk) {
  l3_config c;
  c.path = d.sub("l3");
  c.map_size = 32ull << 20;
  c.fsync_batches = false;
  c.verify_on_open = false;
  auto r = tier_store::open(c, std::optional<archive::archive_config>{}, clk);
  REQUIRE(r.ok());
  return std::move(*r);
}

entry val(const std::string& k, const std::string& v, uint64_t hlc) {
  entry e;
  e.key = k;
  e.value = v;
  e.ver = version{hlc, 1};
  return e;
}

actors::tap_config every_event() {
  actors::tap_config tc;
  tc.sample_one_in = 1;
  return tc;
}

} // namespace

TEST_CASE("the cluster store's tap sees reads with their tier and stored writes") {
  testing::temp_dir d;
  fake_clock clk;
  auto s = open_store(d, clk);
  s->set_read_cache(1 << 20);
  cluster_tap tap(every_event());
  s->set_tap(&tap);

  REQUIRE(s->apply(val("a", "va", 10)));
  CHECK_FALSE(s->apply(val("a", "old", 5))); // not stored: not a write the tap sees
  auto ev = tap.tap().take();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kind == tap_event::write);
  CHECK(ev[0].key == "a");
  CHECK(ev[0].size == 1 + 2); // key + value (as the tap counts)

  // write-through: the read cache answers
  REQUIRE(s->get("a"));
  ev = tap.tap().take();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kind == tap_event::read);
  CHECK((ev[0].tier == uint8_t(tap_tier::l1) || ev[0].tier == uint8_t(tap_tier::l2)));
  CHECK(s->cache_hits() == 1);

  // dropped from the cache only: the next read comes from L3 (and is cached)
  CHECK(s->drop_cached("a"));
  CHECK_FALSE(s->cached("a"));
  CHECK_FALSE(s->drop_cached("a"));
  auto e = s->get("a");
  REQUIRE(e);
  CHECK(e->value == "va");
  ev = tap.tap().take();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].tier == uint8_t(tap_tier::l3));
  CHECK(s->cached("a"));

  // deletes are not writes for the tap, and a deleted key's reads are not reads
  entry t = val("a", "", 11);
  t.flags = entry_flags::tombstone;
  REQUIRE(s->apply(t));
  (void)s->get("a");
  CHECK(tap.tap().take().empty());
  CHECK_FALSE(s->get("never"));
  CHECK(tap.tap().take().empty());
  s->set_tap(nullptr);
  (void)s->get("a");
  CHECK(tap.tap().empty());
}

TEST_CASE("prewarm loads a key from L3 into the read cache, and its first read is a hit") {
  testing::temp_dir d;
  fake_clock clk;
  auto s = open_store(d, clk);
  uint64_t bytes = 0;
  REQUIRE(s->apply(val("k", std::string(100, 'x'), 10)));
  CHECK(s->prewarm("k", bytes) == tier_store::prewarm_outcome::refused); // no read cache
  s->set_read_cache(1 << 20);
  cluster_tap tap(every_event());
  s->set_tap(&tap);
  REQUIRE(s->flush().ok());
  REQUIRE_FALSE(s->cached("k")); // (the cache came after the write)

  CHECK(s->prewarm("k", bytes) == tier_store::prewarm_outcome::loaded);
  CHECK(bytes == 101);
  CHECK(s->cached("k"));
  CHECK(tap.tap().take().empty()); // not a client read
  CHECK(s->prewarm("k", bytes) == tier_store::prewarm_outcome::resident);
  CHECK(s->prewarm("nothing", bytes) == tier_store::prewarm_outcome::absent);
  entry t = val("gone", "", 12);
  t.flags = entry_flags::tombstone;
  REQUIRE(s->apply(t));
  CHECK(s->prewarm("gone", bytes) == tier_store::prewarm_outcome::absent);
  entry expired = val("old", "v", 13);
  expired.expiry_ms = clk.now_ms() + 10;
  REQUIRE(s->apply(expired));
  CHECK(s->drop_cached("old"));
  clk.advance_ms(20);
  CHECK(s->prewarm("old", bytes) == tier_store::prewarm_outcome::absent);

  // the node marks what it loaded; the first read reports a prewarm hit
  tap.tap().prewarmed("k", clk.now_ms());
  clk.advance_ms(5);
  auto hits = s->cache_hits();
  REQUIRE(s->get("k"));
  CHECK(s->cache_hits() == hits + 1);
  bool hit = false;
  for (auto& e : tap.tap().take())
    hit |= e.kind == tap_event::prewarm_read && e.key == "k" && e.tier == 1 && e.arg == 5;
  CHECK(hit);
  s->set_tap(nullptr);
}
