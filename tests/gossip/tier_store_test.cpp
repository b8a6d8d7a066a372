// The replicated store over the real tiers (L3 LMDB + L4 archive in temp
// dirs): last-writer-wins across both tiers, tombstones, floors after
// demotion and expiry, digests equal to the in-memory model's and rebuilt
// at reopen, and kura-sim seeds run on it beside the in-memory runs.
#include "../test_util.hpp"
#include "gossip/anti_entropy.hpp"
#include "gossip/sim/sim.hpp"
#include "gossip/tier_store.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace kura;
using namespace kura::gossip;
namespace ae = kura::gossip::anti_entropy;

namespace {

l3_config l3_at(const std::string& dir, uint64_t max_bytes = 0) {
  l3_config c;
  c.path = dir;
  c.map_size = 32ull << 20;
  c.max_bytes = max_bytes;
  c.batch_max_writes = 16;
  c.fsync_batches = false;
  c.verify_on_open = false;
  return c;
}

archive::archive_config l4_at(const std::string& dir) {
  archive::archive_config c;
  c.path = dir;
  c.durable = false;
  c.index_map_bytes = 32ull << 20;
  c.block_bytes = 4096;
  return c;
}

std::unique_ptr<tier_store> open_store(const testing::temp_dir& d, const kura::clock& clk,
                                       uint64_t l3_max = 0, bool background = false) {
  std::shared_ptr<archive::archive> l4;
  auto a = archive::archive::open(l4_at(d.sub("l4")), clk);
  REQUIRE(a.ok());
  l4 = std::move(*a);
  auto r = tier_store::open(l3_at(d.sub("l3"), l3_max), std::move(l4), clk, ring_config{}.seed,
                            background);
  INFO((r.ok() ? std::string("ok") : r.err().to_string()));
  REQUIRE(r.ok());
  return std::move(*r);
}

entry val(const std::string& k, const std::string& v, uint64_t hlc, uint32_t node = 1,
          uint64_t expiry = 0) {
  entry e;
  e.key = k;
  e.value = v;
  e.ver = version{hlc, node};
  e.expiry_ms = expiry;
  return e;
}

entry tomb(const std::string& k, uint64_t hlc, uint32_t node = 1) {
  entry e = val(k, "", hlc, node);
  e.flags = entry_flags::tombstone;
  return e;
}

std::vector<uint64_t> digests(const replica_store& s) {
  return ae::level1(s, ae::slot_mask{});
}

} // namespace

TEST_CASE("tier_store: last-writer-wins, tombstones and erase, same digests as the model") {
  for (bool background : {false, true}) {
    INFO("background commits: " << background);
    testing::temp_dir d("kura-tierstore");
    fake_clock clk;
    auto s = open_store(d, clk, 0, background);
    CHECK(s->background() == background);
    memory_store model;
    auto both = [&](const entry& e) {
      bool a = s->apply(e), b = model.apply(e);
      CHECK(a == b);
      return a;
    };
    CHECK(both(val("a", "1", 10)));
    CHECK_FALSE(both(val("a", "old", 9)));
    CHECK(both(val("a", "2", 11)));
    CHECK(both(tomb("a", 12)));
    CHECK_FALSE(both(val("a", "late", 11, 7)));
    CHECK(both(val("b", "x", 5)));
    auto a = s->get("a");
    REQUIRE(a);
    CHECK(a->is_tombstone());
    CHECK(a->ver == version{12, 1});
    CHECK(s->get("b")->value == "x");
    CHECK_FALSE(s->get("zzz"));
    CHECK(digests(*s) == digests(model));
    CHECK(s->size() == 2);
    CHECK(s->erase("a"));
    CHECK(model.erase("a"));
    CHECK_FALSE(s->get("a"));
    CHECK(digests(*s) == digests(model));
    CHECK(s->flush().ok());
    CHECK(s->tick(0).ok());
    CHECK_FALSE(s->get("a")); // from L3 now, not the overlay
    CHECK(s->get("b")->value == "x");
    CHECK(s->last_error() == std::nullopt);
  }
}

