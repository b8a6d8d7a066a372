// The L4 actors in a test's own actor system: the archive link under a real
// l3_lmdb (evictions land in L4, erases and overwrites drop archived copies),
// the L4 reader's answers, and a rate-limited compaction driven by the
// compactor with its progress reports.
#include "actors/archive_actors.hpp"
#include "test_util.hpp"

#include <caf/all.hpp>

#include <doctest/doctest.h>

#include <filesystem>

using namespace kura;
using namespace kura::actors;

namespace {

using temp_dir = kura::testing::temp_dir;

std::string value_of(int i) {
  std::string v = "v" + std::to_string(i) + ":";
  uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(i + 1);
  for (int j = 0; j < 300; ++j) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v += static_cast<char>('a' + x % 26);
  }
  return v;
}

entry make_entry(int i) {
  entry e;
  e.key = "k" + std::to_string(i);
  e.value = value_of(i);
  e.ver = kura::version{static_cast<uint64_t>(i + 1) << 16, 1};
  return e;
}

std::shared_ptr<archive::archive> open_archive(const std::string& dir, const kura::clock& clk) {
  archive::archive_config ac;
  ac.path = dir + "/archive";
  ac.segment_bytes = 64 * 1024;
  ac.durable = false; // no machine crash in this test
  auto a = archive::archive::open(ac, clk);
  REQUIRE(a);
  return std::shared_ptr<archive::archive>(std::move(*a));
}

/// Asks the L4 reader for `keys`.
l3_found lookup(caf::scoped_actor& self, const caf::actor& reader, l3_found so_far,
                std::vector<std::string> keys) {
  l3_found out;
  self->request(reader, std::chrono::seconds(10), l4_lookup_atom::value, std::move(so_far),
                std::move(keys))
      .receive([&](l3_found& f) { out = std::move(f); },
               [&](caf::error& err) { FAIL("lookup failed: " << to_string(err)); });
  return out;
}

} // namespace

TEST_CASE("archive_link under l3_lmdb: evictions reach L4, erases and overwrites leave it") {
  temp_dir d;
  fake_clock clk;
  auto ar = open_archive(d.path, clk);
  l3_config lc;
  lc.path = d.path + "/l3";
  lc.map_size = 64ull << 20;
  lc.max_bytes = 150'000;
  lc.batch_max_writes = 64;
  auto l3 = l3_lmdb::open(lc, clk);
  REQUIRE(l3);
  auto counters = std::make_shared<l4_counters>();
  archive_link link(ar, caf::actor{}, counters);
  link.attach(**l3, clk);
  CHECK(link.entries() == 0);
  for (int i = 0; i < 2000; ++i)
    REQUIRE((*l3)->put(make_entry(i), clk.now_ms()).ok());
  REQUIRE((*l3)->sync().ok());
  link.settle();
  auto in_l4 = link.entries();
  auto in_l3 = (*l3)->stats().entries;
  CHECK(in_l4 > 1000);
  CHECK(in_l3 + in_l4 == 2000); // each entry lives in exactly one of them
  // the oldest entries went first, and read back from the archive intact
  auto r = ar->get("k0", clk.now_ms(), false);
  REQUIRE(r);
  REQUIRE(*r);
  CHECK((*r)->value == value_of(0));
  // an erase and an overwrite (what the L3 actor forwards) drop archived
  // copies: the erase at once, the overwrite's once L3 committed it
  link.erase("k0");
  link.written("k1", make_entry(1).ver);
  CHECK(link.entries() == in_l4 - 1);
  CHECK(link.superseded("k1"));
  CHECK(link.superseded_waiting() == 1);
  link.written("k2", kura::version{1, 1}); // older than the archived copy: kept
  CHECK(link.superseded_waiting() == 1);
  link.l3_committed();
  CHECK_FALSE(link.superseded("k1"));
  CHECK(link.entries() == in_l4 - 2);
  r = ar->get("k0", clk.now_ms(), false);
  REQUIRE(r);
  CHECK(!*r);
  link.erase("no-such-key"); // harmless
  CHECK(link.entries() == in_l4 - 2);
  link.clear();
  CHECK(link.entries() == 0);
  CHECK(counters->errors == 0);
}

