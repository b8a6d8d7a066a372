// KURA.ERASE in a real kura-node, checked at the byte level (issue 13): write
// known keys and values (a tiny L3 budget pushes most of them into L4),
// restart, erase some (KEY and PREFIX), kill -9, restart; then scan every
// file under the data dir for the erased keys and values, plain and in the
// archive's compressed blocks decompressed: none may be found, while the
// scanner does find the kept ones (so the check can fail), and every kept
// key still reads back.
#include "archive/codec.hpp"
#include "archive/format.hpp"
#include "tests/node/node_process.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <thread>

using namespace kura::test;

namespace {

constexpr int n_keys = 3000;

/// Erased: "gone:<i>" for i % 10 == 3 (by KEY) and every "pfx:" key (by
/// PREFIX); kept: everything else.
std::string key_of(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%05d", i % 7 == 0 ? "pfx:" : "gone:", i);
  return buf;
}
bool erased(int i) {
  return i % 7 == 0 || i % 10 == 3;
}
/// A marker no other value contains, then 150 pseudo-random letters (they
/// compress poorly, so segments fill up).
std::string value_of(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "VAL%05dMARK", i);
  std::string v = buf;
  uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(i + 1);
  for (int j = 0; j < 150; ++j) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v += static_cast<char>('a' + x % 26);
  }
  return v;
}
std::string value_marker(int i) {
  return value_of(i).substr(0, 12);
}

std::string bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}

