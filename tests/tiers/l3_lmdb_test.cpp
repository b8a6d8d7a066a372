// L3 (LMDB) tests: the tier contract, group commit, durability across a clean
// close and across SIGKILL, corrupt and foreign files, limits, and space.
#include "tiers/clock.hpp"
#include "tiers/l3_format.hpp"
#include "tiers/l3_lmdb.hpp"

#include <doctest/doctest.h>
#include <lmdb.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace kura;
namespace fs = std::filesystem;

namespace {

/// A fresh temporary directory, removed at the end of the test.
struct temp_dir {
  fs::path path;
  temp_dir() {
    char tmpl[] = "/tmp/kura-l3-test-XXXXXX";
    char* p = ::mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    path = p;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
  std::string env() const { return (path / "l3").string(); }
};

l3_config small_config(const std::string& dir) {
  l3_config c;
  c.path = dir;
  c.map_size = 64ull << 20;
  c.batch_max_writes = 8;
  c.batch_max_ms = 5;
  // no fdatasync per batch: keeps the suite fast on a busy disk; the
  // kill-and-reopen and reopen tests run with fsync_batches on
  c.fsync_batches = false;
  return c;
}

std::unique_ptr<l3_lmdb> must_open(const l3_config& c, const kura::clock& clk) {
  auto r = l3_lmdb::open(c, clk);
  INFO((r.ok() ? std::string{"ok"} : r.err().to_string()));
  REQUIRE(r.ok());
  return std::move(*r);
}

entry make(std::string key, std::string value, uint64_t expiry = 0, uint64_t hlc = 1) {
  entry e;
  e.key = std::move(key);
  e.value = std::move(value);
  e.expiry_ms = expiry;
  e.ver = version{hlc, 7};
  return e;
}

std::optional<entry> get_ok(l3_lmdb& t, std::string_view key, uint64_t now) {
  auto r = t.get(key, now);
  INFO((r.ok() ? std::string{"ok"} : r.err().to_string()));
  REQUIRE(r.ok());
  return *r;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

/// Runs a shell command, returns (exit status, stdout).
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, n);
  int rc = ::pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

} // namespace

// -- the tier contract ---------------------------------------------------------------

TEST_CASE("l3: put, get, overwrite and erase, before and after commit") {
  temp_dir d;
  fake_clock clk;
  auto t = must_open(small_config(d.env()), clk);
  uint64_t now = clk.now_ms();
  CHECK(!get_ok(*t, "a", now));
  REQUIRE(t->put(make("a", "1"), now).ok());
  CHECK(t->pending() == 1);
  auto e = get_ok(*t, "a", now);
  REQUIRE(e);
  CHECK(e->value == "1");
  CHECK(e->ver == version{1, 7});
  REQUIRE(t->put(make("a", "2", 0, 2), now).ok());
  CHECK(t->pending() == 1); // same key: one pending operation
  REQUIRE(t->sync().ok());
  CHECK(t->pending() == 0);
  CHECK(get_ok(*t, "a", now)->value == "2");
  REQUIRE(t->put(make("a", "3", 0, 3), now).ok());
  CHECK(get_ok(*t, "a", now)->value == "3"); // pending shadows committed
  REQUIRE(t->sync().ok());
  CHECK(get_ok(*t, "a", now)->value == "3");
  auto er = t->erase("a");
  REQUIRE(er.ok());
  CHECK(*er);
  CHECK(!get_ok(*t, "a", now)); // pending delete shadows committed value
  REQUIRE(t->sync().ok());
  CHECK(!get_ok(*t, "a", now));
  er = t->erase("a");
  REQUIRE(er.ok());
  CHECK(!*er);
  auto s = t->stats();
  CHECK(s.hits == 4);
  CHECK(s.misses == 3);
  CHECK(s.puts == 3);
  CHECK(s.erases == 1);
  CHECK(s.entries == 0);
}

TEST_CASE("l3: put_view reads its key and value in place until the batch is committed") {
  // (the L3 actor's packed writes: actors/store.cpp hands each batch's
  // chunks to keep_buffers after its last put_view)
  temp_dir d;
  fake_clock clk;
  std::map<std::string, std::string> want;
  {
    auto t = must_open(small_config(d.env()), clk); // a commit every 8 writes
    const uint64_t now = clk.now_ms();
    std::vector<std::string> bufs(1);
    bufs[0].reserve(64 * 1024);
    auto put = [&](const std::string& k, const std::string& v, uint64_t expiry, uint64_t hlc) {
      std::string& c = bufs[0];
      const char* at = c.data() + c.size();
      c.append(k).append(v);
      entry meta = make("", "", expiry, hlc);
      meta.flags = entry_flags::compressed;
      REQUIRE(t->put_view(meta, {at, k.size()}, {at + k.size(), v.size()}, now).ok());
    };
    std::string long_key(600, 'L'); // stored with its key in the record
    for (int i = 0; i < 11; ++i) {  // the 8th write commits inside put_view
      std::string k = i == 5 ? long_key : "k" + std::to_string(i % 9); // k0, k1 twice
      std::string v = i == 3 ? std::string{} : std::string(10 + i * 7, static_cast<char>('a' + i));
      put(k, v, 0, 10 + i);
      want[k] = v;
    }
    put("gone", "short-lived", now + 5, 30);
    CHECK(t->pending() == 4); // k8, k0, k1, gone
    // reads see the pending views before the buffers are handed over
    auto e = get_ok(*t, "k1", now);
    REQUIRE(e);
    CHECK(e->key == "k1");
    CHECK(e->value == want["k1"]);
    CHECK(e->ver == version{20, 7});
    CHECK(e->flags == entry_flags::compressed);
    t->keep_buffers(std::move(bufs));
    REQUIRE(t->put(make("k0", "owned", 0, 40), now).ok()); // a put replaces a view
    want["k0"] = "owned";
    clk.advance_ms(10);
    CHECK(!get_ok(*t, "gone", clk.now_ms())); // an expired view becomes a delete
    std::vector<std::string> empty_bufs(1, std::string(100, 'x'));
    auto got = get_ok(*t, "k8", clk.now_ms());
    REQUIRE(got);
    CHECK(got->value == want["k8"]);
    REQUIRE(t->sync().ok());
    CHECK(t->pending() == 0);
    t->keep_buffers(std::move(empty_bufs)); // nothing pending: dropped
  }
  auto t = must_open(small_config(d.env()), clk);
  for (const auto& kv : want) {
    auto e = get_ok(*t, kv.first, clk.now_ms());
    REQUIRE_MESSAGE(e, "missing: key of " << kv.first.size() << " bytes");
    CHECK(e->key == kv.first);
    CHECK(e->value == kv.second);
  }
  CHECK(!get_ok(*t, "gone", clk.now_ms()));
  CHECK(t->stats().entries == want.size());
}

TEST_CASE("l3: flags, versions and empty values round-trip") {
  temp_dir d;
  fake_clock clk;
  {
    auto t = must_open(small_config(d.env()), clk);
    entry e = make("tomb", "", 0, version::make_hlc(123456, 9));
    e.flags = entry_flags::tombstone | entry_flags::compressed;
    e.ver.node = 0xfeedbeef;
    REQUIRE(t->put(e, clk.now_ms()).ok());
    std::string bin(256, '\0');
    for (int i = 0; i < 256; ++i)
      bin[i] = static_cast<char>(i);
    REQUIRE(t->put(make(bin, bin), clk.now_ms()).ok());
  }
  auto t = must_open(small_config(d.env()), clk);
  // a tombstone record is invisible to reads, visible to replication
  CHECK_FALSE(get_ok(*t, "tomb", clk.now_ms()).has_value());
  auto got = t->get_versioned("tomb");
  REQUIRE(got.ok());
  auto e = *got;
  REQUIRE(e);
  CHECK(e->is_tombstone());
  CHECK(e->flags == (entry_flags::tombstone | entry_flags::compressed));
  CHECK(e->ver == version{version::make_hlc(123456, 9), 0xfeedbeef});
  CHECK(e->value.empty());
  std::string bin(256, '\0');
  for (int i = 0; i < 256; ++i)
    bin[i] = static_cast<char>(i);
  CHECK(get_ok(*t, bin, clk.now_ms())->value == bin);
}

TEST_CASE("l3: expiry is lazy on read, pending or committed") {
  temp_dir d;
  fake_clock clk;
  auto t = must_open(small_config(d.env()), clk);
  uint64_t now = clk.now_ms();
  REQUIRE(t->put(make("p", "v", now + 100), now).ok());
  REQUIRE(t->put(make("c", "v", now + 100), now).ok());
  REQUIRE(t->put(make("forever", "v"), now).ok());
  REQUIRE(t->sync().ok());
  REQUIRE(t->put(make("p", "v2", now + 100), now).ok()); // p pending again
  CHECK(get_ok(*t, "p", now + 99));
  CHECK(get_ok(*t, "c", now + 99));
  clk.advance_ms(100);
  CHECK(!get_ok(*t, "p", clk.now_ms()));
  CHECK(!get_ok(*t, "c", clk.now_ms()));
  CHECK(get_ok(*t, "forever", clk.now_ms()));
  CHECK(t->stats().expirations == 2);
  REQUIRE(t->sync().ok());
  CHECK(t->stats().entries == 1); // both removed from disk
  // erase of an expired entry reports it was not there
  REQUIRE(t->put(make("x", "v", clk.now_ms() + 1), clk.now_ms()).ok());
  REQUIRE(t->sync().ok());
  clk.advance_ms(5);
  auto er = t->erase("x");
  REQUIRE(er.ok());
  CHECK(!*er);
}

TEST_CASE("l3: sweep_expired removes expired entries in bounded steps that resume") {
  temp_dir d;
  fake_clock clk;
  auto cfg = small_config(d.env());
  cfg.batch_max_writes = 1000;
  auto t = must_open(cfg, clk);
  uint64_t now = clk.now_ms();
  for (int i = 0; i < 50; ++i)
    REQUIRE(t->put(make("e" + std::to_string(i), "v", now + 10 + i), now).ok());
  for (int i = 0; i < 20; ++i)
    REQUIRE(t->put(make("k" + std::to_string(i), "v"), now).ok());
  REQUIRE(t->sync().ok());
  CHECK(t->stats().entries == 70);
  CHECK(t->sweep_expired(now + 5, 100) == 0); // nothing due yet
  uint64_t later = now + 10 + 29;             // e0..e29 have expired
  CHECK(t->sweep_expired(later, 7) == 7);
  CHECK(t->stats().entries == 63);
  CHECK(t->sweep_expired(later, 10) == 10);
  CHECK(t->sweep_expired(later, 100) == 13); // resumes, stops at the first live one
  CHECK(t->sweep_expired(later, 100) == 0);
  CHECK(t->stats().entries == 40);
  CHECK(t->stats().expirations == 30);
  CHECK(get_ok(*t, "e30", later));
  CHECK(get_ok(*t, "k0", later));
  // an overwrite without expiry takes the key out of the expiry order
  REQUIRE(t->put(make("e31", "kept"), later).ok());
  REQUIRE(t->sync().ok());
  CHECK(t->sweep_expired(now + 1000, 1000) == 19);
  CHECK(get_ok(*t, "e31", now + 1000)->value == "kept");
  CHECK(t->stats().entries == 21);
}

TEST_CASE("l3: group commit at batch_max_writes and after batch_max_ms") {
  temp_dir d;
  fake_clock clk;
  auto cfg = small_config(d.env());
  cfg.batch_max_writes = 4;
  cfg.batch_max_ms = 10;
  auto t = must_open(cfg, clk);
  uint64_t c0 = t->commits();
  uint64_t now = clk.now_ms();
  CHECK(!t->flush_due_in(now));
  for (int i = 0; i < 3; ++i)
    REQUIRE(t->put(make("k" + std::to_string(i), "v"), now).ok());
  CHECK(t->pending() == 3);
  CHECK(t->commits() == c0);
  REQUIRE(t->put(make("k3", "v"), now).ok()); // the 4th write commits the batch
  CHECK(t->pending() == 0);
  CHECK(t->commits() == c0 + 1);
  CHECK(t->stats().entries == 4);
  // eight more writes: exactly two more commits
  for (int i = 4; i < 12; ++i)
    REQUIRE(t->put(make("k" + std::to_string(i), "v"), now).ok());
  CHECK(t->commits() == c0 + 3);
  // time-based flush
  REQUIRE(t->put(make("late", "v"), now).ok());
  CHECK(*t->flush_due_in(now) == 10);
  CHECK(*t->flush_due_in(now + 4) == 6);
  REQUIRE(t->maybe_flush(now + 9).ok());
  CHECK(t->pending() == 1);
  CHECK(t->commits() == c0 + 3);
  REQUIRE(t->maybe_flush(now + 10).ok());
  CHECK(t->pending() == 0);
  CHECK(t->commits() == c0 + 4);
  CHECK(!t->flush_due_in(now + 10));
  REQUIRE(t->maybe_flush(now + 100).ok()); // nothing pending: no commit
  CHECK(t->commits() == c0 + 4);
  // erases batch the same way
  for (int i = 0; i < 4; ++i)
    REQUIRE(t->erase("k" + std::to_string(i)).ok());
  CHECK(t->commits() == c0 + 5);
  CHECK(t->stats().entries == 9);
}

TEST_CASE("l3: sync_mode commits every write") {
  temp_dir d;
  fake_clock clk;
  auto cfg = small_config(d.env());
  cfg.sync_mode = true;
  cfg.batch_max_writes = 100;
  {
    auto t = must_open(cfg, clk);
    uint64_t c0 = t->commits();
    for (int i = 0; i < 5; ++i) {
      REQUIRE(t->put(make("s" + std::to_string(i), "v"), clk.now_ms()).ok());
      CHECK(t->pending() == 0);
      CHECK(t->commits() == c0 + i + 1);
    }
    REQUIRE(t->erase("s0").ok());
    CHECK(t->pending() == 0);
  }
  cfg.sync_mode = false;
  auto t = must_open(cfg, clk);
  CHECK(!get_ok(*t, "s0", clk.now_ms()));
  CHECK(get_ok(*t, "s4", clk.now_ms()));
}

TEST_CASE("l3: stats().entries follows the pending batch between commits") {
  // stats() keeps the pending batch's live-entry change as the batch grows
  // (each key looked up once per commit window): it must equal a model at
  // every call, across overwrites, deletes, re-puts and commits.
  temp_dir d;
  fake_clock clk;
  auto cfg = small_config(d.env());
  cfg.batch_max_writes = 150;
  std::set<std::string> model;
  std::mt19937_64 rng(7);
  auto t = must_open(cfg, clk);
  for (int i = 0; i < 3000; ++i) {
    std::string k = "key" + std::to_string(rng() % 200);
    if (rng() % 4 == 0) {
      REQUIRE(t->erase(k).ok());
      model.erase(k);
    } else {
      REQUIRE(t->put(make(k, "v" + std::to_string(i)), clk.now_ms()).ok());
      model.insert(k);
    }
    if (rng() % 7 == 0)
      REQUIRE(t->stats().entries == model.size());
  }
  CHECK(t->stats().entries == model.size());
  REQUIRE(t->sync().ok());
  CHECK(t->stats().entries == model.size());
}

TEST_CASE("l3: stats().entries drops a pending put that a read found expired") {
  // get() turns an expired pending put into a pending delete: the exact
  // count (DBSIZE) must follow at once, not only after the next commit. Both
  // kinds of key: new to L3 (the put counted +1, the delete 0) and committed
  // before (the put counted 0, the delete -1).
  temp_dir d;
  fake_clock clk;
  auto cfg = small_config(d.env());
  cfg.batch_max_writes = 1000;
  auto t = must_open(cfg, clk);
  uint64_t now = clk.now_ms();
  REQUIRE(t->put(make("keep", "v"), now).ok());
  REQUIRE(t->put(make("old", "v", now + 10), now).ok());
  REQUIRE(t->sync().ok());
  REQUIRE(t->put(make("old", "v2", now + 10), now).ok()); // pending, committed before
  REQUIRE(t->put(make("new", "v", now + 10), now).ok());  // pending, new to L3
  CHECK(t->stats().entries == 3);                         // each pending key looked up once
  clk.advance_ms(10);
  CHECK(!get_ok(*t, "new", clk.now_ms()));
  CHECK(t->stats().entries == 2);
  CHECK(!get_ok(*t, "old", clk.now_ms()));
  CHECK(t->stats().entries == 1);
  REQUIRE(t->sync().ok());
  CHECK(t->stats().entries == 1);
  CHECK(t->quick_stats().entries == 1);
}

TEST_CASE("l3: quick_stats() estimates the pending batch from the last commit, exact after it") {
  // quick_stats() looks no pending key up: committed records plus the
  // pending keys times the last commit's net change per key. stats() stays
  // exact throughout (DBSIZE).
  temp_dir d;
  fake_clock clk;
  auto cfg = small_config(d.env());
  cfg.batch_max_writes = 1000;
  auto t = must_open(cfg, clk);
  auto put_range = [&](int from, int to, const std::string& v) {
    for (int i = from; i < to; ++i)
      REQUIRE(t->put(make("k" + std::to_string(i), v), clk.now_ms()).ok());
  };
  put_range(0, 100, "a");
  CHECK(t->quick_stats().entries == 100); // no commit yet: every key counts as new
  CHECK(t->stats().entries == 100);
  REQUIRE(t->sync().ok());
  CHECK(t->quick_stats().entries == 100);
  // the last commit added a record per key: 20 pending keys count 20 more,
  // although 10 of them are overwrites
  put_range(90, 110, "b");
  CHECK(t->quick_stats().entries == 120);
  CHECK(t->stats().entries == 110);
  REQUIRE(t->sync().ok()); // 10 new of 20 keys: half a record per key
  CHECK(t->quick_stats().entries == 110);
  CHECK(t->stats().entries == 110);
  put_range(0, 40, "c"); // overwrites only
  CHECK(t->quick_stats().entries == 130);
  CHECK(t->stats().entries == 110);
  REQUIRE(t->sync().ok()); // no new record
  CHECK(t->quick_stats().entries == 110);
  put_range(0, 30, "d");
  CHECK(t->quick_stats().entries == 110);
  // deletes that find their record: a negative change per key
  REQUIRE(t->sync().ok());
  for (int i = 0; i < 10; ++i)
    REQUIRE(t->erase("k" + std::to_string(i)).ok());
  CHECK(t->stats().entries == 100);
  REQUIRE(t->sync().ok());
  CHECK(t->quick_stats().entries == 100);
  for (int i = 10; i < 20; ++i)
    REQUIRE(t->erase("k" + std::to_string(i)).ok());
  CHECK(t->quick_stats().entries == 90);
  CHECK(t->stats().entries == 90);
  CHECK(t->quick_stats().bytes == t->stats().bytes);
}

TEST_CASE("l3: reopen after a clean close shows every write, pending ones included") {
  temp_dir d;
  fake_clock clk;
  auto cfg = small_config(d.env());
  cfg.batch_max_writes = 64;
  cfg.fsync_batches = true;
  std::map<std::string, std::string> model;
  std::mt19937_64 rng(42);
  {
    auto t = must_open(cfg, clk);
    for (int i = 0; i < 1000; ++i) {
      std::string k = "key" + std::to_string(rng() % 300);
      if (rng() % 5 == 0) {
        REQUIRE(t->erase(k).ok());
        model.erase(k);
      } else {
        std::string v(rng() % 3000, static_cast<char>('a' + i % 26));
        REQUIRE(t->put(make(k, v), clk.now_ms()).ok());
        model[k] = v;
      }
    }
    CHECK(t->pending() > 0); // the destructor must commit these
  }
  auto t = must_open(cfg, clk);
  CHECK(t->stats().entries == model.size());
  for (int i = 0; i < 300; ++i) {
    std::string k = "key" + std::to_string(i);
    auto e = get_ok(*t, k, clk.now_ms());
    auto it = model.find(k);
    REQUIRE(e.has_value() == (it != model.end()));
    if (e)
      CHECK(e->value == it->second);
  }
  // for_each walks committed entries in key order
  std::vector<std::string> keys;
  REQUIRE(t->for_each([&](const entry& e) {
             keys.push_back(e.key);
             return true;
           }).ok());
  std::vector<std::string> want;
  for (auto& kv : model)
    want.push_back(kv.first);
  CHECK(keys == want);
  size_t seen = 0;
  REQUIRE(t->for_each([&](const entry&) { return ++seen < 3; }).ok());
  CHECK(seen == 3);
}

TEST_CASE("l3: clear drops everything, also across reopen") {
  temp_dir d;
  fake_clock clk;
  {
    auto t = must_open(small_config(d.env()), clk);
    for (int i = 0; i < 20; ++i)
      REQUIRE(t->put(make("c" + std::to_string(i), "v", clk.now_ms() + 50), clk.now_ms()).ok());
    REQUIRE(t->clear().ok());
    CHECK(t->pending() == 0);
    CHECK(!get_ok(*t, "c1", clk.now_ms()));
    CHECK(t->stats().entries == 0);
    CHECK(t->budget_bytes_used() == 0);
    CHECK(t->sweep_expired(clk.now_ms() + 100, 100) == 0);
  }
  auto t = must_open(small_config(d.env()), clk);
  CHECK(t->stats().entries == 0);
}

// -- limits --------------------------------------------------------------------------

TEST_CASE("l3: a 64 KiB key and a 64 MiB value round-trip; oversize is refused") {
  temp_dir d;
  fake_clock clk;
  auto cfg = small_config(d.env());
  cfg.map_size = 512ull << 20;
  std::string big_key(64 * 1024, 'k');
  big_key.back() = 'z';
  std::string big_val(64ull << 20, '\0');
  for (size_t i = 0; i < big_val.size(); i += 4096)
    big_val[i] = static_cast<char>(i / 4096);
  {
    auto t = must_open(cfg, clk);
    REQUIRE(t->put(make(big_key, big_val), clk.now_ms()).ok());
    // a second long key sharing the same 464-byte prefix stays distinct
    std::string other = big_key;
    other.back() = 'y';
    REQUIRE(t->put(make(other, "other"), clk.now_ms()).ok());
    REQUIRE(t->sync().ok());
    auto e = get_ok(*t, big_key, clk.now_ms());
    REQUIRE(e);
    CHECK(e->value.size() == big_val.size());
    CHECK(e->value == big_val);
    CHECK(get_ok(*t, other, clk.now_ms())->value == "other");
    auto r1 = t->put(make(std::string(64 * 1024 + 1, 'k'), "v"), clk.now_ms());
    CHECK(r1.code() == errc::key_too_large);
    auto r2 = t->put(make("v", std::string((64ull << 20) + 1, 'v')), clk.now_ms());
    CHECK(r2.code() == errc::value_too_large);
    CHECK(t->pending() == 0);
  }
  auto t = must_open(cfg, clk);
  auto e = get_ok(*t, big_key, clk.now_ms());
  REQUIRE(e);
  CHECK(e->value == big_val);
  std::vector<size_t> sizes;
  REQUIRE(t->for_each([&](const entry& x) {
             sizes.push_back(x.key.size());
             return true;
           }).ok());
  CHECK(sizes == std::vector<size_t>{64 * 1024, 64 * 1024});
  auto er = t->erase(big_key);
  REQUIRE(er.ok());
  CHECK(*er);
  REQUIRE(t->sync().ok());
  CHECK(!get_ok(*t, big_key, clk.now_ms()));
  CHECK(t->stats().entries == 1);
}

TEST_CASE("l3: keys around the hashed-key boundary stay distinct and ordered") {
  temp_dir d;
  fake_clock clk;
  auto t = must_open(small_config(d.env()), clk);
  std::map<std::string, std::string> model;
  for (size_t n : {size_t{1}, size_t{463}, size_t{464}, size_t{465}, size_t{479}, size_t{480},
                   size_t{481}, size_t{511}, size_t{512}, size_t{4000}}) {
    std::string k(n, 'p');
    model[k] = "len" + std::to_string(n);
    REQUIRE(t->put(make(k, model[k]), clk.now_ms()).ok());
  }
  REQUIRE(t->sync().ok());
  for (auto& [k, v] : model)
    CHECK(get_ok(*t, k, clk.now_ms())->value == v);
  CHECK(t->stats().entries == model.size());
}

// -- durability across SIGKILL -------------------------------------------------------

namespace {

constexpr int kill_keys = 400;
constexpr int kill_batch = 40; // 39 data keys + "__last"

std::string kill_value(uint64_t b, int i) {
  std::string v = "b" + std::to_string(b) + "i" + std::to_string(i) + ":";
  v.resize(200 + (b * 131 + static_cast<uint64_t>(i) * 17) % 6000,
           static_cast<char>('a' + (b + i) % 26));
  return v;
}
std::string kill_key(uint64_t b, int i) {
  return "k" + std::to_string((b * 17 + static_cast<uint64_t>(i)) % kill_keys);
}

// Kill points. LMDB (liblmdb.so) writes its pages and meta page with pwrite,
// write and writev. This test binary defines those three functions, so the
// dynamic linker binds LMDB's calls to them (the executable's symbols come
// first). Once armed in a child, they raise SIGKILL right before the N-th
// write system call: the child dies at an exact point inside a commit (after
// some data pages, or after all data pages but before the meta page), which a
// timer-driven kill from the parent could only hit by luck. Unarmed, they
// pass straight through to the system call.
int g_kill_at_write = 0; // 0 = disarmed
int g_writes = 0;
int g_report_fd = -1; // the report pipe does not count

void count_write(int fd) {
  if (g_kill_at_write > 0 && fd != g_report_fd && ++g_writes >= g_kill_at_write)
    ::raise(SIGKILL);
}

} // namespace

extern "C" ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  count_write(fd);
  return ::syscall(SYS_pwrite64, fd, buf, n, off);
}
extern "C" ssize_t write(int fd, const void* buf, size_t n) {
  count_write(fd);
  return ::syscall(SYS_write, fd, buf, n);
}
extern "C" ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  count_write(fd);
  return ::syscall(SYS_writev, fd, iov, cnt);
}

