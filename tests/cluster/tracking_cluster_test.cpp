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
  /// Some push starts with `prefix` (membership news may add null
  /// invalidations anywhere: pushes are searched, never taken by position).
  bool any_push_starts(const std::string& prefix) const {
    for (auto& p : pushes)
      if (p.rfind(prefix, 0) == 0)
        return true;
    return false;
  }
  /// Waits (up to `ms`) for a push naming `key` or a null invalidation
  /// ("every key"); true when one came.
  bool wait_invalidated(const std::string& key, int ms = 20000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      if (any_push_names(key) || any_push_starts(null_invalidation))
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
  static constexpr const char* null_invalidation = ">2\r\n$10\r\ninvalidate\r\n_\r\n";
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
    CHECK(t.any_push_starts(">2\r\n$10\r\ninvalidate\r\n*1\r\n$" + std::to_string(key.size()) +
                            "\r\n" + key + "\r\n"));
    // tracked again by the next read; a delete through n3 invalidates it
    t.pushes.clear();
    REQUIRE(t.call({"GET", key}) == bulk("v2"));
    REQUIRE(k3.call({"DEL", key}) == std::string(":1\r\n"));
    CHECK(t.wait_push(key));
    // a read-modify-write at the owner (INCR, forwarded) invalidates too
    t.pushes.clear();
    REQUIRE(t.call({"GET", key}) == std::string("_\r\n")); // RESP3's null, routed too
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
    CHECK(sub.any_push_starts("*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$" +
                              std::to_string(key2.size()) + "\r\n" + key2 + "\r\n"));
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

TEST_CASE("reads inside MULTI/EXEC and scripts on a cluster node are tracked; RESP3 replies") {
  test_cluster c;
  c.start_ring(3);
  INFO(c.logs());
  client k1(c["n1"].port), k3(c["n3"].port);
  auto key = key_not_on(k1, "tm", "n1");
  auto key2 = key_not_on(k1, "ts", "n1");
  REQUIRE(!key.empty());
  REQUIRE(!key2.empty());
  REQUIRE(k3.call({"SET", key, "v1"}) == ok);
  REQUIRE(k3.call({"SET", key2, "w1"}) == ok);
  tracker t(c["n1"].port);
  REQUIRE(t.call({"HELLO", "3"}));
  REQUIRE(t.call({"CLIENT", "TRACKING", "ON"}) == ok);

  // MULTI/EXEC: the transaction runs at the slot's owner; its read is tracked
  REQUIRE(t.call({"MULTI"}) == ok);
  REQUIRE(t.call({"GET", key}) == std::string("+QUEUED\r\n"));
  REQUIRE(t.call({"EXEC"}) == std::string("*1\r\n") + bulk("v1"));
  REQUIRE(k3.call({"SET", key, "v2"}) == ok);
  CHECK(t.wait_push(key));

  // EVAL: the script's keys are tracked
  REQUIRE(t.call({"EVAL", "return redis.call('GET', KEYS[1])", "1", key2}) == bulk("w1"));
  REQUIRE(k3.call({"SET", key2, "w2"}) == ok);
  CHECK(t.wait_push(key2));

  // routed replies to a RESP3 client carry RESP3's null
  auto missing = key_not_on(k1, "tnull", "n1");
  REQUIRE(!missing.empty());
  CHECK(t.call({"GET", missing}) == std::string("_\r\n"));
  CHECK(t.call({"MGET", key, missing}) == std::string("*2\r\n") + bulk("v2") + "_\r\n");
  CHECK(t.call({"EVAL", "return redis.call('GET', KEYS[1])", "1", missing}) ==
        std::string("_\r\n"));
  // a WATCHed key changed: EXEC answers null
  REQUIRE(t.call({"WATCH", key}) == ok);
  REQUIRE(k3.call({"SET", key, "v3"}) == ok);
  REQUIRE(t.call({"MULTI"}) == ok);
  REQUIRE(t.call({"GET", key}) == std::string("+QUEUED\r\n"));
  CHECK(t.call({"EXEC"}) == std::string("_\r\n"));
  // RESP3's map and pairs, as a lone node answers
  auto h = key_not_on(k1, "th", "n1");
  REQUIRE(!h.empty());
  REQUIRE(k3.call({"HSET", h, "f", "v"}) == std::string(":1\r\n"));
  CHECK(t.call({"HGETALL", h}) == std::string("%1\r\n") + bulk("f") + bulk("v"));
  CHECK(t.call({"HRANDFIELD", h, "1", "WITHVALUES"}) ==
        std::string("*1\r\n*2\r\n") + bulk("f") + bulk("v"));
  CHECK(t.call({"HGETALL", missing}) == std::string("%0\r\n"));
  CHECK(k1.call({"HGETALL", h}) == std::string("*2\r\n") + bulk("f") + bulk("v"));
  // a RESP2 client still gets RESP2's nulls
  CHECK(k1.call({"GET", missing}) == std::string("$-1\r\n"));
}

namespace {

/// The "incarnation" of member `id` in members JSON (0 when absent).
uint64_t member_incarnation(const std::string& json, const std::string& id) {
  auto p = json.find("{\"id\": \"" + id + "\"");
  if (p == std::string::npos)
    return 0;
  auto s = json.find("\"incarnation\": ", p);
  return s == std::string::npos ? 0 : std::strtoull(json.c_str() + s + 15, nullptr, 10);
}

} // namespace

TEST_CASE("a replica restarted with kill -9 forgot the registrations: the client is invalidated") {
  test_cluster c;
  c.start_ring(3);
  INFO(c.logs());
  client k1(c["n1"].port), k3(c["n3"].port);
  // a key owned by n2 that n1 does not replicate: n2 is the one that tells
  std::string key;
  for (int i = 0; i < 2000 && key.empty(); ++i) {
    std::string k = "rk" + std::to_string(i);
    auto owners = bulk_array(k1.call({"KURA.OWNERS", k}).value_or(""));
    if (!owners.empty() && owners[0] == "n2" &&
        std::find(owners.begin(), owners.end(), "n1") == owners.end())
      key = k;
  }
  REQUIRE(!key.empty());
  REQUIRE(k3.call({"SET", key, "v1"}) == ok);
  tracker t(c["n1"].port);
  REQUIRE(t.call({"HELLO", "3"}));
  REQUIRE(t.call({"CLIENT", "TRACKING", "ON"}) == ok);
  REQUIRE(t.call({"GET", key}) == bulk("v1"));
  uint64_t inc = member_incarnation(members_json(c["n1"].cluster_port), "n2");
  REQUIRE(inc > 0);
  auto data_dir = c["n2"].data_dir;
  c["n2"].stop(SIGKILL);
  auto& n2 = c.start("n2", {}, data_dir, "n2b");
  REQUIRE(n2.ready);
  // n1 learns of the new incarnation through gossip
  REQUIRE(wait_for(
      [&] {
        auto j = members_json(c["n1"].cluster_port);
        return member_incarnation(j, "n2") > inc && member_state(j, "n2") == "alive";
      },
      60000));
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 60000));
  // the write goes to n2, which holds no registration any more: the client
  // still hears that its copy may be stale (the key, or every key)
  REQUIRE(wait_for([&] { return k3.call({"SET", key, "v2"}) == ok; }, 30000));
  CHECK(t.wait_invalidated(key, 30000));
  // read again: tracked again at the restarted owner
  t.pushes.clear();
  REQUIRE(wait_for([&] { return t.call({"GET", key}) == bulk("v2"); }, 30000));
  REQUIRE(k3.call({"SET", key, "v3"}) == ok);
  CHECK(t.wait_invalidated(key, 30000));
}
