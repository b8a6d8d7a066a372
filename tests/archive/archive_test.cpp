#include "archive/archive.hpp"
#include "archive/format.hpp"
#include "archive_test_util.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <set>
#include <thread>

using namespace kura;
using namespace kura::archive;
using test::make_entry;
using test::small_config;

namespace {

std::unique_ptr<kura::archive::archive> must_open(const archive_config& cfg,
                                                  const kura::clock& clk) {
  auto a = kura::archive::open(cfg, clk);
  REQUIRE_MESSAGE(a.ok(), (a.ok() ? "" : a.err().to_string()));
  return std::move(*a);
}

std::string value_of(kura::archive::archive& a, const std::string& k, uint64_t now) {
  auto r = a.get(k, now);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.err().to_string()));
  return *r ? (*r)->value : std::string("<miss>");
}

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_file(const std::string& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << s;
}

/// (offset, header) of each block of a segment file.
std::vector<std::pair<uint64_t, format::block_header>> blocks_of(const std::string& file) {
  auto s = read_file(file);
  std::vector<std::pair<uint64_t, format::block_header>> out;
  uint64_t off = format::segment_header_size;
  while (off + format::block_header_size <= s.size()) {
    auto h = format::decode_block_header(std::string_view(s).substr(off));
    if (!h)
      break;
    out.emplace_back(off, *h);
    off += format::block_header_size + h->stored_len;
  }
  return out;
}

} // namespace

TEST_CASE("l4 stores, reads, erases and survives a reopen") {
  test::temp_dir dir;
  fake_clock clk;
  auto cfg = small_config(dir.path);
  {
    auto a = must_open(cfg, clk);
    CHECK(std::string(a->name()) == "l4");
    for (int i = 0; i < 500; ++i)
      REQUIRE(
          a->put(make_entry("k" + std::to_string(i), test::json_value(i, 100 + i)), clk.now_ms())
              .ok());
    // Pending entries read before they are flushed.
    CHECK(value_of(*a, "k499", clk.now_ms()) == test::json_value(499, 599));
    REQUIRE(a->flush().ok());
    CHECK(a->erase("k7").value());
    CHECK_FALSE(a->erase("k7").value());
    CHECK_FALSE(a->erase("never").value());
    auto e = a->get("k10", clk.now_ms());
    REQUIRE(e.ok());
    REQUIRE(e->has_value());
    CHECK((*e)->ver.hlc == 1);
    CHECK((*e)->ver.node == 7);
    CHECK(a->stats().entries == 499);
    auto info = a->inspect();
    CHECK(info.segments.size() > 1); // 64 KiB segments
    CHECK(info.stored_bytes < info.raw_bytes);
  }
  auto a = must_open(cfg, clk);
  for (int i = 0; i < 500; ++i)
    CHECK(value_of(*a, "k" + std::to_string(i), clk.now_ms()) ==
          (i == 7 ? "<miss>" : test::json_value(i, 100 + i)));
  CHECK(a->stats().entries == 499);
  CHECK(a->stats().hits == 499);
  CHECK(a->stats().misses == 1);
}

TEST_CASE("l4 behaves as a tier: replace, expiry, sweep, clear, accounting") {
  test::temp_dir dir;
  fake_clock clk;
  auto a = must_open(small_config(dir.path), clk);
  auto now = clk.now_ms();
  CHECK_FALSE(a->get("nope", now).value().has_value());
  REQUIRE(a->put(make_entry("a", "1"), now).ok());
  REQUIRE(a->put(make_entry("a", "2", 0, 2), now).ok());
  CHECK(a->stats().entries == 1);
  REQUIRE(a->flush().ok());
  REQUIRE(a->put(make_entry("a", "3", 0, 3), now).ok());
  CHECK(a->stats().entries == 1);
  CHECK(value_of(*a, "a", now) == "3");
  REQUIRE(a->flush().ok());
  CHECK(value_of(*a, "a", now) == "3");
  CHECK(a->stats().entries == 1);
  // Lazy expiry on read, then sweep for the rest.
  for (int i = 0; i < 100; ++i)
    REQUIRE(a->put(make_entry("x" + std::to_string(i), "v", now + 1000), now).ok());
  REQUIRE(a->flush().ok());
  CHECK(a->stats().entries == 101);
  clk.advance_ms(1000);
  now = clk.now_ms();
  CHECK(value_of(*a, "x5", now) == "<miss>");
  CHECK(a->stats().entries == 100);
  size_t swept = 0;
  for (int round = 0; round < 20 && swept < 99; ++round)
    swept += a->sweep_expired(now, 10);
  CHECK(swept == 99);
  CHECK(a->stats().entries == 1);
  CHECK(a->stats().expirations == 100);
  CHECK(value_of(*a, "a", now) == "3");
  // A put that is already expired stores nothing and hides older copies.
  REQUIRE(a->put(make_entry("a", "old", now - 1), now).ok());
  CHECK(value_of(*a, "a", now) == "<miss>");
  // Accounting, capacity, limits.
  REQUIRE(a->put(make_entry("b", std::string(10000, 'b')), now).ok());
  REQUIRE(a->flush().ok());
  auto st = a->stats();
  CHECK(st.bytes > 0);
  CHECK(st.capacity_bytes == a->config().max_bytes);
  CHECK(st.puts >= 104);
  archive_config tiny = small_config(dir.path + "/tiny");
  tiny.max_bytes = 1000;
  auto t = must_open(tiny, clk);
  CHECK(t->put(make_entry("big", std::string(2000, 'x')), now).code() == errc::out_of_space);
  CHECK(t->put(make_entry(std::string(70000, 'k'), "v"), now).code() == errc::key_too_large);
  REQUIRE(a->clear().ok());
  CHECK(a->stats().entries == 0);
  CHECK(value_of(*a, "b", now) == "<miss>");
  CHECK(a->inspect().segments.empty());
  REQUIRE(a->put(make_entry("c", "after clear"), now).ok());
  REQUIRE(a->flush().ok());
  CHECK(value_of(*a, "c", now) == "after clear");
}