namespace {

/// The child: writes batches; reports each committed batch number on `out`;
/// arms the kill point when batch `kill_batch_no` starts.
[[noreturn]] void kill_child(const std::string& dir, int out, uint64_t kill_batch_no,
                             int kill_at_write) {
  g_report_fd = out;
  auto r = l3_lmdb::open(
      [&] {
        l3_config c;
        c.path = dir;
        c.map_size = 256ull << 20;
        c.batch_max_writes = kill_batch;
        c.batch_max_ms = 1'000'000;
        c.fsync_batches = kill_at_write % 2 == 0; // both flag sets
        return c;
      }(),
      real_clock::instance());
  if (!r)
    ::_exit(3);
  auto& t = **r;
  for (uint64_t b = 0; b < kill_batch_no + 1000; ++b) {
    if (b == kill_batch_no)
      g_kill_at_write = kill_at_write;
    for (int i = 0; i < kill_batch - 1; ++i) {
      entry e;
      e.key = kill_key(b, i);
      e.value = kill_value(b, i);
      e.ver = version{b + 1, 1};
      if (!t.put(std::move(e), 0))
        ::_exit(4);
    }
    entry last;
    last.key = "__last";
    last.value = std::to_string(b);
    if (!t.put(std::move(last), 0) || t.pending() != 0) // this put commits the batch
      ::_exit(5);
    if (::write(out, &b, sizeof b) != static_cast<ssize_t>(sizeof b))
      ::_exit(6);
  }
  ::_exit(8); // never killed: the kill point was not reached
}

} // namespace