TEST_CASE("tier_store read cache: hits, and never a version older than the store holds") {
  for (bool background : {false, true}) {
    INFO("background commits: " << background);
    testing::temp_dir d("kura-tierstore-cache");
    fake_clock clk;
    auto s = open_store(d, clk, 0, background);
    s->set_read_cache(1 << 20);
    CHECK(s->apply(val("a", "1", 10)));
    CHECK(s->flush().ok());
    CHECK(s->get("a")->value == "1"); // a miss: read from L3, cached
    auto misses = s->cache_misses();
    CHECK(s->get("a")->value == "1");
    CHECK(s->cache_hits() >= 1);
    CHECK(s->cache_misses() == misses);
    CHECK(s->cache_bytes() > 0);
    CHECK(s->apply(val("a", "2", 11))); // replicated newer write: the cached 1 is gone
    misses = s->cache_misses();
    CHECK(s->get("a")->value == "2");
    CHECK(s->cache_misses() == misses); // written through: served from memory
    CHECK(s->apply(val("w", "fresh", 11)));
    CHECK(s->get("w")->value == "fresh");
    CHECK(s->cache_misses() == misses); // a new key too, before any commit
    CHECK_FALSE(s->holds_tombstone("w"));
    CHECK_FALSE(s->holds_tombstone("nope"));
    CHECK(s->flush().ok());
    CHECK(s->get("a")->value == "2");
    CHECK(s->get("a")->value == "2");
    CHECK_FALSE(s->apply(val("a", "old", 9))); // older: ignored, the cache keeps 2
    CHECK(s->get("a")->value == "2");
    CHECK(s->apply(tomb("a", 12))); // a delete: the tombstone, not the cached value
    auto t = s->get("a");
    REQUIRE(t);
    CHECK(t->is_tombstone());
    CHECK(s->holds_tombstone("a"));
    CHECK(s->apply(val("b", "x", 5, 1, clk.now_ms() + 100)));
    CHECK(s->flush().ok());
    CHECK(s->get("b")->value == "x");
    CHECK(s->get("b")->value == "x");
    clk.advance_ms(200); // expired: never answered from the cache as live
    auto b = s->get("b");
    CHECK((!b || b->is_tombstone() || b->expired(clk.now_ms())));
    CHECK(s->erase("b"));
    CHECK_FALSE(s->get("b"));
  }
  // Random applies, deletes, erases and reads against the in-memory model:
  // the cached store answers exactly what the model holds (seeded).
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    INFO("seed " << seed);
    testing::temp_dir d("kura-tierstore-cache");
    fake_clock clk;
    auto s = open_store(d, clk, 0, seed % 2 == 0);
    s->set_read_cache(64 << 10); // small: evictions too
    memory_store model;
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 4000; ++i) {
      auto key = "k" + std::to_string(rng() % 200);
      auto op = rng() % 10;
      uint64_t hlc = 100 + rng() % 5000;
      if (op < 4) {
        auto e = rng() % 8 == 0
                     ? tomb(key, hlc, 1 + rng() % 3)
                     : val(key, std::string(1 + rng() % 300, 'a' + i % 26), hlc, 1 + rng() % 3);
        CHECK(s->apply(e) == model.apply(e));
      } else if (op == 4) {
        CHECK(s->erase(key) == model.erase(key));
      } else if (op == 5) {
        CHECK(s->flush().ok());
      } else {
        auto x = s->get(key), y = model.get(key);
        REQUIRE(x.has_value() == y.has_value());
        if (x) {
          CHECK(x->ver == y->ver);
          CHECK(x->is_tombstone() == y->is_tombstone());
          if (!x->is_tombstone())
            CHECK(x->value == y->value);
        }
      }
    }
    CHECK(s->cache_hits() > 0);
  }
}