TEST_CASE("expiry covers the pending block: lazy on get, incremental in sweep") {
  test::temp_dir dir;
  fake_clock clk;
  auto a = must_open(small_config(dir.path), clk);
  auto now = clk.now_ms();
  // An older flushed copy must not reappear when the pending one expires.
  REQUIRE(a->put(make_entry("ttl", "old"), now).ok());
  REQUIRE(a->flush().ok());
  REQUIRE(a->put(make_entry("ttl", "new", now + 1000, 2), now).ok());
  REQUIRE(a->put(make_entry("forever", "x"), now).ok());
  CHECK(a->stats().entries == 2);
  clk.advance_ms(1000);
  now = clk.now_ms();
  CHECK(value_of(*a, "ttl", now) == "<miss>");
  CHECK(a->stats().expirations == 1);
  CHECK(a->stats().entries == 1);
  REQUIRE(a->flush().ok());
  CHECK(value_of(*a, "ttl", now) == "<miss>");
  CHECK(value_of(*a, "forever", now) == "x");
  CHECK(a->stats().entries == 1);
  for (int i = 0; i < 30; ++i)
    REQUIRE(a->put(make_entry("p" + std::to_string(i), "v", now + 10), now).ok());
  CHECK(a->inspect().pending_entries == 30); // all still pending (small values)
  clk.advance_ms(10);
  now = clk.now_ms();
  size_t total = 0;
  for (int round = 0; round < 10; ++round) {
    auto n = a->sweep_expired(now, 8);
    CHECK(n <= 8);
    total += n;
  }
  CHECK(total == 30);
  CHECK(a->stats().entries == 1);
  CHECK(a->stats().expirations == 31);
  REQUIRE(a->flush().ok());
  CHECK(a->stats().entries == 1);
}

TEST_CASE("values from 1 byte to 64 MiB, long keys and tombstones, in every codec") {
  test::temp_dir dir;
  fake_clock clk;
  auto now = clk.now_ms();
  rng r(3);
  std::string big(64u << 20, '\0'); // the maximum value: half random, half text
  for (size_t i = 0; i < big.size(); i += 8) {
    uint64_t x = i < big.size() / 2 ? r.next() : 0x2020656c7070610aull + (i % 4096);
    std::memcpy(&big[i], &x, 8);
  }
  for (auto c : {codec_id::lz4, codec_id::zstd, codec_id::zstd_dict}) {
    CAPTURE(to_string(c));
    auto cfg = small_config(dir.path + "/" + to_string(c), c);
    cfg.level = 1;
    std::map<std::string, std::string> want;
    {
      auto a = must_open(cfg, clk);
      for (size_t n : {size_t{1}, size_t{2}, size_t{100}, size_t{4095}, size_t{4096}, size_t{70000},
                       size_t{1} << 20})
        want["v" + std::to_string(n)] = test::json_value(n, n);
      want[std::string(300, 'L')] = "key of 300 bytes";
      want[std::string(5000, 'K')] = "key of 5000 bytes (hashed in the index)";
      want[std::string(5000, 'K') + "2"] = "another long key";
      want["empty"] = "";
      if (c == codec_id::lz4)
        want["max"] = big; // 64 MiB once: the limit itself
      for (auto& [k, v] : want)
        REQUIRE(a->put(make_entry(k, v), now).ok());
      auto tomb = make_entry("tomb", "");
      tomb.flags = entry_flags::tombstone;
      REQUIRE(a->put(tomb, now).ok());
      REQUIRE(a->flush().ok());
      auto t = a->get("tomb", now);
      REQUIRE(t.ok());
      REQUIRE(t->has_value());
      CHECK((*t)->is_tombstone());
    }
    auto a = must_open(cfg, clk);
    for (auto& [k, v] : want) {
      auto got = a->get(k, now);
      REQUIRE(got.ok());
      REQUIRE(got->has_value());
      CHECK((*got)->key == k);
      CHECK((*got)->value == v); // compared without printing 64 MiB on failure
    }
    CHECK(a->put(make_entry("over", std::string((64u << 20) + 1, 'x')), now).code() ==
          errc::value_too_large);
  }
}

