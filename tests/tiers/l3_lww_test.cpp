// L3 last-writer-wins: apply-if-newer, tombstone records, collection, version
// floors on expiry, the resumable scan, max_version, and the format upgrade
// from kura-l3 2 (a file written in the previous layout is read correctly).
#include "../test_util.hpp"
#include "tiers/clock.hpp"
#include "tiers/l3_format.hpp"
#include "tiers/l3_lmdb.hpp"

#include <doctest/doctest.h>
#include <lmdb.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

using namespace kura;

namespace {

l3_config cfg_at(const std::string& dir, bool tombstones = true) {
  l3_config c;
  c.path = dir;
  c.map_size = 64ull << 20;
  c.batch_max_writes = 4;
  c.fsync_batches = false;
  c.tombstones = tombstones;
  return c;
}

std::unique_ptr<l3_lmdb> open_ok(const l3_config& c, const kura::clock& clk) {
  auto r = l3_lmdb::open(c, clk);
  INFO((r.ok() ? std::string{"ok"} : r.err().to_string()));
  REQUIRE(r.ok());
  return std::move(*r);
}

entry val(std::string key, std::string value, uint64_t hlc, uint32_t node = 1,
          uint64_t expiry = 0) {
  entry e;
  e.key = std::move(key);
  e.value = std::move(value);
  e.ver = version{hlc, node};
  e.expiry_ms = expiry;
  return e;
}

entry tomb(std::string key, uint64_t hlc, uint32_t node = 1) {
  entry e = val(std::move(key), "", hlc, node);
  e.flags = entry_flags::tombstone;
  return e;
}

bool applied(l3_lmdb& t, entry e, uint64_t now) {
  auto r = t.apply(std::move(e), now);
  INFO((r.ok() ? std::string{"ok"} : r.err().to_string()));
  REQUIRE(r.ok());
  return *r;
}

std::optional<entry> versioned(l3_lmdb& t, std::string_view key) {
  auto r = t.get_versioned(key);
  REQUIRE(r.ok());
  return *r;
}

std::optional<entry> live(l3_lmdb& t, std::string_view key, uint64_t now) {
  auto r = t.get(key, now);
  REQUIRE(r.ok());
  return *r;
}

} // namespace

TEST_CASE("l3 apply: only newer versions are stored, pending or committed") {
  testing::temp_dir d("kura-l3lww");
  fake_clock clk;
  auto t = open_ok(cfg_at(d.sub("l3")), clk);
  uint64_t now = clk.now_ms();
  CHECK(applied(*t, val("k", "v5", 5), now));
  CHECK_FALSE(applied(*t, val("k", "v3", 3), now));  // older
  CHECK_FALSE(applied(*t, val("k", "v5b", 5), now)); // same version
  CHECK(applied(*t, val("k", "v5n2", 5, 2), now));   // same hlc, higher node
  CHECK(live(*t, "k", now)->value == "v5n2");
  REQUIRE(t->sync().ok());
  CHECK_FALSE(applied(*t, val("k", "v4", 4), now)); // against the committed record
  CHECK(applied(*t, val("k", "v9", 9), now));
  CHECK(live(*t, "k", now)->value == "v9");
  CHECK(t->max_version() == version{9, 1});
}

