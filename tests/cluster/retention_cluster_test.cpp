// kura.retention.max-age and kura.security.sensitive-patterns on cluster
// nodes (issue 13; node/cluster_security.hpp): the capped expiry travels with
// the replicated entry, so every node answers the same capped TTL, PERSIST
// cannot lift it, and sensitive keys never reach an archive segment on any
// node (their values are scanned for in every node's decompressed archive
// blocks, while the other values evicted with them are found there).
#include "cluster/cluster_harness.hpp"
#define KURA_TEST_BULK_DEFINED // bulk() comes from cluster_harness.hpp
#include "node/erase_test_util.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <thread>

using namespace kura::test;

namespace {

std::vector<std::string> flags() {
  return {"--kura.archive.enabled=true",
          "--kura.l3.max-bytes=50000",
          "--kura.archive.segment-bytes=65536",
          "--kura.archive.compact-interval=0s",
          "--kura.cluster.request-timeout=2s",
          "--kura.retention.max-age=1h",
          "--kura.security.sensitive-patterns=card:*,ssn:*",
          "--kura.security.sensitive-max-ttl=600s"};
}

long long pttl(node_process& n, const std::string& key) {
  auto r = client(n.port).call({"PTTL", key});
  REQUIRE(r);
  REQUIRE((*r)[0] == ':');
  return std::stoll(r->substr(1));
}

} // namespace

TEST_CASE("retention and sensitive keys on a cluster: capped TTL on every node, never archived") {
  test_cluster c;
  for (int i = 1; i <= 3; ++i)
    REQUIRE(c.start("n" + std::to_string(i), flags()).ready);
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }));

  client w(c["n1"].port);
  REQUIRE(*w.call({"SET", "plain", "v"}) == "+OK\r\n");
  REQUIRE(*w.call({"SET", "long", "v", "EX", "100000"}) == "+OK\r\n");
  REQUIRE(*w.call({"SET", "card:1", "v", "EX", "100000"}) == "+OK\r\n");
  REQUIRE(*w.call({"SET", "ssn:1", "v"}) == "+OK\r\n");
  REQUIRE(*w.call({"SET", "short", "v", "EX", "60"}) == "+OK\r\n");
  REQUIRE(*w.call({"HSET", "card:h", "f", "v"}) == ":1\r\n"); // run at the owner
  REQUIRE(w.call({"PERSIST", "long"}));                       // the cap stays
  for (auto id : {"n1", "n2", "n3"}) {
    CAPTURE(id);
    for (auto k : {"plain", "long"}) {
      auto t = pttl(c[id], k);
      CHECK(t > 3500000);
      CHECK(t <= 3600000);
    }
    for (auto k : {"card:1", "ssn:1", "card:h"}) {
      auto t = pttl(c[id], k);
      CHECK(t > 500000);
      CHECK(t <= 600000);
    }
    auto t = pttl(c[id], "short"); // a shorter TTL is kept
    CHECK(t > 0);
    CHECK(t <= 60000);
  }

  // Sensitive keys are dropped, not archived, when L3 evicts them.
  constexpr int n = 800;
  auto key_of = [](int i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, i % 2 ? "card:%05d" : "fill:%05d", i);
    return std::string{buf};
  };
  auto marker_of = [](int i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "SV%05dMARK", i);
    return std::string{buf};
  };
  std::vector<std::vector<std::string>> sets;
  for (int i = 0; i < n; ++i)
    sets.push_back({"SET", key_of(i), marked_value("SV", i)});
  pipeline(w, sets);
  // wait until each node archived filler values (L3 holds 50 kB)
  auto archived_fill = [&](const std::string& dir) {
    size_t found = 0;
    for (auto& [name, bytes] : scan_dir(dir + "/archive"))
      if (name.find("(decompressed)") != std::string::npos)
        for (int i = 0; i < n; i += 2)
          found += bytes.find(marker_of(i)) != std::string::npos;
    return found;
  };
  for (auto id : {"n1", "n2", "n3"})
    REQUIRE(wait_for([&] { return archived_fill(c[id].data_dir) > 20; }, 60000));
  for (auto id : {"n1", "n2", "n3"}) {
    auto files = scan_dir(c[id].data_dir + "/archive");
    for (int i = 1; i < n; i += 2)
      for (auto& f : files) {
        INFO(id << " " << f.first);
        CHECK_MESSAGE(f.second.find(marker_of(i)) == std::string::npos, key_of(i));
      }
  }
  // archived fillers still read back through every node
  for (auto id : {"n1", "n2", "n3"}) {
    auto r = client(c[id].port).call({"GET", key_of(0)});
    REQUIRE(r);
    CHECK(r->find(marker_of(0)) != std::string::npos);
  }
}