TEST_CASE("a corrupt block fails only its own keys, with a clear error, and is reported") {
  test::temp_dir dir;
  fake_clock clk;
  auto cfg = small_config(dir.path);
  cfg.segment_bytes = 1 << 20;
  auto now = clk.now_ms();
  {
    auto a = must_open(cfg, clk);
    for (int i = 0; i < 300; ++i)
      REQUIRE(a->put(make_entry("k" + std::to_string(i), test::json_value(i, 200)), now).ok());
  }
  auto seg = dir.path + "/" + format::segment_file_name(1);
  auto blocks = blocks_of(seg);
  REQUIRE(blocks.size() > 5);
  auto [off, hdr] = blocks[2];
  auto bytes = read_file(seg);
  bytes[off + format::block_header_size + hdr.stored_len / 2] ^= 0x40;
  write_file(seg, bytes);
  auto a = must_open(cfg, clk);
  size_t failed = 0;
  for (int i = 0; i < 300; ++i) {
    auto k = "k" + std::to_string(i);
    auto r = a->get(k, now);
    if (!r.ok()) {
      ++failed;
      CHECK(r.code() == errc::corrupt);
      CHECK(r.err().message.find("checksum") != std::string::npos);
      CHECK(r.err().message.find("offset " + std::to_string(off)) != std::string::npos);
    } else {
      REQUIRE(r->has_value());
      CHECK((*r)->value == test::json_value(i, 200));
    }
  }
  CHECK(failed == hdr.records);
  auto info = a->inspect();
  REQUIRE(info.corrupt_blocks.size() == 1);
  CHECK(info.corrupt_blocks[0].segment == 1);
  CHECK(info.corrupt_blocks[0].offset == off);
  // Writes and other reads go on; overwriting a lost key heals it.
  REQUIRE(a->put(make_entry("k0", "new"), now).ok());
  REQUIRE(a->flush().ok());
  CHECK(value_of(*a, "k0", now) == "new");
}

TEST_CASE("a damaged block header: compaction keeps the segment, other keys stay readable") {
  test::temp_dir dir;
  fake_clock clk;
  auto cfg = small_config(dir.path);
  auto now = clk.now_ms();
  {
    auto a = must_open(cfg, clk);
    for (int i = 0; i < 200; ++i)
      REQUIRE(a->put(make_entry("k" + std::to_string(i), test::json_value(i, 150)), now).ok());
    REQUIRE(a->flush().ok());
    for (int i = 0; i < 200; i += 3) // make segment 1 sparse
      REQUIRE(a->erase("k" + std::to_string(i)).ok());
  }
  auto seg = dir.path + "/" + format::segment_file_name(1);
  auto blocks = blocks_of(seg);
  REQUIRE(blocks.size() > 3);
  auto bytes = read_file(seg);
  bytes[blocks[3].first + 4] ^= 0x01; // stored_len of block 3
  write_file(seg, bytes);
  auto a = must_open(cfg, clk);
  auto p = a->compact(0.9);
  REQUIRE(p.ok());
  size_t bad = 0;
  for (int i = 0; i < 200; ++i) {
    auto r = a->get("k" + std::to_string(i), now);
    if (!r.ok()) {
      CHECK(r.code() == errc::corrupt);
      ++bad;
      continue;
    }
    CHECK(value_of(*a, "k" + std::to_string(i), now) ==
          (i % 3 == 0 ? "<miss>" : test::json_value(i, 150)));
  }
  CHECK(bad > 0);
  CHECK(bad <= blocks[3].second.records);
  CHECK_FALSE(a->inspect().corrupt_blocks.empty());
}