TEST_CASE("tier_store with background commits: reads see every write at once, the disk gets all") {
  testing::temp_dir d("kura-tierstore-bg");
  fake_clock clk; // never advanced while the worker runs (fake_clock is not thread-safe)
  const int n = 3000;
  {
    auto s = open_store(d, clk, 0, true);
    REQUIRE(s->background());
    for (int i = 0; i < n; ++i) {
      auto k = "k" + std::to_string(i);
      REQUIRE(s->apply(val(k, "v" + std::to_string(i), 100 + i)));
      auto got = s->get(k); // read-your-write while the worker commits
      REQUIRE(got);
      CHECK(got->value == "v" + std::to_string(i));
      if (i % 3 == 0)
        CHECK(s->apply(tomb(k, 100 + n + i)));
      if (i % 100 == 0)
        CHECK(s->tick(0).ok()); // drops applied changes from the overlay
    }
    for (int i = 0; i < n; i += 7)
      CHECK_FALSE(s->apply(val("k" + std::to_string(i), "stale", 99))); // older: refused
    CHECK(s->erase("k1"));
    REQUIRE(s->flush().ok());
    CHECK(s->tick(0).ok());
    CHECK(s->unapplied() == 0);
    CHECK(s->stats_of_worker().applied >= static_cast<uint64_t>(n));
    for (int i = 0; i < n; ++i) {
      auto got = s->get("k" + std::to_string(i));
      if (i == 1) {
        CHECK_FALSE(got);
        continue;
      }
      REQUIRE(got);
      CHECK(got->is_tombstone() == (i % 3 == 0));
    }
  }
  // Reopened (no worker): the disk holds every change in its final state.
  auto s = open_store(d, clk);
  CHECK(s->size() == static_cast<size_t>(n - 1));
  for (int i = 0; i < n; ++i) {
    auto got = s->get("k" + std::to_string(i));
    if (i == 1) {
      CHECK_FALSE(got);
      continue;
    }
    REQUIRE(got);
    if (i % 3 == 0) {
      CHECK(got->is_tombstone());
      CHECK(got->ver == version{static_cast<uint64_t>(100 + n + i), 1});
    } else {
      CHECK(got->value == "v" + std::to_string(i));
    }
  }
}

