#include "gossip/anti_entropy.hpp"
#include "gossip/ring.hpp"
#include "gossip/store.hpp"
#include "tiers/slot.hpp"

#include "tiers/random.hpp"

#include <doctest/doctest.h>

#include <algorithm>

using namespace kura;
using namespace kura::gossip;
namespace ae = kura::gossip::anti_entropy;

namespace {

entry make(const std::string& k, uint64_t hlc, uint32_t node, bool tomb = false) {
  return entry{k, tomb ? "" : "v" + std::to_string(hlc), 0, version{hlc, node},
               static_cast<uint8_t>(tomb ? entry_flags::tombstone : 0)};
}

uint64_t pos(std::string_view k) {
  return ring::position(k, ring_config{});
}

const ae::slot_mask everything; // every slot

/// One full anti-entropy round between a and b as node.cpp runs it; returns
/// the number of (key, version) pairs and entries that crossed the wire.
size_t round(replica_store& a, replica_store& b) {
  size_t shipped = 0;
  auto da = ae::level1(a, everything);
  auto diff1 = ae::differing(ae::level1(b, everything), da);
  if (diff1.empty())
    return 0;
  std::vector<uint16_t> prefixes(diff1.begin(), diff1.end());
  auto l2b = ae::level2(b, everything, prefixes);
  auto diff2 = ae::differing(ae::level2(a, everything, prefixes), l2b);
  std::vector<uint16_t> buckets;
  for (size_t i : diff2)
    buckets.push_back(static_cast<uint16_t>((prefixes[i / 256] << 8) | (i % 256)));
  auto keys_a = ae::list_keys(a, everything, buckets);
  shipped += keys_a.size();
  auto plan = ae::compare(b, everything, buckets, keys_a);
  for (auto& e : plan.push)
    a.apply(e);
  shipped += plan.push.size();
  for (auto& k : plan.want)
    if (auto e = a.get(k)) {
      b.apply(*e);
      ++shipped;
    }
  return shipped;
}

std::vector<std::pair<std::string, version>> contents(const replica_store& s) {
  std::vector<std::pair<std::string, version>> out;
  s.for_each([&](const entry& e) { out.emplace_back(e.key, e.ver); });
  std::sort(out.begin(), out.end(), [](auto& x, auto& y) { return x.first < y.first; });
  return out;
}

} // namespace

TEST_CASE("store: last-writer-wins, order independent, tombstones win over older values") {
  memory_store a, b;
  std::vector<entry> es = {make("k", 5, 1), make("k", 7, 2, true), make("k", 7, 1),
                           make("j", 3, 3)};
  for (auto& e : es)
    a.apply(e);
  for (auto it = es.rbegin(); it != es.rend(); ++it)
    b.apply(*it);
  CHECK(contents(a) == contents(b));
  REQUIRE(a.get("k"));
  CHECK(a.get("k")->is_tombstone()); // (7, node 2) beats (7, node 1)
  CHECK(!a.apply(make("k", 6, 9)));
  CHECK(a.apply(make("k", 8, 1)));
  CHECK(!a.get("k")->is_tombstone());
}

TEST_CASE("equal replicas: one digest comparison, nothing shipped") {
  memory_store a, b;
  for (int i = 0; i < 5'000; ++i) {
    a.apply(make("k" + std::to_string(i), 100 + i, 1));
    b.apply(make("k" + std::to_string(i), 100 + i, 1));
  }
  CHECK(ae::differing(ae::level1(a, everything), ae::level1(b, everything)).empty());
  CHECK(round(a, b) == 0);
}

TEST_CASE("divergence is repaired in both directions with cost ~ the difference") {
  rng r(3);
  for (int diff : {1, 10, 100}) {
    memory_store a, b;
    const int n = 20'000;
    for (int i = 0; i < n; ++i) {
      auto e = make("k" + std::to_string(i), 1'000 + i, 1);
      a.apply(e);
      b.apply(e);
    }
    for (int d = 0; d < diff; ++d) {
      std::string k = "k" + std::to_string(r.below(n));
      switch (d % 4) {
      case 0:
        a.apply(make(k, 50'000 + d, 2));
        break; // newer on a
      case 1:
        b.apply(make(k, 50'000 + d, 3));
        break; // newer on b
      case 2:
        a.apply(make("new-a" + std::to_string(d), 7, 1));
        break; // only on a
      case 3:
        b.apply(make(k, 60'000 + d, 3, true));
        break; // delete only on b
      }
    }
    size_t shipped = round(a, b);
    CHECK(contents(a) == contents(b));
    CHECK(shipped >= static_cast<size_t>(diff) / 2);
    // With 65,536 level-2 buckets and ~0.3 keys each, the listing grows with
    // the number of differing buckets, not with the 20,000 keys.
    CHECK(shipped <= static_cast<size_t>(diff) * 6 + 4);
    CHECK(round(a, b) == 0);
  }
}

TEST_CASE("the filter restricts digests to the shared key space") {
  memory_store a, b;
  a.apply(make("x", 1, 1));
  b.apply(make("y", 1, 1));
  ae::slot_mask only_x(kura::slot_count, false);
  only_x[ring::slot_of(pos("x"))] = true;
  REQUIRE(ring::slot_of(pos("x")) != ring::slot_of(pos("y")));
  auto la = ae::level1(a, only_x);
  auto lb = ae::level1(b, only_x);
  CHECK(ae::differing(la, lb).size() == 1);
  ae::slot_mask none(kura::slot_count, false);
  CHECK(ae::differing(ae::level1(a, none), ae::level1(b, none)).empty());
}
