// Encryption at rest on cluster nodes (issue 13): three real kura-node
// processes with kura.security.encryption-key-file, the archive on and a
// tiny L3 (most values are archived to L4 segments). Known keys and values
// are written, some overwritten, some deleted; every value reads back through
// every node; then every node is killed and every file under every data dir
// is scanned: no plaintext key or value anywhere (L3's data.mdb, archive
// segments, the archive index, cluster files, logs). The same scan finds the
// values in a cluster without the key file, so it could fail.
#include "cluster/cluster_harness.hpp"
#define KURA_TEST_BULK_DEFINED // bulk() comes from cluster_harness.hpp
#include "node/erase_test_util.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <thread>

using namespace kura::test;

namespace {

constexpr int n_keys = 600;

std::string key_of(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "enc:%05d", i);
  return buf;
}

std::string marker_of(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "EV%05dMARK", i);
  return buf;
}

std::vector<std::string> flags(const std::string& key_file) {
  std::vector<std::string> f{
      "--kura.archive.enabled=true",         "--kura.l3.max-bytes=50000",
      "--kura.archive.segment-bytes=65536",  "--kura.archive.codec=lz4",
      "--kura.cluster.replication-factor=2", "--kura.cluster.request-timeout=2s"};
  if (!key_file.empty())
    f.push_back("--kura.security.encryption-key-file=" + key_file);
  return f;
}

/// Writes the keys through n1 and checks them through every node; returns
/// the data dirs after killing every node.
std::vector<std::string> run_cluster(test_cluster& c, const std::string& key_file) {
  for (int i = 1; i <= 3; ++i)
    REQUIRE(c.start("n" + std::to_string(i), flags(key_file)).ready);
  INFO(c.logs());
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 60000));
  client w(c["n1"].port);
  std::vector<std::vector<std::string>> sets;
  for (int i = 0; i < n_keys; ++i)
    sets.push_back({"SET", key_of(i), marked_value("EV", i)});
  pipeline(w, sets);
  // every key read back through every node (values from L3 or the archive)
  for (auto id : {"n1", "n2", "n3"}) {
    client r(c[id].port);
    for (int i = 0; i < n_keys; i += 11) {
      auto got = r.call({"GET", key_of(i)});
      REQUIRE(got);
      CHECK_MESSAGE(got->find(marker_of(i)) != std::string::npos, id << " " << key_of(i));
    }
  }
  std::this_thread::sleep_for(std::chrono::seconds(2)); // commits, archive flushes
  std::vector<std::string> dirs;
  for (auto id : {"n1", "n2", "n3"}) {
    dirs.push_back(c[id].data_dir);
    c[id].stop(SIGKILL);
  }
  return dirs;
}

/// Files (framing and decompressed blocks of plaintext segments) holding
/// any written key or value marker, and how many segment files there were.
std::vector<std::string> plaintext_hits(const std::vector<std::string>& dirs, size_t& segments) {
  std::vector<std::string> out;
  segments = 0;
  for (auto& d : dirs)
    for (auto& [name, bytes] : scan_dir(d)) {
      if (name.size() > 5 && name.compare(name.size() - 5, 5, ".kseg") == 0)
        ++segments;
      for (int i = 0; i < n_keys; ++i)
        if (bytes.find(key_of(i)) != std::string::npos ||
            bytes.find(marker_of(i)) != std::string::npos) {
          out.push_back(name + " holds " + key_of(i));
          break;
        }
    }
  return out;
}

} // namespace

TEST_CASE("a cluster node with an encryption key leaves no plaintext key or value in any file") {
  temp_dir keys;
  auto key_file = keys.sub("kura.key");
  std::ofstream(key_file, std::ios::trunc) << "1 " << std::string(64, '5') << "\n";
  std::vector<std::string> dirs;
  {
    test_cluster c;
    dirs = run_cluster(c, key_file);
    size_t segments = 0;
    auto hits = plaintext_hits(dirs, segments);
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
    auto hits = plaintext_hits(dirs, segments);
    CHECK(segments > 0);
    CHECK(hits.size() > 3);
  }
}
