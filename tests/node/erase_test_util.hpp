// Helpers of the KURA.ERASE tests with real kura-node processes: pipelined
// SETs, waiting for L3, receipts, and a scan of every file under a data dir
// (archive segments also decompressed) for bytes that must be gone.
#pragma once

#include "archive/codec.hpp"
#include "archive/format.hpp"
#include "tests/node/node_process.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace kura::test {

/// `tag`, the number in five digits and "MARK" (a marker no other value
/// contains), then 150 pseudo-random letters (they compress poorly, so
/// archive segments fill up).
inline std::string marked_value(const char* tag, int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%05dMARK", tag, i);
  std::string v = buf;
  uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(i + 1);
  for (int j = 0; j < 150; ++j) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v += static_cast<char>('a' + x % 26);
  }
  return v;
}

#ifndef KURA_TEST_BULK_DEFINED // tests/cluster/cluster_harness.hpp has the same
inline std::string bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}
#endif

inline void pipeline(client& c, const std::vector<std::vector<std::string>>& cmds) {
  for (size_t i = 0; i < cmds.size(); i += 500) {
    std::string buf;
    size_t end = std::min(cmds.size(), i + 500);
    for (size_t j = i; j < end; ++j)
      buf += client::multibulk(cmds[j]);
    REQUIRE(c.send(buf));
    for (size_t j = i; j < end; ++j) {
      auto r = c.reply(20000);
      REQUIRE(r);
      REQUIRE(*r == "+OK\r\n");
    }
  }
}

inline void wait_l3_idle(node_process& n) {
  if (!n.l3_idle())
    FAIL("L3 did not drain its write-behind queue");
}

/// The value of field `name` in a receipt reply (RESP2 flat array).
inline std::string field(const std::string& reply, const std::string& name) {
  auto p = reply.find(bulk(name));
  if (p == std::string::npos)
    return {};
  p += bulk(name).size();
  auto e = reply.find("\r\n", p);
  std::string v = reply.substr(p, e - p);
  if (!v.empty() && v[0] == ':')
    return v.substr(1);
  if (!v.empty() && v[0] == '$') {
    auto e2 = reply.find("\r\n", e + 2);
    return reply.substr(e + 2, e2 - e - 2);
  }
  return v;
}

/// Polls KURA.ERASE STATUS `id` until the erasure is done or failed, `polls`
/// times 50 ms at most; returns the final receipt.
inline std::string wait_receipt(client& c, const std::string& id, int polls = 1800) {
  std::string last;
  for (int i = 0; i < polls; ++i) {
    auto r = c.call({"KURA.ERASE", "STATUS", id});
    REQUIRE(r);
    last = *r;
    auto st = field(last, "state");
    if (st == "done" || st == "failed")
      return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL("erasure " << id << " did not finish within " << polls / 20 << " s: " << last);
  return last;
}

/// Starts an erasure and waits for its receipt (60 s at most).
inline std::string erase_and_wait(client& c, std::vector<std::string> cmd) {
  auto first = c.call(cmd);
  REQUIRE(first);
  CAPTURE(*first);
  auto id = field(*first, "id");
  REQUIRE(!id.empty());
  return wait_receipt(c, id, 1200);
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

/// A plaintext archive segment split for scanning: `decompressed` is every
/// block's payload decompressed; `framing` is the file with every payload
/// that decompressed blanked out (segment and block headers, and any bytes
/// the parser could not decode, e.g. a torn tail, stay as they are).
/// A compressed payload is scanned only through its decompressed text: an
/// lz4/zstd stream's bytes can spell out a short key by chance (a literal
/// run followed by an offset byte that happens to be a digit), while every
/// byte really stored in a block appears in its decompressed text.
/// Sealed segments and other files: `framing` is the file, `decompressed` "".
struct segment_scan {
  std::string framing;
  std::string decompressed;
};

/// zstd-dict blocks are decompressed with their dictionary file.
inline segment_scan scan_segment(const std::filesystem::path& seg, const std::string& bytes) {
  using namespace kura::archive;
  segment_scan out{bytes, {}};
  if (bytes.size() < format::segment_header_size)
    return out;
  auto h = format::decode_segment_header(std::string_view(bytes).substr(0, 40));
  if (!h || h->key_id != 0)
    return out;
  std::shared_ptr<const dictionary> dict;
  if (h->dict_id != 0) {
    auto p = seg.parent_path() / ("dict-" + std::to_string(h->dict_id) + ".zdict");
    auto d = dictionary::load(h->dict_id, read_file(p), 3);
    REQUIRE_MESSAGE(d, "dictionary " << p << " of " << seg << " does not load");
    dict = *d;
  }
  codec_context ctx;
  std::string raw;
  size_t off = format::segment_header_size;
  while (off + format::block_header_size <= bytes.size()) {
    auto bh = format::decode_block_header(std::string_view(bytes).substr(off, 24));
    if (!bh)
      break;
    size_t start = off + format::block_header_size;
    if (start + bh->stored_len > bytes.size())
      break;
    auto st =
        ctx.decompress(h->codec, dict.get(), std::string_view(bytes).substr(start, bh->stored_len),
                       bh->raw_len, raw);
    REQUIRE_MESSAGE(st.ok(), "a block of " << seg << " does not decompress: " << st.message());
    out.decompressed += raw;
    std::fill(out.framing.begin() + static_cast<std::ptrdiff_t>(start),
              out.framing.begin() + static_cast<std::ptrdiff_t>(start + bh->stored_len), '\0');
    off = start + bh->stored_len;
  }
  return out;
}

/// The decompressed blocks of a plaintext archive segment ("" when the file
/// is not one).
inline std::string decompressed_blocks(const std::filesystem::path& seg, const std::string& bytes) {
  return scan_segment(seg, bytes).decompressed;
}

/// Every file under `dir`, plain; an archive segment as its framing (raw
/// bytes outside the decoded payloads) and its decompressed blocks.
inline std::map<std::string, std::string> scan_dir(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file())
      continue;
    auto bytes = read_file(e.path());
    auto name = e.path().string();
    if (e.path().extension() == ".kseg") {
      auto sc = scan_segment(e.path(), bytes);
      files[name + " (decompressed)"] = std::move(sc.decompressed);
      files[name] = std::move(sc.framing);
      continue;
    }
    files[name] = std::move(bytes);
  }
  return files;
}

/// Checks that no file holds the key or value marker of an erased key
/// (`erased(i)`, i < n), and returns how many kept keys' value markers some
/// file holds (a scan that finds none of them could not fail).
inline size_t check_erased_bytes(const std::map<std::string, std::string>& files, int n,
                                 const std::function<bool(int)>& erased,
                                 const std::function<std::string(int)>& key_of,
                                 const std::function<std::string(int)>& value_marker) {
  size_t kept_found = 0;
  for (int i = 0; i < n; ++i) {
    if (!erased(i)) {
      for (auto& [name, bytes] : files)
        if (bytes.find(value_marker(i)) != std::string::npos) {
          ++kept_found;
          break;
        }
      continue;
    }
    for (auto& f : files) {
      INFO("file " << f.first);
      CHECK_MESSAGE(f.second.find(key_of(i)) == std::string::npos, "erased key " << key_of(i));
      CHECK_MESSAGE(f.second.find(value_marker(i)) == std::string::npos,
                    "erased value of " << key_of(i));
    }
  }
  return kept_found;
}

} // namespace kura::test