TEST_CASE("L4 reader and compactor actors") {
  temp_dir d;
  fake_clock clk;
  auto ar = open_archive(d.path, clk);
  constexpr int n = 3000;
  for (int i = 0; i < n; ++i)
    REQUIRE(ar->put(make_entry(i), clk.now_ms()).ok());
  REQUIRE(ar->flush().ok());
  // the first two thirds die: their segments fall below the threshold
  for (int i = 0; i < 2 * n / 3; ++i)
    REQUIRE(ar->erase("k" + std::to_string(i)));
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  l4_config lc;
  lc.compact_interval_ms = 0; // on demand only
  lc.compact_rate = 2ull << 20;
  auto h = spawn_l4(sys, ar, lc, clk);
  ar.reset();
  caf::scoped_actor self{sys};

  SUBCASE("the reader answers hits (flagged), misses and keeps what L3 found") {
    l3_found so_far;
    so_far.seq = 7;
    so_far.entries.push_back(wire_entry::from(make_entry(-1)));
    auto f = lookup(self, h.reader, so_far, {"k0", "k" + std::to_string(n - 1), "nope"});
    CHECK(f.seq == 7);
    REQUIRE(f.entries.size() == 2);
    CHECK(f.entries[0].key == "k-1");
    CHECK((f.entries[0].flags & from_archive_flag) == 0);
    CHECK(f.entries[1].key == "k" + std::to_string(n - 1));
    CHECK(f.entries[1].value == value_of(n - 1));
    CHECK((f.entries[1].flags & from_archive_flag) != 0);
    CHECK(h.counters->hits == 1);
    CHECK(h.counters->misses == 2);
    CHECK(h.counters->read_latency().samples == 3);
  }

  SUBCASE("a rate-limited compaction reports progress and keeps every live key") {
    compaction_report first;
    self->request(h.compactor, std::chrono::seconds(10), compact_atom::value)
        .receive([&](compaction_report& r) { first = r; },
                 [&](caf::error& err) { FAIL(to_string(err)); });
    CHECK(first.run == 1);
    CHECK(first.ok);
    CHECK(first.trigger == "cli");
    CHECK(first.rate_limit == (2ull << 20));
    REQUIRE(first.segments_total > 0);
    // poll like `kura compact` does; progress never goes backwards
    compaction_report r = first;
    uint64_t last_done = 0;
    int polls = 0;
    while (r.running && polls < 3000) {
      ++polls;
      CHECK(r.bytes_done >= last_done);
      last_done = r.bytes_done;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      self->request(h.compactor, std::chrono::seconds(10), compact_status_atom::value)
          .receive([&](compaction_report& x) { r = x; },
                   [&](caf::error& err) { FAIL(to_string(err)); });
      CHECK(r.run == 1);
    }
    CHECK(!r.running);
    CHECK(r.ok);
    CHECK(r.bytes_done == r.bytes_total);
    CHECK(r.segments_done == r.segments_total);
    CHECK(r.bytes_written < r.bytes_done);
    CHECK(h.counters->compaction_runs == 1);
    CHECK(h.counters->compaction_bytes == r.bytes_done);
    // nothing left to do: a second run finishes at once
    self->request(h.compactor, std::chrono::seconds(10), compact_atom::value)
        .receive([&](compaction_report& x) { r = x; },
                 [&](caf::error& err) { FAIL(to_string(err)); });
    CHECK(r.run == 2);
    CHECK(!r.running);
    CHECK(r.segments_total == 0);
    // every live key reads back through the reader, the dead ones do not
    std::vector<std::string> keys;
    for (int i = 0; i < n; ++i)
      keys.push_back("k" + std::to_string(i));
    auto f = lookup(self, h.reader, l3_found{}, keys);
    REQUIRE(f.entries.size() == static_cast<size_t>(n - 2 * n / 3));
    for (auto& e : f.entries) {
      auto i = std::stoi(e.key.substr(1));
      CHECK(i >= 2 * n / 3);
      CHECK(e.value == value_of(i));
    }
    // the report `kura archive` prints
    archive_report rep;
    self->request(h.compactor, std::chrono::seconds(10), archive_info_atom::value)
        .receive([&](archive_report& x) { rep = x; },
                 [&](caf::error& err) { FAIL(to_string(err)); });
    CHECK(rep.enabled);
    CHECK(rep.codec == "lz4");
    CHECK(rep.entries == static_cast<uint64_t>(n - 2 * n / 3));
    CHECK(rep.compaction_runs == 2);
    CHECK(!rep.segments.empty());
    CHECK(rep.live_fraction > 0.9);
    CHECK(rep.raw_bytes >= rep.live_raw_bytes);
    // and its wire form round-trips
    auto bytes = encode_message(msg_archive_report, rep);
    auto back = decode_message<archive_report>(msg_archive_report, bytes);
    REQUIRE(back);
    CHECK(back->entries == rep.entries);
    CHECK(back->segments.size() == rep.segments.size());
    CHECK(!decode_message<compaction_report>(msg_compaction_report, bytes));
  }

  stop_l4(sys, h);
}

