// The single-node write path into L3 (spawn_store + the L3 actor): every
// write's key and value travel to the L3 thread packed in their batch's
// chunks (actors/messages.hpp, l3_op::packed; values up to 4 KiB, larger
// ones as strings of their own). Writes of many sizes (empty, small, around
// 4 KiB, larger than 64 KiB), keys with any bytes and overwrites inside
// one batch must land in LMDB exactly as written.
#include "actors/store.hpp"
#include "test_util.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <string>

using namespace kura;
using namespace kura::actors;

namespace {

using temp_dir = kura::testing::temp_dir;

std::shared_ptr<l3_lmdb> open_l3(const std::string& dir, const kura::clock& clk) {
  l3_config lc;
  lc.path = dir + "/l3";
  lc.map_size = 256ull << 20;
  lc.batch_max_writes = 1u << 20;
  lc.batch_max_ms = 3'600'000; // only the store's stop commits
  auto l3 = l3_lmdb::open(lc, clk);
  REQUIRE(l3);
  return std::shared_ptr<l3_lmdb>(std::move(*l3));
}

/// Value `i` of generation `gen`: sizes from 0 to past twice 64 KiB,
/// bytes that differ by key and generation.
std::string value_of(int i, int gen) {
  static const size_t sizes[] = {0,    1,    15,   16,   31,    33,    100,   255,   256,   257,
                                 1000, 4095, 4096, 4097, 40000, 65535, 65536, 65537, 140000};
  std::string v(sizes[i % (sizeof(sizes) / sizeof(sizes[0]))], '\0');
  for (size_t j = 0; j < v.size(); ++j)
    v[j] =
        static_cast<char>((j * 31 + static_cast<size_t>(i) * 7 + static_cast<size_t>(gen)) & 0xff);
  return v;
}

/// Keys of every length from 1 to 40, with NUL and high bytes.
std::string key_of(int i) {
  std::string k = "k" + std::to_string(i);
  k.append(static_cast<size_t>(i % 37), static_cast<char>(i % 2 ? '\0' : '\xfe'));
  return k;
}

} // namespace

TEST_CASE("every write reaches L3 with its key, value and expiry (one batch, many sizes)") {
  temp_dir d;
  auto& clk = real_clock::instance();
  constexpr int n = 300;
  std::map<std::string, std::string> want;
  {
    caf::actor_system_config cfg;
    cfg.load<caf::io::middleman>();
    caf::actor_system sys{cfg};
    store_config sc;
    sc.ks.memory_bytes = 64ull << 20;
    auto h = spawn_store(sys, sc, open_l3(d.path, clk), clk);
    caf::scoped_actor self{sys};
    auto set = [&](const std::string& k, const std::string& v, uint64_t ttl_ms) {
      kv_reply out;
      out.error = "no reply";
      self->request(h.broker, std::chrono::seconds(10), kv_set_atom::value, k, v, ttl_ms)
          .receive([&](kv_reply& r) { out = std::move(r); }, [&](caf::error&) {});
      REQUIRE_MESSAGE(out.error.empty(), out.error);
      want[k] = v;
    };
    for (int gen = 0; gen < 3; ++gen) // overwrites, in one batch or the next
      for (int i = 0; i < n; ++i)
        if (gen == 0 || i % (gen + 1) == 0)
          set(key_of(i), value_of(i, gen), i % 5 == 0 ? 3'600'000 : 0);
    stop_store(sys, h); // commits and syncs L3
  }
  auto l3 = open_l3(d.path, clk);
  const uint64_t now = clk.now_ms();
  for (const auto& kv : want) { // (no structured binding: clang's C++17 cannot capture one)
    const std::string& k = kv.first;
    const std::string& v = kv.second;
    auto r = l3->get(k, now, false);
    REQUIRE(r);
    REQUIRE_MESSAGE(*r, "missing in L3: key of " << k.size() << " bytes");
    CHECK((*r)->key == k);
    CHECK((*r)->value == v);
    const int i = std::stoi(k.substr(1));
    if (i % 5 == 0)
      CHECK((*r)->expiry_ms > now);
    else
      CHECK((*r)->expiry_ms == 0);
  }
  CHECK(l3->stats().entries == want.size());
}
