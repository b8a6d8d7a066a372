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

namespace {

/// A client that sets RESP3 pushes aside while it waits for replies.
struct tracker {
  explicit tracker(uint16_t port) : c(port) {}
  std::optional<std::string> call(const std::vector<std::string>& args) {
    if (!c.send(client::multibulk(args)))
      return std::nullopt;
    for (;;) {
      auto r = c.reply(20000);
      if (!r || r->rfind(">", 0) != 0)
        return r;
      pushes.push_back(*r);
    }
  }
  /// Waits (up to `ms`) for an invalidation push naming `key`.
  bool wait_push(const std::string& key, int ms) {
    auto needle = bulk(key);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      for (auto& p : pushes)
        if (p.find(needle) != std::string::npos)
          return true;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      if (left <= 0)
        return false;
      auto r = c.reply(static_cast<int>(std::min<long>(left, 500)));
      if (r && r->rfind(">", 0) == 0)
        pushes.push_back(*r);
    }
  }
  client c;
  std::vector<std::string> pushes;
};

std::string old_key(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "old:%04d", i);
  return buf;
}

std::vector<std::string> tier_flags() {
  return {"--kura.archive.enabled=true", "--kura.l3.max-bytes=50000",
          "--kura.archive.segment-bytes=65536", "--kura.archive.compact-interval=0s",
          "--kura.cluster.request-timeout=2s"};
}

/// Starts n1..n3 on `dirs` (empty: fresh ones) with `extra` in a new cluster.
void start_three(test_cluster& c, const std::vector<std::string>& dirs,
                 const std::vector<std::string>& extra) {
  auto f = tier_flags();
  f.insert(f.end(), extra.begin(), extra.end());
  for (int i = 0; i < 3; ++i)
    REQUIRE(c.start("n" + std::to_string(i + 1), f, dirs.empty() ? std::string{} : dirs[i]).ready);
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 60000));
}

} // namespace

TEST_CASE("retention on a cluster: entries older than a new max-age are swept on every replica; "
          "retention and sensitive expiries invalidate tracking clients") {
  constexpr int n = 300;
  constexpr int max_age_s = 8;
  // 1. No cap: values written without a TTL, on disk in L3 and L4.
  test_cluster a;
  start_three(a, {}, {});
  {
    client w(a["n1"].port);
    std::vector<std::vector<std::string>> sets;
    for (int i = 0; i < n; ++i)
      sets.push_back({"SET", old_key(i), marked_value("RO", i)});
    pipeline(w, sets);
    for (auto id : {"n1", "n2", "n3"}) // every node serves them
      for (int i = 0; i < n; i += 29)
        CHECK(client(a[id].port).call({"GET", old_key(i)})->find(marked_value("RO", i)) !=
              std::string::npos);
  }
  auto written = std::chrono::steady_clock::now();
  std::vector<std::string> dirs;
  for (auto id : {"n1", "n2", "n3"})
    dirs.push_back(a[id].data_dir);
  for (auto id : {"n3", "n2", "n1"}) // SIGTERM: L3 and L4 flushed
    CHECK(a[id].stop(SIGTERM) == 0);
  // the values are older than the cap by the time it is set
  std::this_thread::sleep_until(written + std::chrono::seconds(max_age_s + 2));

  // 2. Restart with kura.retention.max-age: never served, swept everywhere.
  std::string cap = "--kura.retention.max-age=" + std::to_string(max_age_s) + "s";
  {
    test_cluster b;
    start_three(b, dirs,
                {cap, "--kura.security.sensitive-patterns=card:*",
                 "--kura.security.sensitive-max-ttl=" + std::to_string(max_age_s) + "s"});
    for (auto id : {"n1", "n2", "n3"}) {
      client g(b[id].port);
      for (int i = 0; i < n; i += 7)
        CHECK_MESSAGE(*g.call({"GET", old_key(i)}) == "$-1\r\n", id << " " << old_key(i));
    }
    // expiries of the cap and of a sensitive key reach tracking clients on a
    // replica and on a node that is not one
    client w(b["n1"].port);
    REQUIRE(*w.call({"SET", "fresh:1", "F"}) == "+OK\r\n");
    REQUIRE(*w.call({"SET", "card:1", "C", "EX", "100000"}) == "+OK\r\n");
    std::vector<std::unique_ptr<tracker>> ts;
    for (auto id : {"n1", "n2", "n3"}) {
      auto t = std::make_unique<tracker>(b[id].port);
      REQUIRE(t->call({"HELLO", "3"}));
      REQUIRE(*t->call({"CLIENT", "TRACKING", "ON"}) == "+OK\r\n");
      auto f = t->call({"GET", "fresh:1"});
      auto k = t->call({"GET", "card:1"});
      REQUIRE(f);
      REQUIRE(k);
      CHECK(*f == bulk("F"));
      CHECK(*k == bulk("C"));
      auto ttl = client(b[id].port).call({"PTTL", "card:1"});
      REQUIRE(ttl);
      CHECK(std::stoll(ttl->substr(1)) <= max_age_s * 1000);
      ts.push_back(std::move(t));
    }
    for (size_t i = 0; i < ts.size(); ++i) {
      CAPTURE(i);
      CHECK(ts[i]->wait_push("fresh:1", 60000));
      CHECK(ts[i]->wait_push("card:1", 60000));
    }
    for (auto id : {"n1", "n2", "n3"}) {
      client g(b[id].port);
      CHECK(*g.call({"GET", "fresh:1"}) == "$-1\r\n");
      CHECK(*g.call({"GET", "card:1"}) == "$-1\r\n");
    }
    for (auto id : {"n3", "n2", "n1"})
      CHECK(b[id].stop(SIGTERM) == 0);
  }

  // 3. Restart without the cap: the old values stay gone (the sweep removed
  // them from the tiers of every replica; a read cap alone would serve them).
  test_cluster d;
  start_three(d, dirs, {});
  for (auto id : {"n1", "n2", "n3"}) {
    client g(d[id].port);
    for (int i = 0; i < n; ++i)
      CHECK_MESSAGE(*g.call({"GET", old_key(i)}) == "$-1\r\n", id << " " << old_key(i));
  }
}