TEST_CASE("l3: killed at any write of a commit, reopen shows every committed batch, whole") {
  int lost_batch = 0, kept_batch = 0;
  for (uint64_t kb : {uint64_t{0}, uint64_t{1}, uint64_t{4}}) {
    for (int w : {1, 2, 3, 4, 6, 9, 14, 30}) {
      CAPTURE(kb);
      CAPTURE(w);
      temp_dir d;
      int up[2];
      REQUIRE(::pipe(up) == 0);
      pid_t pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        ::close(up[0]);
        kill_child(d.env(), up[1], kb, w);
      }
      ::close(up[1]);
      int64_t last_reported = -1;
      uint64_t b;
      while (::read(up[0], &b, sizeof b) == static_cast<ssize_t>(sizeof b))
        last_reported = static_cast<int64_t>(b);
      ::close(up[0]);
      int wst = 0;
      ::waitpid(pid, &wst, 0);
      REQUIRE(WIFSIGNALED(wst)); // killed at the write, not failed on its own
      CHECK(WTERMSIG(wst) == SIGKILL);
      CHECK(last_reported >= static_cast<int64_t>(kb) - 1);

      fake_clock clk;
      auto cfg = small_config(d.env());
      cfg.map_size = 256ull << 20;
      auto t = must_open(cfg, clk);
      auto last = get_ok(*t, "__last", clk.now_ms());
      int64_t committed = last ? std::stoll(last->value) : -1;
      CHECK(committed >= last_reported); // every reported batch is there
      if (committed < static_cast<int64_t>(kb))
        ++lost_batch; // died inside batch kb's commit
      else
        ++kept_batch; // batch kb's commit completed before the kill point
      // the store equals the model after batches 0..committed: each batch is
      // all or nothing, no torn values
      std::map<std::string, std::pair<uint64_t, int>> model;
      for (int64_t bb = 0; bb <= committed; ++bb)
        for (int i = 0; i < kill_batch - 1; ++i)
          model[kill_key(static_cast<uint64_t>(bb), i)] = {static_cast<uint64_t>(bb), i};
      size_t bad = 0;
      for (int k = 0; k < kill_keys; ++k) {
        std::string key = "k" + std::to_string(k);
        auto e = get_ok(*t, key, clk.now_ms());
        auto it = model.find(key);
        if (e.has_value() != (it != model.end())) {
          ++bad;
          continue;
        }
        if (e && (e->value != kill_value(it->second.first, it->second.second) ||
                  e->ver.hlc != it->second.first + 1))
          ++bad;
      }
      CHECK(bad == 0);
      CHECK(t->stats().entries == model.size() + (committed >= 0 ? 1 : 0));
      // and the reopened environment takes new writes
      REQUIRE(t->put(make("after", "kill"), clk.now_ms()).ok());
      REQUIRE(t->sync().ok());
    }
  }
  // both sides of the commit point were hit
  CHECK(lost_batch > 0);
  CHECK(kept_batch > 0);
}