TEST_CASE("tier_store: demoted entries are read from L4, their floor stays, reopen rebuilds") {
  testing::temp_dir d("kura-tierstore");
  fake_clock clk;
  memory_store model;
  const int n = 400;
  std::string big(2000, 'v');
  uint64_t now = clk.now_ms();
  {
    // A small L3: most entries are demoted to the archive.
    auto s = open_store(d, clk, 256 * 1024);
    for (int i = 0; i < n; ++i) {
      // every 10th expires soon: its floor must outlive the copy
      entry e = val("k" + std::to_string(i), big + std::to_string(i), 100 + i, 1,
                    i % 10 == 0 ? now + 1'000 : 0);
      CHECK(s->apply(e));
      model.apply(e);
    }
    REQUIRE(s->flush().ok());
    REQUIRE(s->l4() != nullptr);
    CHECK(s->l4()->stats().entries > 0); // something was demoted
    CHECK(s->get("k1")->value == big + "1");
    CHECK(digests(*s) == digests(model));
    // older versions are refused whichever tier holds the key
    for (int i = 0; i < n; i += 37)
      CHECK_FALSE(s->apply(val("k" + std::to_string(i), "old", 50)));
  }
  clk.advance_ms(5'000); // the expiring ones are past their expiry now
  auto s = open_store(d, clk, 256 * 1024);
  CHECK(s->size() == static_cast<size_t>(n));
  CHECK(digests(*s) == digests(model)); // rebuilt from L3 + L4 at open
  REQUIRE(s->tick(10'000).ok());
  for (int i = 0; i < n; ++i) {
    std::string k = "k" + std::to_string(i);
    auto e = s->get(k);
    REQUIRE(e);
    CHECK(e->ver == version{static_cast<uint64_t>(100 + i), 1});
    if (i % 10 != 0)
      CHECK(e->value == big + std::to_string(i));
    // nothing older comes back, in L3 or L4, expired or not
    CHECK_FALSE(s->apply(val(k, "old", 99 + i)));
  }
  // a newer write supersedes the archived copy
  CHECK(s->apply(val("k3", "new", 10'000)));
  CHECK(s->get("k3")->value == "new");
  REQUIRE(s->flush().ok()); // the archive's copy goes once L3 committed the new one
  auto held = s->l4()->held_version("k3");
  REQUIRE(held.ok());
  CHECK_FALSE(held->has_value());
  CHECK(s->max_version() == version{10'000, 1});
}

TEST_CASE("kura-sim seeds run on the real tiers (L3 + L4 in temp dirs)") {
  testing::temp_dir d("kura-tierstore-sim");
  static fake_clock clk; // the tiers' clock; the simulation keeps its own time
  std::atomic<uint64_t> made{0};
  const uint64_t seeds = 24;
  for (uint64_t k = 0; k < seeds; ++k) {
    sim::options opt;
    opt.seed = 1 + k;
    opt.nodes = static_cast<uint32_t>(3 + k % 3);
    opt.faults = sim::fault_mode::all;
    opt.make_store = [&](node_id n, uint64_t restart) -> std::unique_ptr<replica_store> {
      std::string base = d.sub("s" + std::to_string(opt.seed) + "-n" + std::to_string(n) + "-r" +
                               std::to_string(restart) + "-" + std::to_string(made++));
      // Every third seed commits on worker threads, as kura-node does.
      std::shared_ptr<archive::archive> l4;
      auto a = archive::archive::open(l4_at(base + "-l4"), clk);
      REQUIRE(a.ok());
      l4 = std::move(*a);
      auto r = tier_store::open(l3_at(base + "-l3"), std::move(l4), clk,
                                sim::sim_node_config(n, opt.nodes).ring.seed, k % 3 == 2);
      REQUIRE(r.ok());
      return std::move(*r);
    };
    auto rep = sim::run(opt);
    INFO("replay: seed " << opt.seed << ", " << opt.nodes << " nodes, faults all");
    for (auto& f : rep.failures)
      INFO(f);
    CHECK(rep.ok);
    CHECK(rep.acked_writes > 0);
  }
  CHECK(made.load() >= seeds * 3);
}

TEST_CASE("a node seeds its HLC from the store: no version below what the disk holds") {
  testing::temp_dir d("kura-tierstore");
  fake_clock clk;
  version high{version::make_hlc(9'000'000'000'000ull, 5), 3}; // far ahead of any wall clock
  {
    auto s = open_store(d, clk);
    REQUIRE(s->apply(val("k", "from-the-future", high.hlc, high.node)));
    CHECK(s->erase("k")); // collected: only L3's max_version remembers it
  }
  auto s = open_store(d, clk);
  CHECK(s->max_version() == high);
  node_config cfg = sim::sim_node_config(1, 1);
  node n(cfg, 7, std::move(s));
  n.start(1'000);
  uint64_t rid = n.write("k", "now", 1'000);
  auto res = n.take_results();
  REQUIRE_FALSE(res.empty());
  CHECK(res.back().req == rid);
  CHECK(res.back().e.ver > high);
}

TEST_CASE("tier_store: a floor whose value was lost below takes it back (restore), on disk too") {
  for (bool background : {false, true}) {
    CAPTURE(background);
    testing::temp_dir d("kura-tierstore");
    fake_clock clk;
    memory_store model;
    entry v = val("lost", std::string(300, 'x'), 500);
    {
      auto s = open_store(d, clk, 0, background);
      // L3's floor of v with nothing below it: what a demoted value whose
      // archive copy went missing leaves (rotate_cluster_test, session 12)
      REQUIRE(s->apply(tomb("lost", 500)));
      model.apply(tomb("lost", 500));
      REQUIRE(s->get("lost")->is_tombstone());
      CHECK_FALSE(s->apply(v));                           // not newer
      CHECK_FALSE(s->restore(val("lost", "other", 499))); // another version
      CHECK_FALSE(s->restore(tomb("lost", 500)));
      CHECK_FALSE(s->restore(val("nothing-held", "x", 500)));
      CHECK(s->restore(v));
      auto got = s->get("lost");
      REQUIRE(got);
      CHECK_FALSE(got->is_tombstone());
      CHECK(got->value == v.value);
      CHECK(digests(*s) == digests(model)); // one write: no digest change
      CHECK_FALSE(s->restore(v));           // nothing to take back any more
      REQUIRE(s->flush().ok());
    }
    auto s = open_store(d, clk, 0, background); // from L3's floor and L4's copy
    auto got = s->get("lost");
    REQUIRE(got);
    CHECK(got->value == v.value);
    CHECK(got->ver == v.ver);
  }
}

namespace {

/// Writes `in_l3` into L3 (cluster mode) and `in_l4` into the archive of
/// `d` directly, committed: a state a kill -9 can leave.
void lay_down(const testing::temp_dir& d, const kura::clock& clk, const entry& in_l3,
              const entry& in_l4) {
  auto c = l3_at(d.sub("l3"));
  c.tombstones = true;
  auto l3 = l3_lmdb::open(c, clk);
  REQUIRE(l3.ok());
  REQUIRE((*l3)->apply(in_l3, clk.now_ms()).ok());
  REQUIRE((*l3)->flush().ok());
  auto a = archive::archive::open(l4_at(d.sub("l4")), clk);
  REQUIRE(a.ok());
  REQUIRE((*a)->put(in_l4, clk.now_ms()).ok());
  REQUIRE((*a)->flush().ok());
}

/// A child process opens the store in `d` (no background commits), runs
/// `f` on it and dies at once (_exit: nothing flushed, like a kill -9).
void killed_after(const testing::temp_dir& d, const kura::clock& clk,
                  const std::function<void(tier_store&)>& f) {
  pid_t pid = ::fork();
  if (pid == 0) {
    auto a = archive::archive::open(l4_at(d.sub("l4")), clk);
    auto r = tier_store::open(l3_at(d.sub("l3")), std::shared_ptr<archive::archive>(std::move(*a)),
                              clk, ring_config{}.seed, false);
    f(**r);
    ::_exit(0);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  REQUIRE(WIFEXITED(st));
}

} // namespace

TEST_CASE("tier_store: a newer copy in L4 under an older L3 record is what the key reads") {
  // A kill -9 between the archive's commit of a demoted value and L3's
  // commit of that write and its demotion (one L3 transaction) leaves L3's
  // previous record above the newer copy (rotate_cluster_test, session 12:
  // n1 read nil where it held the newer value in L4).
  for (bool floor : {true, false}) {
    CAPTURE(floor);
    testing::temp_dir d("kura-tierstore");
    fake_clock clk;
    entry old_rec = floor ? tomb("k", 100) : val("k", "old", 100);
    lay_down(d, clk, old_rec, val("k", "new", 200));
    auto s = open_store(d, clk);
    REQUIRE(s->version_of("k"));
    CHECK(*s->version_of("k") == version{200, 1});
    auto got = s->get("k");
    REQUIRE(got);
    CHECK_FALSE(got->is_tombstone());
    CHECK(got->value == "new");
  }
}

TEST_CASE("tier_store: a kill -9 right after an erase never leaves L3's floor without its value") {
  // erase (handoff, tombstone collection) used to erase the archive's copy
  // at once while L3's erase waited in its batch: killed in between, the
  // node restarted with L3's floor and no copy below it, and read nil.
  testing::temp_dir d("kura-tierstore");
  fake_clock clk;
  lay_down(d, clk, tomb("k", 100), val("k", "v", 100)); // a demoted value: floor + copy
  {
    auto s = open_store(d, clk);
    REQUIRE(s->get("k")->value == "v");
  }
  killed_after(d, clk, [](tier_store& s) {
    s.erase("k"); // L3's erase waits in its batch (16 writes); nothing flushed
  });
  auto s = open_store(d, clk);
  auto got = s->get("k");
  // the erase is lost (both copies stay) or complete; never the floor alone
  if (got)
    CHECK(got->value == "v");
  REQUIRE(s->erase("k"));
  REQUIRE(s->flush().ok());
  CHECK_FALSE(s->get("k"));
  auto held = s->l4()->held_version("k");
  REQUIRE(held.ok());
  CHECK_FALSE(held->has_value()); // gone from L4 once L3 committed the erase
}

TEST_CASE("tier_store: an erase never lets an older archived copy outlive L3's newer record") {
  // The other order: L3 holds a tombstone (or a value) newer than the
  // archive's copy, which a kill -9 kept. Killed after L3 committed the
  // erase (tombstone collection) and before the archive's, the older value
  // came back at the restart.
  testing::temp_dir d("kura-tierstore");
  fake_clock clk;
  lay_down(d, clk, tomb("k", 200), val("k", "old", 100));
  killed_after(d, clk, [](tier_store& s) {
    s.erase("k");
    (void)s.l3().flush(); // L3's erase committed, killed before anything else
  });
  auto s = open_store(d, clk);
  auto got = s->get("k");
  if (got)
    CHECK(got->is_tombstone());
}

TEST_CASE("tier_store: value sizes come from the index, in L3, in L4 and after reopen") {
  // `kura ring`'s bytes per node walk every key held: reading each value for
  // its size stalled a 1 GB node's multiplexer for 11 s (bench/cluster-move).
  testing::temp_dir d("kura-tierstore");
  fake_clock clk;
  std::map<std::string, uint64_t> want;
  auto sizes = [](const tier_store& s) {
    std::map<std::string, uint64_t> got;
    s.for_each_key_sized_from(0, [&](uint64_t, const entry& m, uint64_t n) {
      got[m.key] = n;
      return true;
    });
    return got;
  };
  {
    auto s = open_store(d, clk, 256 * 1024); // small L3: most values go to L4
    for (int i = 0; i < 300; ++i) {
      std::string k = "k" + std::to_string(i);
      auto e = i % 25 == 0 ? tomb(k, 100 + i) : val(k, std::string(1000 + i, 'v'), 100 + i);
      REQUIRE(s->apply(e));
      want[k] = e.is_tombstone() ? 0 : e.value.size();
    }
    REQUIRE(s->flush().ok());
    REQUIRE(s->l4()->stats().entries > 0);
    auto l4_reads = s->l4()->stats().hits + s->l4()->stats().misses;
    CHECK(sizes(*s) == want);
    CHECK(s->l4()->stats().hits + s->l4()->stats().misses == l4_reads); // no value read
    REQUIRE(s->apply(val("k1", "short", 10'000)));                      // a newer, smaller value
    want["k1"] = 5;
    CHECK(sizes(*s) == want);
  }
  auto s = open_store(d, clk, 256 * 1024);
  auto l4_reads = s->l4()->stats().hits + s->l4()->stats().misses;
  CHECK(sizes(*s) == want); // rebuilt from L3's records and L4's index rows
  CHECK(s->l4()->stats().hits + s->l4()->stats().misses == l4_reads);
  for (auto& [k, n] : want)
    if (n > 0)
      CHECK(s->get(k)->value.size() == n);
}

namespace {

/// The store with the write-ahead log (background commits), its log written
/// every millisecond; L3 commits only when flushed (the fake clock never
/// makes a batch due, and a batch takes 1M writes).
std::unique_ptr<tier_store> open_logged(const testing::temp_dir& d, const kura::clock& clk,
                                        wal_replay_stats* replayed = nullptr) {
  auto a = archive::archive::open(l4_at(d.sub("l4")), clk);
  REQUIRE(a.ok());
  auto c = l3_at(d.sub("l3"));
  c.batch_max_writes = 1u << 20;
  c.batch_max_ms = 3'600'000;
  wal_config w;
  w.dir = d.sub("l3-wal");
  w.write_interval_ms = 1;
  auto r = tier_store::open(c, std::shared_ptr<archive::archive>(std::move(*a)), clk,
                            ring_config{}.seed, true, {}, w, replayed);
  INFO((r.ok() ? std::string("ok") : r.err().to_string()));
  REQUIRE(r.ok());
  return std::move(*r);
}

/// A child process opens the logged store in `d`, runs `f` on it, waits until
/// the worker applied everything and the log's writer wrote every record,
/// and dies at once (_exit: no flush, no commit, like a kill -9). Exit code
/// 3: L3's batch was empty (committed), so the log was not what kept the
/// changes.
void killed_logged(const testing::temp_dir& d, const kura::clock& clk,
                   const std::function<void(replica_store&)>& f) {
  pid_t pid = ::fork();
  if (pid == 0) {
    auto s = open_logged(d, clk);
    f(*s);
    for (int i = 0; i < 5000 && (s->unapplied() != 0 || s->unwritten() != 0); ++i)
      ::usleep(1000);
    ::_exit(s->unwritten() != 0 ? 2 : s->uncommitted() == 0 ? 3 : 0);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  REQUIRE(WIFEXITED(st));
  REQUIRE(WEXITSTATUS(st) == 0);
}

} // namespace

TEST_CASE("tier_store with the write-ahead log: a kill -9 keeps every version and tombstone "
          "applied, replayed into L3 before the index") {
  testing::temp_dir d("kura-tierstore-wal");
  fake_clock clk;
  memory_store model;
  auto first = [](replica_store& s) {
    s.apply(val("a", "1", 10));
    s.apply(val("a", "2", 11));
    s.apply(val("a", "older", 9)); // refused: not logged
    s.apply(tomb("b", 20));
    s.apply(val("c", "x", 30));
    s.apply(tomb("c", 31, 2)); // a delete of another writer
    s.apply(val("d", "expires", 40, 1, 1'800'000'000'000ull));
    s.apply(val("e", "gone", 50));
    s.erase("e"); // tombstone collection / handoff
    for (int i = 0; i < 500; ++i) {
      auto k = "k" + std::to_string(i);
      s.apply(val(k, std::string(40 + i % 300, 'v'), 1000 + i, 1 + i % 3));
      if (i % 4 == 0)
        s.apply(tomb(k, 2000 + i));
    }
  };
  first(model);
  killed_logged(d, clk, first);
  auto same = [&](const tier_store& s) {
    CHECK(s.size() == model.size());
    CHECK(digests(s) == digests(model));
    model.for_each([&](const entry& m) {
      CAPTURE(m.key);
      auto got = s.get(m.key);
      REQUIRE(got);
      CHECK(got->ver == m.ver);
      CHECK(got->is_tombstone() == m.is_tombstone());
      if (!m.is_tombstone()) {
        CHECK(got->value == m.value);
        CHECK(got->expiry_ms == m.expiry_ms);
      }
    });
    CHECK_FALSE(s.get("e"));
  };
  {
    wal_replay_stats rs;
    auto s = open_logged(d, clk, &rs);
    CHECK(rs.records == 9 + 500 + 125 - 1); // every change applied (not the refused one)
    CHECK(rs.cut_reason.empty());
    same(*s);
    CHECK(s->l3().log_mark() > 0);
  }
  {
    // The replay went to LMDB and the log was emptied: nothing to replay.
    wal_replay_stats rs;
    auto s = open_logged(d, clk, &rs);
    CHECK(rs.records == 0);
    same(*s);
  }
  // Changes committed to LMDB before the kill are skipped at the replay (L3's
  // mark); those after it are replayed.
  auto second = [](replica_store& s) {
    s.apply(val("a", "3", 12));
    REQUIRE(s.flush().ok());
    s.apply(tomb("a", 13));
    s.apply(val("b", "back", 21));
  };
  second(model);
  killed_logged(d, clk, second);
  wal_replay_stats rs;
  auto s = open_logged(d, clk, &rs);
  CHECK(rs.records >= 2);
  same(*s);
  CHECK(s->get("a")->is_tombstone());
  CHECK(s->get("b")->value == "back");
}

TEST_CASE("tier_store with background commits: a slow stream of writes wakes the worker per "
          "wake_at changes or per tick, not per write") {
  testing::temp_dir d("kura-tierstore-wake");
  fake_clock clk;
  auto s = open_logged(d, clk); // L3 batches of 1M writes / 1 h: no commit wakes the worker
  REQUIRE(s->background());
  const uint64_t rounds0 = s->stats_of_worker().rounds;
  // 40 writes, each with time for the worker to wake up and take it: before
  // session 23 every write that found the queue empty woke the worker (one
  // futex wake and one round per write; ~40 rounds here).
  const int n = 40;
  static_assert(n < static_cast<int>(tier_store::wake_at));
  for (int i = 0; i < n; ++i) {
    REQUIRE(s->apply(val("w" + std::to_string(i), "v", 100 + i)));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    auto got = s->get("w" + std::to_string(i)); // visible at once (the overlay)
    REQUIRE(got);
  }
  // The worker still wakes on its own once a second: a loaded machine may
  // stretch the loop over a few of those.
  CHECK(s->stats_of_worker().rounds - rounds0 < 10);
  // The owner's tick hands it what is queued.
  CHECK(s->tick(0).ok());
  for (int i = 0; i < 5000 && s->unapplied() != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(s->unapplied() == 0);
  CHECK(s->stats_of_worker().applied >= static_cast<uint64_t>(n));
  REQUIRE(s->flush().ok());
  CHECK(s->tick(0).ok());
  for (int i = 0; i < n; ++i) {
    auto got = s->get("w" + std::to_string(i));
    REQUIRE(got);
    CHECK(got->value == "v");
  }
}
