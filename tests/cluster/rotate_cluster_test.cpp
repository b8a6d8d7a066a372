// `kura rotate-key` on cluster nodes (issue 13; docs/security.md, "Key
// rotation on a cluster node"): three real kura-node processes with a key
// file, the archive on and a tiny L3 (most values live in sealed archive
// segments), no reads before the rotation (so nothing is in a read cache or
// near cache). The key file gets key 2, `kura rotate-key` runs on every node
// while they serve; then every key is read through every node without a
// restart (a re-seal that leaves the running node's tiers unable to read what
// it rewrote shows here as nil), the audit logs hold the rotation's lines, and
// after a restart with only key 2 in the file everything still reads. Then a
// rotation to key 3 is cut by kill -9 on one node once it started; that node
// restarts with keys 2 and 3 and serves everything, the rotation is finished
// on every node, and after a restart with only key 3 everything reads and no
// file under any data dir holds a key or value in plaintext.
#include "cluster/cluster_harness.hpp"
#define KURA_TEST_BULK_DEFINED // bulk() comes from cluster_harness.hpp
#include "node/erase_test_util.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <thread>

using namespace kura::test;

namespace {

constexpr int n_keys = 1500;

std::string key_of(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "rot:%05d", i);
  return buf;
}

std::string marker_of(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "RV%05dMARK", i);
  return buf;
}

std::string hex_key(char c) {
  return std::string(64, c);
}

void write_key_file(const std::string& path, const std::vector<std::pair<int, char>>& keys) {
  std::ofstream f(path, std::ios::trunc);
  for (auto& [id, c] : keys)
    f << id << " " << hex_key(c) << "\n";
}

std::vector<std::string> flags(const std::string& key_file) {
  return {"--kura.archive.enabled=true",         "--kura.l3.max-bytes=50000",
          "--kura.archive.segment-bytes=65536",  "--kura.archive.codec=lz4",
          "--kura.cluster.replication-factor=2", "--kura.cluster.request-timeout=2s",
          "--kura.cluster.near-cache=false",     "--kura.security.encryption-key-file=" + key_file};
}

/// Keys (of the first `n`) that do not read back with their value through
/// `port`, with what came back for the first of them.
std::vector<std::string> unreadable(uint16_t port, int n, std::string& first_reply) {
  std::vector<std::string> out;
  client r(port);
  for (int i = 0; i < n; i += 200) {
    int end = std::min(n, i + 200);
    std::string buf;
    for (int j = i; j < end; ++j)
      buf += client::multibulk({"GET", key_of(j)});
    if (!r.send(buf)) {
      out.push_back("(connection lost)");
      return out;
    }
    for (int j = i; j < end; ++j) {
      auto got = r.reply(30000);
      if (!got) {
        out.push_back(key_of(j) + " (no reply)");
        return out;
      }
      if (got->find(marker_of(j)) == std::string::npos) {
        if (out.empty())
          first_reply = *got;
        out.push_back(key_of(j));
      }
    }
  }
  return out;
}

/// Every key reads back through every running node of `ids`.
void check_all_readable(test_cluster& c, const std::vector<std::string>& ids, int n,
                        const std::string& when) {
  for (auto& id : ids) {
    std::string first;
    auto miss = unreadable(c[id].port, n, first);
    CHECK_MESSAGE(miss.empty(), when << ": " << miss.size() << " of " << n
                                     << " keys do not read through " << id << ", e.g. "
                                     << (miss.empty() ? "" : miss.front()) << " -> " << first);
  }
}

/// `kura rotate-key --json` against a node's ops port: (exit code, output).
std::pair<int, std::string> rotate(const node_process& n) {
  int rc = -1;
  auto out = run_shell("timeout 300 " + bin_dir() + "/kura --timeout=60000 --port=" +
                           std::to_string(n.cluster_port) + " --json rotate-key 2>&1",
                       &rc);
  return {rc, out};
}

/// Starts n1..n3 on `dirs` (n1 first, the others through it) and waits
/// until all see each other.
void start_three(test_cluster& c, const std::vector<std::string>& dirs,
                 const std::string& key_file) {
  for (int i = 0; i < 3; ++i) {
    auto id = "n" + std::to_string(i + 1);
    auto& n = c.start(id, flags(key_file), dirs[i]);
    REQUIRE_MESSAGE(n.ready, id << " did not start:\n" << n.log());
  }
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 90000));
}

/// SIGKILL to every node still running (a node waits for nothing).
void kill_all(test_cluster& c) {
  for (auto& [id, n] : c.nodes)
    if (n->alive())
      n->stop(SIGKILL);
}

const std::vector<std::string> three{"n1", "n2", "n3"};

} // namespace

