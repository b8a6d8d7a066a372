// The archive's replication face: apply-if-newer, held_version, and the L4
// key iterator (in order, resumable, bounded per call).
#include "archive_test_util.hpp"

#include "tiers/clock.hpp"

#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>

using namespace kura;
using l4 = kura::archive::archive;
using kura::archive::archive_config;
namespace test = kura::archive::test;

namespace {

archive_config cfg_at(const std::string& dir) {
  archive_config c;
  c.path = dir;
  c.durable = false;
  c.block_bytes = 512; // many blocks, so scans cross blocks and segments
  c.index_map_bytes = 64ull << 20;
  return c;
}

entry val(std::string key, std::string value, uint64_t hlc, uint32_t node = 1,
          uint64_t expiry = 0) {
  entry e;
  e.key = std::move(key);
  e.value = std::move(value);
  e.ver = version{hlc, node};
  e.expiry_ms = expiry;
  return e;
}

bool applied(l4& a, entry e, uint64_t now) {
  auto r = a.apply(std::move(e), now);
  INFO((r.ok() ? std::string{"ok"} : r.err().to_string()));
  REQUIRE(r.ok());
  return *r;
}

} // namespace

TEST_CASE("archive apply: only newer versions replace, pending or committed") {
  test::temp_dir d;
  fake_clock clk;
  auto opened = l4::open(cfg_at(d.path), clk);
  REQUIRE(opened.ok());
  auto& a = **opened;
  uint64_t now = clk.now_ms();
  CHECK(applied(a, val("k", "v5", 5), now));
  CHECK_FALSE(applied(a, val("k", "v4", 4), now)); // against the pending block
  REQUIRE(a.flush().ok());
  CHECK_FALSE(applied(a, val("k", "v5again", 5), now)); // against the index
  CHECK(applied(a, val("k", "v6", 5, 2), now));
  auto got = a.get("k", now);
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK((*got)->value == "v6");
  auto hv = a.held_version("k");
  REQUIRE(hv.ok());
  CHECK(**hv == version{5, 2});
  hv = a.held_version("missing");
  REQUIRE(hv.ok());
  CHECK_FALSE(hv->has_value());
  entry t = val("k", "", 9);
  t.flags = entry_flags::tombstone;
  auto r = a.apply(t, now);
  REQUIRE_FALSE(r.ok());
  CHECK(r.code() == errc::invalid_argument);
}

TEST_CASE("archive scan_keys: every key once, in order, resumable, bounded") {
  test::temp_dir d;
  fake_clock clk;
  auto opened = l4::open(cfg_at(d.path), clk);
  REQUIRE(opened.ok());
  auto& a = **opened;
  uint64_t now = clk.now_ms();
  std::map<std::string, version> want;
  for (int i = 0; i < 300; ++i) {
    std::string k = "key:" + std::to_string(10'000 + i * 7);
    version v{static_cast<uint64_t>(100 + i), 3};
    REQUIRE(a.put(val(k, test::json_value(static_cast<uint64_t>(i), 80), v.hlc, v.node), now).ok());
    want[k] = v;
  }
  std::string longk(700, 'q'); // an index key made of a hash: recovered from its record
  REQUIRE(a.put(val(longk, "long", 42, 9), now).ok());
  want[longk] = version{42, 9};
  // expired entries are listed too (their version matters to anti-entropy)
  REQUIRE(a.put(val("soon", "x", 77, 1, now + 10), now).ok());
  want["soon"] = version{77, 1};
  clk.advance_ms(20);
  std::map<std::string, version> got;
  std::vector<std::string> order;
  std::string after;
  int calls = 0;
  for (;;) {
    size_t n = 0;
    auto r = a.scan_keys(after, 32, [&](const l4::key_info& ki) {
      CHECK(got.emplace(ki.key, ki.ver).second);
      order.push_back(ki.key);
      ++n;
    });
    REQUIRE(r.ok());
    CHECK(n <= 32);
    ++calls;
    if (!r->has_value())
      break;
    after = **r;
    REQUIRE(calls < 100);
  }
  CHECK(got == want);
  CHECK(calls >= 10);
  // short keys come in byte order, the hashed long key after them
  CHECK(order.back() == longk);
  CHECK(std::is_sorted(order.begin(), order.end() - 1));
  // a fresh scan from the middle resumes there
  std::string mid = "key:" + std::to_string(10'000 + 150 * 7);
  std::string first;
  auto r = a.scan_keys(mid, 1, [&](const l4::key_info& ki) { first = ki.key; });
  REQUIRE(r.ok());
  CHECK(first == "key:" + std::to_string(10'000 + 151 * 7));
}
