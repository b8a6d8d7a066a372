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
