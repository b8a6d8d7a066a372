// The small archives the archive_segment_fuzz target reads and make_corpus
// writes its segment seeds from: both must build exactly the same ones, so
// that the seeds line up with the index the target opens.
#pragma once

#include "archive/archive.hpp"
#include "fuzz_util.hpp"

#include <string>
#include <vector>

namespace kura::fuzz {

/// 24 entries of 1..300 bytes, every fifth with an expiry an hour ahead.
inline std::vector<entry> archive_seed_entries(uint64_t now_ms) {
  std::vector<entry> out;
  for (int i = 0; i < 24; ++i) {
    entry e;
    e.key = "key:" + std::to_string(i);
    e.value = std::string(static_cast<size_t>(1 + i * 37 % 300), static_cast<char>('a' + i % 26));
    e.expiry_ms = i % 5 == 0 ? now_ms + 3'600'000 : 0;
    e.ver = version{(now_ms << 16) + static_cast<uint64_t>(i), 1};
    out.push_back(e);
  }
  return out;
}

/// Settings of the seed archives (512-byte blocks: several blocks per segment).
inline archive::archive_config archive_seed_config(const std::string& path, archive::codec_id c) {
  archive::archive_config cfg;
  cfg.path = path;
  cfg.codec = c;
  cfg.block_bytes = 512;
  cfg.durable = false;
  cfg.index_map_bytes = 64ull << 20;
  return cfg;
}

/// Writes the seed archive at `path` (one segment, seg-0000000000000001.kseg).
inline void write_archive_seed(const std::string& path, archive::codec_id c,
                               const kura::clock& clk) {
  auto a = archive::archive::open(archive_seed_config(path, c), clk);
  fuzz_check(static_cast<bool>(a), "seed archive opens");
  for (auto& e : archive_seed_entries(clk.now_ms()))
    fuzz_check(static_cast<bool>((*a)->put(e, clk.now_ms())), "seed archive put");
  fuzz_check(static_cast<bool>((*a)->flush()), "seed archive flush");
}

/// The bytes of file `path` (fuzz_check'ed).
inline std::string read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  fuzz_check(f != nullptr, "open file");
  std::string s;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
    s.append(buf, n);
  std::fclose(f);
  return s;
}

} // namespace kura::fuzz
