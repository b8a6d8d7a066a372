// Operating the ring (issue 9) on real kura-node processes: `kura drain`'s
// mark survives a restart of the drained node and of the others (it is
// persisted in the node's data dir and gossiped with its address), and
// `kura undrain` removes it for good; `kura rebalance` evens out skewed
// bytes per node by token counts (persisted and gossiped the same way), and
// every key still reads.
#include "cluster/move_util.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <thread>

using namespace kura::test;

namespace {

/// Members of the placement of keys [0, n) seen through `port` that are `id`.
size_t placed_on(uint16_t port, int n, const std::string& id) {
  auto p = place(port, n);
  size_t k = 0;
  for (auto& o : p.owners)
    k += static_cast<size_t>(std::count(o.begin(), o.end(), id));
  return p.slot.size() == static_cast<size_t>(n) ? k : size_t{1} << 30;
}

/// A number field of a JSON document (-1: absent).
double json_num(const std::string& json, const std::string& field) {
  auto p = json.find("\"" + field + "\": ");
  return p == std::string::npos ? -1 : std::strtod(json.c_str() + p + field.size() + 4, nullptr);
}

std::string hot_value(const std::string& key) {
  return std::string(4096, 'h') + key;
}

/// Keys of `keys` whose value read through `port` is not hot_value(key).
int wrong_hot(uint16_t port, const std::vector<std::string>& keys) {
  std::vector<std::vector<std::string>> cmds;
  for (auto& k : keys)
    cmds.push_back({"GET", k});
  auto r = pipeline(port, cmds);
  int bad = static_cast<int>(keys.size() - r.size());
  for (size_t i = 0; i < r.size(); ++i)
    bad += r[i] != bulk(hot_value(keys[i]));
  return bad;
}

} // namespace

TEST_CASE("the drained mark survives a restart of the drained node and of the others") {
  test_cluster c;
  c.start_ring(3);
  INFO(c.logs());
  const int n = 600;
  REQUIRE(load_keys(c["n1"].port, n));
  int rc = -1;
  auto out = kura_cli(c["n1"].cluster_port, "--json drain n3", &rc);
  INFO(out);
  REQUIRE(rc == 0);
  REQUIRE(wait_for([&] {
    return sees_drained(c["n1"].cluster_port, "n3") && sees_drained(c["n2"].cluster_port, "n3") &&
           move_field(members_json(c["n3"].cluster_port), "keys_held") == 0;
  }));
  auto dir3 = c["n3"].data_dir;
  auto dir1 = c["n1"].data_dir;
  auto seed2 = "--kura.cluster.seeds=127.0.0.1:" + std::to_string(c["n2"].cluster_port);

  // The drained node crashes and comes back on its disk: still drained.
  c["n3"].stop(SIGKILL);
  REQUIRE(c.start("n3", {seed2}, dir3, "n3b").ready);
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 60000));
  CHECK(wait_for([&] {
    for (auto id : {"n1", "n2", "n3b"})
      if (!sees_drained(c[id].cluster_port, "n3"))
        return false;
    return true;
  }));
  CHECK(placed_on(c["n1"].port, n, "n3") == 0);
  CHECK(placed_on(c["n3b"].port, n, "n3") == 0);
  CHECK(wrong_reads(c["n3b"].port, n) == 0); // it still answers, by forwarding

  // Another node crashes and comes back: it learns the mark from n3.
  c["n1"].stop(SIGKILL);
  REQUIRE(c.start("n1", {seed2}, dir1, "n1b").ready);
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 60000));
  CHECK(wait_for([&] { return sees_drained(c["n1b"].cluster_port, "n3"); }));
  CHECK(placed_on(c["n1b"].port, n, "n3") == 0);
  CHECK(wait_for([&] { return wrong_reads(c["n1b"].port, n) == 0; }, 60000));
  CHECK(move_field(members_json(c["n3b"].cluster_port), "keys_held") == 0);

  // Undrain, then restart n3 again: it stays placed.
  out = kura_cli(c["n2"].cluster_port, "--json undrain n3", &rc);
  INFO(out);
  CHECK(rc == 0);
  CHECK(wait_for([&] { return placed_on(c["n1b"].port, n, "n3") > 0; }));
  CHECK(wait_for([&] { return !move_active(members_json(c["n3b"].cluster_port)); }, 60000));
  c["n3b"].stop(SIGKILL);
  REQUIRE(c.start("n3", {seed2}, dir3, "n3c").ready);
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 60000));
  CHECK(wait_for([&] {
    return !sees_drained(c["n2"].cluster_port, "n3") && placed_on(c["n2"].port, n, "n3") > 0;
  }));
  CHECK(wait_for([&] { return wrong_reads(c["n3c"].port, n) == 0; }, 60000));
}

