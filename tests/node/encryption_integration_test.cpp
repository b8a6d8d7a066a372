// Encryption at rest in a real kura-node (kura.security.encryption-key-file):
// known keys and values written through RESP, pushed down to L4 by a tiny L3
// budget, half of them deleted and the archive compacted, the node killed
// with SIGKILL in the middle of writes and restarted; then no file under the
// data dir holds any key or value in plaintext, everything kept still reads,
// a key rotation (`kura rotate-key`, also killed half-way) moves everything
// to the new key, and a node without the key or with a wrong key refuses to
// start.
#include "node_process.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

using namespace kura::test;

namespace {

std::string key_of(int i) {
  return "enc-key-" + std::to_string(i) + "-subject";
}
std::string value_of(int i) {
  std::string v = "enc-value-" + std::to_string(i) + "-";
  uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(i + 1);
  for (int j = 0; j < 150; ++j) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v += static_cast<char>('a' + x % 26);
  }
  return v;
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
    for (size_t j = i; j < end; ++j)
      REQUIRE(c.reply(20000));
  }
}

void wait_l3_idle(node_process& n) {
  if (!n.l3_idle())
    FAIL("L3 did not drain its write-behind queue");
}

/// Paths of files under `dir` holding any of `needles`.
std::vector<std::string> files_with_any(const std::string& dir,
                                        const std::vector<std::string>& needles) {
  std::vector<std::string> out;
  for (auto& f : std::filesystem::recursive_directory_iterator(dir)) {
    if (!f.is_regular_file())
      continue;
    std::ifstream in(f.path(), std::ios::binary);
    std::string data{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    for (auto& n : needles)
      if (data.find(n) != std::string::npos) {
        out.push_back(f.path().string() + " holds " + n);
        break;
      }
  }
  return out;
}

constexpr int n_keys = 4000;

std::string kura_cli(const node_process& n, const std::string& args, int& rc) {
  return run_shell(bin_dir() + "/kura --port=" + std::to_string(n.cluster_port) +
                       " --timeout=30000 " + args + " 2>/dev/null",
                   &rc);
}

void write_keys(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

void check_reads(node_process& n) {
  client c(n.port);
  REQUIRE(c.ok());
  for (int i : {n_keys / 5, n_keys / 2, n_keys - 1, 1234, 3333})
    CHECK(*c.call({"GET", key_of(i)}) == bulk(value_of(i)));
  for (int i : {0, 17, n_keys / 5 - 1})
    CHECK(*c.call({"GET", key_of(i)}) == "$-1\r\n");
}

} // namespace

TEST_CASE("encrypted node: no plaintext on disk after L4, compaction, kill -9 and rotation") {
  temp_dir keys;
  std::string key_file = keys.sub("kura.key");
  const std::string k1 = "1 " + std::string(64, '7') + "\n";
  const std::string k2 = "2 " + std::string(64, '9') + "\n";
  write_keys(key_file, k1);
  temp_dir data;
  std::vector<std::string> args = {"--memory-bytes=1048576",
                                   "--kura.l3.max-bytes=200000",
                                   "--kura.archive.segment-bytes=65536",
                                   "--kura.archive.codec=zstd",
                                   "--kura.archive.compact-interval=0s",
                                   "--kura.archive.compact-rate=0",
                                   "--kura.security.encryption-key-file=" + key_file};
  {
    node_process n(args, data.path);
    REQUIRE_MESSAGE(n.ready, n.log());
    client c(n.port);
    REQUIRE(c.ok());
    std::vector<std::vector<std::string>> cmds;
    for (int i = 0; i < n_keys; ++i)
      cmds.push_back({"SET", key_of(i), value_of(i)});
    pipeline(c, cmds);
    wait_l3_idle(n);
    // most keys went down to L4; delete the first fifth, then compact
    cmds.clear();
    for (int i = 0; i < n_keys / 5; ++i)
      cmds.push_back({"DEL", key_of(i)});
    pipeline(c, cmds);
    wait_l3_idle(n);
    int rc = -1;
    auto js = kura_cli(n, "--json compact", rc);
    CAPTURE(js);
    CHECK(rc == 0);
    auto arch = kura_cli(n, "--json archive", rc);
    CAPTURE(arch);
    CHECK(rc == 0);
    CHECK(arch.find("\"entries\": 0,") == std::string::npos); // L4 holds entries
    // more writes, killed in the middle of them
    std::string buf;
    for (int i = n_keys; i < n_keys + 2000; ++i)
      buf += client::multibulk({"SET", key_of(i), value_of(i)});
    REQUIRE(c.send(buf));
    REQUIRE(c.reply(20000));
    n.stop(SIGKILL);
  }
  {
    node_process n(args, data.path);
    REQUIRE_MESSAGE(n.ready, n.log());
    check_reads(n);
    client c(n.port);
    CHECK(*c.call({"SET", "after-restart-key", "after-restart-value"}) == "+OK\r\n");
    wait_l3_idle(n);
    // a rotation to key 2, killed while it runs (wherever the kill lands)
    write_keys(key_file, k1 + k2);
    run_shell("(" + bin_dir() + "/kura --port=" + std::to_string(n.cluster_port) +
              " --timeout=30000 --json rotate-key >/dev/null 2>&1 &)");
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    n.stop(SIGKILL);
  }
  {
    node_process n(args, data.path);
    REQUIRE_MESSAGE(n.ready, n.log());
    check_reads(n);
    int rc = -1;
    auto js = kura_cli(n, "--json rotate-key", rc);
    CAPTURE(js);
    CHECK(rc == 0);
    CHECK(js.find("\"ok\": true") != std::string::npos);
    CHECK(js.find("\"active_key\": 2") != std::string::npos);
    CHECK(n.stop(SIGTERM) == 0);
  }
  write_keys(key_file, k2); // key 1 is no longer needed
  {
    node_process n(args, data.path);
    REQUIRE_MESSAGE(n.ready, n.log());
    check_reads(n);
    client c(n.port);
    CHECK(*c.call({"GET", "after-restart-key"}) == bulk("after-restart-value"));
    // KEYS and a full SCAN list every kept key of L3 and L4 (with encryption
    // both tiers order by keyed hashes: L3 is listed, then L4), none deleted
    auto lines = [](const std::string& text) {
      std::set<std::string> out;
      std::istringstream in(text);
      for (std::string l; std::getline(in, l);)
        if (!l.empty())
          out.insert(l);
      return out;
    };
    auto scan_out = n.cli("--scan");
    auto keys_out = n.cli("keys '*'");
    CAPTURE(scan_out.substr(0, 300));
    CAPTURE(keys_out.substr(0, 300));
    auto scanned = lines(scan_out);
    auto listed = lines(keys_out);
    CHECK(scanned == listed);
    CHECK(scanned.count("after-restart-key") == 1);
    int missing = 0, deleted = 0;
    for (int i = 0; i < n_keys; ++i) {
      bool in = scanned.count(key_of(i)) == 1;
      missing += i >= n_keys / 5 && !in;
      deleted += i < n_keys / 5 && in;
    }
    CHECK(missing == 0);
    CHECK(deleted == 0);
    CHECK(n.stop(SIGTERM) == 0);
  }
  std::vector<std::string> needles = {"enc-key-", "enc-value-", "-subject", "after-restart"};
  for (int i : {0, 1, 799, 800, 2500, 3999, 4500})
    needles.push_back(value_of(i).substr(20, 40)); // the random part of a value
  auto hits = files_with_any(data.path, needles);
  CAPTURE(hits);
  CHECK(hits.empty());

  // no key, a wrong key, a key file with another id: refused, clearly
  std::string out;
  auto base = std::vector<std::string>{"--port=" + std::to_string(free_port()), "--metrics-port=0",
                                       "--cluster-port=" + std::to_string(free_port()),
                                       "--data-dir=" + data.path};
  CHECK(run_node_once(base, out) != 0);
  CHECK(out.find("is encrypted; set kura.security.encryption-key-file") != std::string::npos);
  auto with_key = base;
  with_key.push_back("--kura.security.encryption-key-file=" + key_file);
  write_keys(key_file, "2 " + std::string(64, '8') + "\n");
  CHECK(run_node_once(with_key, out) != 0);
  CHECK(out.find("does not open it") != std::string::npos);
  write_keys(key_file, k1); // the old key alone: the data moved on to key 2
  CHECK(run_node_once(with_key, out) != 0);
  CHECK(out.find("the key file holds none of them") != std::string::npos);
}
