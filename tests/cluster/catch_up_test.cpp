// A node that is catching up (resumed after SIGSTOP, restarted, holding a
// slot it just gained) may hold old copies while the other replicas took
// writes. Reads already serve the newest version (cluster_test). Here:
// read-modify-write commands (INCR, APPEND, MULTI/EXEC) that reach such a
// node act on the newest version too, and a pipeline's replies stay in
// order. And a read waiting on a frozen replica is hedged: it also asks the
// next replica after a short delay instead of waiting for the frozen one to
// turn suspect. Three real kura-node processes on loopback.
#include "cluster/cluster_harness.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <string>

using namespace kura::test;

namespace {

struct resume_guard {
  pid_t pid;
  ~resume_guard() {
    if (pid > 0)
      ::kill(pid, SIGCONT);
  }
};

/// A key whose replicas are exactly `owner`, `replica` (hash tag `{tag<i>}`).
std::string key_owned(client& k, const std::string& owner, const std::string& replica,
                      const std::string& tag) {
  for (int i = 0; i < 5000; ++i) {
    auto key = "{" + tag + std::to_string(i) + "}n";
    auto own = bulk_array(k.call({"KURA.OWNERS", key}).value_or(""));
    if (own.size() == 2 && own[0] == owner && own[1] == replica)
      return key;
  }
  return {};
}

/// Starts n1..n3 with a slow failure detector (10 s probes, 20 s request
/// timeout): a frozen member stays alive in the others' view for seconds.
void start_slow(test_cluster& c) {
  for (auto id : {"n1", "n2", "n3"}) {
    std::vector<std::string> extra{"--kura.cluster.heartbeat=10s",
                                   "--kura.cluster.request-timeout=20s"};
    REQUIRE(c.start(id, extra).ready);
  }
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 60000));
}

/// SIGSTOPs `id` (a resume_guard of the caller's resumes it) and waits
/// until the two other members of n1..n3 declared it dead.
void freeze_until_dead(test_cluster& c, const std::string& id) {
  ::kill(c[id].pid, SIGSTOP);
  std::vector<std::string> others;
  for (auto o : {"n1", "n2", "n3"})
    if (o != id)
      others.emplace_back(o);
  REQUIRE(wait_for(
      [&] {
        return member_state(members_json(c[others[0]].cluster_port), id) == "dead" &&
               member_state(members_json(c[others[1]].cluster_port), id) == "dead";
      },
      60000));
}

} // namespace

TEST_CASE(
    "read-modify-write commands on an owner resumed after SIGSTOP act on the newest version") {
  test_cluster c;
  c.start_ring(3);
  INFO(c.logs());
  client k1(c["n1"].port);
  auto key = key_owned(k1, "n3", "n2", "rmw");
  REQUIRE(!key.empty());
  auto skey = key.substr(0, key.find('}') + 1) + "s"; // same slot: a string to APPEND to
  REQUIRE(k1.call({"INCR", key}) == std::string(":1\r\n"));
  REQUIRE(k1.call({"SET", skey, "a"}) == std::string("+OK\r\n"));
  client r3(c["n3"].port);
  REQUIRE(r3.call({"GET", key}) == bulk("1"));

  resume_guard guard{c["n3"].pid};
  freeze_until_dead(c, "n3");
  // n2, the next replica, runs them meanwhile: the counter reaches 5, "ab".
  for (int i = 2; i <= 5; ++i)
    REQUIRE(k1.call({"INCR", key}) == ":" + std::to_string(i) + "\r\n");
  REQUIRE(k1.call({"APPEND", skey, "b"}) == std::string(":2\r\n"));

  // Queued in n3's socket while it is stopped: its first events on SIGCONT,
  // run where n3 still believes itself the owner (it has not yet heard that
  // it was declared dead). A local EXEC among them, and reads after it.
  std::string batch;
  for (auto& cmd : std::vector<std::vector<std::string>>{{"INCR", key},
                                                         {"APPEND", skey, "c"},
                                                         {"MULTI"},
                                                         {"INCR", key},
                                                         {"GET", skey},
                                                         {"EXEC"},
                                                         {"GET", key},
                                                         {"INCR", key},
                                                         {"PING"}})
    batch += client::multibulk(cmd);
  REQUIRE(r3.send(batch));
  ::kill(c["n3"].pid, SIGCONT);
  std::vector<std::string> want{":6\r\n",      ":3\r\n",      "+OK\r\n",
                                "+QUEUED\r\n", "+QUEUED\r\n", "*2\r\n:7\r\n$3\r\nabc\r\n",
                                bulk("7"),     ":8\r\n",      "+PONG\r\n"};
  for (size_t i = 0; i < want.size(); ++i) {
    auto got = r3.reply(60000);
    REQUIRE_MESSAGE(got, "no reply " << i << " from n3");
    CHECK_MESSAGE(*got == want[i], "reply " << i << " from n3: " << *got);
  }
  // Every node converges on 8 and "abc" (nothing older won by last-writer-wins).
  client k2(c["n2"].port);
  CHECK(wait_for(
      [&] {
        return k1.call({"GET", key}) == bulk("8") && k2.call({"GET", key}) == bulk("8") &&
               r3.call({"GET", key}) == bulk("8") && k2.call({"GET", skey}) == bulk("abc");
      },
      60000));
  CHECK(k2.call({"INCR", key}) == std::string(":9\r\n"));
}

