// A command forwarded to a key's owner that does not answer (issue 8): a
// frozen owner (SIGSTOP) mid-command must not make a non-idempotent command
// run twice. The forwarder answers -TIMEOUT (the outcome is unknown) instead
// of running it at the next replica, the frozen owner does not start it
// after the forwarder stopped waiting, and once the owner is suspect the
// next replica runs the key's commands. Three real kura-node processes.
#include "cluster/cluster_harness.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <future>
#include <string>

using namespace kura::test;

namespace {

bool starts(const std::optional<std::string>& r, const std::string& prefix) {
  return r && r->rfind(prefix, 0) == 0;
}

struct resume_guard {
  pid_t pid;
  ~resume_guard() {
    if (pid > 0)
      ::kill(pid, SIGCONT);
  }
};

} // namespace

TEST_CASE("INCR forwarded to a frozen owner runs once: -TIMEOUT, then the next replica") {
  test_cluster c;
  c.start_ring(3);
  INFO(c.logs());
  client k1(c["n1"].port);
  // a counter owned by n3 that n1 does not replicate (n1 forwards to n3)
  auto key = key_owned(k1, "n3", "n2", "ft");
  REQUIRE(!key.empty());
  auto skey = key.substr(0, key.find('}') + 1) + "s"; // same slot, a string
  // The counter's start: the first integer INCR answers (session 20: at load
  // 25 the first INCR of a fresh ring answered an error once and the case
  // then took :1 for a lost increment).
  int64_t start = 0;
  REQUIRE(wait_for(
      [&] {
        auto r = k1.call({"INCR", key});
        if (starts(r, ":"))
          start = std::strtoll(r->c_str() + 1, nullptr, 10);
        return start > 0;
      },
      30000));
  const auto next = ":" + std::to_string(start + 1) + "\r\n";

  ::kill(c["n3"].pid, SIGSTOP);
  resume_guard guard{c["n3"].pid};
  // Sent while n1 still believes n3 alive: n3 gets it and cannot answer. The
  // outcome is unknown to n1, so it must not be run again elsewhere, and n3
  // must not run it when it resumes (its deadline passed).
  auto first = k1.call({"INCR", key});
  INFO("first INCR while frozen: " << first.value_or("(none)"));
  CHECK((starts(first, "-TIMEOUT") || first == next));
  // INCR's reply is the counter's value: `last` is the newest one seen;
  // `unsure` counts error replies since then (under load a write's
  // acknowledgement can time out after the owner applied it).
  int64_t last = first == next ? start + 1 : start;
  int64_t unsure = 0;
  auto note = [&](const std::optional<std::string>& r) {
    if (starts(r, ":")) {
      auto v = std::strtoll(r->c_str() + 1, nullptr, 10);
      CHECK(v > last); // never a lost or repeated increment
      last = v;
      unsure = 0;
      return true;
    }
    CHECK(starts(r, "-"));
    ++unsure;
    return false;
  };
  // SET without NX/XX/GET is safe to run twice: it fails over after a timeout.
  CHECK(wait_for(
      [&] {
        return k1.call({"SET", skey, "v", "KEEPTTL"}) == std::string("+OK\r\n");
      },
      30000));
  // Once n3 is suspect at n1, n2 (the next replica) runs the key's commands.
  bool served = false;
  for (int i = 0; i < 60 && !served; ++i)
    served = note(k1.call({"INCR", key}));
  CHECK(served);
  // A few more through another node while n3 stays frozen.
  client k2(c["n2"].port);
  for (int i = 0; i < 5; ++i)
    note(k2.call({"INCR", key}));

  ::kill(c["n3"].pid, SIGCONT);
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 60000));
  // n3 did not run the INCRs it received while frozen (their deadline had
  // passed; had it run one on its stale copy, last-writer-wins would have
  // replaced the count): every node converges on the last answered value
  // (plus the unsure ones after it, 0 unless the machine is overloaded).
  client k3(c["n3"].port);
  auto value = [](const std::optional<std::string>& r) {
    if (!r || r->rfind("$", 0) != 0)
      return int64_t{-1};
    auto p = r->find("\r\n");
    return static_cast<int64_t>(std::strtoll(r->c_str() + p + 2, nullptr, 10));
  };
  auto settled = [&] {
    auto a = value(k1.call({"GET", key})), b = value(k2.call({"GET", key})),
         d = value(k3.call({"GET", key}));
    return a == b && b == d && a >= last && a <= last + unsure;
  };
  CHECK(wait_for(settled, 60000));
  INFO("last " << last << " unsure " << unsure << "; n1 " << k1.call({"GET", key}).value_or("")
               << " n2 " << k2.call({"GET", key}).value_or("") << " n3 "
               << k3.call({"GET", key}).value_or(""));
  CHECK(settled());
  // and the counter goes on from there at its owner
  auto now = value(k1.call({"GET", key}));
  CHECK(k1.call({"INCR", key}) == ":" + std::to_string(now + 1) + "\r\n");
}

