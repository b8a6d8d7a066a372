#include "tiers/frequency_sketch.hpp"
#include "tiers/hash.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace kura;

TEST_CASE("sketch counts up to 15 and never under-counts before a halving") {
  frequency_sketch s(1024);
  const uint64_t h = hash64("hot");
  CHECK(s.frequency(h) == 0);
  for (int i = 1; i <= 20; ++i) {
    s.increment(h);
    CHECK(s.frequency(h) == static_cast<uint32_t>(i < 15 ? i : 15));
  }
  // Other keys barely disturb it and stay near zero.
  uint32_t others = 0;
  for (int i = 0; i < 100; ++i)
    others += s.frequency(hash64("cold" + std::to_string(i)));
  CHECK(others < 20);
}

TEST_CASE("sketch estimates separate hot from cold keys") {
  frequency_sketch s(1000);
  for (int round = 0; round < 8; ++round)
    for (int k = 0; k < 100; ++k)
      s.increment(hash64("hot" + std::to_string(k)));
  for (int k = 0; k < 900; ++k)
    s.increment(hash64("cold" + std::to_string(k)));
  int hot_ok = 0, cold_ok = 0;
  for (int k = 0; k < 100; ++k)
    hot_ok += s.frequency(hash64("hot" + std::to_string(k))) >= 8;
  for (int k = 0; k < 900; ++k)
    cold_ok += s.frequency(hash64("cold" + std::to_string(k))) <= 2;
  CHECK(hot_ok == 100);
  CHECK(cold_ok >= 850);
}

TEST_CASE("sketch halves every counter after sample_size increments") {
  frequency_sketch s(16);
  CHECK(s.sample_size() == 160);
  const uint64_t h = hash64("k");
  for (int i = 0; i < 12; ++i)
    s.increment(h);
  CHECK(s.frequency(h) == 12);
  CHECK(s.halvings() == 0);
  // Fill up to the sample size with distinct keys.
  int i = 0;
  while (s.halvings() == 0)
    s.increment(hash64("filler" + std::to_string(i++)));
  CHECK(s.halvings() == 1);
  // 12 (plus maybe a collision or two) halved.
  CHECK(s.frequency(h) >= 6);
  CHECK(s.frequency(h) <= 7);
  CHECK(s.additions() < s.sample_size());
  s.halve();
  CHECK(s.frequency(h) <= 3);
}

TEST_CASE("sketch aging period follows set_sample_factor, also across a re-size") {
  frequency_sketch s(16);
  s.set_sample_factor(20);
  CHECK(s.sample_factor() == 20);
  CHECK(s.sample_size() == 320);
  int i = 0;
  while (s.halvings() == 0)
    s.increment(hash64("k" + std::to_string(i++)));
  // Every increment raises at least one counter until counters saturate,
  // which 16 words of 16 counters do not reach in 320 distinct keys.
  CHECK(i == 320);
  CHECK(s.ensure_capacity(64));
  CHECK(s.sample_size() == 64 * 20);
}

TEST_CASE("sketch doorkeeper absorbs the first access") {
  frequency_sketch s(1024, true);
  const uint64_t h = hash64("once");
  s.increment(h);
  CHECK(s.frequency(h) == 1); // the doorkeeper's bit
  s.increment(h);
  CHECK(s.frequency(h) == 2);
  s.halve(); // clears the doorkeeper, halves the counter
  CHECK(s.frequency(h) == 0);
}

TEST_CASE("sketch ensure_capacity grows, forgets, and never shrinks") {
  frequency_sketch s(64);
  const uint64_t h = hash64("x");
  s.increment(h);
  uint64_t bytes = s.memory_bytes();
  CHECK_FALSE(s.ensure_capacity(32));
  CHECK(s.frequency(h) == 1);
  CHECK(s.ensure_capacity(4096));
  CHECK(s.memory_bytes() > bytes);
  CHECK(s.frequency(h) == 0);
  CHECK(s.sample_size() == 40960);
  // 8 bytes (16 counters) per expected key.
  CHECK(s.memory_bytes() == 4096 * 8);
}
