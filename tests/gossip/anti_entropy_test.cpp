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

/// One version-2 round (the 16-ary tree walk node.cpp runs); `digests` gets
/// the number of digests sent. Returns what round() returns.
size_t tree_round(replica_store& a, replica_store& b, size_t& digests) {
  size_t shipped = 0;
  digests = 0;
  std::vector<uint16_t> prefixes; // of `bits` bits; none at the root
  std::vector<uint64_t> sent = ae::children(a, everything, 0, {});
  replica_store* from = &a;
  replica_store* to = &b;
  unsigned bits = 0;
  for (;;) {
    digests += sent.size();
    auto diff = ae::differing(ae::children(*to, everything, bits, prefixes), sent);
    if (diff.empty())
      return shipped;
    std::vector<uint16_t> next;
    for (size_t i : diff)
      next.push_back(static_cast<uint16_t>(((bits == 0 ? 0 : prefixes[i / 16]) << 4) | (i % 16)));
    bits += 4;
    if (bits == 16) {
      // `to` found the differing buckets: it lists its keys, `from` compares.
      auto keys = ae::list_keys(*to, everything, next);
      shipped += keys.size();
      auto plan = ae::compare(*from, everything, next, keys);
      for (auto& e : plan.push)
        to->apply(e);
      shipped += plan.push.size();
      for (auto& k : plan.want)
        if (auto e = to->get(k)) {
          from->apply(*e);
          ++shipped;
        }
      return shipped;
    }
    sent = ae::children(*to, everything, bits, next);
    prefixes = std::move(next);
    std::swap(from, to);
  }
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

TEST_CASE("version 2: the 16-ary tree agrees with the flat digests") {
  memory_store a;
  for (int i = 0; i < 3'000; ++i)
    a.apply(make("t" + std::to_string(i), 10 + i, 1));
  // Every level's digests are the XOR of the buckets beneath them.
  auto root = ae::children(a, everything, 0, {});
  std::vector<uint64_t> want(16, 0);
  for (uint32_t b = 0; b < 65536; ++b)
    want[b >> 12] ^= a.bucket_digest(static_cast<uint16_t>(b));
  CHECK(root == want);
  std::vector<uint16_t> p12 = {0, 7, 4095};
  auto leaves = ae::children(a, everything, 12, p12);
  for (size_t i = 0; i < p12.size(); ++i)
    for (size_t j = 0; j < 16; ++j)
      CHECK(leaves[i * 16 + j] == a.bucket_digest(static_cast<uint16_t>((p12[i] << 4) | j)));
  std::vector<uint16_t> p8 = {0, 200};
  auto mid = ae::children(a, everything, 8, p8);
  for (size_t i = 0; i < p8.size(); ++i)
    for (size_t j = 0; j < 16; ++j) {
      uint64_t x = 0;
      for (uint32_t k = 0; k < 16; ++k)
        x ^= a.bucket_digest(static_cast<uint16_t>((((p8[i] << 4) | j) << 4) | k));
      CHECK(mid[i * 16 + j] == x);
    }
}

TEST_CASE("version 2: one round repairs both ways; digests grow with the difference") {
  rng r(11);
  const int n = 100'000;
  size_t last_digests = 0;
  for (int diff : {1, 10, 100, 1000}) {
    memory_store a, b;
    for (int i = 0; i < n; ++i) {
      auto e = make("k" + std::to_string(i), 1'000 + i, 1);
      a.apply(e);
      b.apply(e);
    }
    for (int d = 0; d < diff; ++d) {
      std::string k = "k" + std::to_string(r.below(n));
      if (d % 2)
        a.apply(make(k, 500'000 + d, 2));
      else
        b.apply(make(k, 500'000 + d, 3));
    }
    size_t digests = 0;
    size_t shipped = tree_round(a, b, digests);
    CHECK(contents(a) == contents(b));
    CHECK(shipped >= static_cast<size_t>(diff) / 2);
    CHECK(shipped <= static_cast<size_t>(diff) * 8 + 4);
    // At most 16 digests per differing node per level (4 levels), against
    // version 1's 256 x 256 once every level-1 bucket differs.
    CHECK(digests <= 16 + 64 * static_cast<size_t>(diff));
    CHECK(digests >= last_digests);
    last_digests = digests;
    MESSAGE(diff << " differing keys of " << n << ": " << digests << " digests");
    size_t again = 0;
    CHECK(tree_round(a, b, again) == 0);
    CHECK(again == 16);
  }
  CHECK(last_digests < 65'536 / 2);
}

namespace {

/// A store that counts every value it is asked for: listing keys must not
/// read values (over L3/L4 that was 14 s of a node's multiplexer at 1 GB).
class counting_store final : public replica_store {
public:
  memory_store inner;
  mutable size_t value_reads = 0;
  bool apply(const entry& e) override { return inner.apply(e); }
  bool restore(const entry& e) override { return inner.restore(e); }
  std::optional<entry> get(std::string_view key) const override {
    ++value_reads;
    return inner.get(key);
  }
  bool erase(std::string_view key) override { return inner.erase(key); }
  size_t size() const override { return inner.size(); }
  void for_each(const visitor& f) const override {
    inner.for_each([&](const entry& e) {
      ++value_reads;
      f(e);
    });
  }
  void for_each_in_buckets(uint16_t first, uint16_t last, const visitor& f) const override {
    inner.for_each_in_buckets(first, last, [&](const entry& e) {
      ++value_reads;
      f(e);
    });
  }
  void for_each_key_from(uint64_t from, const key_visitor& f) const override {
    inner.for_each_key_from(from, f);
  }
};

} // namespace

TEST_CASE("listing a bucket's keys reads no value, and lists what the values would") {
  counting_store s;
  for (int i = 0; i < 5'000; ++i)
    s.inner.apply(make("k" + std::to_string(i), 100 + i, 1, i % 7 == 0));
  std::vector<uint16_t> buckets;
  for (int i = 0; i < 5'000; i += 3)
    buckets.push_back(replica_store::bucket_of(pos("k" + std::to_string(i))));
  auto listed = ae::list_keys(s, everything, buckets);
  CHECK(s.value_reads == 0);
  // The same (key, version) pairs as a walk over the values of those buckets.
  std::vector<key_version> want;
  std::sort(buckets.begin(), buckets.end());
  buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());
  for (auto b : buckets)
    s.inner.for_each_in_buckets(b, b, [&](const entry& e) {
      want.push_back(key_version{e.key, e.ver.hlc, e.ver.node});
    });
  std::sort(want.begin(), want.end(), [](auto& a, auto& b) { return a.key < b.key; });
  REQUIRE(listed.size() == want.size());
  CHECK(listed.size() >= buckets.size());
  for (size_t i = 0; i < listed.size(); ++i) {
    CHECK(listed[i].key == want[i].key);
    CHECK(listed[i].ver() == want[i].ver());
  }
  // Sizes without values: the default walk reads them, memory_store's does not.
  uint64_t sized = 0, counted = 0;
  s.for_each_key_sized_from(0, [&](uint64_t, const entry&, uint64_t n) {
    sized += n;
    return true;
  });
  s.inner.for_each([&](const entry& e) { counted += e.value.size(); });
  CHECK(sized == counted);
}
