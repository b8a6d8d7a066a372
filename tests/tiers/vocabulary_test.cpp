#include "tiers/clock.hpp"
#include "tiers/entry.hpp"
#include "tiers/hash.hpp"
#include "tiers/random.hpp"
#include "tiers/status.hpp"
#include "tiers/tier.hpp"

#include <doctest/doctest.h>

#include <set>

using namespace kura;

TEST_CASE("version orders by hlc, then node id") {
  version a{version::make_hlc(100, 0), 1};
  version b{version::make_hlc(100, 1), 0};
  version c{version::make_hlc(100, 1), 2};
  CHECK(a < b);
  CHECK(b < c);
  CHECK(c > a);
  CHECK(a.ms() == 100);
  CHECK(b.counter() == 1);
  CHECK(version{}.is_zero());
}

TEST_CASE("limits reject oversized keys and values with a clear message") {
  limits lim;
  lim.max_key_bytes = 4;
  lim.max_value_bytes = 8;
  CHECK(lim.check("abcd", 8).ok());
  auto k = lim.check("abcde", 1);
  CHECK(k.code() == errc::key_too_large);
  CHECK(k.message().find("5 bytes") != std::string::npos);
  CHECK(lim.check("a", 9).code() == errc::value_too_large);
}

TEST_CASE("result carries a value or an error") {
  result<int> r = 5;
  CHECK(r.ok());
  CHECK(*r == 5);
  result<int> e{errc::corrupt, "block 3"};
  CHECK_FALSE(e.ok());
  CHECK(e.err().to_string() == "corrupt: block 3");
}

TEST_CASE("fake clock moves only when told") {
  fake_clock c{1000};
  CHECK(c.now_ms() == 1000);
  c.advance_ms(365ull * 24 * 3600 * 1000);
  CHECK(c.now_ms() == 1000 + 365ull * 24 * 3600 * 1000);
}

TEST_CASE("hash64 is stable and spreads short keys") {
  CHECK(hash64("kura") == hash64("kura"));
  CHECK(hash64("kura") != hash64("kurb"));
  CHECK(hash64("kura", 1) != hash64("kura", 2));
  std::set<uint64_t> buckets;
  for (int i = 0; i < 1000; ++i)
    buckets.insert(hash64(std::to_string(i)) & 1023);
  CHECK(buckets.size() > 550); // ~632 expected for a uniform hash
}

TEST_CASE("rng replays from its seed") {
  rng a{42}, b{42};
  for (int i = 0; i < 100; ++i)
    CHECK(a.next() == b.next());
  rng c{7};
  for (int i = 0; i < 1000; ++i)
    CHECK(c.below(10) < 10);
}

TEST_CASE("latency histogram quantiles") {
  latency_histogram h;
  for (int i = 0; i < 99; ++i)
    h.record(1000);
  h.record(1'000'000);
  CHECK(h.quantile_ns(0.5) == 1024);
  CHECK(h.quantile_ns(0.999) >= 1'000'000);
}
