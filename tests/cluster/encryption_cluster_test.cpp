// Encryption at rest on cluster nodes (issue 13): three real kura-node
// processes with kura.security.encryption-key-file, the archive on and a
// tiny L3 (most values are archived to L4 segments). Known keys and values
// are written, some overwritten, some deleted; every value reads back through
// every node; then every node is killed and every file under every data dir
// is scanned: no plaintext key or value anywhere (L3's data.mdb, archive
// segments, the archive index, cluster files, logs). The same scan finds the
// values in a cluster without the key file, so it could fail.
#include "cluster/sealed_cluster.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <thread>

using namespace kura::test;

namespace {

const marked_keys keys{"enc", "EV", 600};

/// Writes the keys through n1 and checks them through every node; returns
/// the data dirs after killing every node.
std::vector<std::string> run_cluster(test_cluster& c, const std::string& key_file) {
  for (int i = 1; i <= 3; ++i)
    REQUIRE(c.start("n" + std::to_string(i), sealed_cluster_flags(key_file)).ready);
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 60000));
  REQUIRE(wait_same_slots(c, {"n1", "n2", "n3"}));
  keys.write(c["n1"].port);
  // every key read back through every node (values from L3 or the archive)
  keys.check_readable(c, {"n1", "n2", "n3"}, "written");
  std::this_thread::sleep_for(std::chrono::seconds(2)); // commits, archive flushes
  std::vector<std::string> dirs;
  for (auto id : {"n1", "n2", "n3"}) {
    dirs.push_back(c[id].data_dir);
    c[id].stop(SIGKILL);
  }
  return dirs;
}

} // namespace

TEST_CASE("a cluster node with an encryption key leaves no plaintext key or value in any file") {
  temp_dir key_dir;
  auto key_file = key_dir.sub("kura.key");
  std::ofstream(key_file, std::ios::trunc) << "1 " << std::string(64, '5') << "\n";
  std::vector<std::string> dirs;
  {
    test_cluster c;
    dirs = run_cluster(c, key_file);
    size_t segments = 0;
    auto hits = keys.plaintext_hits(dirs, segments);
    CHECK(segments > 0); // values went to the archive
    for (auto& h : hits)
      FAIL_CHECK(h);
    CHECK(hits.empty());
  }
  // the same scan finds them without the key (the check can fail)
  {
    test_cluster c;
    dirs = run_cluster(c, "");
    size_t segments = 0;
    auto hits = keys.plaintext_hits(dirs, segments);
    CHECK(segments > 0);
    CHECK(hits.size() > 3);
  }
}