TEST_CASE("retention: a year in a second with the fake clock") {
  test::temp_dir dir;
  fake_clock clk;
  auto cfg = small_config(dir.path);
  const uint64_t day = 24ull * 3600 * 1000;
  auto a = must_open(cfg, clk);
  // One batch per month for a year and a half.
  for (int month = 0; month < 18; ++month) {
    for (int i = 0; i < 50; ++i)
      REQUIRE(a->put(make_entry("m" + std::to_string(month) + "-" + std::to_string(i),
                                test::json_value(i, 300)),
                     clk.now_ms())
                  .ok());
    REQUIRE(a->flush().ok());
    clk.advance_ms(30 * day);
    REQUIRE(a->train_dictionary_now().code() != errc::ok); // lz4: nothing sampled
  }
  auto now = clk.now_ms(); // 540 days after the first batch
  // Before retention runs, reads already honour ttl_days.
  CHECK(value_of(*a, "m0-1", now) == "<miss>");
  CHECK(value_of(*a, "m17-1", now) == test::json_value(1, 300));
  auto rep = a->enforce_retention(now);
  REQUIRE(rep.ok());
  CHECK(rep->segments_dropped > 0);
  CHECK(a->inspect().segments_dropped_ttl == rep->segments_dropped);
  for (int month = 0; month < 18; ++month) {
    bool kept = (17 - month) * 30 + 30 < 365; // archived less than a year before `now`
    bool gone = (17 - month) * 30 + 30 > 366;
    auto v = value_of(*a, "m" + std::to_string(month) + "-3", now);
    if (kept)
      CHECK(v == test::json_value(3, 300));
    if (gone)
      CHECK(v == "<miss>");
  }
  auto info = a->inspect();
  CHECK(info.oldest_entry_ms + 365 * day > now);
}

TEST_CASE("retention: per-entry TTL empties segments, max size drops the oldest first") {
  test::temp_dir dir;
  fake_clock clk;
  auto cfg = small_config(dir.path);
  cfg.max_bytes = 200 * 1024;
  auto a = must_open(cfg, clk);
  rng r(9);
  // 600 KiB of poorly compressible data written over time: ~3x max_bytes.
  for (int i = 0; i < 600; ++i) {
    std::string v(1024, '\0');
    for (auto& ch : v)
      ch = static_cast<char>('a' + r.below(26));
    REQUIRE(a->put(make_entry("s" + std::to_string(i), v), clk.now_ms()).ok());
    clk.advance_ms(1000);
  }
  REQUIRE(a->flush().ok());
  // put() itself kept the archive near max_bytes (at most a block over) ...
  CHECK(a->inspect().stored_bytes <= cfg.max_bytes + cfg.block_bytes + 64);
  CHECK(a->inspect().segments_dropped_size > 0);
  auto evicted = a->stats().evictions;
  CHECK(evicted > 0);
  // ... and retention brings it under.
  auto rep = a->enforce_retention(clk.now_ms());
  REQUIRE(rep.ok());
  auto info = a->inspect();
  CHECK(info.stored_bytes <= cfg.max_bytes);
  CHECK(a->stats().evictions == evicted + rep->entries_dropped);
  CHECK(a->stats().entries + a->stats().evictions == 600);
  // The newest survive, the oldest went.
  CHECK(value_of(*a, "s0", clk.now_ms()) == "<miss>");
  CHECK(value_of(*a, "s599", clk.now_ms()) != "<miss>");
  int first_kept = -1;
  for (int i = 0; i < 600 && first_kept < 0; ++i)
    if (value_of(*a, "s" + std::to_string(i), clk.now_ms()) != "<miss>")
      first_kept = i;
  for (int i = first_kept; i < 600; ++i)
    CHECK(value_of(*a, "s" + std::to_string(i), clk.now_ms()) != "<miss>");
  // Per-entry TTL: a segment whose entries all expired is dropped whole.
  REQUIRE(a->clear().ok());
  REQUIRE(a->put(make_entry("forever", "x"), clk.now_ms()).ok());
  REQUIRE(a->flush().ok());
  clk.advance_ms(cfg.segment_max_age_ms); // the next flush starts a new segment
  auto now = clk.now_ms();
  for (int i = 0; i < 100; ++i)
    REQUIRE(a->put(make_entry("t" + std::to_string(i), test::json_value(i, 500), now + 5000), now)
                .ok());
  REQUIRE(a->flush().ok());
  auto segs_before = a->inspect().segments.size();
  clk.advance_ms(5000);
  rep = a->enforce_retention(clk.now_ms());
  REQUIRE(rep.ok());
  CHECK(rep->segments_dropped > 0);
  CHECK(a->inspect().segments.size() < segs_before);
  CHECK(value_of(*a, "t3", clk.now_ms()) == "<miss>");
  CHECK(value_of(*a, "forever", clk.now_ms()) == "x");
}

