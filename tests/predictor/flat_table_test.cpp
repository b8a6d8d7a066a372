// predictor/flat_table.hpp against std::unordered_map as the model: random
// inserts, finds, erases and in-place replaces, with collisions forced by a
// small table and by keys whose low hash bits are equal.
#include "predictor/flat_table.hpp"
#include "tiers/random.hpp"

#include <doctest/doctest.h>

#include <string>
#include <unordered_map>

using kura::predictor::flat_table;

namespace {

// Every key of `model` is found with its value, and the table holds nothing else.
void check_same(const flat_table<int>& t, const std::unordered_map<std::string, int>& model) {
  REQUIRE(t.size() == model.size());
  for (const auto& [k, v] : model) {
    auto it = t.find(k);
    REQUIRE(it != t.end());
    CHECK(it->first == k);
    CHECK(it->second == v);
  }
  size_t n = 0;
  for (const auto& [k, v] : t) {
    auto m = model.find(k);
    REQUIRE(m != model.end());
    CHECK(m->second == v);
    ++n;
  }
  CHECK(n == model.size());
}

} // namespace

TEST_CASE("flat_table: insert, find, erase, replace agree with unordered_map") {
  for (uint64_t seed : {1u, 2u, 3u}) {
    kura::rng r(seed);
    flat_table<int> t;
    std::unordered_map<std::string, int> model;
    const uint64_t keyspace = seed == 1 ? 50 : 3000; // small: the table fills and empties
    for (int step = 0; step < 40000; ++step) {
      const std::string k = "k:" + std::to_string(r.below(keyspace));
      const uint64_t op = r.below(10);
      if (op < 5) {
        auto [it, fresh] = t.try_emplace(std::string(k), flat_table<int>::hash(k));
        CHECK(fresh == (model.count(k) == 0));
        if (fresh)
          CHECK(it->second == 0); // a default value
        it->second = step;
        model[k] = step;
      } else if (op < 8) {
        auto it = t.find(k);
        CHECK((it != t.end()) == (model.count(k) != 0));
        if (it != t.end()) {
          t.erase(it);
          model.erase(k);
        }
      } else if (!t.empty() && model.count(k) == 0) {
        // evict a uniform sample for k, in place
        auto victim = t.at(r.below(t.size()));
        const std::string old = victim->first;
        auto it = t.replace(victim, k, flat_table<int>::hash(k));
        CHECK(it == victim);
        CHECK(it->first == k);
        CHECK(it->second == 0);
        it->second = -step;
        model.erase(old);
        model[k] = -step;
        CHECK(t.find(old) == t.end());
      }
      if (step % 4000 == 0)
        check_same(t, model);
    }
    check_same(t, model);
    t.clear();
    CHECK(t.empty());
    CHECK(t.find("k:1") == t.end());
    auto [it, fresh] = t.try_emplace(std::string("k:1"), flat_table<int>::hash("k:1"));
    CHECK(fresh);
    CHECK(t.find("k:1") == it);
  }
}

TEST_CASE("flat_table: keys sharing their low hash bits probe past each other") {
  // Hashes chosen by the caller: every key lands on the same index slot, so
  // finds and erases must walk (and backward-shift) a long probe run.
  flat_table<int> t;
  auto h = [](int i) { return (uint64_t(i) << 40) | 7u; }; // equal low 32 bits
  for (int i = 0; i < 200; ++i)
    t.try_emplace("c" + std::to_string(i), h(i)).first->second = i;
  for (int i = 0; i < 200; i += 3) // erase every third key, from the middle of the run
    t.erase(t.find("c" + std::to_string(i), h(i)));
  for (int i = 0; i < 200; ++i) {
    auto it = t.find("c" + std::to_string(i), h(i));
    if (i % 3 == 0) {
      CHECK(it == t.end());
    } else {
      REQUIRE(it != t.end());
      CHECK(it->second == i);
    }
  }
  CHECK(t.size() == 200 - 67);
}

TEST_CASE("flat_table: reserve keeps entries in place") {
  flat_table<int> t;
  t.reserve(1000);
  auto first = t.try_emplace(std::string("a"), flat_table<int>::hash("a")).first;
  for (int i = 0; i < 999; ++i) {
    const std::string k = "x" + std::to_string(i);
    t.try_emplace(std::string(k), flat_table<int>::hash(k));
  }
  CHECK(t.find("a") == first); // no reallocation below the reserved count
  CHECK(t.table_bytes() >= 1000 * sizeof(flat_table<int>::value_type));
}