// -- corrupt and foreign files -------------------------------------------------------

TEST_CASE("l3: a data.mdb of random bytes is refused with a clear error") {
  temp_dir d;
  fake_clock clk;
  fs::create_directories(d.env());
  std::mt19937_64 rng(7);
  std::string junk(64 * 1024, '\0');
  for (auto& c : junk)
    c = static_cast<char>(rng());
  write_file(d.env() + "/data.mdb", junk);
  auto r = l3_lmdb::open(small_config(d.env()), clk);
  REQUIRE(!r.ok());
  CHECK((r.code() == errc::foreign_file || r.code() == errc::corrupt));
  CHECK(r.err().message.find("data.mdb") != std::string::npos);
  CHECK(read_file(d.env() + "/data.mdb") == junk); // untouched
}

TEST_CASE("l3: a file of another program is foreign_file") {
  temp_dir d;
  fake_clock clk;
  fs::create_directories(d.env());
  std::string sqlite = std::string("SQLite format 3") + '\0' + std::string(8192, '\x01');
  write_file(d.env() + "/data.mdb", sqlite);
  auto r = l3_lmdb::open(small_config(d.env()), clk);
  REQUIRE(!r.ok());
  CHECK(r.code() == errc::foreign_file);
  CHECK(r.err().message.find("not a kura L3 file") != std::string::npos);
  // a copy of an executable
  fs::copy_file("/bin/sh", d.env() + "/data.mdb", fs::copy_options::overwrite_existing);
  r = l3_lmdb::open(small_config(d.env()), clk);
  REQUIRE(!r.ok());
  CHECK(r.code() == errc::foreign_file);
}

TEST_CASE("l3: an LMDB environment of another program is foreign_file") {
  temp_dir d;
  fake_clock clk;
  fs::create_directories(d.env());
  {
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    REQUIRE(mdb_env_open(env, d.env().c_str(), 0, 0644) == 0);
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    MDB_dbi dbi;
    REQUIRE(mdb_dbi_open(txn, nullptr, 0, &dbi) == 0);
    std::string k = "user:1", v = "alice";
    MDB_val kv{k.size(), k.data()}, vv{v.size(), v.data()};
    REQUIRE(mdb_put(txn, dbi, &kv, &vv, 0) == 0);
    REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
  }
  std::string before = read_file(d.env() + "/data.mdb");
  auto r = l3_lmdb::open(small_config(d.env()), clk);
  REQUIRE(!r.ok());
  CHECK(r.code() == errc::foreign_file);
  CHECK(r.err().message.find("another program") != std::string::npos);
  CHECK(read_file(d.env() + "/data.mdb") == before); // not modified
}

