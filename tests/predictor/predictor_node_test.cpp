// The predictor inside a real kura-node: a short access pattern is learned
// over three "hours" (the predictor's clock is shifted with
// kura.prewarm.clock-offset-ms between runs, so the test needs no hours of
// wall time), the node restarts, and its first prewarm loads the hot keys
// from L3 into memory before any client asks; reads of those keys are then
// served from memory and counted as prewarm hits. Also: the kura CLI's
// prewarm / predictor / alerts commands, the metrics, and a corrupt model
// file that is discarded with a log line. No timing assertions: every wait
// polls with a deadline.
#include "node_process.hpp"
#include "predictor/predictor.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <fstream>

using namespace kura::test;

namespace {

std::string kura_cli(uint16_t port, const std::string& args, int& rc) {
  return run_shell(bin_dir() + "/kura --port=" + std::to_string(port) + " --timeout=10000 " + args +
                       " 2>/dev/null",
                   &rc);
}

/// Polls `kura predictor --json` until `pred` holds (or ~60 s pass).
template <class Pred>
std::string wait_report(const node_process& n, Pred pred) {
  std::string js;
  for (int i = 0; i < 600; ++i) {
    int rc = -1;
    js = kura_cli(n.cluster_port, "--json predictor", rc);
    if (rc == 0 && pred(js))
      return js;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return js;
}

constexpr int hot_keys = 40;
constexpr int cold_keys = 600;

std::string hot(int i) {
  return "user:" + std::to_string(i) + ":profile";
}
std::string cold(int i) {
  return "log:" + std::to_string(i);
}

std::vector<std::string> args(int64_t offset_ms) {
  return {"--memory-bytes=1048576", "--kura.prewarm.enabled=true", "--kura.prewarm.sample-one-in=1",
          "--kura.prewarm.interval=1s",
          // three hours of evidence give a key 0.6..0.75 for the coming hour
          // (depending on the minute): the default 0.7 asks for more history;
          // with no record of load outcomes yet the plan's bar is this plus
          // half the rest (predictor_config::evidence_loads): 0.55
          "--kura.prewarm.min-confidence=0.1",
          // the test's model has three hours of history, not a week
          "--kura.prewarm.min-history=1h",
          // and no record of outcomes yet: loads without the bucket evidence
          "--kura.prewarm.bucket-evidence=0",
          "--kura.prewarm.clock-offset-ms=" +
              std::to_string(offset_ms + predictor_weekday_shift_ms()),
          "--kura.archive.enabled=false"};
}

void read_hot(client& c) {
  for (int i = 0; i < hot_keys; ++i)
    REQUIRE(c.call({"GET", hot(i)}) ==
            "$" + std::to_string(100) + "\r\n" + std::string(100, 'h') + "\r\n");
}

} // namespace

TEST_CASE("a restarted kura-node prewarms what its model predicts, and reads hit it") {
  temp_dir dir;
  const std::string data = dir.path + "/node";
  constexpr int64_t hour = 3600 * 1000;
  // Hour 1: write everything, read the hot keys.
  {
    node_process n(args(-3 * hour), data);
    REQUIRE_MESSAGE(n.ready, n.log());
    client c(n.port);
    REQUIRE(c.ok());
    for (int i = 0; i < hot_keys; ++i)
      REQUIRE(*c.call({"SET", hot(i), std::string(100, 'h')}) == "+OK\r\n");
    for (int i = 0; i < cold_keys; ++i)
      REQUIRE(*c.call({"SET", cold(i), std::string(2000, 'c')}) == "+OK\r\n");
    read_hot(c);
    auto js =
        wait_report(n, [](const std::string& j) { return json_int(j, "events") >= hot_keys; });
    CAPTURE(js);
    CHECK(json_int(js, "tracked_keys") >= hot_keys);
    REQUIRE(n.stop() == 0);
  }
  // Hours 2 and 3: the hot keys again (the model file carries the hours over).
  for (int64_t h : {2, 1}) {
    node_process n(args(-h * hour), data);
    REQUIRE_MESSAGE(n.ready, n.log());
    client c(n.port);
    read_hot(c);
    auto js =
        wait_report(n, [](const std::string& j) { return json_int(j, "events") >= hot_keys; });
    CAPTURE(js);
    CHECK(js.find("\"model_status\": \"loaded\"") != std::string::npos);
    int rc = -1;
    auto plan = kura_cli(n.cluster_port, "--json prewarm --dry-run", rc);
    CAPTURE(plan);
    CHECK(rc == 0);
    CHECK(plan.find("\"dry_run\": true") != std::string::npos);
    CHECK(plan.find("\"key\": \"user:7:profile\"") != std::string::npos);
    CHECK(plan.find("\"key\": \"log:7\"") == std::string::npos); // written, never read
    CHECK(plan.find("\"pattern\": \"user:*:profile\"") != std::string::npos);
    REQUIRE(n.stop() == 0);
  }
  // Hour 4: a fresh process, empty memory. The first prewarm runs at once.
  {
    node_process n(args(0), data);
    REQUIRE_MESSAGE(n.ready, n.log());
    auto js = wait_report(
        n, [](const std::string& j) { return json_int(j, "keys_prewarmed") >= hot_keys; });
    CAPTURE(js);
    CAPTURE(n.log());
    REQUIRE(json_int(js, "keys_prewarmed") >= hot_keys);
    CHECK(json_int(js, "bytes_loaded") >= hot_keys * 100);
    client c(n.port);
    // in memory before any client read them (KURA.TIER does not count as a read)
    int resident = 0;
    for (int i = 0; i < hot_keys; ++i) {
      auto t = *c.call({"KURA.TIER", hot(i)});
      resident += t == "$2\r\nl1\r\n" || t == "$2\r\nl2\r\n";
    }
    CHECK(resident == hot_keys);
    CHECK(*c.call({"KURA.TIER", cold(3)}) == "$2\r\nl3\r\n");
    read_hot(c);
    js = wait_report(n,
                     [](const std::string& j) { return json_int(j, "prewarm_hits") >= hot_keys; });
    CAPTURE(js);
    CHECK(json_int(js, "prewarm_hits") == hot_keys);
    CHECK(js.find("\"precision\": 1.0000") != std::string::npos);
    CHECK(n.log().find("prewarm 1 (start): ") != std::string::npos);

    // the CLI: a prewarm run with nothing left to load, alerts, human output
    int rc = -1;
    auto run = kura_cli(n.cluster_port, "--json prewarm", rc);
    CAPTURE(run);
    CHECK(rc == 0);
    CHECK(run.find("\"dry_run\": false") != std::string::npos);
    CHECK(run.find("\"running\": false") != std::string::npos);
    auto alerts = kura_cli(n.cluster_port, "--json alerts", rc);
    CHECK(rc == 0);
    CHECK(alerts.find("\"active\": [") != std::string::npos);
    auto human = kura_cli(n.cluster_port, "predictor", rc);
    CHECK(rc == 0);
    CHECK(human.find("prewarm hits           " + std::to_string(hot_keys)) != std::string::npos);
    kura_cli(n.cluster_port, "prewarm --bogus", rc);
    CHECK(rc == 1);

    // metrics (pushed once per cycle)
    std::string m;
    for (int i = 0; i < 100; ++i) {
      m = run_shell("curl -s http://127.0.0.1:" + std::to_string(n.metrics_port) + "/metrics");
      if (m.find("kura_prewarm_hits_total " + std::to_string(hot_keys)) != std::string::npos)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CAPTURE(m);
    CHECK(m.find("kura_prewarm_loads_total " + std::to_string(hot_keys)) != std::string::npos);
    CHECK(m.find("kura_prewarm_hits_total " + std::to_string(hot_keys)) != std::string::npos);
    CHECK(m.find("kura_prewarm_precision 1") != std::string::npos);
    CHECK(m.find("kura_alerts_active{kind=\"storage\"} 0") != std::string::npos);
    REQUIRE(n.stop() == 0);
  }
  // A damaged model is discarded with a log line; the node serves on.
  {
    std::fstream f(data + "/predictor.model", std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f.good());
    f.seekp(40);
    f.write("garbage!", 8);
  }
  {
    node_process n(args(0), data);
    REQUIRE_MESSAGE(n.ready, n.log());
    auto js = wait_report(n, [](const std::string& j) { return json_int(j, "prewarm_runs") >= 1; });
    CAPTURE(js);
    CHECK(js.find("\"model_status\": \"discarded: ") != std::string::npos);
    CHECK(json_int(js, "tracked_keys") == 0);
    CHECK(n.log().find("discarded, starting empty") != std::string::npos);
    client c(n.port);
    CHECK(*c.call({"GET", hot(1)}) == "$100\r\n" + std::string(100, 'h') + "\r\n");
    CHECK(n.stop() == 0);
  }
}

TEST_CASE("a kura-node drops predicted-cold keys from memory to make room for prewarm loads") {
  // Cold keys are read in two hours two days back; hot keys in the three hours
  // before now. Now, the cold keys are read (memory holds them) while the
  // plan loads the hot ones a few per cycle (a tiny load rate): every cycle
  // after the first drops up to one resident cold key per load from memory
  // (L3 keeps it). The predictor's clock is set to 10 minutes past an hour
  // for the last run, so that no run crosses an hour boundary.
  temp_dir dir;
  const std::string data = dir.path + "/node";
  constexpr int64_t hour = 3600 * 1000;
  constexpr int n_cold = 30;
  const int64_t wall = static_cast<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count());
  const int64_t now = wall / hour * hour + 10 * 60 * 1000 - wall; // offset of the last run
  auto page = [](int i) { return "page:" + std::to_string(i) + ":cold"; };
  auto node_args = [](int64_t offset) {
    auto a = args(offset);
    // about 8 hot keys per plan (rate x interval bytes), so that loads
    // continue after the cold keys were read
    a.push_back("--kura.prewarm.max-load-rate=1024");
    return a;
  };
  for (int64_t h : {50, 49}) {
    node_process n(node_args(now - h * hour), data);
    REQUIRE_MESSAGE(n.ready, n.log());
    client c(n.port);
    REQUIRE(c.ok());
    if (h == 50) {
      for (int i = 0; i < hot_keys; ++i)
        REQUIRE(*c.call({"SET", hot(i), std::string(100, 'h')}) == "+OK\r\n");
      for (int i = 0; i < n_cold; ++i)
        REQUIRE(*c.call({"SET", page(i), std::string(1000, 'p')}) == "+OK\r\n");
    }
    for (int i = 0; i < n_cold; ++i)
      REQUIRE(c.call({"GET", page(i)})->size() > 1000);
    auto js = wait_report(n, [](const std::string& j) { return json_int(j, "events") >= n_cold; });
    CAPTURE(js);
    REQUIRE(json_int(js, "events") >= n_cold);
    REQUIRE(n.stop() == 0);
  }
  for (int64_t h : {3, 2, 1}) {
    node_process n(node_args(now - h * hour), data);
    REQUIRE_MESSAGE(n.ready, n.log());
    client c(n.port);
    read_hot(c);
    auto js =
        wait_report(n, [](const std::string& j) { return json_int(j, "events") >= hot_keys; });
    CAPTURE(js);
    REQUIRE(json_int(js, "events") >= hot_keys);
    REQUIRE(n.stop() == 0);
  }
  node_process n(node_args(now), data);
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  for (int i = 0; i < n_cold; ++i) // into memory (from L3)
    REQUIRE(c.call({"GET", page(i)})->size() > 1000);
  auto js = wait_report(n, [](const std::string& j) {
    return json_int(j, "keys_prewarmed") >= hot_keys && json_int(j, "cold_dropped") >= 1;
  });
  CAPTURE(js);
  CAPTURE(n.log());
  REQUIRE(json_int(js, "keys_prewarmed") >= hot_keys);
  const long long dropped = json_int(js, "cold_dropped");
  CHECK(dropped >= 1);
  CHECK(dropped <= n_cold);
  // the dropped keys are the cold ones, gone from memory only (memory has room
  // for everything: nothing else evicts them)
  int in_l3 = 0;
  for (int i = 0; i < n_cold; ++i)
    in_l3 += *c.call({"KURA.TIER", page(i)}) == "$2\r\nl3\r\n";
  CHECK(in_l3 == dropped);
  int hot_resident = 0;
  for (int i = 0; i < hot_keys; ++i) {
    auto t = *c.call({"KURA.TIER", hot(i)});
    hot_resident += t == "$2\r\nl1\r\n" || t == "$2\r\nl2\r\n";
  }
  CHECK(hot_resident == hot_keys);
  // a dropped key still reads (from L3)
  CHECK(*c.call({"GET", page(0)}) == "$1000\r\n" + std::string(1000, 'p') + "\r\n");
  int rc = -1;
  auto human = kura_cli(n.cluster_port, "predictor", rc);
  CHECK(rc == 0);
  CHECK(human.find("cold keys dropped") != std::string::npos);
  CHECK(n.stop() == 0);
}

TEST_CASE(
    "adjust-ttl: a pattern re-read after expiry gets longer TTLs in kura-node, within bounds") {
  // 40 session keys are written with PX 300 and read again after they
  // expired (misses): the predictor learns that sess:* is re-read after
  // expiry, the node doubles the TTL of new sess:* writes (never above
  // kura.prewarm.max-ttl), leaves other patterns alone, and `kura predictor`
  // reports the rule and the writes it changed.
  const std::vector<std::string> a = {
      "--kura.prewarm.enabled=true", "--kura.prewarm.sample-one-in=1",
      "--kura.prewarm.interval=1s",  "--kura.prewarm.adjust-ttl=true",
      "--kura.prewarm.max-ttl=15s",  "--kura.archive.enabled=false"};
  node_process n(a);
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  REQUIRE(c.ok());
  auto sess = [](int i) { return "sess:" + std::to_string(i) + ":cart"; };
  for (int i = 0; i < 40; ++i)
    REQUIRE(*c.call({"SET", sess(i), "v", "PX", "300"}) == "+OK\r\n");
  for (int i = 0; i < 40; ++i) {
    bool gone = false; // poll until expired (no timing assumption)
    for (int k = 0; k < 600 && !gone; ++k) {
      gone = *c.call({"PTTL", sess(i)}) == ":-2\r\n";
      if (!gone)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    REQUIRE(gone);
    REQUIRE(*c.call({"GET", sess(i)}) == "$-1\r\n"); // the client asks again: a miss
  }
  auto js = wait_report(n, [](const std::string& j) {
    return j.find("sess:*:cart x2 (re-read after expiry)") != std::string::npos;
  });
  CAPTURE(js);
  REQUIRE(js.find("sess:*:cart x2 (re-read after expiry)") != std::string::npos);
  CHECK(js.find("\"adjust_ttl\": true") != std::string::npos);
  // The rule reaches the store with the next message after the report: poll
  // a new write's TTL.
  auto pttl = [&](const std::string& key) {
    auto r = *c.call({"PTTL", key});
    return std::atoll(r.c_str() + 1);
  };
  long long t = 0;
  for (int k = 0; k < 600 && t <= 10'000; ++k) {
    REQUIRE(*c.call({"SET", sess(100), "v", "PX", "10000"}) == "+OK\r\n");
    t = pttl(sess(100));
    if (t <= 10'000)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(t > 10'000);
  CHECK(t <= 15'000); // max-ttl
  REQUIRE(*c.call({"SET", sess(101), "v", "PX", "4000"}) == "+OK\r\n");
  const long long t2 = pttl(sess(101));
  CHECK(t2 > 4'000);
  CHECK(t2 <= 8'000);
  REQUIRE(*c.call({"SET", "other:1", "v", "PX", "4000"}) == "+OK\r\n");
  CHECK(pttl("other:1") <= 4'000); // another pattern: unchanged
  REQUIRE(*c.call({"SET", sess(102), "v"}) == "+OK\r\n");
  CHECK(*c.call({"PTTL", sess(102)}) == ":-1\r\n"); // no TTL stays none
  js = wait_report(n, [](const std::string& j) { return json_int(j, "ttl_longer") >= 2; });
  CAPTURE(js);
  CHECK(json_int(js, "ttl_longer") >= 2);
  CHECK(json_int(js, "ttl_shorter") == 0);
  int rc = -1;
  auto human = kura_cli(n.cluster_port, "predictor", rc);
  CAPTURE(human);
  CHECK(rc == 0);
  CHECK(human.find("TTL rule") != std::string::npos);
  CHECK(n.stop() == 0);
}

TEST_CASE("tier-choice: new writes of a pattern written and never read stay out of memory") {
  // The evidence (writes followed for an hour, never read) takes an hour of
  // wall time to gather in a node; the test hands the node a model that has
  // it (made by the same core, saved the way the node saves it), as a node
  // restarted after that hour would load it.
  temp_dir dir;
  {
    namespace pr = kura::predictor;
    const auto now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::system_clock::now().time_since_epoch())
                                               .count());
    pr::predictor model{pr::predictor_config{}};
    const uint64_t t0 = now - 3 * pr::hour_ms;
    for (int i = 0; i < 64; ++i)
      model.record_write("log:" + std::to_string(i) + ":event", t0 + i, 0, 40);
    model.tick(t0 + 2 * pr::hour_ms);
    REQUIRE(model.choose_tier("log:1:event") == pr::tier_choice::l3);
    pr::file_model_store store(dir.path + "/predictor.model");
    REQUIRE(model.save(store).ok());
  }
  std::vector<std::string> a = {"--kura.prewarm.enabled=true", "--kura.prewarm.interval=1s",
                                "--kura.prewarm.tier-choice=true", "--kura.archive.enabled=false"};
  node_process n(a, dir.path);
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  REQUIRE(c.ok());
  // the rule reaches the store with the first cycle: poll a new key's tier
  std::string tier;
  for (int k = 0; k < 600; ++k) {
    const std::string key = "log:" + std::to_string(1000 + k) + ":event";
    REQUIRE(*c.call({"SET", key, "line"}) == "+OK\r\n");
    tier = *c.call({"KURA.TIER", key});
    if (tier == "$2\r\nl3\r\n")
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(tier == "$2\r\nl3\r\n"); // L3 only, not memory
  REQUIRE(*c.call({"SET", "log:5000:event", "kept"}) == "+OK\r\n");
  CHECK(*c.call({"KURA.TIER", "log:5000:event"}) == "$2\r\nl3\r\n");
  CHECK(*c.call({"GET", "log:5000:event"}) == "$4\r\nkept\r\n"); // read from L3
  // another pattern is written to memory as usual
  REQUIRE(*c.call({"SET", "user:1:profile", "p"}) == "+OK\r\n");
  const auto other = *c.call({"KURA.TIER", "user:1:profile"});
  CHECK((other == "$2\r\nl1\r\n" || other == "$2\r\nl2\r\n"));
  auto js = wait_report(n, [](const std::string& j) { return json_int(j, "tier_l3_only") >= 2; });
  CAPTURE(js);
  CHECK(json_int(js, "tier_l3_only") >= 2);
  CHECK(js.find("log:*:event -> L3 only") != std::string::npos);
  CHECK(js.find("\"tier_choice\": true") != std::string::npos);
  CHECK(n.stop() == 0);
}

TEST_CASE("with prewarm off the predictor commands say so") {
  node_process n({"--kura.prewarm.enabled=false"});
  REQUIRE_MESSAGE(n.ready, n.log());
  int rc = -1;
  auto out = run_shell(
      bin_dir() + "/kura --port=" + std::to_string(n.cluster_port) + " predictor 2>&1", &rc);
  CHECK(rc == 1);
  CHECK(out.find("the predictor is off") != std::string::npos);
  CHECK(n.stop() == 0);
}

TEST_CASE("reads answered from L1 and L2 feed the latency alerts") {
  // The thresholds are set below any real latency (1 ns), so both alerts must
  // start once reads answered from L1 and from L2 were measured in a cycle:
  // the alerts prove the node measures both tiers (a node that passed 0,
  // "not measured", raised neither).
  temp_dir dir;
  node_process n({"--memory-bytes=1048576", "--kura.prewarm.enabled=true",
                  "--kura.prewarm.interval=1s", "--kura.alerts.max-l1-latency=1ns",
                  "--kura.alerts.max-l2-latency=1ns", "--kura.archive.enabled=false"},
                 dir.path + "/node");
  REQUIRE_MESSAGE(n.ready, n.log());
  client c(n.port);
  REQUIRE(c.ok());
  auto old_key = [](int i) { return "old:" + std::to_string(i); };
  constexpr int n_old = 2000;
  for (int i = 0; i < n_old; ++i)
    REQUIRE(*c.call({"SET", old_key(i), std::string(100, 'o')}) == "+OK\r\n");
  for (int round = 0; round < 3; ++round)
    for (int i = 0; i < n_old; ++i)
      REQUIRE(c.call({"GET", old_key(i)})->size() > 100);
  int in_l2 = 0;
  for (int i = 0; i < 50; ++i)
    in_l2 += *c.call({"KURA.TIER", old_key(i)}) == "$2\r\nl2\r\n";
  CHECK(in_l2 > 0);
  std::string alerts;
  for (int i = 0; i < 600; ++i) {
    // a fresh key is read from L1 (a new key lands there); the old ones from L2
    auto fresh = "fresh:" + std::to_string(i);
    REQUIRE(*c.call({"SET", fresh, "v"}) == "+OK\r\n");
    REQUIRE(*c.call({"GET", fresh}) == "$1\r\nv\r\n");
    for (int k = 0; k < 50; ++k)
      REQUIRE(c.call({"GET", old_key(k)})->size() > 100);
    int rc = -1;
    alerts = kura_cli(n.cluster_port, "--json alerts", rc);
    REQUIRE(rc == 0);
    if (alerts.find("l1_latency") != std::string::npos &&
        alerts.find("l2_latency") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CAPTURE(alerts);
  CHECK(alerts.find("l1_latency") != std::string::npos);
  CHECK(alerts.find("l2_latency") != std::string::npos);
  CHECK(n.log().find("alert l1_latency") != std::string::npos);
  CHECK(n.stop() == 0);
}