TEST_CASE("kura rotate-key re-seals every cluster node while it serves; kill -9 mid-rotation "
          "recovers; no plaintext afterwards") {
  temp_dir keys, d1, d2, d3;
  std::vector<std::string> dirs{d1.path, d2.path, d3.path};
  auto key_file = keys.sub("kura.key");
  write_key_file(key_file, {{1, '1'}});

  // -- 1. keys under key 1; rotation to key 2 on every node, no restart -------------
  {
    test_cluster c;
    start_three(c, dirs, key_file);
    {
      client w(c["n1"].port);
      std::vector<std::vector<std::string>> sets;
      for (int i = 0; i < n_keys; ++i)
        sets.push_back({"SET", key_of(i), marked_value("RV", i)});
      pipeline(w, sets);
    }
    write_key_file(key_file, {{1, '1'}, {2, '2'}});
    for (auto& id : three) {
      auto ran = rotate(c[id]);
      int rc = ran.first;
      const std::string& out = ran.second;
      CHECK_MESSAGE(rc == 0, id << ": " << out);
      CHECK_MESSAGE(out.find("\"ok\": true") != std::string::npos, id << ": " << out);
      CHECK_MESSAGE(out.find("\"active_key\": 2") != std::string::npos, id << ": " << out);
    }
    // the bug this checks: the running node read nil for what it had not cached
    check_all_readable(c, three, n_keys, "after the rotation to key 2, no restart");
    for (auto& id : three) // written once the rotation ran: sealed with key 2
      CHECK(c[id].cli("set rot:after:" + id + " v2") == "OK\n");
    // the audit log has the rotation's start and end (written in batches)
    for (int i = 0; i < 3; ++i) {
      auto path = dirs[i] + "/audit.log";
      CHECK_MESSAGE(wait_for(
                        [&] {
                          auto a = read_file(path);
                          return a.find("STARTED new data sealed with key 2") !=
                                     std::string::npos &&
                                 a.find("OK key 2 seals everything") != std::string::npos;
                        },
                        60000),
                    "n" << i + 1 << " audit log:\n"
                        << read_file(path));
    }
    std::this_thread::sleep_for(std::chrono::seconds(2)); // the rot:after writes commit
    kill_all(c);
  }

  // -- 2. a restart with only key 2 in the key file reads everything ------------------
  write_key_file(key_file, {{2, '2'}});
  {
    test_cluster c;
    start_three(c, dirs, key_file);
    check_all_readable(c, three, n_keys, "restarted with key 2 only");
    CHECK(c["n2"].cli("get rot:after:n1") == "v2\n");

    // -- 3. a rotation to key 3 cut by kill -9 on n1 ----------------------------------
    write_key_file(key_file, {{2, '2'}, {3, '3'}});
    auto audit1 = dirs[0] + "/audit.log";
    auto before = read_file(audit1).size();
    std::thread bg([&] { (void)rotate(c["n1"]); }); // the CLI loses the node: exit 2
    bool started = wait_for(
        [&] {
          return read_file(audit1).find("STARTED new data sealed with key 3", before) !=
                 std::string::npos;
        },
        60000);
    c["n1"].stop(SIGKILL);
    bg.join();
    CHECK(started);
    bool finished = read_file(audit1).find("OK key 3", before) != std::string::npos;
    MESSAGE((std::string("n1 was killed ") +
             (finished ? "after its rotation to key 3 finished (it was fast)"
                       : "during its rotation to key 3")));
    // back with keys 2 and 3 (both open its data), through n2
    auto& n1 = c.start(
        "n1",
        [&] {
          auto f = flags(key_file);
          f.push_back("--kura.cluster.seeds=127.0.0.1:" + std::to_string(c["n2"].cluster_port));
          return f;
        }(),
        dirs[0], "n1 again");
    REQUIRE_MESSAGE(n1.ready, n1.log());
    {
      INFO(c.logs());
      REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 90000));
    }
    const std::vector<std::string> now{"n1 again", "n2", "n3"};
    check_all_readable(c, now, n_keys, "n1 restarted after kill -9");
    for (auto& id : now) { // finishes n1's, runs the others'
      auto ran = rotate(c[id]);
      int rc = ran.first;
      const std::string& out = ran.second;
      CHECK_MESSAGE(rc == 0, id << ": " << out);
      CHECK_MESSAGE(out.find("\"active_key\": 3") != std::string::npos, id << ": " << out);
    }
    check_all_readable(c, now, n_keys, "after the rotation to key 3");
    kill_all(c);
  }

  // -- 4. only key 3: everything reads; no plaintext in any file --------------------------
  write_key_file(key_file, {{3, '3'}});
  {
    test_cluster c;
    start_three(c, dirs, key_file);
    check_all_readable(c, three, n_keys, "restarted with key 3 only");
    CHECK(c["n3"].cli("get rot:after:n2") == "v2\n");
    kill_all(c);
  }
  size_t segments = 0;
  for (auto& d : dirs)
    for (auto& [name, bytes] : scan_dir(d)) {
      if (name.size() > 5 && name.compare(name.size() - 5, 5, ".kseg") == 0)
        ++segments;
      for (int i = 0; i < n_keys; ++i)
        if (bytes.find(key_of(i)) != std::string::npos ||
            bytes.find(marker_of(i)) != std::string::npos) {
          FAIL_CHECK(name << " holds " << key_of(i) << " in plaintext");
          break;
        }
    }
  CHECK(segments > 0); // values lived in the archive
}
