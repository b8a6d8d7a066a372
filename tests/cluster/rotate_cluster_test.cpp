// `kura rotate-key` on cluster nodes (issue 13; docs/security.md, "Key
// rotation on a cluster node"): three real kura-node processes with a key
// file, the archive on and a tiny L3 (most values live in sealed archive
// segments), no reads before the rotation (so nothing is in a read cache or
// near cache). The key file gets key 2, `kura rotate-key` runs on every node
// while they serve; then every key is read through every node without a
// restart (a re-seal that leaves the running node's tiers unable to read what
// it rewrote shows here as nil) and the audit logs hold the rotation's lines.
// Then (key 1 gone from the file) a
// rotation to key 3 is cut by kill -9 on one node once it started, while a
// client overwrites the (archived) keys through that node; that node
// restarts with keys 2 and 3 and serves everything, the rotation is finished
// on every node, and after a restart with only key 3 everything reads and no
// file under any data dir holds a key or value in plaintext.
#include "cluster/sealed_cluster.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <thread>

using namespace kura::test;

namespace {

const marked_keys keys{"rot", "RV", 600};

void write_key_file(const std::string& path, const std::vector<std::pair<int, char>>& ids) {
  std::ofstream f(path, std::ios::trunc);
  for (auto& [id, c] : ids)
    f << id << " " << std::string(64, c) << "\n";
}

std::vector<std::string> flags(const std::string& key_file) {
  auto f = sealed_cluster_flags(key_file);
  f.push_back("--kura.cluster.near-cache=false");
  return f;
}

/// `kura rotate-key --json` against a node's ops port: (exit code, output).
std::pair<int, std::string> rotate(const node_process& n) {
  int rc = -1;
  auto out = run_shell("timeout 300 " + bin_dir() + "/kura --timeout=60000 --port=" +
                           std::to_string(n.cluster_port) + " --json rotate-key 2>&1",
                       &rc);
  return {rc, out};
}

const std::vector<std::string> three{"n1", "n2", "n3"};

/// `kura rotate-key` on each node of `ids` in turn: each reports success
/// with `active` as its active key.
void rotate_all(test_cluster& c, const std::vector<std::string>& ids, int active) {
  for (auto& id : ids) {
    auto ran = rotate(c[id]); // (no structured binding: clang's lambdas cannot capture one)
    int rc = ran.first;
    const std::string& out = ran.second;
    CHECK_MESSAGE(rc == 0, id << ": " << out);
    CHECK_MESSAGE(out.find("\"ok\": true") != std::string::npos, id << ": " << out);
    CHECK_MESSAGE(out.find("\"active_key\": " + std::to_string(active)) != std::string::npos,
                  id << ": " << out);
  }
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
  REQUIRE(wait_same_slots(c, three));
}

/// SIGKILL to every node still running (a node waits for nothing).
void kill_all(test_cluster& c) {
  for (auto& [id, n] : c.nodes)
    if (n->alive())
      n->stop(SIGKILL);
}

} // namespace

TEST_CASE("kura rotate-key re-seals every cluster node while it serves; kill -9 mid-rotation "
          "recovers; no plaintext afterwards") {
  temp_dir key_dir, d1, d2, d3;
  std::vector<std::string> dirs{d1.path, d2.path, d3.path};
  // (KURA_TEST_KEEP_DIRS keeps them and the nodes' logs, <dir>.log)
  MESSAGE("data dirs of n1, n2, n3: " << d1.path << " " << d2.path << " " << d3.path);
  auto key_file = key_dir.sub("kura.key");
  write_key_file(key_file, {{1, '1'}});

  // -- 1. keys under key 1; rotation to key 2 on every node, no restart -------------
  {
    test_cluster c;
    start_three(c, dirs, key_file);
    keys.write(c["n1"].port);
    write_key_file(key_file, {{1, '1'}, {2, '2'}});
    rotate_all(c, three, 2);
    // the bug this checks: the running node read nil for what it had not cached
    keys.check_readable(c, three, "after the rotation to key 2, no restart");
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

    // -- 2. a rotation to key 3 cut by kill -9 on n1, writes all along ---------------
    // (key 1 leaves the file: the rotation to key 2 no longer needs it)
    write_key_file(key_file, {{2, '2'}, {3, '3'}});
    auto audit1 = dirs[0] + "/audit.log";
    auto before = read_file(audit1).size();
    // writes through n1 all along (new versions of archived keys, same values)
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      client w(c["n1"].port);
      for (int i = 0; !stop.load(); i = (i + 50) % keys.n) {
        std::string buf;
        for (int j = i; j < std::min(keys.n, i + 50); ++j)
          buf += client::multibulk({"SET", keys.key(j), keys.value(j)});
        if (!w.send(buf))
          return;
        for (int j = i; j < std::min(keys.n, i + 50); ++j)
          if (!w.reply(10000))
            return; // n1 is gone
      }
    });
    std::thread bg([&] { (void)rotate(c["n1"]); }); // the CLI loses the node: exit 2
    bool started = wait_for(
        [&] {
          return read_file(audit1).find("STARTED new data sealed with key 3", before) !=
                 std::string::npos;
        },
        60000);
    c["n1"].stop(SIGKILL);
    stop = true;
    bg.join();
    writer.join();
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
    REQUIRE(wait_same_slots(c, now));
    keys.check_readable(c, now, "n1 restarted after kill -9");
    rotate_all(c, now, 3); // finishes n1's, runs the others'
    keys.check_readable(c, now, "after the rotation to key 3");
    kill_all(c);
  }

  // -- 3. only key 3: everything reads; no plaintext in any file --------------------------
  write_key_file(key_file, {{3, '3'}});
  {
    test_cluster c;
    start_three(c, dirs, key_file);
    keys.check_readable(c, three, "restarted with key 3 only");
    for (auto& id : three)
      CHECK(c[id].cli("get rot:after:" + id) == "v2\n");
    kill_all(c);
  }
  size_t segments = 0;
  for (auto& h : keys.plaintext_hits(dirs, segments))
    FAIL_CHECK(h << " in plaintext");
  CHECK(segments > 0); // values lived in the archive
}
