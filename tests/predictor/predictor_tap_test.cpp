// The predictor's tap on the memory shards (actors/predictor_tap.hpp) and its
// hook in the keyspace: sampling rate, prewarm marks, the bound on the batch.
#include "actors/keyspace.hpp"
#include "actors/predictor_tap.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace kura;
using namespace kura::actors;

TEST_CASE("the tap samples about 1 in N reads, with jitter") {
  for (uint32_t n : {1u, 8u, 64u}) {
    CAPTURE(n);
    tap_config c;
    c.sample_one_in = n;
    c.max_batch = 1 << 20;
    predictor_tap tap(c);
    const int reads = 200000;
    for (int i = 0; i < reads; ++i)
      tap.on_read("k" + std::to_string(i % 1000), 1000 + i, tap_tier::l1, 10);
    auto batch = tap.take();
    const double expected = static_cast<double>(reads) / n;
    CHECK(static_cast<double>(batch.size()) > expected * 0.9);
    CHECK(static_cast<double>(batch.size()) < expected * 1.1);
    CHECK(tap.take().empty()); // taken
    REQUIRE(!batch.empty());
    CHECK(batch[0].kind == tap_event::read);
    CHECK(batch[0].size == 10 + batch[0].key.size());
  }
}

TEST_CASE("pacing: above max_events_per_second the tap samples sparser, and returns when calm") {
  tap_config c;
  c.sample_one_in = 8;
  c.max_events_per_second = 1000;
  c.max_batch = 1 << 20;
  predictor_tap tap(c);
  // 10 simulated seconds at 1 000 000 reads per second: 1 in 8 would be
  // 125 000 events per second
  uint64_t reads = 0;
  for (uint64_t ms = 1000; ms < 11000; ++ms)
    for (int i = 0; i < 1000; ++i, ++reads)
      tap.on_read("k" + std::to_string(reads % 5000), ms, tap_tier::l1, 10);
  auto busy = tap.take();
  // at most the cap (plus the events of the second in which it reacts)
  CHECK(busy.size() <= 10 * 2 * c.max_events_per_second);
  CHECK(busy.size() >= 10 * c.max_events_per_second / 4);
  CHECK(tap.one_in() >= 128);
  // every event says how many reads it stands for: together about all of them
  double stood_for = 0;
  for (auto& e : busy)
    stood_for += e.weight;
  CHECK(stood_for > 0.7 * static_cast<double>(reads));
  CHECK(stood_for < 1.3 * static_cast<double>(reads));
  CHECK(busy.front().weight == 8);
  CHECK(busy.back().weight >= 128);
  // then 10 seconds at 100 reads per second: back to 1 in 8
  for (uint64_t ms = 11000; ms < 21000; ms += 10)
    tap.on_read("calm", ms, tap_tier::l1, 10);
  auto calm = tap.take();
  REQUIRE(!calm.empty());
  CHECK(tap.one_in() == 8);
  CHECK(calm.back().weight == 8);
  // without a cap the tap keeps 1 in 8 whatever the rate
  c.max_events_per_second = 0;
  predictor_tap free_tap(c);
  for (int i = 0; i < 100000; ++i)
    free_tap.on_read("k", 1000, tap_tier::l1, 10);
  CHECK(free_tap.one_in() == 8);
  CHECK(free_tap.take().size() > 100000 / 8 * 9 / 10);
}

TEST_CASE("a prewarmed key reports its first read, served or not, never sampled away") {
  tap_config c;
  c.sample_one_in = 1000000; // no ordinary samples in this test
  predictor_tap tap(c);
  tap.prewarmed("a", 100);
  tap.prewarmed("b", 100);
  tap.prewarmed("c", 100);
  tap.on_read("a", 250, tap_tier::l1, 5); // memory served it
  tap.on_read("a", 260, tap_tier::l1, 5); // a second read is not the prewarm's
  tap.on_read("b", 300, tap_tier::l3, 5); // evicted before its read
  tap.on_write("c", 310, 0, 5);           // rewritten: its reads are the write's
  tap.on_read("c", 320, tap_tier::l1, 5);
  auto batch = tap.take();
  REQUIRE(batch.size() == 2);
  CHECK(batch[0].key == "a");
  CHECK(batch[0].kind == tap_event::prewarm_read);
  CHECK(batch[0].tier == 1);
  CHECK(batch[0].arg == 150);
  CHECK(batch[1].key == "b");
  CHECK(batch[1].tier == 0);
  CHECK(tap.open_marks() == 0);
}

TEST_CASE("the batch is bounded: a predictor that falls behind loses events, counted") {
  tap_config c;
  c.sample_one_in = 1;
  c.max_batch = 100;
  predictor_tap tap(c);
  for (int i = 0; i < 250; ++i)
    tap.on_write("w" + std::to_string(i), 5, 1000, 3);
  CHECK(tap.take().size() == 100);
  CHECK(tap.dropped() == 150);
  tap.on_write("x", 6, 0, 3);
  auto b = tap.take();
  REQUIRE(b.size() == 1);
  CHECK(b[0].kind == tap_event::write);
  CHECK(b[0].arg == 0);
}