TEST_CASE("l3: a truncated data.mdb is corrupt, never a crash") {
  temp_dir d;
  fake_clock clk;
  auto cfg = small_config(d.env());
  {
    auto t = must_open(cfg, clk);
    for (int i = 0; i < 2000; ++i)
      REQUIRE(t->put(make("t" + std::to_string(i), std::string(500, 'x')), clk.now_ms()).ok());
  }
  std::string full = read_file(d.env() + "/data.mdb");
  REQUIRE(full.size() > 3 * 4096);
  for (size_t cut :
       {size_t{100}, size_t{4096 + 100}, size_t{3 * 4096}, full.size() / 2, full.size() - 4096}) {
    CAPTURE(cut);
    write_file(d.env() + "/data.mdb", full.substr(0, cut));
    auto r = l3_lmdb::open(cfg, clk);
    REQUIRE(!r.ok());
    CHECK(r.code() == errc::corrupt);
    CHECK(r.err().message.find("data.mdb") != std::string::npos);
  }
  write_file(d.env() + "/data.mdb", full); // restored: opens again
  auto t = must_open(cfg, clk);
  CHECK(get_ok(*t, "t1999", clk.now_ms())->value == std::string(500, 'x'));
}

TEST_CASE("l3: a directory that is not writable gives io_error") {
  temp_dir d;
  fake_clock clk;
  fs::path ro = d.path / "ro";
  fs::create_directories(ro);
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec, fs::perm_options::replace);
  bool immutable = false;
  if (::geteuid() == 0) // root ignores modes; make it immutable instead
    immutable = run("chattr +i " + ro.string() + " 2>/dev/null").first == 0;
  std::string dir = (::geteuid() != 0 || immutable) ? ro.string() : std::string{"/proc/self"};
  auto r = l3_lmdb::open(small_config(dir), clk);
  if (immutable)
    (void)run("chattr -i " + ro.string());
  REQUIRE(!r.ok());
  CHECK(r.code() == errc::io_error);
  CHECK(r.err().message.find(dir) != std::string::npos);
  // and below it, a directory that cannot be created
  r = l3_lmdb::open(small_config((fs::path{"/proc/self"} / "l3").string()), clk);
  REQUIRE(!r.ok());
  CHECK(r.code() == errc::io_error);
  // a path that is a file
  write_file((d.path / "file").string(), "x");
  r = l3_lmdb::open(small_config((d.path / "file").string()), clk);
  REQUIRE(!r.ok());
  CHECK(r.code() == errc::invalid_argument);
}

TEST_CASE("l3: mdb_stat reads the environment") {
  temp_dir d;
  fake_clock clk;
  {
    auto t = must_open(small_config(d.env()), clk);
    for (int i = 0; i < 100; ++i)
      REQUIRE(
          t->put(make("m" + std::to_string(i), "v", i % 2 ? clk.now_ms() + 1000 : 0), clk.now_ms())
              .ok());
    REQUIRE(t->sync().ok());
    // also while open (LMDB allows concurrent readers)
    auto [rc, out] = run("mdb_stat -s kura.main " + d.env() + " 2>&1");
    CHECK(rc == 0);
    CHECK(out.find("Entries: 100") != std::string::npos);
  }
  auto [rc, out] = run("mdb_stat -a " + d.env() + " 2>&1");
  const std::string& stat_out = out; // INFO's lambda cannot capture a structured binding
  INFO(stat_out);
  CHECK(rc == 0);
  for (const char* db : {"kura.main", "kura.exp", "kura.meta"})
    CHECK(out.find(db) != std::string::npos);
  CHECK(out.find("kura.seq") == std::string::npos); // kura-l3 5: no second B-tree per write
  auto [rc2, out2] = run("mdb_stat -s kura.exp " + d.env() + " 2>&1");
  CHECK(rc2 == 0);
  CHECK(out2.find("Entries: 50") != std::string::npos);
}

// -- space -----------------------------------------------------------------------------

TEST_CASE("l3: a full map refuses the write with out_of_space and loses nothing accepted") {
  temp_dir d;
  fake_clock clk;
  auto cfg = small_config(d.env());
  cfg.map_size = 256 * 1024;
  cfg.max_bytes = 1ull << 30; // the budget would allow more: the map is the limit
  cfg.batch_max_writes = 4;
  std::map<std::string, std::string> accepted;
  status last;
  {
    auto t = must_open(cfg, clk);
    int i = 0;
    for (; i < 1000; ++i) {
      std::string k = "f" + std::to_string(i);
      std::string v(3000, static_cast<char>('a' + i % 26));
      last = t->put(make(k, v), clk.now_ms());
      if (!last)
        break;
      accepted[k] = v;
    }
    REQUIRE(!last.ok());
    CHECK(last.code() == errc::out_of_space);
    CHECK(last.message().find("map") != std::string::npos);
    CHECK(t->pending() == 3); // the refused write was taken back out of the batch
    // every accepted write is still readable, pending ones included
    for (auto& [k, v] : accepted)
      CHECK(get_ok(*t, k, clk.now_ms())->value == v);
    CHECK(!get_ok(*t, "f" + std::to_string(i), clk.now_ms()));
    // erasing makes room: the pending batch commits again
    for (int j = 0; j < 20; ++j) {
      auto er = t->erase("f" + std::to_string(j));
      REQUIRE(er.ok());
      CHECK(*er);
      accepted.erase("f" + std::to_string(j));
    }
    REQUIRE(t->sync().ok());
    REQUIRE(t->sync().ok()); // freed pages are reusable after the next commit
    CHECK(t->put(make("after", "room"), clk.now_ms()).ok());
    accepted["after"] = "room";
    REQUIRE(t->sync().ok());
  }
  auto t = must_open(cfg, clk);
  for (auto& [k, v] : accepted)
    CHECK(get_ok(*t, k, clk.now_ms())->value == v);
  CHECK(t->stats().entries == accepted.size());
}

TEST_CASE("l3: an entry that can never fit is refused; the map grows up to map_size_max") {
  temp_dir d;
  fake_clock clk;
  auto cfg = small_config(d.env());
  cfg.map_size = 256 * 1024;
  cfg.map_size_max = 4ull << 20;
  cfg.max_bytes = 1ull << 30;
  cfg.batch_max_writes = 1;
  auto t = must_open(cfg, clk);
  for (int i = 0; i < 300; ++i) // ~1 MB: needs growth twice or more
    REQUIRE(t->put(make("g" + std::to_string(i), std::string(3000, 'g')), clk.now_ms()).ok());
  CHECK(t->map_size() > cfg.map_size);
  CHECK(t->map_size() <= cfg.map_size_max);
  auto r = t->put(make("huge", std::string(8ull << 20, 'h')), clk.now_ms());
  CHECK(r.code() == errc::out_of_space);
  CHECK(!get_ok(*t, "huge", clk.now_ms()));
  CHECK(get_ok(*t, "g299", clk.now_ms()));
  CHECK(t->pending() == 0);
}

TEST_CASE("l3: over the size budget the oldest-written entries go to the listener") {
  temp_dir d;
  fake_clock clk;
  auto cfg = small_config(d.env());
  cfg.max_bytes = 64 * 1024;
  cfg.batch_max_writes = 10;
  auto t = must_open(cfg, clk);
  std::vector<entry> evicted;
  t->set_eviction_listener([&](entry&& e) { evicted.push_back(std::move(e)); });
  for (int i = 0; i < 200; ++i)
    REQUIRE(
        t->put(make("b" + std::to_string(i), std::string(1000, 'b'), 0, i + 1), clk.now_ms()).ok());
  REQUIRE(t->sync().ok());
  REQUIRE(!evicted.empty());
  CHECK(t->budget_bytes_used() <= cfg.max_bytes * 2 / 3);
  // real pages track the budget; loosely here: 1 KB records fit at most three
  // to a 4 KiB page, and a tiny environment has ~8 pages of fixed overhead
  CHECK(t->stats().bytes <= 2 * cfg.max_bytes);
  // the victims are exactly the oldest writes, in write order, with their data
  for (size_t j = 0; j < evicted.size(); ++j) {
    CHECK(evicted[j].key == "b" + std::to_string(j));
    CHECK(evicted[j].value == std::string(1000, 'b'));
    CHECK(evicted[j].ver.hlc == j + 1);
  }
  auto s = t->stats();
  CHECK(s.evictions == evicted.size());
  CHECK(s.entries == 200 - evicted.size());
  CHECK(s.capacity_bytes == cfg.max_bytes);
  CHECK(s.bytes > 0);
  CHECK(!get_ok(*t, "b0", clk.now_ms()));
  CHECK(get_ok(*t, "b199", clk.now_ms()));
  // an overwrite makes an entry young again
  size_t before = evicted.size();
  std::string oldest = "b" + std::to_string(before);
  REQUIRE(t->put(make(oldest, "young"), clk.now_ms()).ok());
  for (int i = 200; i < 220; ++i)
    REQUIRE(t->put(make("b" + std::to_string(i), std::string(1000, 'b')), clk.now_ms()).ok());
  REQUIRE(t->sync().ok());
  CHECK(get_ok(*t, oldest, clk.now_ms())->value == "young");
  CHECK(evicted.size() > before);
  // a single entry larger than the whole budget is refused
  CHECK(t->put(make("big", std::string(100 * 1024, 'x')), clk.now_ms()).code() ==
        errc::out_of_space);
}