TEST_CASE("a read-modify-write on a resumed owner whose other replica does not answer is "
          "refused, not run on its old copy") {
  test_cluster c;
  c.start_ring(3);
  INFO(c.logs());
  client k1(c["n1"].port);
  auto key = key_owned(k1, "n3", "n2", "gone");
  REQUIRE(!key.empty());
  REQUIRE(k1.call({"INCR", key}) == std::string(":1\r\n"));
  client r3(c["n3"].port);
  REQUIRE(r3.call({"GET", key}) == bulk("1"));

  resume_guard guard3{c["n3"].pid};
  freeze_until_dead(c, "n3");
  for (int i = 2; i <= 5; ++i) // n2 holds the newest version: 5
    REQUIRE(k1.call({"INCR", key}) == ":" + std::to_string(i) + "\r\n");

  // n1 and n2 freeze (n1 too: it replicated the key while n3 was dead, and
  // a resumed n3 that hears of it asks n1 as well); then n3 resumes with an
  // INCR queued in its socket: its gathering read gets no answer, and its own
  // copy (1) is no base for an INCR (it answered :2 before, a version newer
  // than the acknowledged 5, which it would have replaced everywhere).
  ::kill(c["n1"].pid, SIGSTOP);
  resume_guard guard1{c["n1"].pid};
  ::kill(c["n2"].pid, SIGSTOP);
  resume_guard guard2{c["n2"].pid};
  REQUIRE(r3.send(client::multibulk({"INCR", key}) + client::multibulk({"PING"})));
  ::kill(c["n3"].pid, SIGCONT);
  auto got = r3.reply(60000);
  REQUIRE_MESSAGE(got, "no reply to INCR from n3");
  CHECK_MESSAGE(got->rfind("-CLUSTERDOWN", 0) == 0, "INCR on n3: " << *got);
  CHECK(r3.reply(60000) == std::string("+PONG\r\n"));

  // Once n1 and n2 are back, the counter is still 5 everywhere (the refused
  // INCR left nothing), and the next INCR builds on it.
  ::kill(c["n1"].pid, SIGCONT);
  ::kill(c["n2"].pid, SIGCONT);
  client k2(c["n2"].port);
  CHECK(wait_for(
      [&] {
        return k1.call({"GET", key}) == bulk("5") && k2.call({"GET", key}) == bulk("5") &&
               r3.call({"GET", key}) == bulk("5");
      },
      90000));
  CHECK(k1.call({"INCR", key}) == std::string(":6\r\n"));
}

TEST_CASE("a read waiting on a frozen owner is hedged to the next replica") {
  test_cluster c;
  start_slow(c);
  INFO(c.logs());
  client k1(c["n1"].port), k2(c["n2"].port);
  // keys owned by n3, replicated on n2, never read through n1 (no near copy)
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < 10 && i < 20000; ++i) {
    auto key = "hedge:" + std::to_string(i);
    auto own = bulk_array(k1.call({"KURA.OWNERS", key}).value_or(""));
    if (own.size() == 2 && own[0] == "n3" && own[1] == "n2")
      keys.push_back(key);
  }
  REQUIRE(keys.size() == 10);
  for (auto& k : keys)
    REQUIRE(k2.call({"SET", k, "v-" + k}) == std::string("+OK\r\n"));
  auto before = metric_value(c["n1"].metrics_port, "kura_cluster_hedged_reads_total");
  REQUIRE(before >= 0);

  ::kill(c["n3"].pid, SIGSTOP);
  resume_guard guard{c["n3"].pid};
  // n1 still believes n3 alive (10 s probes) and asks it first; with a 20 s
  // request timeout a read would wait for n3's suspicion. Hedged, n2 answers.
  for (auto& k : keys)
    CHECK(k1.call({"GET", k}) == bulk("v-" + k));
  auto hedged = metric_value(c["n1"].metrics_port, "kura_cluster_hedged_reads_total") - before;
  MESSAGE("hedged reads on n1: " << hedged << "; n3 at n1: "
                                 << member_state(members_json(c["n1"].cluster_port), "n3"));
  CHECK(hedged >= 1);
  ::kill(c["n3"].pid, SIGCONT);
  CHECK(wait_for([&] { return c.all_see_alive(3); }, 90000));

  // What n2 holds (it replicates all 10 keys): INFO l3/keyspace and /metrics.
  auto info_num = [&](const std::string& info, const std::string& name) {
    auto p = info.find("\n" + name + ":");
    return p == std::string::npos ? -1
                                  : std::strtoll(info.c_str() + p + name.size() + 2, nullptr, 10);
  };
  std::string info;
  CHECK(wait_for(
      [&] {
        info = k2.call({"INFO", "all"}).value_or("");
        return info_num(info, "l3_enabled") == 1 && info_num(info, "l3_entries") >= 10 &&
               info.find("\ndb0:keys=") != std::string::npos;
      },
      60000));
  INFO("INFO on n2: " << info);
  CHECK(info_num(info, "l4_enabled") == 0); // the test nodes run without the archive
  CHECK(info_num(info, "l3_bytes") > 0);
  CHECK(wait_for(
      [&] {
        return metric_value(c["n2"].metrics_port, "kura_cluster_keys") >= 10 &&
               metric_value(c["n2"].metrics_port, "kura_cluster_tier_entries{tier=\"l3\"}") >= 10 &&
               metric_value(c["n2"].metrics_port, "kura_cluster_tier_bytes{tier=\"l3\"}") > 0;
      },
      60000));
}
