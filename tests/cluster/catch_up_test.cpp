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

#include <algorithm>
#include <chrono>
#include <csignal>
#include <string>
#include <thread>

using namespace kura::test;

namespace {

const std::string ok_reply = "+OK\r\n";

struct resume_guard {
  pid_t pid;
  ~resume_guard() {
    if (pid > 0)
      ::kill(pid, SIGCONT);
  }
};

/// 10 keys `prefix`<i> whose replicas are exactly `owner`, `replica`.
std::vector<std::string> keys_placed(client& k, const std::string& prefix, const std::string& owner,
                                     const std::string& replica) {
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < 10 && i < 20000; ++i) {
    auto key = prefix + std::to_string(i);
    auto own = bulk_array(k.call({"KURA.OWNERS", key}).value_or(""));
    if (own.size() == 2 && own[0] == owner && own[1] == replica)
      keys.push_back(key);
  }
  return keys;
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

/// SIGSTOPs each of `ids` (resume_guards of the caller's resume them) and
/// waits until every one of `watchers` declared all of them dead.
void freeze_until_dead(test_cluster& c, const std::vector<std::string>& ids,
                       const std::vector<std::string>& watchers) {
  for (auto& id : ids)
    ::kill(c[id].pid, SIGSTOP);
  REQUIRE(wait_for(
      [&] {
        for (auto& w : watchers) {
          auto json = members_json(c[w].cluster_port);
          for (auto& id : ids)
            if (member_state(json, id) != "dead")
              return false;
        }
        return true;
      },
      60000));
}

/// Whether GET `key` answers `value` through every one of `cs`.
bool all_read(const std::vector<client*>& cs, const std::string& key, const std::string& value) {
  for (auto* k : cs)
    if (k->call({"GET", key}) != bulk(value))
      return false;
  return true;
}

/// The same for one member `id` of n1..n3, watched by the two others.
void freeze_until_dead(test_cluster& c, const std::string& id) {
  std::vector<std::string> others;
  for (auto o : {"n1", "n2", "n3"})
    if (o != id)
      others.emplace_back(o);
  freeze_until_dead(c, {id}, others);
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
  // n3 sent on as soon as it resumed, before a new handshake: n2 and n1 held
  // those messages while n3 proved itself again, and dropped none (they
  // dropped them before session 15; the first INCR's fetch among them made
  // it -TRYAGAIN now and then).
  for (auto id : {"n1", "n2", "n3"})
    CHECK_MESSAGE(c[id].log().find("unauthenticated peer") == std::string::npos,
                  id << " dropped messages of a member:\n"
                     << c[id].log());
}

TEST_CASE("a read or read-modify-write on a resumed owner whose other replica does not answer "
          "is refused, not served or run on its old copy") {
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
  // a resumed n3 that hears of it asks n1 as well); then n3 resumes with a
  // GET and an INCR queued in its socket: its gathering reads get no answer,
  // and its own copy (1) is neither served (session 14; it answered "1",
  // older than the acknowledged 5) nor a base for the INCR (session 13; it
  // answered :2 before, a version newer than the acknowledged 5, which it
  // would have replaced everywhere).
  ::kill(c["n1"].pid, SIGSTOP);
  resume_guard guard1{c["n1"].pid};
  ::kill(c["n2"].pid, SIGSTOP);
  resume_guard guard2{c["n2"].pid};
  REQUIRE(r3.send(client::multibulk({"GET", key}) + client::multibulk({"INCR", key}) +
                  client::multibulk({"PING"})));
  ::kill(c["n3"].pid, SIGCONT);
  auto read = r3.reply(60000);
  REQUIRE_MESSAGE(read, "no reply to GET from n3");
  CHECK_MESSAGE(read->rfind("-TRYAGAIN", 0) == 0, "GET on n3: " << *read);
  auto got = r3.reply(60000);
  REQUIRE_MESSAGE(got, "no reply to INCR from n3");
  CHECK_MESSAGE(got->rfind("-TRYAGAIN", 0) == 0, "INCR on n3: " << *got);
  CHECK(r3.reply(60000) == std::string("+PONG\r\n"));

  // Once n1 and n2 are back, the counter is still 5 everywhere (the refused
  // INCR left nothing), and the next INCR builds on it.
  ::kill(c["n1"].pid, SIGCONT);
  ::kill(c["n2"].pid, SIGCONT);
  client k2(c["n2"].port);
  CHECK(wait_for([&] { return all_read({&k1, &k2, &r3}, key, "5"); }, 90000));
  CHECK(k1.call({"INCR", key}) == std::string(":6\r\n"));
}

TEST_CASE("with RF 3 and write-acks 2 a resumed owner's read-modify-write needs two other "
          "replicas' answers: one old answer is no base") {
  // 4 nodes, RF 3, write-acks 2 (request timeout 3 s: R2's answer comes in
  // time). The key's replicas are O (owner), R1, R2;
  // n4 is not one of them. O and R2 freeze until declared dead: the ring is
  // R1 + n4, which take the INCRs (5 on both, acknowledged by 2 copies). R1
  // freezes; O resumes with an INCR queued in its socket, and R2, whose copy
  // is as old as O's (1), resumes just after and answers O's gathering read.
  // Before session 14 that one answer was the base: 1 + 1 = 2, a version
  // newer than the acknowledged 5, replacing it everywhere. A read set of
  // RF - write-acks + 1 = 2 other replicas intersects every write quorum
  // (O's own copy does not count: it is the one that may be old), so with R1
  // frozen the INCR is refused, and so is a GET (session 14: it answered the
  // old 1 before; "Stale reads after a pause").
  test_cluster c;
  c.start_ring(4, {"--kura.cluster.replication-factor=3", "--kura.cluster.write-acks=2",
                   "--kura.cluster.request-timeout=3s"});
  INFO(c.logs());
  client k1(c["n1"].port);
  std::string key;
  std::vector<std::string> own;
  for (int i = 0; i < 5000 && key.empty(); ++i) {
    auto k = "{q" + std::to_string(i) + "}n";
    own = bulk_array(k1.call({"KURA.OWNERS", k}).value_or(""));
    if (own.size() == 3 && std::find(own.begin(), own.end(), "n4") == own.end())
      key = k;
  }
  REQUIRE(!key.empty());
  const std::string o = own[0], r1 = own[1], r2 = own[2];
  client ko(c[o].port), k4(c["n4"].port);
  // (retried on a new connection: a node that just joined may still be
  // catching up, and under load its first command can outlast the client)
  REQUIRE(wait_for([&] { return client(c[o].port).call({"SET", key, "1"}) == ok_reply; }));
  REQUIRE(wait_for([&] { return client(c[r2].port).call({"GET", key}) == bulk("1"); }));

  resume_guard guard_o{c[o].pid}, guard_r2{c[r2].pid};
  freeze_until_dead(c, {o, r2}, {r1, "n4"});
  for (int i = 2; i <= 5; ++i)
    REQUIRE(k4.call({"INCR", key}) == ":" + std::to_string(i) + "\r\n");
  ::kill(c[r1].pid, SIGSTOP);
  resume_guard guard_r1{c[r1].pid};
  REQUIRE(ko.send(client::multibulk({"GET", key}) + client::multibulk({"INCR", key}) +
                  client::multibulk({"PING"})));
  ::kill(c[o].pid, SIGCONT);
  std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms(200)));
  ::kill(c[r2].pid, SIGCONT);
  auto read = ko.reply(60000);
  REQUIRE_MESSAGE(read, "no reply to GET from " << o);
  CHECK_MESSAGE(read->rfind("-TRYAGAIN", 0) == 0, "GET on " << o << ": " << *read);
  auto got = ko.reply(60000);
  REQUIRE_MESSAGE(got, "no reply to INCR from " << o);
  CHECK_MESSAGE(got->rfind("-TRYAGAIN", 0) == 0, "INCR on " << o << ": " << *got);
  CHECK(ko.reply(60000) == std::string("+PONG\r\n"));

  // R1 back: 5 on every replica, and the next INCR builds on it
  ::kill(c[r1].pid, SIGCONT);
  client kr1(c[r1].port), kr2(c[r2].port);
  CHECK(wait_for([&] { return all_read({&ko, &kr1, &kr2}, key, "5"); }, 90000));
  CHECK(ko.call({"INCR", key}) == std::string(":6\r\n"));
}