TEST_CASE("l3: the footprint estimate survives reopen and stats count real pages") {
  temp_dir d;
  fake_clock clk;
  uint64_t used = 0;
  {
    auto t = must_open(small_config(d.env()), clk);
    for (int i = 0; i < 500; ++i)
      REQUIRE(t->put(make("s" + std::to_string(i), std::string(i * 10, 's')), clk.now_ms()).ok());
    REQUIRE(t->sync().ok());
    used = t->budget_bytes_used();
    CHECK(used > 500 * 2495 / 2); // at least the payload
    auto s = t->stats();
    CHECK(s.bytes % 4096 == 0);
    CHECK(s.bytes >= used / 2);
  }
  auto t = must_open(small_config(d.env()), clk);
  CHECK(t->budget_bytes_used() == used);
}

TEST_CASE("l3: corrupt records read as corrupt errors") {
  temp_dir d;
  fake_clock clk;
  // decode_record rejects short, unknown or damaged records
  CHECK(l3_format::decode_record("k", "x").code() == errc::corrupt);
  entry in = make("k", "value", 123, 456);
  std::string rec(l3_format::record_size(in), '\0');
  l3_format::encode_record(in, "k", 9, rec.data());
  auto out = l3_format::decode_record("k", rec);
  REQUIRE(out.ok());
  CHECK(*out == in);
  CHECK(l3_format::decode_record("j", rec).code() == errc::corrupt); // under another key
  for (size_t i = 0; i < rec.size(); ++i) {
    if (i >= 24 && i < 32)
      continue; // the sequence is outside the checksum (renewed by reads)
    std::string bad = rec;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    CAPTURE(i);
    CHECK(l3_format::decode_record("k", bad).code() == errc::corrupt);
  }
  // and through the tier: a record overwritten by another program
  {
    auto t = must_open(small_config(d.env()), clk);
    REQUIRE(t->put(make("victim", "v"), clk.now_ms()).ok());
  }
  {
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 8);
    REQUIRE(mdb_env_open(env, d.env().c_str(), 0, 0644) == 0);
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    MDB_dbi dbi;
    REQUIRE(mdb_dbi_open(txn, "kura.main", 0, &dbi) == 0);
    std::string k = "victim", v = "garbage";
    MDB_val kv{k.size(), k.data()}, vv{v.size(), v.data()};
    REQUIRE(mdb_put(txn, dbi, &kv, &vv, 0) == 0);
    REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
  }
  auto t = must_open(small_config(d.env()), clk);
  auto r = t->get("victim", clk.now_ms());
  REQUIRE(!r.ok());
  CHECK(r.code() == errc::corrupt);
  CHECK(r.err().message.find("shorter than its 40-byte header") != std::string::npos);
  CHECK(t->for_each([](const entry&) { return true; }).code() == errc::corrupt);
  // one bad record does not block later commits; an overwrite heals it
  REQUIRE(t->put(make("other", "fine"), clk.now_ms()).ok());
  REQUIRE(t->put(make("victim", "healed"), clk.now_ms()).ok());
  REQUIRE(t->sync().ok());
  CHECK(get_ok(*t, "victim", clk.now_ms())->value == "healed");
  CHECK(get_ok(*t, "other", clk.now_ms())->value == "fine");
}

