// Client tracking on cluster nodes (issue 11): a tracking client on n1 reads
// keys that n1 does not replicate, and writes made through n3 invalidate them
// (RESP3 pushes, RESP2 REDIRECT to a __redis__:invalidate subscriber, BCAST
// PREFIX with NOLOOP). Three real kura-node processes on loopback. Pushes are
// asynchronous: every wait polls with a deadline, and a push may arrive
// before any reply.
#include "cluster/cluster_harness.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

using namespace kura::test;

namespace {

const std::string ok = "+OK\r\n";

/// A key whose replicas (KURA.OWNERS, owner first) leave out `not_on`.
std::string key_not_on(client& k, const std::string& prefix, const std::string& not_on) {
  for (int i = 0; i < 1000; ++i) {
    std::string key = prefix + std::to_string(i);
    auto r = k.call({"KURA.OWNERS", key});
    if (!r)
      return {};
    auto owners = bulk_array(*r);
    if (!owners.empty() && std::find(owners.begin(), owners.end(), not_on) == owners.end())
      return key;
  }
  return {};
}

/// A client whose pushes (RESP3 '>' frames, or RESP2 pub/sub messages when
/// `messages`) are set aside while it waits for replies.
struct tracker {
  explicit tracker(uint16_t port) : c(port) {}

  bool is_push(const std::string& r) const {
    return r.rfind(">", 0) == 0 || (messages && r.rfind("*3\r\n$7\r\nmessage\r\n", 0) == 0);
  }
  /// The command's reply (pushes before it are kept).
  std::optional<std::string> call(const std::vector<std::string>& args) {
    if (!c.send(client::multibulk(args)))
      return std::nullopt;
    for (;;) {
      auto r = c.reply(20000);
      if (!r || !is_push(*r))
        return r;
      pushes.push_back(*r);
    }
  }
  /// Waits (up to `ms`) for a push naming `key`; true when one came.
  bool wait_push(const std::string& key, int ms = 20000) {
    auto needle = "$" + std::to_string(key.size()) + "\r\n" + key + "\r\n";
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      for (auto& p : pushes)
        if (p.find(needle) != std::string::npos)
          return true;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      if (left <= 0)
        return false;
      auto r = c.reply(static_cast<int>(std::min<long>(left, 500)));
      if (r && is_push(*r))
        pushes.push_back(*r);
    }
  }
  bool any_push_names(const std::string& key) const {
    auto needle = "$" + std::to_string(key.size()) + "\r\n" + key + "\r\n";
    for (auto& p : pushes)
      if (p.find(needle) != std::string::npos)
        return true;
    return false;
  }

  client c;
  bool messages = false;
  std::vector<std::string> pushes;
};

} // namespace

TEST_CASE("client tracking on a cluster node hears of writes made through other nodes") {
  test_cluster c;
  c.start_ring(3);
  INFO(c.logs());
  client k1(c["n1"].port), k3(c["n3"].port);
  auto key = key_not_on(k1, "tk", "n1");
  auto key2 = key_not_on(k1, "tr", "n1");
  REQUIRE(!key.empty());
  REQUIRE(!key2.empty());
  REQUIRE(k3.call({"SET", key, "v1"}) == ok);
  REQUIRE(k3.call({"SET", key2, "w1"}) == ok);

  SUBCASE("default mode, RESP3 push; read again to track again") {
    tracker t(c["n1"].port);
    REQUIRE(t.call({"HELLO", "3"}));
    REQUIRE(t.call({"CLIENT", "TRACKING", "ON"}) == ok);
    REQUIRE(t.call({"GET", key}) == bulk("v1"));
    REQUIRE(k3.call({"SET", key, "v2"}) == ok);
    CHECK(t.wait_push(key));
    CHECK(t.pushes.front().rfind(">2\r\n$10\r\ninvalidate\r\n*1\r\n", 0) == 0);
    // tracked again by the next read; a delete through n3 invalidates it
    t.pushes.clear();
    REQUIRE(t.call({"GET", key}) == bulk("v2"));
    REQUIRE(k3.call({"DEL", key}) == std::string(":1\r\n"));
    CHECK(t.wait_push(key));
    // a read-modify-write at the owner (INCR, forwarded) invalidates too
    t.pushes.clear();
    auto gone = t.call({"GET", key}); // routed replies keep RESP2's null
    REQUIRE((gone == std::string("_\r\n") || gone == std::string("$-1\r\n")));
    REQUIRE(k3.call({"INCR", key}) == std::string(":1\r\n"));
    CHECK(t.wait_push(key));
  }

  SUBCASE("RESP2 REDIRECT to a __redis__:invalidate subscriber") {
    tracker sub(c["n1"].port);
    sub.messages = true;
    auto id = sub.call({"CLIENT", "ID"});
    REQUIRE(id);
    REQUIRE(id->rfind(":", 0) == 0);
    std::string sid = id->substr(1, id->find('\r') - 1);
    REQUIRE(sub.call({"SUBSCRIBE", "__redis__:invalidate"}));
    tracker t(c["n1"].port);
    REQUIRE(t.call({"CLIENT", "TRACKING", "ON", "REDIRECT", sid}) == ok);
    REQUIRE(t.call({"MGET", key2, "absent-" + key2}));
    REQUIRE(k3.call({"SET", key2, "w2"}) == ok);
    CHECK(sub.wait_push(key2));
    CHECK(sub.pushes.front().rfind("*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n", 0) ==
          0);
  }

  SUBCASE("BCAST PREFIX with NOLOOP: changes anywhere under the prefix, not its own") {
    tracker t(c["n1"].port);
    REQUIRE(t.call({"HELLO", "3"}));
    REQUIRE(t.call({"CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "bc:", "NOLOOP"}) == ok);
    // the prefixes reach the other nodes asynchronously: write keys n1 does
    // not replicate until a change owned by n2 and one owned by n3 were heard
    std::set<std::string> heard_from;
    for (int i = 0; i < 200 && heard_from.size() < 2; ++i) {
      std::string probe = "bc:probe" + std::to_string(i);
      auto owners = bulk_array(k1.call({"KURA.OWNERS", probe}).value_or(""));
      if (owners.empty() || std::find(owners.begin(), owners.end(), "n1") != owners.end() ||
          heard_from.count(owners[0]) != 0)
        continue;
      REQUIRE(k3.call({"SET", probe, "x"}) == ok);
      if (t.wait_push(probe, 1000))
        heard_from.insert(owners[0]);
    }
    REQUIRE(heard_from.size() == 2);
    auto own = key_not_on(k1, "bc:own", "n1");
    auto other = key_not_on(k1, "bc:other", "n1");
    REQUIRE(t.call({"SET", own, "mine"}) == ok); // NOLOOP: no invalidation for this one
    REQUIRE(k3.call({"SET", other, "theirs"}) == ok);
    CHECK(t.wait_push(other));
    CHECK_FALSE(t.any_push_names(own));
    // the same client's writes through a node that replicates the key
    auto local = key_not_on(k1, "bc:local", "n3");
    REQUIRE(k3.call({"SET", local, "x"}) == ok);
    CHECK(t.wait_push(local));
    CHECK(t.call({"CLIENT", "TRACKING", "OFF"}) == ok);
  }
}
