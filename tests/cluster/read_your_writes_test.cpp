// Read-your-writes through a node that forwards (issue 8: "Routing ... a
// node that does not own the key forwards the command to the owner and
// relays the reply"): a client that sent INCR (run at the key's owner) and
// then GET to the same node reads what its INCR answered, or newer, never
// an older version, also when the node's read asks a replica the write has
// not reached yet (write-acks 1: the owner acknowledges alone). Three real
// kura-node processes on loopback.
#include "cluster/cluster_harness.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace kura::test;

namespace {

/// Up to `n` keys whose replicas are exactly `owner`, `replica`.
std::vector<std::string> keys_owned(client& k, const std::string& owner, const std::string& replica,
                                    size_t n) {
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < n && i < 50000; ++i) {
    auto key = "ryw:" + std::to_string(i);
    auto own = bulk_array(k.call({"KURA.OWNERS", key}).value_or(""));
    if (own.size() == 2 && own[0] == owner && own[1] == replica)
      keys.push_back(key);
  }
  return keys;
}

/// Sends INCR key + GET key for each key `rounds` times, pipelined per
/// round, through `via`; returns how many GETs answered something other
/// than the preceding INCR's number (MESSAGE names the first few).
size_t incr_then_get(client& via, const std::vector<std::string>& keys, int rounds) {
  size_t older = 0;
  for (int r = 0; r < rounds; ++r) {
    std::string batch;
    for (auto& k : keys)
      batch += client::multibulk({"INCR", k}) + client::multibulk({"GET", k});
    REQUIRE(via.send(batch));
    for (auto& k : keys) {
      auto inc = via.reply(30000), got = via.reply(30000);
      REQUIRE(inc);
      REQUIRE(got);
      REQUIRE_MESSAGE(inc->rfind(":", 0) == 0, "INCR " << k << ": " << *inc);
      auto want = bulk(inc->substr(1, inc->size() - 3));
      if (*got != want && older++ < 5)
        MESSAGE("GET " << k << " after INCR answered " << *inc << ": " << *got);
    }
  }
  return older;
}

} // namespace

TEST_CASE("a GET after an INCR forwarded to the owner reads the INCR's value, through a replica "
          "and through a non-replica") {
  test_cluster c;
  // write-acks 1: the owner acknowledges once it applied the write, before
  // its replica has it; near copies stay on (the default).
  c.start_ring(3, {"--kura.cluster.write-acks=1"});
  INFO(c.logs());
  client k1(c["n1"].port);
  auto keys = keys_owned(k1, "n1", "n2", 40);
  REQUIRE(keys.size() == 40);
  for (auto& k : keys)
    REQUIRE(k1.call({"SET", k, "0"}) == std::string("+OK\r\n"));
  // Every node reads every key once (n2 and n3 keep near copies where they
  // are not replicas), so that later reads may be answered near.
  client k2(c["n2"].port), k3(c["n3"].port);
  for (auto& k : keys) {
    REQUIRE(k2.call({"GET", k}).has_value());
    REQUIRE(k3.call({"GET", k}).has_value());
  }
  // Through n2 (the replica: its GET reads its own copy) and n3 (not a
  // replica: it asks the replicas or serves its near copy).
  CHECK(incr_then_get(k2, keys, 10) == 0);
  CHECK(incr_then_get(k3, keys, 10) == 0);
}