TEST_CASE("the keyspace reports reads by tier and writes with their TTL") {
  fake_clock clk(1000000);
  keyspace_config kc;
  kc.shards = 2;
  kc.memory_bytes = 8 << 20;
  keyspace ks(kc, clk, nullptr);
  tap_config c;
  c.sample_one_in = 1;
  predictor_tap tap(c);
  ks.set_tap(&tap);
  REQUIRE(ks.write("user:1", "hello", 1'000'000 + 5000).ok());
  CHECK(ks.read("user:1", [](std::string_view, uint64_t) {}));
  CHECK(!ks.read("nope", [](std::string_view, uint64_t) {}));
  staged_entries staged;
  entry e;
  e.key = "cold";
  e.value = "from-l3";
  staged.emplace("cold", e);
  ks.set_overlay(&staged);
  CHECK(ks.view("cold", [](const keyspace::key_view&) {}));
  ks.set_overlay(nullptr);
  auto b = tap.take();
  REQUIRE(b.size() == 4);
  CHECK(b[0].kind == tap_event::write);
  CHECK(b[0].arg == 5000);
  CHECK(b[1].kind == tap_event::read);
  CHECK(b[1].tier == static_cast<uint8_t>(tap_tier::l1));
  CHECK(b[2].tier == static_cast<uint8_t>(tap_tier::miss));
  CHECK(b[3].tier == static_cast<uint8_t>(tap_tier::l3));
  ks.set_tap(nullptr);
  CHECK(ks.read("user:1", [](std::string_view, uint64_t) {}));
  CHECK(tap.empty());
}

TEST_CASE("with follow_writes a sampled write's next read is reported, unsampled") {
  tap_config c;
  c.sample_one_in = 1000; // reads are almost never sampled
  c.follow_writes = true;
  predictor_tap tap(c);
  // the sampler's first gap is random: write until one write is sampled
  int sampled = -1;
  for (int i = 0; i < 5000 && sampled < 0; ++i) {
    tap.on_write("w:" + std::to_string(i), 1000, 0, 10);
    if (tap.followed_writes() > 0)
      sampled = i;
  }
  REQUIRE(sampled >= 0);
  const std::string key = "w:" + std::to_string(sampled);
  (void)tap.take();
  tap.on_read("other", 2000, tap_tier::l1, 10);
  tap.on_read(key, 3000, tap_tier::l3, 10);
  tap.on_read(key, 4000, tap_tier::l1, 10); // reported once
  auto ev = tap.take();
  int reported = 0;
  for (auto& e : ev)
    if (e.kind == tap_event::write_read) {
      ++reported;
      CHECK(e.key == key);
      CHECK(e.time_ms == 3000);
    }
  CHECK(reported == 1);
  CHECK(tap.followed_writes() == 0);
  // a write with a TTL read before it ran out stays followed for a read after it
  tap_config c2;
  c2.sample_one_in = 1;
  c2.follow_writes = true;
  predictor_tap t2(c2);
  t2.on_write("s", 1000, 500, 10);
  t2.on_read("s", 1200, tap_tier::l1, 10);
  CHECK(t2.followed_writes() == 1);
  t2.on_read("s", 1300, tap_tier::l1, 10);
  t2.on_read("s", 1600, tap_tier::miss, 0);
  CHECK(t2.followed_writes() == 0);
  int wr = 0;
  for (auto& e : t2.take())
    wr += e.kind == tap_event::write_read;
  CHECK(wr == 2); // before and after the TTL, not the repeat in between
  // a rewrite ends the follow; without follow_writes nothing is followed
  t2.on_write("s2", 2000, 0, 10);
  t2.on_write("s2", 2100, 0, 10);
  CHECK(t2.followed_writes() == 1);
  predictor_tap plain(tap_config{});
  for (int i = 0; i < 100; ++i)
    plain.on_write("p", 1000 + i, 0, 1);
  CHECK(plain.followed_writes() == 0);
}

namespace {
struct recording_l3 final : l3_port {
  std::vector<std::string> written;
  void write(const entry& e) override { written.push_back(e.key); }
  void erase(std::string_view) override {}
  void clear() override {}
};
} // namespace

TEST_CASE("the keyspace sends new writes of an L3-only pattern to L3, not memory") {
  fake_clock clk(1000000);
  keyspace_config kc;
  kc.shards = 2;
  kc.memory_bytes = 8 << 20;
  recording_l3 l3;
  keyspace ks(kc, clk, &l3);
  // the rules as the predictor ships them: log:*:event written, never read
  predictor::key_patterns shapes;
  for (int i = 0; i < 20; ++i)
    (void)shapes.learn("log:" + std::to_string(i) + ":event");
  REQUIRE(shapes.pattern_of("log:7:event") == "log:*:event");
  ks.set_ttl_rules(std::make_shared<const predictor::ttl_rules>(
      shapes, predictor::ttl_rules::rule_map{}, 1000, 1000000,
      predictor::ttl_rules::pattern_set{"log:*:event"}));
  REQUIRE(ks.write("log:1:event", "line", 0).ok());
  REQUIRE(ks.write("user:1", "hello", 0).ok());
  CHECK(std::string(ks.tier_of("log:1:event")) == "none"); // L3 only
  CHECK(std::string(ks.tier_of("user:1")) != "none");
  CHECK(l3.written.size() == 2); // both reach L3
  CHECK(ks.maybe_in_l3("log:1:event"));
  CHECK(ks.tier_l3_only() == 1);
  // a key memory holds is updated in memory (only new writes are placed)
  ks.set_ttl_rules(nullptr);
  REQUIRE(ks.write("log:2:event", "v1", 0).ok());
  ks.set_ttl_rules(std::make_shared<const predictor::ttl_rules>(
      shapes, predictor::ttl_rules::rule_map{}, 1000, 1000000,
      predictor::ttl_rules::pattern_set{"log:*:event"}));
  REQUIRE(ks.write("log:2:event", "v2", 0).ok());
  std::string got;
  CHECK(ks.read("log:2:event", [&](std::string_view v, uint64_t) { got = std::string(v); }));
  CHECK(got == "v2");
  CHECK(ks.tier_l3_only() == 1);
}