void pipeline(client& c, const std::vector<std::vector<std::string>>& cmds) {
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

void wait_l3_idle(node_process& n) {
  for (int i = 0; i < 400; ++i) {
    if (n.info_field("l3_write_behind_queue") == "0" &&
        n.info_field("l3_uncommitted_writes") == "0")
      return;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  FAIL("L3 did not drain its write-behind queue");
}

/// The value of field `name` in a receipt reply (RESP2 flat array).
std::string field(const std::string& reply, const std::string& name) {
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

/// Starts an erasure and polls KURA.ERASE STATUS until it ends (generous
/// deadline); returns the final receipt.
std::string erase_and_wait(client& c, std::vector<std::string> cmd) {
  auto first = c.call(cmd);
  REQUIRE(first);
  CAPTURE(*first);
  auto id = field(*first, "id");
  REQUIRE(!id.empty());
  for (int i = 0; i < 1200; ++i) {
    auto r = c.call({"KURA.ERASE", "STATUS", id});
    REQUIRE(r);
    auto st = field(*r, "state");
    if (st == "done" || st == "failed")
      return *r;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL("erasure " << id << " did not finish within 60 s");
  return {};
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

/// The decompressed blocks of a plaintext archive segment ("" when the file
/// is not one). zstd-dict blocks are decompressed with their dictionary file.
std::string decompressed_blocks(const std::filesystem::path& seg, const std::string& bytes) {
  using namespace kura::archive;
  if (bytes.size() < format::segment_header_size)
    return {};
  auto h = format::decode_segment_header(std::string_view(bytes).substr(0, 40));
  if (!h || h->key_id != 0)
    return {};
  std::shared_ptr<const dictionary> dict;
  if (h->dict_id != 0) {
    auto p = seg.parent_path() / ("dict-" + std::to_string(h->dict_id) + ".zdict");
    auto d = dictionary::load(h->dict_id, read_file(p), 3);
    REQUIRE_MESSAGE(d, "dictionary " << p << " of " << seg << " does not load");
    dict = *d;
  }
  codec_context ctx;
  std::string all, out;
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
                       bh->raw_len, out);
    REQUIRE_MESSAGE(st.ok(), "a block of " << seg << " does not decompress: " << st.message());
    all += out;
    off = start + bh->stored_len;
  }
  return all;
}

/// Every file under `dir`, plain and (segments) decompressed.
std::map<std::string, std::string> scan_dir(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file())
      continue;
    auto bytes = read_file(e.path());
    auto name = e.path().string();
    if (e.path().extension() == ".kseg")
      files[name + " (decompressed)"] = decompressed_blocks(e.path(), bytes);
    files[name] = std::move(bytes);
  }
  return files;
}

void byte_level_erase(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {
      "--memory-bytes=1048576", "--kura.l3.max-bytes=200000", "--kura.archive.segment-bytes=65536",
      "--kura.archive.compact-interval=0s", "--kura.archive.compact-rate=0"};
  args.insert(args.end(), extra.begin(), extra.end());
  std::unique_ptr<node_process> n = std::make_unique<node_process>(args);
  REQUIRE_MESSAGE(n->ready, n->log());
  node_process& first = *n; // owns the data dir
  std::string dir = first.data_dir;
  {
    client c(first.port);
    REQUIRE(c.ok());
    std::vector<std::vector<std::string>> sets;
    for (int i = 0; i < n_keys; ++i)
      sets.push_back({"SET", key_of(i), value_of(i)});
    pipeline(c, sets);
    wait_l3_idle(first);
  }
  REQUIRE(first.stop(SIGTERM) == 0);

  auto second = std::make_unique<node_process>(args, dir);
  REQUIRE_MESSAGE(second->ready, second->log());
  {
    client c(second->port);
    REQUIRE(c.ok());
    std::vector<std::string> cmd = {"KURA.ERASE", "KEY"};
    int by_key = 0;
    for (int i = 0; i < n_keys; ++i)
      if (i % 10 == 3 && i % 7 != 0) {
        cmd.push_back(key_of(i));
        ++by_key;
      }
    cmd.push_back("gone:never-written");
    auto r1 = erase_and_wait(c, cmd);
    CAPTURE(r1);
    CHECK(field(r1, "state") == "done");
    CHECK(field(r1, "matched") == std::to_string(by_key));
    CHECK(field(r1, "requested") == std::to_string(by_key + 1));
    // most of them were archived (tiny L3), some in L3
    CHECK(std::stoi(field(r1, "l4")) > 0);
    CHECK(std::stoi(field(r1, "l3")) + std::stoi(field(r1, "l4")) +
              std::stoi(field(r1, "memory")) >=
          by_key);
    int by_prefix = 0;
    for (int i = 0; i < n_keys; ++i)
      by_prefix += i % 7 == 0;
    auto r2 = erase_and_wait(c, {"KURA.ERASE", "PREFIX", "pfx:"});
    CAPTURE(r2);
    CHECK(field(r2, "state") == "done");
    CHECK(field(r2, "matched") == std::to_string(by_prefix));
    CHECK(std::stoull(field(r2, "finished-ms")) >= std::stoull(field(r2, "started-ms")));
    CHECK(*c.call({"EXISTS", key_of(3), key_of(7)}) == ":0\r\n");
    // bad input: clear errors, nothing lost
    CHECK(c.call({"KURA.ERASE", "PREFIX", ""})->rfind("-ERR an empty prefix", 0) == 0);
    CHECK(c.call({"KURA.ERASE", "STATUS", "nope"})->rfind("-ERR no erasure", 0) == 0);
    CHECK(*c.call({"DBSIZE"}) == ":" + std::to_string(n_keys - by_key - by_prefix) + "\r\n");
    // the CLI: an erasure through the ops port, and a receipt read back
    int rc = -1;
    auto out = run_shell(bin_dir() + "/kura --port=" + std::to_string(second->cluster_port) +
                             " --timeout=20000 --json erase key " + key_of(3) + " 2>/dev/null",
                         &rc);
    CAPTURE(out);
    CHECK(rc == 0);
    CHECK(out.find("\"state\":\"done\"") != std::string::npos);
    CHECK(out.find("\"matched\":0") != std::string::npos);
    out = run_shell(bin_dir() + "/kura --port=" + std::to_string(second->cluster_port) +
                        " erase status " + field(r2, "id") + " 2>/dev/null",
                    &rc);
    CHECK(rc == 0);
    CHECK(out.find(" done: " + std::to_string(by_prefix) + " key(s) erased") != std::string::npos);
  }
  REQUIRE(second->stop(SIGKILL) == 128 + SIGKILL);

  auto third = std::make_unique<node_process>(args, dir);
  REQUIRE_MESSAGE(third->ready, third->log());
  client c(third->port);
  REQUIRE(c.ok());
  // receipts survive the restart; the erase is in the audit log
  auto files = scan_dir(dir);
  bool audited = false;
  for (auto& [name, bytes] : files)
    if (name.find("audit.log") != std::string::npos &&
        bytes.find("\"event\":\"erase\"") != std::string::npos)
      audited = true;
  CHECK(audited);
  size_t kept_found = 0;
  for (int i = 0; i < n_keys; ++i) {
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
  // the scanner sees what is there: most kept values are in some file
  CHECK(kept_found > static_cast<size_t>(n_keys) / 2);
  // the kept ones read back, the erased ones are gone
  for (int i = 0; i < n_keys; ++i) {
    auto r = c.call({"GET", key_of(i)});
    REQUIRE(r);
    if (erased(i))
      CHECK_MESSAGE(*r == "$-1\r\n", key_of(i));
    else
      CHECK_MESSAGE(*r == bulk(value_of(i)), key_of(i));
  }
}

} // namespace

TEST_CASE("KURA.ERASE leaves no byte of an erased key or value in any file (lz4)") {
  byte_level_erase({});
}

TEST_CASE("KURA.ERASE leaves no byte of an erased key or value in any file (zstd dictionaries)") {
  byte_level_erase({"--kura.archive.codec=zstd-dict"});
}