namespace {

/// A script at n3 (the key's owner) busy for 8 s before its INCR, sent
/// through n1 (forwarded: n1 answers -TIMEOUT after request-timeout) or to n3
/// itself; meanwhile n2 suspects n3 and takes the key's INCRs to 4. The
/// script's INCR (1 + 1, a version of the moment it ends) must not replace
/// the acknowledged 4: it answers -TIMEOUT and writes nothing.
void stalled_script_does_not_write(const char* sent_to) {
  test_cluster c;
  c.start_ring(3);
  INFO(c.logs());
  client k1(c["n1"].port);
  auto key = key_owned(k1, "n3", "n2", "stall"); // n1 forwards
  REQUIRE(!key.empty());
  CHECK(k1.call({"INCR", key}) == std::string(":1\r\n"));

  // Busy at n3 for `hold` ms (TIME inside the script), then INCR.
  const int hold = slow_ms(8000);
  const std::string script =
      "local t = redis.call('TIME'); local s = t[1] * 1000 + math.floor(t[2] / 1000); "
      "local n; repeat n = redis.call('TIME') "
      "until n[1] * 1000 + math.floor(n[2] / 1000) - s >= tonumber(ARGV[1]); "
      "return redis.call('INCR', KEYS[1])";
  auto stalled = std::async(std::launch::async, [&] {
    client k(c[sent_to].port);
    std::optional<std::string> r;
    if (k.send(client::multibulk({"EVAL", script, "1", key, std::to_string(hold)})))
      r = k.reply(hold + slow_ms(30000));
    return r;
  });
  if (std::string(sent_to) == "n1") { // n1 gives up on n3 after request-timeout
    auto first = stalled.get();
    INFO("EVAL through n1: " << first.value_or("(none)"));
    CHECK(starts(first, "-TIMEOUT"));
  }

  // n2 runs the key's INCRs once n3 is suspect there (before: -TIMEOUT).
  client k2(c["n2"].port);
  int64_t last = 1;
  // Every reply with its time since the script was sent (a failure says
  // whether an INCR answered -TIMEOUT yet counted, or the script wrote).
  const auto t0 = std::chrono::steady_clock::now();
  std::string replies;
  INFO("n2's INCR replies: " << replies);
  for (int i = 0; i < 60 && last < 4; ++i) {
    auto r = k2.call({"INCR", key});
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    replies += std::to_string(ms) + "ms " + (r ? r->substr(0, r->find("\r\n")) : "(none)") + "; ";
    if (starts(r, ":")) {
      auto v = std::strtoll(r->c_str() + 1, nullptr, 10);
      CHECK(v == last + 1);
      last = v;
    }
  }
  REQUIRE(last == 4);
  // (Had the script written before these INCRs, they would have answered
  // 3, 4, 5: either way a lost write fails this case.)
  if (std::string(sent_to) == "n3") { // the script ends and n3 answers its client
    auto own = stalled.get();
    INFO("EVAL at n3: " << own.value_or("(none)"));
    CHECK(starts(own, "-TIMEOUT"));
  }

  // n3 comes back; every node must hold the acknowledged 4.
  REQUIRE(wait_for([&] { return c.all_see_alive(3); }, 60000));
  client k3(c["n3"].port);
  auto value = [&](client& k) {
    auto r = k.call({"GET", key});
    if (!r || r->rfind("$", 0) != 0)
      return int64_t{-1};
    return static_cast<int64_t>(std::strtoll(r->c_str() + r->find("\r\n") + 2, nullptr, 10));
  };
  auto settled = [&] { return value(k1) == 4 && value(k2) == 4 && value(k3) == 4; };
  CHECK(wait_for(settled, 30000));
  INFO("n1 " << value(k1) << " n2 " << value(k2) << " n3 " << value(k3));
  CHECK(settled());
  CHECK(k1.call({"INCR", key}) == std::string(":5\r\n"));
}

} // namespace