TEST_CASE("dictionaries: trained from recent values, rotated, kept until unused") {
  test::temp_dir dir;
  fake_clock clk;
  auto cfg = small_config(dir.path, codec_id::zstd_dict);
  cfg.segment_bytes = 16 * 1024;
  cfg.dict_rotate_segments = 3;
  auto now = clk.now_ms();
  std::map<std::string, std::string> want;
  {
    auto a = must_open(cfg, clk);
    for (int i = 0; i < 3000; ++i) {
      auto k = "d" + std::to_string(i);
      want[k] = test::json_value(i, 100 + (i * 37) % 400);
      REQUIRE(a->put(make_entry(k, want[k]), now).ok());
    }
    REQUIRE(a->flush().ok());
    auto info = a->inspect();
    CHECK(info.dictionaries_trained >= 2); // first training plus rotations
    REQUIRE(info.dictionaries.size() >= 2);
    int with_dict = 0, plain = 0;
    for (auto& s : info.segments) {
      if (s.codec == codec_id::zstd_dict) {
        ++with_dict;
        CHECK(s.dict_id != 0);
      } else {
        ++plain; // before the first dictionary had enough samples
        CHECK(s.codec == codec_id::zstd);
      }
    }
    CHECK(with_dict > 0);
    CHECK(plain > 0);
    int current = 0;
    for (auto& d : info.dictionaries) {
      current += d.current;
      CHECK((d.segments > 0 || d.current));
    }
    CHECK(current == 1);
  }
  // Reopen: every dictionary is loaded again, every value reads.
  auto a = must_open(cfg, clk);
  for (auto& [k, v] : want)
    REQUIRE(value_of(*a, k, now) == v);
  // Overwrite everything: old segments become dead, compaction rewrites what is
  // left with the current dictionary, and retention drops the empty ones; the
  // old dictionaries then have no segment and go, files included.
  for (auto& [k, v] : want) {
    v += "!";
    REQUIRE(a->put(make_entry(k, v), now).ok());
  }
  REQUIRE(a->flush().ok());
  REQUIRE(a->compact(0.5).ok());
  REQUIRE(a->enforce_retention(now).ok());
  auto info = a->inspect();
  std::set<uint32_t> used;
  for (auto& s : info.segments)
    if (s.dict_id != 0)
      used.insert(s.dict_id);
  for (auto& d : info.dictionaries) {
    CHECK((used.count(d.id) || d.current));
    CHECK(test::fault_env().exists(dir.path + "/" + format::dict_file_name(d.id)));
  }
  size_t dict_files = 0;
  auto names = posix_env::instance().list_dir(dir.path);
  REQUIRE(names.ok());
  for (auto& n : *names)
    dict_files += n.rfind("dict-", 0) == 0;
  CHECK(dict_files == info.dictionaries.size());
  for (auto& [k, v] : want)
    REQUIRE(value_of(*a, k, now) == v);
  // The dictionary earns its keep on small values.
  CHECK(info.ratio() < 0.5);
}

TEST_CASE("compaction: incremental, reports progress, throttles, reclaims, keeps every key") {
  test::temp_dir dir;
  fake_clock clk;
  auto cfg = small_config(dir.path, codec_id::zstd);
  auto a = must_open(cfg, clk);
  auto now = clk.now_ms();
  std::map<std::string, std::string> want;
  for (int i = 0; i < 2000; ++i) {
    auto k = "c" + std::to_string(i);
    want[k] = test::json_value(i, 300);
    REQUIRE(a->put(make_entry(k, want[k]), now).ok());
  }
  REQUIRE(a->flush().ok());
  for (int i = 0; i < 2000; ++i) {
    auto k = "c" + std::to_string(i);
    if (i % 4 == 0)
      continue;
    if (i % 4 == 1) {
      REQUIRE(a->erase(k).value());
      want.erase(k);
    } else if (i % 4 == 2) {
      want[k] = "v2-" + k;
      REQUIRE(a->put(make_entry(k, want[k], 0, 2), now).ok());
    } else {
      REQUIRE(a->put(make_entry(k, "short lived", now + 10), now).ok());
      want.erase(k);
    }
  }
  REQUIRE(a->flush().ok());
  clk.advance_ms(10);
  now = clk.now_ms();
  CHECK(a->sweep_expired(now, 1000) == 500); // accounting knows what is dead
  auto before = a->inspect();
  uint64_t throttled = 0;
  a->set_throttle([&](uint64_t n) { throttled += n; });
  auto p = a->begin_compaction(0.6);
  REQUIRE(p.ok());
  CHECK_FALSE(p->done);
  CHECK(p->bytes_total > 0);
  CHECK(a->begin_compaction().code() == errc::invalid_argument);
  uint64_t last = 0;
  int steps = 0;
  while (!p->done) {
    p = a->compaction_step(8 * 1024);
    REQUIRE(p.ok());
    CHECK(p->bytes_done >= last);
    last = p->bytes_done;
    ++steps;
    // Readers see every key at every step.
    if (steps % 5 == 0)
      for (int i = 0; i < 2000; i += 37) {
        auto k = "c" + std::to_string(i);
        CHECK(value_of(*a, k, now) == (want.count(k) ? want[k] : "<miss>"));
      }
  }
  CHECK(steps > 3);
  CHECK(p->bytes_done == p->bytes_total);
  CHECK(throttled == p->bytes_total - p->segments_total * format::segment_header_size);
  CHECK(p->entries_moved > 0);
  auto after = a->inspect();
  CHECK(after.stored_bytes < before.stored_bytes);
  CHECK(after.compaction_runs == 1);
  CHECK(after.compaction_bytes_in == p->bytes_total);
  for (auto& s : after.segments)
    if (!s.active)
      CHECK(s.live_fraction >= 0.6);
  for (int i = 0; i < 2000; ++i) {
    auto k = "c" + std::to_string(i);
    CHECK(value_of(*a, k, now) == (want.count(k) ? want[k] : "<miss>"));
  }
  CHECK(a->stats().entries == want.size());
  CHECK(a->compact(0.6)->done);
}

