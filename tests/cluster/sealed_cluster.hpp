// Helpers of the encryption-at-rest cluster tests (encryption_cluster_test,
// rotate_cluster_test): known keys with marked values, the node flags that
// put most values into sealed archive segments (archive on, a tiny L3), a
// pipelined read-back of every key through one node, a wait until every node
// serves the same slot map, and the plaintext scan of every file under the
// nodes' data dirs.
#pragma once

#include "cluster/cluster_harness.hpp"
#define KURA_TEST_BULK_DEFINED // bulk() comes from cluster_harness.hpp
#include "node/erase_test_util.hpp"

#include <cstdio>
#include <set>
#include <string>
#include <vector>

namespace kura::test {

/// Keys `<prefix>:00000`... with values marked_value(tag, i), whose marker
/// `<tag>00000MARK` names the key.
struct marked_keys {
  std::string prefix, tag;
  int n = 0;

  std::string key(int i) const {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s:%05d", prefix.c_str(), i);
    return buf;
  }
  std::string marker(int i) const {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%05dMARK", tag.c_str(), i);
    return buf;
  }
  std::string value(int i) const { return marked_value(tag.c_str(), i); }

  /// SET of every key through `port`, pipelined.
  void write(uint16_t port) const {
    client w(port);
    std::vector<std::vector<std::string>> sets;
    for (int i = 0; i < n; ++i)
      sets.push_back({"SET", key(i), value(i)});
    pipeline(w, sets);
  }

  /// Keys that do not read back with their value through `port` (GETs
  /// pipelined 200 at a time), with what came back for the first of them.
  std::vector<std::string> unreadable(uint16_t port, std::string& first_reply) const {
    std::vector<std::string> out;
    client r(port);
    for (int i = 0; i < n; i += 200) {
      int end = std::min(n, i + 200);
      std::string buf;
      for (int j = i; j < end; ++j)
        buf += client::multibulk({"GET", key(j)});
      if (!r.send(buf)) {
        out.push_back("(connection lost)");
        return out;
      }
      for (int j = i; j < end; ++j) {
        auto got = r.reply(30000);
        if (!got) {
          out.push_back(key(j) + " (no reply)");
          return out;
        }
        if (got->find(marker(j)) == std::string::npos) {
          if (out.empty())
            first_reply = *got;
          out.push_back(key(j));
        }
      }
    }
    return out;
  }

  /// What every running node holds of the first 5 of `keys` (KURA.HELD).
  static std::string held_report(test_cluster& c, const std::vector<std::string>& keys) {
    std::string out;
    for (size_t i = 0; i < keys.size() && i < 5; ++i) {
      if (keys[i].find(' ') != std::string::npos)
        continue; // "(no reply)", "(connection lost)"
      for (auto& [id, p] : c.nodes) {
        if (!p->alive())
          continue;
        client r(p->port);
        auto got = r.call({"KURA.HELD", keys[i]});
        out += "  " + keys[i] + " on " + id + ": " + (got ? *got : std::string("(no reply)"));
      }
    }
    return out;
  }

  /// Every key reads back through each node of `ids` (CHECK, naming up to
  /// 20 keys that do not).
  void check_readable(test_cluster& c, const std::vector<std::string>& ids,
                      const std::string& when) const {
    for (auto& id : ids) {
      std::string first;
      auto miss = unreadable(c[id].port, first);
      std::string some;
      for (size_t i = 0; i < miss.size() && i < 20; ++i)
        some += miss[i] + " ";
      CHECK_MESSAGE(miss.empty(), when << ": " << miss.size() << " of " << n
                                       << " keys do not read through " << id << ": " << some
                                       << "(the first answered " << first << ")\n"
                                       << held_report(c, miss));
    }
  }

  /// Files under `dirs` (framing and decompressed blocks of plaintext
  /// segments) that hold any key or value marker, and how many segment
  /// files there were.
  std::vector<std::string> plaintext_hits(const std::vector<std::string>& dirs,
                                          size_t& segments) const {
    std::vector<std::string> out;
    segments = 0;
    for (auto& d : dirs)
      for (auto& [name, bytes] : scan_dir(d)) {
        if (name.size() > 5 && name.compare(name.size() - 5, 5, ".kseg") == 0)
          ++segments;
        for (int i = 0; i < n; ++i)
          if (bytes.find(key(i)) != std::string::npos ||
              bytes.find(marker(i)) != std::string::npos) {
            out.push_back(name + " holds " + key(i));
            break;
          }
      }
    return out;
  }
};

/// Flags of a cluster node whose values mostly live in archive segments:
/// the archive on, a tiny L3, RF 2; with `key_file`, encryption at rest.
inline std::vector<std::string> sealed_cluster_flags(const std::string& key_file) {
  std::vector<std::string> f{
      "--kura.archive.enabled=true",         "--kura.l3.max-bytes=50000",
      "--kura.archive.segment-bytes=65536",  "--kura.archive.codec=lz4",
      "--kura.cluster.replication-factor=2", "--kura.cluster.request-timeout=2s"};
  if (!key_file.empty())
    f.push_back("--kura.security.encryption-key-file=" + key_file);
  return f;
}

/// Waits (up to 90 s) until every node of `ids` answers CLUSTER SLOTS with
/// the same map, naming `ids.size()` distinct nodes: the ring has settled
/// on every node (the members agree on each other's tokens and addresses).
inline bool wait_same_slots(test_cluster& c, const std::vector<std::string>& ids) {
  return wait_for(
      [&] {
        std::set<std::string> maps;
        for (auto& id : ids) {
          client r(c[id].port);
          auto got = r.call({"CLUSTER", "SLOTS"});
          if (!got)
            return false;
          maps.insert(*got);
        }
        if (maps.size() != 1)
          return false;
        size_t named = 0;
        for (auto& id : ids)
          named += maps.begin()->find(std::to_string(c[id].port)) != std::string::npos;
        return named == ids.size();
      },
      90000);
}

} // namespace kura::test
