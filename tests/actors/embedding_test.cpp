// The embedding API inside a test's own actor system: typed requests, the
// blocking helper, L3 misses after eviction, persistence across instances,
// and the example application.
#include "actors/kura.hpp"
#include "test_util.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace kura::actors;

namespace {

using temp_dir = kura::testing::temp_dir;

/// The value of an expected, failing the test on an error.
template <class T>
T got(caf::expected<T> e) {
  REQUIRE(e);
  return std::move(*e);
}

caf::actor_system_config& make_cfg(caf::actor_system_config& cfg) {
  cfg.load<caf::io::middleman>();
  return cfg;
}

} // namespace

TEST_CASE("embedded kura: get/set/del/expire/tier through the typed handle") {
  temp_dir dir;
  caf::actor_system_config cfg;
  caf::actor_system sys{make_cfg(cfg)};
  auto db = spawn_kura(sys, embedded_options{dir.path});
  REQUIRE(db);
  {
    blocking_client kv{sys, (*db)->handle()};
    CHECK(got(kv.get("a")) == std::optional<std::string>{});
    CHECK(!kv.set("a", "1"));
    CHECK(got(kv.get("a")) == std::optional<std::string>{"1"});
    auto t = got(kv.tier("a"));
    CHECK((t == "l1" || t == "l2")); // memory; the cache decides the region
    CHECK(got(kv.del("a")) == true);
    CHECK(got(kv.del("a")) == false);
    CHECK(got(kv.expire("a", 1000)) == false);
    CHECK(!kv.set("t", "x", 1000));
    CHECK(got(kv.expire("t", 0)) == true);
    // a typed request from an actor of the caller
    caf::scoped_actor self{sys};
    kv_reply got;
    self->request((*db)->handle(), std::chrono::seconds(5), kv_get_atom::value, std::string{"t"})
        .receive([&](kv_reply& r) { got = r; }, [&](caf::error& e) { FAIL(sys.render(e)); });
    CHECK(got.found);
    CHECK(got.value == "x");
    CHECK(got.expiry_ms == 0);
  }
  (*db)->stop();
}

TEST_CASE("embedded kura: evicted entries come back from L3, and survive a restart") {
  temp_dir dir;
  const int count = 3000;
  {
    caf::actor_system_config cfg;
    caf::actor_system sys{make_cfg(cfg)};
    embedded_options o{dir.path};
    o.memory_bytes = 1 << 20; // ~3 MB of data into 1 MiB of memory
    auto db = spawn_kura(sys, o);
    REQUIRE(db);
    blocking_client kv{sys, (*db)->handle()};
    for (int i = 0; i < count; ++i)
      REQUIRE(!kv.set("k" + std::to_string(i), std::string(1000, 'a' + i % 26)));
    CHECK(got(kv.tier("k0")) == std::string{"l3"});
    for (int i = 0; i < count; i += 7)
      REQUIRE(got(kv.get("k" + std::to_string(i))) ==
              std::optional<std::string>{std::string(1000, 'a' + i % 26)});
    CHECK(got(kv.del("k1")) == true);
    (*db)->stop();
  }
  caf::actor_system_config cfg;
  caf::actor_system sys{make_cfg(cfg)};
  auto db = spawn_kura(sys, embedded_options{dir.path});
  REQUIRE(db);
  {
    blocking_client kv{sys, (*db)->handle()};
    CHECK(got(kv.get("k1")) == std::optional<std::string>{});
    for (int i = 2; i < count; i += 11)
      REQUIRE(got(kv.get("k" + std::to_string(i))) ==
              std::optional<std::string>{std::string(1000, 'a' + i % 26)});
  }
  (*db)->stop();
}

TEST_CASE("the example application runs") {
  temp_dir dir;
  const char* bin = std::getenv("KURA_BIN_DIR");
  REQUIRE(bin);
  auto cmd =
      std::string(bin) + "/kura-embed-example " + dir.path + "/data > " + dir.path + "/out 2>&1";
  CHECK(std::system(cmd.c_str()) == 0);
  CHECK(std::system(cmd.c_str()) == 0);
  std::ifstream f(dir.path + "/out");
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(all.find("home visited 6x") != std::string::npos); // the count persisted
  CHECK(all.find("greeting = hello from kura") != std::string::npos);
}