TEST_CASE("a frozen peer moves kura_cluster_sync_failures_total") {
  // n3 freezes: n1's anti-entropy rounds with it get no answer within the
  // request timeout, and writes n1 coordinates for keys n3 replicates are
  // not acknowledged by n3 by their deadline (a hint holder stands in).
  // While n3 is only suspect, the hints for it are sent and not
  // acknowledged either. Equal replicas that answer count nothing.
  test_cluster c;
  c.start_ring(3);
  INFO(c.logs());
  client k1(c["n1"].port);
  auto failures = [&](const std::string& node, const std::string& kind) {
    return metric_value(c[node].metrics_port,
                        "kura_cluster_sync_failures_total{kind=\"" + kind + "\"}");
  };
  // all three answer: a few sync intervals (1 s) pass without a failure
  std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms(3000)));
  const double ae0 = failures("n1", "anti_entropy"), rep0 = failures("n1", "replication"),
               hint0 = failures("n2", "hint");
  REQUIRE(ae0 >= 0);
  REQUIRE(rep0 >= 0);
  REQUIRE(hint0 >= 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms(3000)));
  CHECK(failures("n1", "anti_entropy") == ae0);
  CHECK(failures("n1", "replication") == rep0);

  auto keys = keys_placed(k1, "sf:", "n1", "n3");
  REQUIRE(keys.size() == 10);
  ::kill(c["n3"].pid, SIGSTOP);
  resume_guard guard{c["n3"].pid};
  for (auto& k : keys)
    CHECK(k1.call({"SET", k, "v"}) == std::string("+OK\r\n"));
  CHECK(wait_for([&] {
    return failures("n1", "anti_entropy") > ae0 && failures("n1", "replication") > rep0;
  }));
  MESSAGE("n1: anti_entropy " << failures("n1", "anti_entropy") - ae0 << ", replication "
                              << failures("n1", "replication") - rep0 << "; n2: hint "
                              << failures("n2", "hint") - hint0);
  ::kill(c["n3"].pid, SIGCONT);
  CHECK(wait_for([&] { return c.all_see_alive(3); }, 60000));
  client k3(c["n3"].port);
  for (auto& k : keys)
    CHECK(wait_for([&] { return k3.call({"GET", k}) == bulk("v"); }));
}

TEST_CASE("a read waiting on a frozen owner is hedged to the next replica") {
  test_cluster c;
  start_slow(c);
  INFO(c.logs());
  client k1(c["n1"].port), k2(c["n2"].port);
  // keys owned by n3, replicated on n2, never read through n1 (no near copy)
  auto keys = keys_placed(k1, "hedge:", "n3", "n2");
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
  // The coordinator publishes its counters at most once a second (at its
  // tick): the reads may all be done before the next report.
  auto hedged_now = [&] {
    return metric_value(c["n1"].metrics_port, "kura_cluster_hedged_reads_total") - before;
  };
  wait_for([&] { return hedged_now() >= 1; }, 5000);
  auto hedged = hedged_now();
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