TEST_CASE("l3 held_version agrees with get_versioned: short, long, tombstone, absent keys") {
  // apply() compares versions through held_version's reading (the header of
  // the committed record, no copy); it must see what get_versioned sees
  testing::temp_dir d("kura-l3lww");
  fake_clock clk;
  auto t = open_ok(cfg_at(d.sub("l3")), clk);
  const uint64_t now = clk.now_ms();
  const std::string longk(700, 'q'); // stored under a hashed LMDB key
  const std::vector<std::string> keys = {"a", "key:000000012345", longk, "t", "none"};
  auto agree = [&] {
    for (const auto& k : keys) {
      auto h = t->held_version(k);
      REQUIRE(h.ok());
      auto v = versioned(*t, k);
      CHECK(h->has_value() == v.has_value());
      if (*h && v)
        CHECK(**h == v->ver);
    }
  };
  CHECK(applied(*t, val("a", "1", 5), now));
  CHECK(applied(*t, val("key:000000012345", std::string(300, 'v'), 6, 3), now));
  CHECK(applied(*t, val(longk, "long", 7), now));
  CHECK(applied(*t, tomb("t", 8), now));
  agree(); // pending
  REQUIRE(t->sync().ok());
  agree(); // committed
  CHECK_FALSE(applied(*t, val(longk, "older", 6), now));
  CHECK_FALSE(applied(*t, val("t", "under the floor", 8), now));
  CHECK(applied(*t, val(longk, "newer", 9), now));
  REQUIRE(t->sync().ok());
  CHECK(live(*t, longk, now)->value == "newer");
  agree();
}

TEST_CASE("l3 tombstones: invisible to reads, visible to replication, win over older writes") {
  testing::temp_dir d("kura-l3lww");
  fake_clock clk;
  uint64_t now = clk.now_ms();
  {
    auto t = open_ok(cfg_at(d.sub("l3")), clk);
    REQUIRE(applied(*t, val("gone", "old", 10), now));
    REQUIRE(applied(*t, val("stay", "here", 10), now));
    CHECK(applied(*t, tomb("gone", 11), now));
    CHECK_FALSE(live(*t, "gone", now).has_value());
    auto v = versioned(*t, "gone");
    REQUIRE(v.has_value());
    CHECK(v->is_tombstone());
    CHECK(v->ver == version{11, 1});
    CHECK(v->value.empty());
    // a late replica or hint of an older value does not resurrect it
    CHECK_FALSE(applied(*t, val("gone", "late", 10, 9), now));
    CHECK_FALSE(live(*t, "gone", now).has_value());
    // erase() sees no live value behind a tombstone
    REQUIRE(t->sync().ok());
    std::vector<std::string> keys;
    REQUIRE(t->for_each([&](const entry& e) {
               keys.push_back(e.key);
               return true;
             }).ok());
    CHECK(keys == std::vector<std::string>{"stay"});
  }
  // tombstones survive a reopen, and are never evicted (not in kura.seq)
  auto t = open_ok(cfg_at(d.sub("l3")), clk);
  CHECK_FALSE(applied(*t, val("gone", "late", 10, 9), now));
  CHECK(versioned(*t, "gone")->is_tombstone());
  CHECK(t->max_version() == version{11, 1});
  // a newer write replaces the tombstone
  CHECK(applied(*t, val("gone", "back", 12), now));
  CHECK(live(*t, "gone", now)->value == "back");
}

TEST_CASE("l3 collect removes a tombstone up to a version and nothing else") {
  testing::temp_dir d("kura-l3lww");
  fake_clock clk;
  uint64_t now = clk.now_ms();
  auto t = open_ok(cfg_at(d.sub("l3")), clk);
  REQUIRE(applied(*t, tomb("a", 20), now));
  REQUIRE(applied(*t, val("b", "value", 20), now));
  auto r = t->collect("a", version{19, 9}); // older than the tombstone: kept
  REQUIRE(r.ok());
  CHECK_FALSE(*r);
  r = t->collect("b", version{99, 1}); // a value is never collected
  REQUIRE(r.ok());
  CHECK_FALSE(*r);
  CHECK(live(*t, "b", now)->value == "value");
  r = t->collect("a", version{20, 1});
  REQUIRE(r.ok());
  CHECK(*r);
  CHECK_FALSE(versioned(*t, "a").has_value());
  REQUIRE(t->sync().ok());
  CHECK_FALSE(versioned(*t, "a").has_value());
  r = t->collect("missing", version{99, 1});
  REQUIRE(r.ok());
  CHECK_FALSE(*r);
}