TEST_CASE("compaction in one thread while another reads and writes") {
  test::temp_dir dir;
  fake_clock clk;
  auto cfg = small_config(dir.path);
  auto a = must_open(cfg, clk);
  auto now = clk.now_ms();
  for (int i = 0; i < 3000; ++i)
    REQUIRE(a->put(make_entry("r" + std::to_string(i), test::json_value(i, 200)), now).ok());
  REQUIRE(a->flush().ok());
  for (int i = 0; i < 3000; i += 2)
    REQUIRE(a->erase("r" + std::to_string(i)).ok());
  std::atomic<bool> done{false};
  std::atomic<int> errors{0};
  std::thread reader([&] {
    int round = 0;
    while (!done.load() || round < 2) {
      for (int i = 1; i < 3000; i += 2) {
        auto r = a->get("r" + std::to_string(i), now);
        if (!r.ok() || !r->has_value() || (*r)->value != test::json_value(i, 200))
          errors++;
      }
      for (int i = 0; i < 50; ++i)
        if (!a->put(make_entry("w" + std::to_string(round * 50 + i), "x"), now).ok())
          errors++;
      ++round;
    }
  });
  auto p = a->compact(0.9);
  done = true;
  reader.join();
  REQUIRE(p.ok());
  CHECK(p->entries_moved > 0);
  CHECK(errors.load() == 0);
  REQUIRE(a->flush().ok());
  for (int i = 1; i < 3000; i += 2)
    CHECK(value_of(*a, "r" + std::to_string(i), now) == test::json_value(i, 200));
}

TEST_CASE("a failing write is an error value; nothing committed is lost; it recovers") {
  test::temp_dir dir;
  fake_clock clk;
  test::fault_env fe;
  auto cfg = small_config(dir.path);
  cfg.fs = &fe;
  auto now = clk.now_ms();
  {
    auto a = must_open(cfg, clk);
    for (int i = 0; i < 100; ++i)
      REQUIRE(a->put(make_entry("ok" + std::to_string(i), "v" + std::to_string(i)), now).ok());
    REQUIRE(a->flush().ok());
    fe.fail_appends = true;
    REQUIRE(a->put(make_entry("late", "value"), now).ok()); // buffered
    CHECK(a->flush().code() == errc::io_error);
    CHECK(value_of(*a, "late", now) == "value"); // still pending, still readable
    CHECK(value_of(*a, "ok5", now) == "v5");
    fe.fail_appends = false;
    REQUIRE(a->flush().ok());
    CHECK(value_of(*a, "late", now) == "value");
  }
  // Reopen: the half-written block is a torn tail that was cut or skipped.
  auto a = must_open(cfg, clk);
  CHECK(value_of(*a, "late", now) == "value");
  for (int i = 0; i < 100; ++i)
    CHECK(value_of(*a, "ok" + std::to_string(i), now) == "v" + std::to_string(i));
  // A durable archive whose fsync fails reports it and does not index the block.
  test::temp_dir dir2;
  auto cfg2 = small_config(dir2.path);
  cfg2.fs = &fe;
  cfg2.durable = true;
  auto d = must_open(cfg2, clk);
  REQUIRE(d->put(make_entry("x", "1"), now).ok());
  REQUIRE(d->flush().ok());
  fe.fail_syncs = true;
  REQUIRE(d->put(make_entry("y", "2"), now).ok());
  CHECK(d->flush().code() == errc::io_error);
  fe.fail_syncs = false;
  REQUIRE(d->flush().ok());
  CHECK(value_of(*d, "x", now) == "1");
  CHECK(value_of(*d, "y", now) == "2");
}