TEST_CASE("the compactor also runs on its schedule") {
  temp_dir d;
  fake_clock clk;
  auto ar = open_archive(d.path, clk);
  for (int i = 0; i < 600; ++i)
    REQUIRE(ar->put(make_entry(i), clk.now_ms()).ok());
  REQUIRE(ar->flush().ok());
  for (int i = 0; i < 400; ++i)
    REQUIRE(ar->erase("k" + std::to_string(i)));
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  l4_config lc;
  lc.compact_interval_ms = 20;
  lc.compact_rate = 0;
  auto h = spawn_l4(sys, ar, lc, clk);
  caf::scoped_actor self{sys};
  compaction_report r;
  for (int i = 0; i < 1000 && (r.run == 0 || r.running); ++i) { // bounded wait, no timing check
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    self->request(h.compactor, std::chrono::seconds(10), compact_status_atom::value)
        .receive([&](compaction_report& x) { r = x; },
                 [&](caf::error& err) { FAIL(to_string(err)); });
  }
  CHECK(r.run >= 1);
  CHECK(r.trigger == "schedule");
  CHECK(r.ok);
  CHECK(ar->inspect().compaction_runs >= 1);
  for (int i = 400; i < 600; ++i) {
    auto g = ar->get("k" + std::to_string(i), clk.now_ms(), false);
    REQUIRE(g);
    REQUIRE(*g);
    CHECK((*g)->value == value_of(i));
  }
  stop_l4(sys, h);
}

namespace {

std::string hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string o;
  for (unsigned char c : s) {
    o += d[c >> 4];
    o += d[c & 15];
  }
  return o;
}

} // namespace

TEST_CASE("golden bytes of the L4 messages") {
  compaction_report c{1, false, true, "", "cli", 100, 100, 40, 3, 1, 1, 10, 10000, 0};
  archive_report a;
  a.enabled = true;
  a.codec = "lz4";
  a.entries = 2;
  a.ratio = 0.5;
  a.segments.push_back(archive_segment_row{1, "lz4", 0, 10, 20, 2, 2, 1.0, 5, true});
  a.dictionaries.push_back(archive_dict_row{3, 4096, 1, true});
  CHECK(hex(encode_message(msg_compaction_report, c)) ==
        "930114c4149e01c2c3a0a3636c696464280301010acd271000");
  CHECK(hex(encode_message(msg_archive_report, a)) ==
        "930115c434dc0011c3a36c7a3402000000cb3fe00000000000000100000000000000919a01a36c7a3400"
        "0a1402020105c3919403cd100001c3");
  auto back =
      decode_message<archive_report>(msg_archive_report, encode_message(msg_archive_report, a));
  REQUIRE(back);
  CHECK(back->live_fraction == 1.0);
  CHECK(back->ratio == 0.5);
  CHECK(back->segments.at(0).live_fraction == 1.0);
  CHECK(back->dictionaries.at(0).bytes == 4096);
}
