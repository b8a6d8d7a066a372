// Helpers of the tests that move data between real kura-node processes
// (move_test, move_ring_test): keys with known values written and read in
// one pipeline, placement (CLUSTER KEYSLOT, KURA.OWNERS), what a node holds
// itself (CLUSTER GETKEYSINSLOT), the move fields of `kura members --json`,
// and the kura CLI.
#pragma once

#include "cluster/cluster_harness.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

namespace kura::test {

inline std::string key_of(int i) {
  return "mv:" + std::to_string(i);
}
inline std::string value_of(int i) {
  return std::string(200, static_cast<char>('a' + i % 26)) + std::to_string(i);
}

/// Sends every command, then reads every reply (one pipeline).
inline std::vector<std::string> pipeline(uint16_t port,
                                         const std::vector<std::vector<std::string>>& cmds) {
  std::vector<std::string> out;
  client c(port);
  if (!c.ok())
    return out;
  std::string all;
  for (auto& a : cmds)
    all += client::multibulk(a);
  if (!c.send(all))
    return out;
  for (size_t i = 0; i < cmds.size(); ++i) {
    auto r = c.reply(20000);
    if (!r)
      break;
    out.push_back(*r);
  }
  return out;
}

/// Writes keys [0, n) through `port`; true when every SET answered +OK
/// (else the first other answer in `why`, when given).
inline bool write_keys(uint16_t port, int n, std::string* why = nullptr) {
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < n; ++i)
    cmds.push_back({"SET", key_of(i), value_of(i)});
  auto r = pipeline(port, cmds);
  for (auto& x : r)
    if (x != "+OK\r\n") {
      if (why)
        *why = x.substr(0, 120);
      return false;
    }
  if (r.size() != cmds.size() && why)
    *why = "no answer to " + std::to_string(cmds.size() - r.size()) + " SETs";
  return r.size() == cmds.size();
}

/// write_keys until every SET is acknowledged (a cluster that has just
/// formed may refuse writes for a moment, more so under ASan): the SETs are
/// the same each time. Says on stderr why a round failed.
inline bool load_keys(uint16_t port, int n) {
  return wait_for(
      [&] {
        std::string why;
        if (write_keys(port, n, &why))
          return true;
        std::fprintf(stderr, "load_keys: retrying: %s\n", why.c_str());
        return false;
      },
      60000);
}

/// Keys of [0, n) whose value read through `port` is wrong or missing; the
/// first wrong answer (or "no answer") in `first_bad` when given.
inline int wrong_reads(uint16_t port, int n, std::string* first_bad = nullptr) {
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < n; ++i)
    cmds.push_back({"GET", key_of(i)});
  auto r = pipeline(port, cmds);
  int bad = n - static_cast<int>(r.size());
  if (bad > 0 && first_bad)
    *first_bad = "no answer to " + std::to_string(bad) + " of " + std::to_string(n) + " GETs";
  for (size_t i = 0; i < r.size(); ++i) {
    auto v = value_of(static_cast<int>(i));
    if (r[i] != "$" + std::to_string(v.size()) + "\r\n" + v + "\r\n") {
      if (bad == 0 && first_bad)
        *first_bad = key_of(static_cast<int>(i)) + " -> " + r[i].substr(0, 80);
      ++bad;
    }
  }
  return bad;
}

/// Key i -> its slot (CLUSTER KEYSLOT) and its replicas (KURA.OWNERS).
struct placement {
  std::vector<std::string> slot;
  std::vector<std::vector<std::string>> owners;
};
inline placement place(uint16_t port, int n) {
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < n; ++i) {
    cmds.push_back({"CLUSTER", "KEYSLOT", key_of(i)});
    cmds.push_back({"KURA.OWNERS", key_of(i)});
  }
  auto r = pipeline(port, cmds);
  placement p;
  for (size_t i = 0; i + 1 < r.size(); i += 2) {
    p.slot.push_back(r[i].substr(1, r[i].find("\r\n") - 1));
    p.owners.push_back(bulk_array(r[i + 1]));
  }
  return p;
}