namespace {
void raw_put(const std::string& dir, const char* db, std::string k, std::string v) {
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  mdb_env_set_maxdbs(env, 8);
  REQUIRE(mdb_env_open(env, dir.c_str(), 0, 0644) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
  MDB_dbi dbi;
  REQUIRE(mdb_dbi_open(txn, db, 0, &dbi) == 0);
  MDB_val kv{k.size(), k.data()}, vv{v.size(), v.data()};
  REQUIRE(mdb_put(txn, dbi, &kv, &vv, 0) == 0);
  REQUIRE(mdb_txn_commit(txn) == 0);
  mdb_env_close(env);
}
} // namespace

TEST_CASE("l3: stale expiry index entries never remove a live entry") {
  temp_dir d;
  fake_clock clk;
  uint64_t used = 0;
  {
    auto t = must_open(small_config(d.env()), clk);
    REQUIRE(t->put(make("a", std::string(1000, 'a'), clk.now_ms() + 100), clk.now_ms()).ok());
    REQUIRE(t->put(make("b", std::string(1000, 'b'), clk.now_ms() + 200), clk.now_ms()).ok());
    REQUIRE(t->sync().ok());
    used = t->budget_bytes_used();
  }
  // an index entry that points at "b" but names a write of "b" that is gone
  raw_put(d.env(), "kura.exp", l3_format::exp_key(clk.now_ms() + 50, 0), "b");
  auto cfg = small_config(d.env());
  cfg.max_bytes = used / 2 * 3; // estimate limit = used: the next write forces one eviction
  auto t = must_open(cfg, clk);
  std::vector<std::string> evicted;
  t->set_eviction_listener([&](entry&& e) { evicted.push_back(e.key); });
  REQUIRE(t->put(make("c", "c"), clk.now_ms()).ok());
  REQUIRE(t->sync().ok());
  CHECK(evicted == std::vector<std::string>{"a"});
  CHECK(get_ok(*t, "b", clk.now_ms()));
  // the stale expiry entry is due first: the sweep drops it, "b" stays
  CHECK(t->sweep_expired(clk.now_ms() + 60, 10) == 0);
  CHECK(get_ok(*t, "b", clk.now_ms() + 60));
  CHECK(t->sweep_expired(clk.now_ms() + 200, 10) == 1);
  CHECK(!get_ok(*t, "b", clk.now_ms() + 200));
}

TEST_CASE("l3: eviction drops expired entries instead of demoting them") {
  temp_dir d;
  fake_clock clk;
  auto cfg = small_config(d.env());
  cfg.max_bytes = 16 * 1024;
  cfg.batch_max_writes = 1;
  auto t = must_open(cfg, clk);
  std::vector<std::string> evicted;
  t->set_eviction_listener([&](entry&& e) { evicted.push_back(e.key); });
  REQUIRE(t->put(make("dies", std::string(1000, 'd'), clk.now_ms() + 10), clk.now_ms()).ok());
  REQUIRE(t->put(make("lives", std::string(1000, 'l')), clk.now_ms()).ok());
  clk.advance_ms(20); // "dies" expired, nobody swept it
  for (int i = 0; i < 30; ++i)
    REQUIRE(t->put(make("n" + std::to_string(i), std::string(1000, 'n')), clk.now_ms()).ok());
  REQUIRE(!evicted.empty());
  CHECK(evicted.front() == "lives"); // the oldest write went first, "dies" silently
  CHECK(std::find(evicted.begin(), evicted.end(), "dies") == evicted.end());
  CHECK(t->stats().evictions == evicted.size());
  CHECK(t->stats().expirations == 1);
  // without a listener evictions still happen and are counted
  t->set_eviction_listener(nullptr);
  uint64_t before = t->stats().evictions;
  for (int i = 30; i < 40; ++i)
    REQUIRE(t->put(make("n" + std::to_string(i), std::string(1000, 'n')), clk.now_ms()).ok());
  CHECK(t->stats().evictions >= before + 10);
  CHECK(t->budget_bytes_used() <= cfg.max_bytes);
}

TEST_CASE("l3: a touched read makes an entry young; touch=false does not") {
  temp_dir d;
  fake_clock clk;
  auto cfg = small_config(d.env());
  cfg.batch_max_writes = 4;
  auto t = must_open(cfg, clk);
  for (int i = 0; i < 8; ++i)
    REQUIRE(t->put(make("r" + std::to_string(i), std::string(1000, 'r'),
                        i == 0 ? clk.now_ms() + 1000 : 0),
                   clk.now_ms())
                .ok());
  REQUIRE(t->sync().ok());
  auto r0 = t->get("r0", clk.now_ms(), true);  // r0 becomes the youngest
  auto r1 = t->get("r1", clk.now_ms(), false); // r1 stays the oldest
  REQUIRE((r0.ok() && *r0 && r1.ok() && *r1));
  REQUIRE(t->put(make("w", "x"), clk.now_ms()).ok());
  REQUIRE(t->sync().ok()); // the touch rides along with this commit
  t.reset();
  // reopen with a budget that forces evictions: the order survived on disk
  std::vector<std::string> evicted;
  cfg.max_bytes = 4 * 1100;
  t = must_open(cfg, clk);
  t->set_eviction_listener([&](entry&& e) { evicted.push_back(e.key); });
  REQUIRE(t->put(make("z", "z"), clk.now_ms()).ok());
  REQUIRE(t->sync().ok());
  REQUIRE(evicted.size() >= 3);
  CHECK(evicted[0] == "r1");
  CHECK(evicted[1] == "r2");
  CHECK(std::find(evicted.begin(), evicted.end(), "r0") == evicted.end());
  // r0 kept its expiry, and the expiry index followed the new sequence
  auto e = get_ok(*t, "r0", clk.now_ms());
  REQUIRE(e);
  CHECK(e->expiry_ms == clk.now_ms() + 1000);
  CHECK(t->sweep_expired(clk.now_ms() + 1000, 10) == 1);
  CHECK(!get_ok(*t, "r0", clk.now_ms() + 1000));
  auto [rc, out] = run("mdb_stat -s kura.exp " + d.env() + " 2>&1");
  CHECK(rc == 0);
  CHECK(out.find("Entries: 0") != std::string::npos);
}

TEST_CASE("l3: byte flips anywhere in the data pages give errors, never a crash") {
  // A small environment with every record shape (short, overflow, expiring),
  // then 200 damaged copies (1-20 random bytes changed: 150 in the data
  // pages, 50 in the meta pages' fields).
  // Each copy is used in a child process: open, get every key, scan, sweep,
  // write, sync. The child must exit normally (values or error values), never
  // die of a signal. Before verify_on_open about one copy in eight crashed
  // LMDB (SIGSEGV, SIGBUS, heap corruption).
  temp_dir d;
  fake_clock clk;
  auto cfg = small_config(d.env());
  {
    auto t = must_open(cfg, clk);
    for (int i = 0; i < 1500; ++i)
      REQUIRE(t->put(make("k" + std::to_string(i),
                          std::string(static_cast<size_t>(i % 300 + (i % 50 == 0 ? 5000 : 0)), 'v'),
                          i % 3 ? 0 : clk.now_ms() + 1000),
                     clk.now_ms())
                  .ok());
  }
  std::string orig = read_file(d.env() + "/data.mdb");
  int clean = 0, refused = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    CAPTURE(seed);
    std::mt19937_64 rng(seed);
    std::string bytes = orig;
    int flips = 1 + static_cast<int>(rng() % 20);
    for (int j = 0; j < flips; ++j) {
      if (seed < 150) // the data pages
        bytes[2 * 4096 + rng() % (bytes.size() - 2 * 4096)] = static_cast<char>(rng());
      else // the fields of the two meta pages
        bytes[(rng() % 2) * 4096 + rng() % 200] = static_cast<char>(rng());
    }
    std::string dir = (d.path / ("flip" + std::to_string(seed))).string();
    fs::create_directories(dir);
    write_file(dir + "/data.mdb", bytes);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      auto c = cfg;
      c.path = dir;
      c.batch_max_writes = 100;
      auto r = l3_lmdb::open(c, clk);
      if (!r) {
        if (r.code() != errc::corrupt && seed < 150)
          std::fprintf(stderr, "seed %d: %s\n", static_cast<int>(seed),
                       r.err().to_string().c_str());
        ::_exit(r.code() == errc::corrupt ? 10 : 11);
      }
      auto& t = **r;
      int errors = 0;
      for (int i = 0; i < 1500; ++i)
        errors += !t.get("k" + std::to_string(i), clk.now_ms()).ok();
      errors += !t.for_each([](const entry&) { return true; }).ok();
      t.sweep_expired(clk.now_ms() + 2000, 10000);
      for (int i = 0; i < 300; ++i)
        errors += !t.put(make("n" + std::to_string(i), "x"), clk.now_ms()).ok();
      errors += !t.sync().ok();
      ::_exit(errors == 0 ? 0 : 12);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    REQUIRE_MESSAGE(WIFEXITED(st), "the child died of signal " << WTERMSIG(st));
    int code = WEXITSTATUS(st);
    // 0: ran clean, 10: refused as corrupt at open, 12: error values while
    // running; 11 would be damage reported as something else, any other code
    // a sanitizer report
    // (a meta page whose magic is gone may read as foreign: 11 allowed there)
    CHECK((code == 0 || code == 10 || code == 12 || (seed >= 150 && code == 11)));
    clean += code == 0;
    refused += code == 10;
    fs::remove_all(dir);
  }
  MESSAGE(refused << " of 200 damaged copies refused at open, " << clean
                  << " ran without an error");
  CHECK(refused > 0);
}

TEST_CASE("l3: the fuzzers' known damaged files are refused, never a crash") {
  // Each file under tests/fuzz/known/ is a data.mdb that once crashed the
  // process (see its name); it must now be refused at open, or run clean.
  // l3_verify_fuzz-lmdb-assert-in-sweep: its free-list tree is out of key
  // order; the verifier passed it and LMDB handed one page out twice in the
  // expiry sweep's write (abort in mdb_page_dirty).
  // l3_verify_fuzz-sigbus-meta-slot-parity: the newer meta page sits in the
  // slot of the other parity; LMDB's write transaction took the older meta's
  // trees, past the end of the file (SIGBUS in mdb_dbi_open).
  const char* src = std::getenv("KURA_SOURCE_DIR");
  REQUIRE_MESSAGE(src != nullptr, "run through ctest (KURA_SOURCE_DIR)");
  temp_dir d;
  fake_clock clk;
  int files = 0;
  for (auto& f : fs::directory_iterator(fs::path(src) / "tests/fuzz/known")) {
    if (f.path().filename().string().rfind("l3_verify_fuzz", 0) != 0)
      continue;
    ++files;
    CAPTURE(f.path().string());
    std::string dir = (d.path / ("known" + std::to_string(files))).string();
    fs::create_directories(dir);
    write_file(dir + "/data.mdb", read_file(f.path().string()));
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      auto c = small_config(dir);
      c.path = dir;
      auto r = l3_lmdb::open(c, clk);
      if (!r)
        ::_exit(r.code() == errc::corrupt ? 10 : 11);
      (void)(*r)->for_each([](const entry&) { return true; });
      (void)(*r)->sweep_expired(clk.now_ms() + 86'400'000ull, 1000);
      (void)(*r)->put(make("n", "x"), clk.now_ms());
      (void)(*r)->sync();
      ::_exit(0);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    REQUIRE_MESSAGE(WIFEXITED(st), "the child died of signal " << WTERMSIG(st));
    CHECK(WEXITSTATUS(st) == 10); // refused as corrupt
  }
  CHECK(files > 0);
}

TEST_CASE("l3: another kura format version is foreign_file, a damaged marker corrupt") {
  temp_dir d;
  fake_clock clk;
  {
    auto t = must_open(small_config(d.env()), clk);
    REQUIRE(t->put(make("a", "1"), clk.now_ms()).ok());
  }
  raw_put(d.env(), "kura.meta", "format", "kura-l3 9");
  auto r = l3_lmdb::open(small_config(d.env()), clk);
  REQUIRE(!r.ok());
  CHECK(r.code() == errc::foreign_file);
  CHECK(r.err().message.find("kura-l3 9") != std::string::npos);
  raw_put(d.env(), "kura.meta", "format", "kura\x01l3 2");
  r = l3_lmdb::open(small_config(d.env()), clk);
  REQUIRE(!r.ok());
  CHECK(r.code() == errc::corrupt);
  raw_put(d.env(), "kura.meta", "format", std::string{l3_format::meta_format});
  auto t = must_open(small_config(d.env()), clk);
  CHECK(get_ok(*t, "a", clk.now_ms())->value == "1");
}