TEST_CASE("l3 expiry in cluster mode leaves a tombstone floor; single-node mode removes") {
  for (bool cluster : {true, false}) {
    CAPTURE(cluster);
    testing::temp_dir d("kura-l3lww");
    fake_clock clk;
    auto t = open_ok(cfg_at(d.sub("l3"), cluster), clk);
    uint64_t now = clk.now_ms();
    // committed then swept
    REQUIRE(applied(*t, val("swept", "v", 50, 1, now + 100), now));
    // committed then read lazily after expiry
    REQUIRE(applied(*t, val("lazy", "v", 50, 1, now + 100), now));
    REQUIRE(t->sync().ok());
    // still pending when it expires
    REQUIRE(applied(*t, val("pend", "v", 50, 1, now + 100), now));
    clk.advance_ms(200);
    now = clk.now_ms();
    CHECK_FALSE(live(*t, "lazy", now).has_value());
    CHECK_FALSE(live(*t, "pend", now).has_value());
    CHECK(t->sweep_expired(now, 100) >= 1);
    REQUIRE(t->sync().ok());
    for (const char* k : {"swept", "lazy", "pend"}) {
      CAPTURE(k);
      auto v = versioned(*t, k);
      if (cluster) {
        REQUIRE(v.has_value());
        CHECK(v->is_tombstone());
        CHECK(v->ver == version{50, 1});
        // an older copy arriving late stays out
        CHECK_FALSE(applied(*t, val(k, "older", 40), now));
      } else {
        CHECK_FALSE(v.has_value());
      }
      CHECK_FALSE(live(*t, k, now).has_value());
    }
  }
}

TEST_CASE("l3 apply of an already expired entry keeps only its floor (cluster mode)") {
  testing::temp_dir d("kura-l3lww");
  fake_clock clk;
  auto t = open_ok(cfg_at(d.sub("l3")), clk);
  uint64_t now = clk.now_ms();
  CHECK(applied(*t, val("x", "dead", 30, 1, now - 1), now));
  CHECK_FALSE(live(*t, "x", now).has_value());
  CHECK(versioned(*t, "x")->is_tombstone());
  CHECK_FALSE(applied(*t, val("x", "older", 29), now));
}

TEST_CASE("l3 scan: every record in key order, resumable, bounded per call") {
  testing::temp_dir d("kura-l3lww");
  fake_clock clk;
  auto t = open_ok(cfg_at(d.sub("l3")), clk);
  uint64_t now = clk.now_ms();
  std::map<std::string, bool> want; // key -> tombstone
  for (int i = 0; i < 53; ++i) {
    std::string k = "key:" + std::to_string(1000 + i);
    bool tb = i % 5 == 0;
    REQUIRE(applied(*t, tb ? tomb(k, 7) : val(k, "v", 7), now));
    want[k] = tb;
  }
  std::string longk(600, 'z'); // stored under a hashed LMDB key
  REQUIRE(applied(*t, val(longk, "long", 7), now));
  want[longk] = false;
  std::map<std::string, bool> got;
  std::string after;
  int calls = 0;
  for (;;) {
    size_t n = 0;
    auto r = t->scan(after, 10, [&](const entry& e) {
      CHECK(got.emplace(e.key, e.is_tombstone()).second);
      ++n;
    });
    REQUIRE(r.ok());
    CHECK(n <= 10);
    ++calls;
    if (!r->has_value())
      break;
    after = **r;
    REQUIRE(calls < 100);
  }
  CHECK(got == want);
  CHECK(calls >= 6);
}

TEST_CASE("l3 max_version is kept in the meta record across reopen") {
  testing::temp_dir d("kura-l3lww");
  fake_clock clk;
  uint64_t now = clk.now_ms();
  {
    auto t = open_ok(cfg_at(d.sub("l3")), clk);
    CHECK(t->max_version() == version{});
    REQUIRE(t->put(val("a", "1", version::make_hlc(5000, 3), 4), now).ok());
    REQUIRE(t->put(val("b", "1", version::make_hlc(4000, 0), 9), now).ok());
    CHECK(t->max_version() == version{version::make_hlc(5000, 3), 4});
    REQUIRE(t->erase("a").ok()); // the highest version ever held, not held now
  }
  auto t = open_ok(cfg_at(d.sub("l3")), clk);
  CHECK(t->max_version() == version{version::make_hlc(5000, 3), 4});
}