TEST_CASE("foreign and damaged files give clear errors, never a crash") {
  test::temp_dir dir;
  fake_clock clk;
  // An index directory holding something that is not LMDB.
  posix_env::instance().create_dir(dir.path + "/a/index").ok();
  write_file(dir.path + "/a/index/data.mdb", std::string(8192, 'z'));
  auto a = kura::archive::open(small_config(dir.path + "/a"), clk);
  REQUIRE_FALSE(a.ok());
  CHECK((a.code() == errc::foreign_file || a.code() == errc::corrupt));
  // A segment file replaced by garbage: its keys fail, the archive opens.
  auto cfg = small_config(dir.path + "/b");
  auto now = clk.now_ms();
  {
    auto b = must_open(cfg, clk);
    REQUIRE(b->put(make_entry("k", "v"), now).ok());
  }
  write_file(cfg.path + "/" + format::segment_file_name(1), std::string(100, 'g'));
  auto b = must_open(cfg, clk);
  auto r = b->get("k", now);
  CHECK(r.code() == errc::corrupt);
  CHECK(r.err().message.find("magic") != std::string::npos);
  CHECK(kura::archive::open(archive_config{}, clk).code() == errc::invalid_argument);
  auto bad_level = small_config(dir.path + "/c", codec_id::zstd);
  bad_level.level = 99;
  CHECK(kura::archive::open(bad_level, clk).code() == errc::invalid_argument);
}

TEST_CASE("random operations agree with a model, across reopens and compactions") {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    CAPTURE(seed);
    test::temp_dir dir;
    fake_clock clk;
    auto cfg = small_config(dir.path, seed % 2 == 0 ? codec_id::zstd_dict : codec_id::lz4);
    cfg.segment_bytes = 8 * 1024;
    cfg.block_bytes = 1024;
    rng r(seed);
    std::map<std::string, entry> model;
    auto a = must_open(cfg, clk);
    bool compacting = false;
    for (int op = 0; op < 3000; ++op) {
      auto now = clk.now_ms();
      auto key = "key" + std::to_string(r.below(150));
      auto dice = r.below(100);
      if (dice < 45) {
        auto e = make_entry(key, test::json_value(r.next(), r.below(600)),
                            r.chance(0.2) ? now + 1 + r.below(5000) : 0, op + 1);
        REQUIRE(a->put(e, now).ok());
        model[key] = e;
      } else if (dice < 55) {
        auto had = a->erase(key);
        REQUIRE(had.ok());
        auto it = model.find(key);
        bool live = it != model.end() && !it->second.expired(now);
        CHECK((*had == live || (it != model.end() && !live)));
        model.erase(key);
      } else if (dice < 80) {
        auto got = a->get(key, now);
        REQUIRE_MESSAGE(got.ok(), got.err().to_string());
        auto it = model.find(key);
        if (it == model.end() || it->second.expired(now)) {
          CHECK_FALSE(got->has_value());
        } else {
          REQUIRE(got->has_value());
          CHECK(**got == it->second);
        }
      } else if (dice < 85) {
        clk.advance_ms(r.below(2000));
      } else if (dice < 89) {
        REQUIRE(a->flush().ok());
      } else if (dice < 92) {
        if (!compacting) {
          auto p = a->begin_compaction(0.7);
          REQUIRE(p.ok());
          compacting = !p->done;
        } else {
          auto p = a->compaction_step(2048);
          REQUIRE(p.ok());
          compacting = !p->done;
        }
      } else if (dice < 94) {
        (void)a->sweep_expired(now, 20);
      } else if (dice < 96) {
        REQUIRE(a->enforce_retention(now).ok());
      } else if (dice < 97) {
        if (compacting)
          a->abort_compaction();
        compacting = false;
        a.reset();
        a = must_open(cfg, clk);
      }
    }
    auto now = clk.now_ms();
    size_t live = 0;
    for (auto& [k, e] : model) {
      auto got = a->get(k, now);
      REQUIRE(got.ok());
      if (e.expired(now)) {
        CHECK_FALSE(got->has_value());
      } else {
        ++live;
        REQUIRE(got->has_value());
        CHECK(**got == e);
      }
    }
    CHECK(a->inspect().corrupt_blocks.empty());
    // Every expired entry was collected, so the accounting matches the model.
    (void)a->sweep_expired(now, 100000);
    REQUIRE(a->flush().ok());
    CHECK(a->stats().entries == live);
  }
}

TEST_CASE("random byte damage: every read is the right value or a corrupt error") {
  test::temp_dir dir;
  fake_clock clk;
  auto cfg = small_config(dir.path, codec_id::zstd);
  auto now = clk.now_ms();
  {
    auto a = must_open(cfg, clk);
    for (int i = 0; i < 400; ++i)
      REQUIRE(a->put(make_entry("k" + std::to_string(i), test::json_value(i, 200)), now).ok());
  }
  rng r(77);
  auto names = posix_env::instance().list_dir(dir.path);
  REQUIRE(names.ok());
  int flipped = 0;
  for (auto& n : *names) {
    uint64_t id;
    if (!format::parse_segment_file_name(n, id))
      continue;
    auto p = dir.path + "/" + n;
    auto bytes = read_file(p);
    for (int k = 0; k < 3; ++k) {
      bytes[r.below(bytes.size())] ^= static_cast<char>(1 + r.below(255));
      ++flipped;
    }
    write_file(p, bytes);
  }
  REQUIRE(flipped > 0);
  auto a = must_open(cfg, clk);
  size_t good = 0, bad = 0;
  for (int i = 0; i < 400; ++i) {
    auto got = a->get("k" + std::to_string(i), now);
    if (got.ok()) {
      REQUIRE(got->has_value());
      CHECK((*got)->value == test::json_value(i, 200));
      ++good;
    } else {
      CHECK(got.code() == errc::corrupt);
      ++bad;
    }
  }
  CHECK(bad > 0);
  CHECK(good > bad); // damage stays local to the hit blocks
  // Compaction and retention work around the damage.
  REQUIRE(a->compact(1.1).ok());
  REQUIRE(a->enforce_retention(now).ok());
  for (int i = 0; i < 400; ++i) {
    auto got = a->get("k" + std::to_string(i), now);
    if (got.ok() && got->has_value())
      CHECK((*got)->value == test::json_value(i, 200));
  }
}