/// The keys node `port` holds itself (CLUSTER GETKEYSINSLOT: its own copy,
/// no network) among the slots of `slots`.
inline std::set<std::string> held(uint16_t port, const std::set<std::string>& slots) {
  std::vector<std::vector<std::string>> cmds;
  for (auto& s : slots)
    cmds.push_back({"CLUSTER", "GETKEYSINSLOT", s, "100000"});
  std::set<std::string> out;
  for (auto& r : pipeline(port, cmds))
    for (auto& k : bulk_array(r))
      out.insert(k);
  return out;
}

/// Keys of [0, n) that `node` replicates (per `p`) but does not hold.
inline int missing_on(uint16_t port, const std::string& node, const placement& p) {
  std::set<std::string> slots;
  for (size_t i = 0; i < p.slot.size(); ++i)
    for (auto& o : p.owners[i])
      if (o == node)
        slots.insert(p.slot[i]);
  auto have = held(port, slots);
  int missing = 0;
  for (size_t i = 0; i < p.slot.size(); ++i)
    for (auto& o : p.owners[i])
      if (o == node && have.count(key_of(static_cast<int>(i))) == 0)
        ++missing;
  return missing;
}

/// A number field of the "move" object in members JSON (-1: absent).
inline double move_field(const std::string& json, const std::string& field) {
  auto m = json.find("\"move\": {");
  if (m == std::string::npos)
    return -1;
  auto p = json.find("\"" + field + "\": ", m);
  if (p == std::string::npos)
    return -1;
  return std::strtod(json.c_str() + p + field.size() + 4, nullptr);
}
inline bool move_active(const std::string& json) {
  auto m = json.find("\"move\": {\"active\": true");
  return m != std::string::npos;
}

/// Writes "w:<i>" through `port` until `stop`, one at a time; the indexes
/// of the writes that were acknowledged (+OK) land in `acked` (read it
/// after the writer ended) and their number in `count` (while it runs).
inline void writer(uint16_t port, std::atomic<bool>& stop, std::vector<int>& acked,
                   std::atomic<size_t>* count = nullptr) {
  client c(port);
  for (int i = 0; !stop && c.ok(); ++i) {
    auto r = c.call({"SET", "w:" + std::to_string(i), "v" + std::to_string(i)});
    if (!r)
      break;
    if (*r == "+OK\r\n") {
      acked.push_back(i);
      if (count)
        ++*count;
    }
  }
}

/// Acknowledged "w:<i>" writes that do not read back through `port`.
inline int lost_writes(uint16_t port, const std::vector<int>& acked) {
  std::vector<std::vector<std::string>> cmds;
  for (int i : acked)
    cmds.push_back({"GET", "w:" + std::to_string(i)});
  auto r = pipeline(port, cmds);
  int lost = static_cast<int>(acked.size() - r.size());
  for (size_t j = 0; j < r.size(); ++j) {
    auto v = "v" + std::to_string(acked[j]);
    if (r[j] != "$" + std::to_string(v.size()) + "\r\n" + v + "\r\n")
      ++lost;
  }
  return lost;
}

/// Runs the kura CLI against `port` (a cluster/ops port); stdout, exit code in
/// `rc`. A CLI still watching a move after 150 s is ended (exit 124).
inline std::string kura_cli(uint16_t port, const std::string& args, int* rc) {
  return run_shell("timeout 150 " + bin_dir() + "/kura --timeout=3000 --port=" +
                       std::to_string(port) + " " + args + " 2>/dev/null",
                   rc);
}

/// True when `kura members --json` of `cluster_port` shows member `id` drained.
inline bool sees_drained(uint16_t cluster_port, const std::string& id) {
  auto j = members_json(cluster_port);
  auto p = j.find("{\"id\": \"" + id + "\"");
  return p != std::string::npos && j.find("\"drained\": true", p) < j.find('}', p);
}

} // namespace kura::test