TEST_CASE("kura rebalance evens out skewed bytes per node; every key still reads") {
  test_cluster c;
  c.start_ring(3);
  INFO(c.logs());
  const int n = 300;
  REQUIRE(load_keys(c["n1"].port, n));
  // Skew: 4 KiB values under 40 hash tags whose slots n3 does not replicate.
  std::vector<std::string> hot;
  for (int t = 0, tags = 0; tags < 40 && t < 2000; ++t) {
    auto tag = "{hot" + std::to_string(t) + "}";
    auto owners = bulk_array(*client(c["n1"].port).call({"KURA.OWNERS", tag}));
    if (std::find(owners.begin(), owners.end(), "n3") != owners.end())
      continue;
    ++tags;
    for (int j = 0; j < 10; ++j)
      hot.push_back(tag + ":" + std::to_string(j));
  }
  REQUIRE(hot.size() == 400);
  std::vector<std::vector<std::string>> sets;
  for (auto& k : hot)
    sets.push_back({"SET", k, hot_value(k)});
  for (auto& r : pipeline(c["n2"].port, sets))
    REQUIRE(r == "+OK\r\n");
  int rc = -1;
  std::string before;
  REQUIRE(wait_for([&] { // every copy written: n1 and n2 hold the hot bytes
    before = kura_cli(c["n1"].cluster_port, "--json ring", &rc);
    return rc == 0 && json_num(before, "bytes_max_over_mean") > 1.3;
  }));
  INFO(before);
  // Writes go on during the rebalance; none acknowledged may be lost.
  std::atomic<bool> stop{false};
  std::vector<int> acked;
  std::atomic<size_t> count{0};
  std::thread w([&] { writer(c["n1"].port, stop, acked, &count); });
  bool wrote = wait_for([&] { return count > 10; }, 60000); // the writer runs
  auto out = kura_cli(c["n2"].cluster_port, "--json rebalance", &rc);
  stop = true;
  w.join();
  INFO(out);
  CHECK(wrote);
  CHECK(rc == 0);
  CHECK(out.find("\"changed\": true") != std::string::npos);
  CHECK(json_num(out, "max_over_mean_planned") < json_num(out, "max_over_mean_before"));
  // The ring runs the new token counts everywhere and bytes per node are more even.
  std::string after;
  CHECK(wait_for(
      [&] {
        after = kura_cli(c["n3"].cluster_port, "--json ring", &rc);
        return rc == 0 && json_num(after, "bytes_max_over_mean") <
                              json_num(before, "bytes_max_over_mean") - 0.1;
      },
      60000));
  INFO(after);
  size_t at_default = 0; // members still at the default 512 tokens
  for (auto q = after.find("\"tokens\": 512,"); q != std::string::npos;
       q = after.find("\"tokens\": 512,", q + 1))
    ++at_default;
  CHECK(at_default < 3);
  // Every key reads back through every node, and each node holds what it replicates.
  for (auto id : {"n1", "n2", "n3"}) {
    CHECK(wrong_reads(c[id].port, n) == 0);
    CHECK(wrong_hot(c[id].port, hot) == 0);
  }
  for (auto id : {"n1", "n2", "n3"})
    CHECK(lost_writes(c[id].port, acked) == 0);
  auto p = place(c["n1"].port, n);
  for (auto id : {"n1", "n2", "n3"})
    CHECK(wait_for([&] { return missing_on(c[id].port, id, p) == 0; }, 60000));
  // A second rebalance finds nothing (much) to move.
  out = kura_cli(c["n1"].cluster_port, "--json rebalance", &rc);
  CHECK(rc == 0);
  // The token counts survive a restart (persisted, gossiped with the address).
  auto tokens_of = [&](uint16_t cport, const std::string& id) {
    auto j = kura_cli(cport, "--json ring", &rc);
    auto at = j.find("{\"id\": \"" + id + "\"");
    return at == std::string::npos ? -1.0 : json_num(j.substr(at), "tokens");
  };
  double t2 = tokens_of(c["n1"].cluster_port, "n2");
  auto dir2 = c["n2"].data_dir;
  c["n2"].stop(SIGKILL);
  REQUIRE(c.start("n2", {}, dir2, "n2b").ready);
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 60000));
  CHECK(wait_for([&] { return tokens_of(c["n2b"].cluster_port, "n2") == t2; }));
  CHECK(tokens_of(c["n1"].cluster_port, "n2") == t2);
  CHECK(wait_for([&] { return wrong_hot(c["n2b"].port, hot) == 0; }, 60000));
}