namespace {

/// Writes an environment exactly as kura-l3 2 did: the same four databases,
/// "kura-l3 2" as the marker, no max_version meta record, records with format
/// byte 2.
void write_v2_env(const std::string& dir, const std::vector<entry>& entries) {
  namespace fmt = l3_format;
  REQUIRE(std::filesystem::create_directories(dir));
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  mdb_env_set_maxdbs(env, 8);
  mdb_env_set_mapsize(env, 64ull << 20);
  REQUIRE(mdb_env_open(env, dir.c_str(), 0, 0644) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
  MDB_dbi meta, main, seq, exp;
  REQUIRE(mdb_dbi_open(txn, "kura.meta", MDB_CREATE, &meta) == 0);
  REQUIRE(mdb_dbi_open(txn, "kura.main", MDB_CREATE, &main) == 0);
  REQUIRE(mdb_dbi_open(txn, "kura.seq", MDB_CREATE, &seq) == 0);
  REQUIRE(mdb_dbi_open(txn, "kura.exp", MDB_CREATE, &exp) == 0);
  auto put = [&](MDB_dbi db, std::string k, std::string v) {
    MDB_val kv{k.size(), k.data()}, vv{v.size(), v.data()};
    REQUIRE(mdb_put(txn, db, &kv, &vv, 0) == 0);
  };
  put(meta, "format", "kura-l3 2");
  std::string est(8, '\0');
  fmt::put_le(est.data(), 1000, 8);
  put(meta, "est_bytes", est);
  uint64_t s = 1;
  for (const auto& e : entries) {
    std::string lkey = fmt::lmdb_key(e.key);
    std::string rec(fmt::record_size(e), '\0');
    fmt::encode_record(e, lkey, s, rec.data());
    rec[0] = 2; // the previous record format byte, same layout
    fmt::put_le(rec.data() + 32, fmt::record_checksum(lkey, rec), 8);
    put(main, lkey, rec);
    put(seq, fmt::seq_key(s), lkey);
    if (e.expiry_ms != 0)
      put(exp, fmt::exp_key(e.expiry_ms, s), lkey);
    ++s;
  }
  REQUIRE(mdb_txn_commit(txn) == 0);
  mdb_env_close(env);
}

} // namespace

TEST_CASE("l3 opens a kura-l3 2 environment, reads it and upgrades it in place") {
  testing::temp_dir d("kura-l3lww");
  fake_clock clk;
  uint64_t now = clk.now_ms();
  std::vector<entry> old = {val("alpha", "one", version::make_hlc(100, 0), 3),
                            val("beta", "two", version::make_hlc(300, 2), 1, now + 60'000),
                            val(std::string(500, 'L'), "long", version::make_hlc(200, 0), 2)};
  write_v2_env(d.sub("l3"), old);
  {
    auto t = open_ok(cfg_at(d.sub("l3")), clk);
    for (const auto& e : old) {
      auto got = live(*t, e.key, now);
      REQUIRE(got.has_value());
      CHECK(*got == e);
    }
    // max_version was computed from the records at the upgrade
    CHECK(t->max_version() == version{version::make_hlc(300, 2), 1});
    CHECK_FALSE(applied(*t, val("alpha", "older", version::make_hlc(99, 0)), now));
    CHECK(applied(*t, tomb("alpha", version::make_hlc(400, 0)), now));
    REQUIRE(t->sync().ok());
    clk.advance_ms(120'000); // beta's expiry goes through the old kura.exp entry
    CHECK(t->sweep_expired(clk.now_ms(), 10) == 1);
  }
  // the marker now names the new layout, and the data is still there
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  mdb_env_set_maxdbs(env, 8);
  REQUIRE(mdb_env_open(env, d.sub("l3").c_str(), MDB_RDONLY, 0644) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) == 0);
  MDB_dbi meta;
  REQUIRE(mdb_dbi_open(txn, "kura.meta", 0, &meta) == 0);
  MDB_val k{6, const_cast<char*>("format")}, v;
  REQUIRE(mdb_get(txn, meta, &k, &v) == 0);
  CHECK(std::string(static_cast<char*>(v.mv_data), v.mv_size) ==
        std::string{l3_format::meta_format});
  mdb_txn_abort(txn);
  mdb_env_close(env);
  auto t = open_ok(cfg_at(d.sub("l3")), clk);
  CHECK(versioned(*t, "alpha")->is_tombstone());
  CHECK(live(*t, std::string(500, 'L'), clk.now_ms())->value == "long");
  CHECK(t->max_version() == version{version::make_hlc(400, 0), 1});
}

TEST_CASE("l3 committed reads from another thread while the owner commits and the map grows") {
  // The cluster store reads L3 from the multiplexer thread while its worker
  // applies and commits (get_committed_concurrent): a reader never sees a
  // torn or foreign record, sees only committed writes, and survives the
  // map growths the writer makes meanwhile.
  testing::temp_dir d("kura-l3lww");
  fake_clock clk;
  auto c = cfg_at(d.sub("l3"));
  c.map_size = 1ull << 20; // grows: 1 MiB -> 64 MiB
  c.map_size_max = 64ull << 20;
  c.max_bytes = 48ull << 20; // no eviction (its floors would carry no value)
  c.batch_max_writes = 64;
  auto t = open_ok(c, clk);
  const uint64_t start_map = t->map_size();
  const int keys = 200, rounds = 60;
  std::atomic<int> committed_round{-1};
  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads{0}, found{0}, bad{0};
  std::string why;
  std::thread reader([&] {
    uint64_t i = 0;
    while (!done.load()) {
      std::string k = "key-" + std::to_string(i++ % keys);
      int floor = committed_round.load(); // committed before this read began
      auto r = t->get_committed_concurrent(k);
      ++reads;
      if (!r) {
        if (bad++ == 0)
          why = r.err().to_string();
        continue;
      }
      if (!*r)
        continue;
      ++found;
      const entry& e = **r;
      // value = key/round/padding: the record belongs to this key and
      // its version, and no committed round is missed
      int round = static_cast<int>(e.ver.hlc) - 1;
      std::string want = k + "/" + std::to_string(round) + "/";
      if (e.key != k || e.value.compare(0, want.size(), want) != 0 || round < floor)
        if (bad++ == 0)
          why = "read " + e.key + " v" + std::to_string(e.ver.hlc) + " floor " +
                std::to_string(floor) + ": " + e.value.substr(0, 40);
    }
  });
  for (int round = 0; round < rounds; ++round) {
    for (int k = 0; k < keys; ++k) {
      std::string key = "key-" + std::to_string(k);
      std::string v = key + "/" + std::to_string(round) + "/" + std::string(1000 + round * 40, 'x');
      REQUIRE(applied(*t, val(key, v, static_cast<uint64_t>(round) + 1), clk.now_ms()));
    }
    REQUIRE(t->sync().ok());
    committed_round = round;
  }
  // Keep reading a little after the last commit.
  for (uint64_t seen = reads.load(); reads.load() < seen + 1000;)
    std::this_thread::yield();
  done = true;
  reader.join();
  INFO(why);
  CHECK(bad.load() == 0);
  CHECK(found.load() > 0);
  CHECK(t->map_size() > start_map); // the map grew while the reader ran
  auto last = t->get_committed_concurrent("key-7");
  REQUIRE(last.ok());
  REQUIRE(last->has_value());
  CHECK((*last)->ver.hlc == static_cast<uint64_t>(rounds));
  // The pending batch is not visible to it; get_versioned sees it.
  REQUIRE(applied(*t, val("key-7", "pending", rounds + 1), clk.now_ms()));
  CHECK(t->get_committed_concurrent("key-7")->value().ver.hlc == static_cast<uint64_t>(rounds));
  CHECK(versioned(*t, "key-7")->ver.hlc == static_cast<uint64_t>(rounds + 1));
}