// -- kura-l3 5: sampled eviction, the upgrade from kura-l3 4 ------------------------------

namespace {
/// Bytes kura counts for a small record (kura.main node; kura.exp node when it
/// expires), as l3_lmdb's footprint().
uint64_t small_footprint(size_t lkey, size_t rec, bool expires) {
  return 2 + 8 + lkey + rec + (expires ? 2 + 8 + 16 + lkey : 0);
}
} // namespace

TEST_CASE("l3 opens a kura-l3 4 environment (previous format), drops kura.seq, keeps the order") {
  temp_dir d;
  fake_clock clk;
  const int n = 12;
  // stamps: record i was written as number 100 + i, except u3, read last (200)
  auto stamp_of = [](int i) { return i == 3 ? 200u : 100u + i; };
  uint64_t est_v5 = 0;
  {
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 8);
    mdb_env_set_mapsize(env, 64ull << 20);
    fs::create_directories(d.env());
    REQUIRE(mdb_env_open(env, d.env().c_str(), 0, 0644) == 0);
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
    uint64_t est_v4 = 0;
    for (int i = 0; i < n; ++i) {
      entry e = make("u" + std::to_string(i), std::string(500, static_cast<char>('a' + i)),
                     i == 5 ? clk.now_ms() + 60000 : 0, 1000 + i);
      std::string lkey = l3_format::lmdb_key(e.key);
      std::string rec(l3_format::record_size(e), '\0');
      l3_format::encode_record(e, lkey, stamp_of(i), rec.data());
      put(main, lkey, rec);
      put(seq, l3_format::seq_key(stamp_of(i)), lkey);
      if (e.expiry_ms != 0)
        put(exp, l3_format::exp_key(e.expiry_ms, stamp_of(i)), lkey);
      uint64_t fp = small_footprint(lkey.size(), rec.size(), e.expiry_ms != 0);
      est_v5 += fp;
      est_v4 += fp + 2 + 8 + 8 + lkey.size(); // and its kura.seq node
    }
    std::string est(8, '\0'), mv(12, '\0');
    l3_format::put_le(est.data(), est_v4, 8);
    l3_format::put_le(mv.data(), 2000, 8);
    put(meta, "format", std::string{l3_format::meta_format_v4});
    put(meta, "est_bytes", est);
    put(meta, "max_version", mv);
    REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
  }
  auto cfg = small_config(d.env());
  cfg.batch_max_writes = 1;
  {
    auto t = must_open(cfg, clk);
    CHECK(t->max_version() == version{2000, 0});
    CHECK(t->budget_bytes_used() == est_v5); // kura.seq's nodes left the estimate
    for (int i = 0; i < n; ++i) {
      auto e = get_ok(*t, "u" + std::to_string(i), clk.now_ms());
      REQUIRE(e);
      CHECK(e->value == std::string(500, static_cast<char>('a' + i)));
      CHECK(e->ver == version{1000u + i, 7});
      CHECK(e->expiry_ms == (i == 5 ? clk.now_ms() + 60000 : 0));
    }
    CHECK(t->expiring_entries() == 1);
  }
  {
    auto [rc, out] = run("mdb_stat -a " + d.env() + " 2>&1");
    const std::string& stat_out = out;
    INFO(stat_out);
    CHECK(rc == 0);
    CHECK(out.find("kura.seq") == std::string::npos);
    auto [rc2, out2] = run("mdb_dump -s kura.meta -p " + d.env() + " 2>&1");
    CHECK(rc2 == 0);
    CHECK(out2.find("kura-l3 5") != std::string::npos);
    CHECK(out2.find("next_seq") != std::string::npos);
  }
  // the order the records carried survives: with room for about half, the
  // oldest stamps go first (u3, read last, stays), and a new write (stamped
  // after the upgrade's next_seq, 201) is younger than all of them
  std::vector<std::string> evicted;
  cfg.max_bytes = (est_v5 / 2) * 3 / 2; // estimate limit: about half
  auto t = must_open(cfg, clk);
  t->set_eviction_listener([&](entry&& e) { evicted.push_back(e.key); });
  REQUIRE(t->put(make("new", std::string(500, 'n')), clk.now_ms()).ok());
  REQUIRE(t->sync().ok());
  REQUIRE(evicted.size() >= 5);
  std::vector<int> order;
  for (int i = 0; i < n; ++i)
    if (i != 3)
      order.push_back(i);
  for (size_t j = 0; j < evicted.size(); ++j)
    CHECK(evicted[j] == "u" + std::to_string(order[j]));
  CHECK(get_ok(*t, "u3", clk.now_ms()));
  CHECK(get_ok(*t, "new", clk.now_ms()));
}

TEST_CASE("l3: a kura-l3 5 environment without its next_seq record is corrupt") {
  temp_dir d;
  fake_clock clk;
  {
    auto t = must_open(small_config(d.env()), clk);
    REQUIRE(t->put(make("a", "1"), clk.now_ms()).ok());
  }
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  mdb_env_set_maxdbs(env, 8);
  REQUIRE(mdb_env_open(env, d.env().c_str(), 0, 0644) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
  MDB_dbi meta;
  REQUIRE(mdb_dbi_open(txn, "kura.meta", 0, &meta) == 0);
  MDB_val k{8, const_cast<char*>("next_seq")};
  REQUIRE(mdb_del(txn, meta, &k, nullptr) == 0);
  REQUIRE(mdb_txn_commit(txn) == 0);
  mdb_env_close(env);
  auto r = l3_lmdb::open(small_config(d.env()), clk);
  REQUIRE(!r.ok());
  CHECK(r.err().code == errc::corrupt);
  CHECK(r.err().message.find("next_seq") != std::string::npos);
}

TEST_CASE("l3: sampled eviction approximates least-recently-used order") {
  temp_dir d;
  fake_clock clk;
  auto cfg = small_config(d.env());
  cfg.batch_max_writes = 64;
  cfg.max_bytes = 1ull << 30; // no eviction while filling
  const int n = 3000, hot = 300;
  std::mt19937_64 rng(12345);
  std::vector<int> keys(n);
  for (int i = 0; i < n; ++i)
    keys[i] = i;
  std::shuffle(keys.begin(), keys.end(), rng); // written in random key order
  auto name = [](int i) { return "k" + std::to_string(i); };
  uint64_t used = 0;
  {
    auto t = must_open(cfg, clk);
    for (int i : keys)
      REQUIRE(t->put(make(name(i), std::string(200, 'v')), clk.now_ms()).ok());
    REQUIRE(t->sync().ok());
    // the hot set (spread over the key space) is read: the youngest now
    for (int i = 0; i < hot; ++i) {
      REQUIRE(get_ok(*t, name(i * (n / hot)), clk.now_ms()));
      REQUIRE(t->put(make("w" + std::to_string(i), "x"), clk.now_ms()).ok()); // commits touches
    }
    REQUIRE(t->sync().ok());
    used = t->budget_bytes_used();
  }
  // room for about two thirds: a third of the entries must go
  cfg.max_bytes = used * 3 / 2 * 2 / 3;
  auto t = must_open(cfg, clk);
  std::vector<std::string> evicted;
  t->set_eviction_listener([&](entry&& e) { evicted.push_back(e.key); });
  REQUIRE(t->put(make("trigger", "t"), clk.now_ms()).ok());
  REQUIRE(t->sync().ok());
  REQUIRE(evicted.size() > static_cast<size_t>(n / 4));
  // exact LRU would evict the first evicted.size() keys in write order
  std::set<std::string> lru;
  for (size_t j = 0; j < evicted.size() && j < keys.size(); ++j)
    lru.insert(name(keys[j]));
  size_t agree = 0, hot_lost = 0;
  for (auto& k : evicted) {
    agree += lru.count(k);
    if (k[0] == 'k' && std::stoi(k.substr(1)) % (n / hot) == 0 &&
        std::stoi(k.substr(1)) / (n / hot) < hot)
      ++hot_lost;
  }
  double ratio = static_cast<double>(agree) / evicted.size();
  MESSAGE("evicted " << evicted.size() << ", " << ratio * 100 << " % of them LRU victims, "
                     << hot_lost << " of " << hot << " hot keys");
  CHECK(ratio >= 0.75);
  CHECK(hot_lost <= static_cast<size_t>(hot / 20));
}
