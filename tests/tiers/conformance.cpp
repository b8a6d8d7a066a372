// Instantiates the tier conformance suite (conformance.hpp) for every tier.
#include "conformance.hpp"
#include "test_util.hpp"

#include "archive/archive.hpp"
#include "tiers/l1_lru.hpp"
#include "tiers/l2_lfu.hpp"
#include "tiers/l3_lmdb.hpp"
#include "tiers/memory_cache.hpp"

#include <filesystem>
#include <memory>

using namespace kura;

namespace {

struct l1_fixture {
  [[maybe_unused]] static constexpr const char* name = "l1";
  static constexpr bool bounded = true, exact_bytes = true, persistent = false, admission = false;
  fake_clock clk;
  std::unique_ptr<l1_lru> p;
  tier& t() { return *p; }
  void make(uint64_t cap, limits lim) { p = std::make_unique<l1_lru>(cap, lim); }
  void reopen() {}
};

struct l2_fixture {
  [[maybe_unused]] static constexpr const char* name = "l2";
  static constexpr bool bounded = true, exact_bytes = true, persistent = false, admission = true;
  fake_clock clk;
  std::unique_ptr<l2_lfu> p;
  tier& t() { return *p; }
  void make(uint64_t cap, limits lim) { p = std::make_unique<l2_lfu>(cap, lim); }
  void reopen() {}
};

struct memory_fixture {
  [[maybe_unused]] static constexpr const char* name = "mem";
  static constexpr bool bounded = true, exact_bytes = true, persistent = false, admission = false;
  fake_clock clk;
  std::unique_ptr<memory_cache> p;
  tier& t() { return *p; }
  void make(uint64_t cap, limits lim) {
    memory_cache_config cfg;
    cfg.capacity_bytes = cap;
    cfg.lim = lim;
    p = std::make_unique<memory_cache>(cfg);
  }
  void reopen() {}
};

/// A fresh temporary directory, removed at the end.
using temp_dir = kura::testing::temp_dir;

struct l3_fixture {
  [[maybe_unused]] static constexpr const char* name = "l3";
  static constexpr bool bounded = true, exact_bytes = false, persistent = true, admission = false;
  fake_clock clk;
  temp_dir dir;
  l3_config cfg;
  std::unique_ptr<l3_lmdb> p;
  tier& t() { return *p; }
  void make(uint64_t cap, limits lim) {
    p.reset();
    cfg = l3_config{};
    cfg.path = dir.sub("l3");
    cfg.map_size = 256ull << 20;
    cfg.max_bytes = cap;
    cfg.lim = lim;
    std::filesystem::remove_all(cfg.path);
    open();
  }
  void reopen() {
    p.reset();
    open();
  }
  void open() {
    auto r = l3_lmdb::open(cfg, clk);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.err().to_string()));
    p = std::move(*r);
  }
};

/// L4. Not `bounded` in the conformance sense: its size limit is retention
/// (whole oldest segments go), tested in tests/archive.
struct l4_fixture {
  [[maybe_unused]] static constexpr const char* name = "l4";
  [[maybe_unused]] static constexpr bool bounded = false, exact_bytes = false, persistent = true,
                                         admission = false;
  fake_clock clk;
  temp_dir dir;
  archive::archive_config cfg;
  std::unique_ptr<archive::archive> p;
  tier& t() { return *p; }
  void make(uint64_t, limits lim) {
    p.reset();
    cfg = archive::archive_config{};
    cfg.path = dir.sub("l4");
    cfg.index_map_bytes = 256ull << 20;
    cfg.durable = false; // no crash of the machine here; a reopen loses nothing
    cfg.lim = lim;
    std::filesystem::remove_all(cfg.path);
    open();
  }
  void reopen() {
    p.reset();
    open();
  }
  void open() {
    auto r = archive::open(cfg, clk);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.err().to_string()));
    p = std::move(*r);
  }
};

/// A fixed test key (encryption at rest).
inline std::shared_ptr<const crypto::keyring> test_keys() {
  auto kr = crypto::keyring::from_keys({{7, std::string(32, '\x5a')}});
  REQUIRE(kr.ok());
  return *kr;
}

/// L3 with encryption at rest: sealed records, keyed-hash LMDB keys.
struct l3_sealed_fixture : l3_fixture {
  [[maybe_unused]] static constexpr const char* name = "l3 encrypted";
  // sealed records are ~30% larger (nonce, tag, key id, keyed-hash LMDB key)
  // and random keyed-hash order changes page fill: seen 296320 B of a
  // 262144 B budget once (ASan, CI), over the default cap / 8
  static constexpr uint64_t overshoot_div = 4;
  void make(uint64_t cap, limits lim) {
    p.reset();
    cfg = l3_config{};
    cfg.path = dir.sub("l3");
    cfg.map_size = 256ull << 20;
    cfg.max_bytes = cap;
    cfg.lim = lim;
    cfg.keys = test_keys();
    std::filesystem::remove_all(cfg.path);
    open();
  }
};

/// L4 with encryption at rest: sealed blocks, keyed-hash index keys.
struct l4_sealed_fixture : l4_fixture {
  [[maybe_unused]] static constexpr const char* name = "l4 encrypted";
  void make(uint64_t, limits lim) {
    p.reset();
    cfg = archive::archive_config{};
    cfg.path = dir.sub("l4");
    cfg.index_map_bytes = 256ull << 20;
    cfg.durable = false;
    cfg.lim = lim;
    cfg.keys = test_keys();
    std::filesystem::remove_all(cfg.path);
    open();
  }
};

} // namespace

#define KURA_CONFORMANCE_FIXTURES                                                                  \
  l1_fixture, l2_fixture, memory_fixture, l3_fixture, l4_fixture, l3_sealed_fixture,               \
      l4_sealed_fixture

TEST_CASE_TEMPLATE_INVOKE(conf_basic, KURA_CONFORMANCE_FIXTURES);
TEST_CASE_TEMPLATE_INVOKE(conf_metadata, KURA_CONFORMANCE_FIXTURES);
TEST_CASE_TEMPLATE_INVOKE(conf_stats, KURA_CONFORMANCE_FIXTURES);
TEST_CASE_TEMPLATE_INVOKE(conf_expiry, KURA_CONFORMANCE_FIXTURES);
TEST_CASE_TEMPLATE_INVOKE(conf_sweep, KURA_CONFORMANCE_FIXTURES);
TEST_CASE_TEMPLATE_INVOKE(conf_bytes, KURA_CONFORMANCE_FIXTURES);
TEST_CASE_TEMPLATE_INVOKE(conf_evict, KURA_CONFORMANCE_FIXTURES);
TEST_CASE_TEMPLATE_INVOKE(conf_limits, KURA_CONFORMANCE_FIXTURES);
TEST_CASE_TEMPLATE_INVOKE(conf_clear, KURA_CONFORMANCE_FIXTURES);
TEST_CASE_TEMPLATE_INVOKE(conf_reopen, KURA_CONFORMANCE_FIXTURES);