TEST_CASE("a forwarded command that stalls at its owner past its deadline does not write: "
          "the next replica's acknowledged INCRs stay") {
  // Session 20: the INCR case above failed about once in 150 runs under
  // load: n3 had taken the forwarded INCR in and passed its deadline check
  // when SIGSTOP took effect; on SIGCONT it wrote 1 + 1 with a version of
  // that moment, newer than the INCRs n2 had answered meanwhile, and
  // last-writer-wins put every node back to 2. A script that runs longer
  // than request-timeout at the owner makes the same window without
  // signals: it passes every check, n3 does not answer (n1 answers -TIMEOUT,
  // n2 suspects n3 and takes the INCRs), and then it writes.
  stalled_script_does_not_write("n1");
}

TEST_CASE("a command from the owner's own client that stalls past request-timeout does not "
          "write: the next replica's acknowledged INCRs stay") {
  // The same script sent to n3 itself: no sender's deadline, so before
  // session 22 n3 wrote 1 + 1 once the script ended, newer than the INCRs n2
  // had acknowledged meanwhile (every node back at 2; main: 1 of 1 runs).
  stalled_script_does_not_write("n3");
}

TEST_CASE("GET whose replicas are all frozen answers -CLUSTERDOWN, not nil") {
  // docs/cluster.md listed it as missing: a read whose every replica timed
  // out answered nil for a key that exists.
  test_cluster c;
  c.start_ring(3);
  INFO(c.logs());
  client k1(c["n1"].port);
  std::string key; // held by n2 and n3 only: n1 fetches it
  for (int i = 0; i < 5000 && key.empty(); ++i) {
    auto k = "frozen-read:" + std::to_string(i);
    auto own = bulk_array(k1.call({"KURA.OWNERS", k}).value_or(""));
    if (own.size() == 2 && std::find(own.begin(), own.end(), "n1") == own.end())
      key = k;
  }
  REQUIRE(!key.empty());
  // written through n1, never read there: n1 holds no near copy of it
  REQUIRE(k1.call({"SET", key, "v2"}) == std::string("+OK\r\n"));

  ::kill(c["n2"].pid, SIGSTOP);
  ::kill(c["n3"].pid, SIGSTOP);
  resume_guard g2{c["n2"].pid}, g3{c["n3"].pid};
  // Well before n1 declares them dead (then it stands alone), both asks
  // time out (request-timeout each, or at once once suspect).
  auto got = k1.call({"GET", key});
  auto many = k1.call({"MGET", key, key});
  auto ttl = k1.call({"PTTL", key});
  ::kill(c["n2"].pid, SIGCONT);
  ::kill(c["n3"].pid, SIGCONT);
  // What this case guards: never nil (nor an error other than CLUSTERDOWN) for
  // a key that exists. Twice in session 18 (load ~10, once under ASan) n1
  // answered the GET (and PTTL) with the right value, v2, while the MGET
  // between them answered -CLUSTERDOWN: n1 had a copy of the key from
  // somewhere (not diagnosed; docs/cluster.md, "Known bugs"). The latest
  // acknowledged value is a correct answer, so it is accepted; each
  // CLUSTERDOWN must be counted as a failed read.
  int refused = 0;
  for (auto* r : {&got, &many, &ttl}) {
    bool down = starts(*r, "-CLUSTERDOWN");
    refused += down ? 1 : 0;
    bool right = r == &got    ? *r == bulk("v2")
                 : r == &many ? *r == std::string("*2\r\n$2\r\nv2\r\n$2\r\nv2\r\n")
                              : *r == std::string(":-1\r\n");
    CHECK_MESSAGE((down || right), r->value_or("(no reply)"));
  }
  MESSAGE("reads refused with CLUSTERDOWN: " << refused << " of 3");
  CHECK(metric_value(c["n1"].metrics_port,
                     "kura_cluster_reads_failed_total{reason=\"no_answer\"}") >= refused);
  // resumed: the value again
  CHECK(wait_for([&] { return k1.call({"GET", key}) == bulk("v2"); }, 30000));
}