TEST_CASE("a damaged dictionary fails only the segments that use it") {
  test::temp_dir dir;
  fake_clock clk;
  auto cfg = small_config(dir.path, codec_id::zstd_dict);
  cfg.segment_bytes = 16 * 1024;
  auto now = clk.now_ms();
  {
    auto a = must_open(cfg, clk);
    for (int i = 0; i < 2000; ++i)
      REQUIRE(a->put(make_entry("k" + std::to_string(i), test::json_value(i, 250)), now).ok());
    REQUIRE(a->flush().ok());
    REQUIRE(!a->inspect().dictionaries.empty());
  }
  auto dict = dir.path + "/" + format::dict_file_name(1);
  write_file(dict, "garbage, not a zstd dictionary");
  auto a = must_open(cfg, clk);
  size_t good = 0, bad = 0;
  for (int i = 0; i < 2000; ++i) {
    auto got = a->get("k" + std::to_string(i), now);
    if (got.ok()) {
      REQUIRE(got->has_value());
      CHECK((*got)->value == test::json_value(i, 250));
      ++good;
    } else {
      CHECK(got.code() == errc::corrupt);
      CHECK(got.err().message.find("dictionary 1") != std::string::npos);
      ++bad;
    }
  }
  CHECK(good > 0); // the first segment is plain zstd
  CHECK(bad > 0);
  // New writes get a fresh dictionary and read back.
  for (int i = 0; i < 2000; ++i)
    REQUIRE(a->put(make_entry("n" + std::to_string(i), test::json_value(i, 250)), now).ok());
  REQUIRE(a->flush().ok());
  for (int i = 0; i < 2000; i += 7)
    CHECK(value_of(*a, "n" + std::to_string(i), now) == test::json_value(i, 250));
}

TEST_CASE("readers, a writer, compaction and retention at once") {
  test::temp_dir dir;
  fake_clock clk; // never advanced: reads of it from threads are fine
  auto cfg = small_config(dir.path, codec_id::zstd_dict);
  cfg.segment_bytes = 8 * 1024;
  auto a = must_open(cfg, clk);
  auto now = clk.now_ms();
  for (int i = 0; i < 500; ++i)
    REQUIRE(a->put(make_entry("r" + std::to_string(i), test::json_value(i, 120)), now).ok());
  REQUIRE(a->flush().ok());
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::map<std::string, std::string> model; // the writer's keys, owned by the writer
  std::thread writer([&] {
    rng r(1);
    for (int op = 0; op < 4000; ++op) {
      auto k = "w" + std::to_string(r.below(300));
      if (r.chance(0.7)) {
        auto v = test::json_value(r.next(), 50 + r.below(300));
        if (!a->put(make_entry(k, v), now).ok())
          errors++;
        model[k] = v;
      } else {
        if (!a->erase(k).ok())
          errors++;
        model.erase(k);
      }
      if (op % 200 == 0 && !a->flush().ok())
        errors++;
    }
    if (!a->flush().ok())
      errors++;
  });
  std::thread reader([&] {
    rng r(2);
    while (!stop.load()) {
      int i = static_cast<int>(r.below(500));
      auto got = a->get("r" + std::to_string(i), now);
      if (!got.ok() || !got->has_value() || (*got)->value != test::json_value(i, 120))
        errors++;
      (void)a->inspect();
      (void)a->stats();
    }
  });
  std::thread maintenance([&] {
    while (!stop.load()) {
      if (!a->compact(0.7).ok())
        errors++;
      if (!a->enforce_retention(now).ok())
        errors++;
      (void)a->sweep_expired(now, 50);
    }
  });
  writer.join();
  stop = true;
  reader.join();
  maintenance.join();
  CHECK(errors.load() == 0);
  for (auto& [k, v] : model)
    CHECK(value_of(*a, k, now) == v);
  CHECK(a->stats().entries == 500 + model.size());
  for (int i = 0; i < 500; ++i)
    CHECK(value_of(*a, "r" + std::to_string(i), now) == test::json_value(i, 120));
}
