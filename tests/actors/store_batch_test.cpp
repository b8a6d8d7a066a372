// The write-behind batch of spawn_store grows in chunks of max_batch_ops
// while two batches are in flight: with max_batch_ops = 2 a stream of
// overwrites, deletes and re-creates of the same keys reaches L3 in many
// chunked batches, and L3 must apply them in the order they were made. After
// stop_store (which commits L3) a reopened L3 holds each key's last write.
#include "actors/store.hpp"
#include "store_ask.hpp"
#include "test_util.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <optional>

using namespace kura;
using namespace kura::actors;

namespace {

std::shared_ptr<l3_lmdb> open_l3(const std::string& dir, const kura::clock& clk) {
  l3_config lc;
  lc.path = dir + "/l3";
  lc.map_size = 64ull << 20;
  auto l3 = l3_lmdb::open(lc, clk);
  REQUIRE(l3);
  return std::shared_ptr<l3_lmdb>(std::move(*l3));
}

} // namespace

TEST_CASE("chunked write-behind batches keep the order of writes and deletes") {
  kura::testing::temp_dir dir;
  auto& clk = real_clock::instance();
  std::map<std::string, std::optional<std::string>> last; // nullopt: deleted
  {
    caf::actor_system_config cfg;
    cfg.load<caf::io::middleman>(); // the store broker runs on the multiplexer
    caf::actor_system sys{cfg};
    auto l3 = open_l3(dir.path, clk);
    store_config sc;
    sc.ks.memory_bytes = 16ull << 20;
    sc.max_batch_ops = 2;
    sc.max_loss_window_ms = 0; // no pause for the age of uncommitted writes
    auto h = spawn_store(sys, sc, l3, clk, nullptr, nullptr);
    caf::scoped_actor self{sys};
    auto ask = [&](auto... xs) { return kura::testing::ask_store(self, h.broker, xs...); };
    // 40 keys, 3000 operations: each key is set, overwritten, deleted and set
    // again many times, so any reordering inside or across chunks shows.
    for (int i = 0; i < 3000; ++i) {
      std::string k = "k" + std::to_string(i % 40);
      if (i % 7 == 3) {
        REQUIRE(ask(kv_del_atom::value, k).error.empty());
        last[k] = std::nullopt;
      } else {
        std::string v = "v" + std::to_string(i);
        REQUIRE(ask(kv_set_atom::value, k, v, uint64_t{0}).error.empty());
        last[k] = v;
      }
    }
    stop_store(sys, h); // sends what is pending, commits and syncs L3
  }
  auto l3 = open_l3(dir.path, clk);
  for (auto& [k, v] : last) {
    CAPTURE(k);
    auto r = l3->get(k, clk.now_ms(), false);
    REQUIRE(r);
    bool live = *r && !(*r)->is_tombstone();
    REQUIRE(live == v.has_value());
    if (v)
      CHECK((*r)->value == *v);
  }
}
