// The predictor core with a fake clock and seeded workloads.
#include "predictor/predictor.hpp"
#include "test_util.hpp"
#include "tiers/clock.hpp"
#include "tiers/memory_cache.hpp"
#include "tiers/random.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <unordered_set>

using namespace kura::predictor;
using kura::errc;
using kura::rng;

namespace {

// Monday 2023-11-13 00:00 UTC.
constexpr uint64_t monday = 1'699'833'600'000ull;

uint64_t at(int week, int weekday, int hour, int minute = 0) {
  return monday + week * week_ms + weekday * day_ms + hour * hour_ms + minute * minute_ms;
}

struct set_memory final : memory_view {
  std::unordered_set<std::string> keys;
  uint64_t cap = 1'000'000;
  bool resident(std::string_view k) const override { return keys.count(std::string(k)) != 0; }
  uint64_t capacity_bytes() const override { return cap; }
};

access_event read(std::string_view key, uint64_t t, uint32_t size = 100) {
  access_event e;
  e.key = key;
  e.time_ms = t;
  e.size = size;
  return e;
}

} // namespace

TEST_CASE("hour_of_week counts from Monday 00:00 UTC") {
  CHECK(hour_of_week(monday) == 0);
  CHECK(hour_of_week(at(0, 1, 8)) == 32);
  CHECK(hour_of_week(at(3, 6, 23, 59)) == 167);
}

TEST_CASE("a weekday-morning key is learned, with confidence growing with evidence") {
  profile_params p;
  time_profile prof(at(0, 0, 0));
  double after_two_days = 0;
  for (int week = 0; week < 3; ++week)
    for (int d = 0; d < 5; ++d) {
      prof.record(at(week, d, 8, 10), p);
      prof.record(at(week, d, 8, 40), p); // same hour: counted once
      if (week == 0 && d == 1)
        after_two_days = prof.hour_probability(at(0, 2, 8) / hour_ms, at(0, 1, 23), p);
    }
  const uint64_t now = at(3, 0, 6);
  const double mon8 = prof.hour_probability(at(3, 0, 8) / hour_ms, now, p);
  const double sat8 = prof.hour_probability(at(3, 5, 8) / hour_ms, now, p);
  const double mon3 = prof.hour_probability(at(3, 0, 15) / hour_ms, now, p);
  CHECK(mon8 > 0.8);
  CHECK(sat8 < 0.4);
  CHECK(mon3 < 0.05);
  CHECK(after_two_days < 0.7); // two observations are not enough
  CHECK(after_two_days < mon8);
  CHECK(prof.hours_seen() == 15);
  // The window Monday 07:30-08:30 covers half of the 08 hour.
  const double w = prof.window_probability(at(3, 0, 7, 30), at(3, 0, 8, 30), now, p);
  CHECK(w == doctest::Approx(mon8 / 2).epsilon(0.01));
}

TEST_CASE("a Monday key is learned by the weekly bins") {
  profile_params p;
  time_profile prof(at(0, 0, 0));
  for (int week = 0; week < 4; ++week)
    prof.record(at(week, 0, 10, 5), p);
  const uint64_t now = at(4, 0, 1);
  CHECK(prof.hour_probability(at(4, 0, 10) / hour_ms, now, p) > 0.7);
  CHECK(prof.hour_probability(at(4, 1, 10) / hour_ms, now, p) < 0.3);
  // An hour already read has probability 0 (the event happened).
  time_profile q(at(0, 0, 0));
  q.record(at(0, 0, 9, 1), p);
  CHECK(q.hour_probability(at(0, 0, 9) / hour_ms, at(0, 0, 9, 30), p) == 0);
}

TEST_CASE("day types: a weekday habit is not assumed on the first weekend") {
  profile_params p;
  // Read on weekdays at 08 (Monday..Friday of week 0), and daily at 19
  // (Monday..Saturday so far).
  time_profile morning(at(0, 0, 0)), evening(at(0, 0, 0));
  for (int d = 0; d < 5; ++d)
    morning.record(at(0, d, 8, 10), p);
  for (int d = 0; d < 6; ++d)
    evening.record(at(0, d, 19, 10), p);
  // Friday evening: Saturday 08 has no weekend evidence yet, Monday 08 has five weekdays.
  const uint64_t fri = at(0, 4, 20);
  CHECK(morning.hour_probability(at(0, 5, 8) / hour_ms, fri, p) < 0.2);
  CHECK(morning.hour_probability(at(1, 0, 8) / hour_ms, fri, p) > 0.7);
  // Saturday night: Saturday 08 passed unread, so Sunday 08 stays low; the
  // evening key was read on Saturday as on weekdays, so Sunday 19 is high.
  const uint64_t sat = at(0, 5, 23);
  CHECK(morning.hour_probability(at(0, 6, 8) / hour_ms, sat, p) < 0.5);
  CHECK(evening.hour_probability(at(0, 6, 19) / hour_ms, sat, p) > 0.7);
  // Before Saturday's read, the evening key's Saturday was not assumed either.
  time_profile weekdays_only(at(0, 0, 0));
  for (int d = 0; d < 5; ++d)
    weekdays_only.record(at(0, d, 19, 10), p);
  CHECK(weekdays_only.hour_probability(at(0, 5, 19) / hour_ms, fri, p) < 0.2);
  CHECK(weekend_hour(at(0, 5, 0) / hour_ms));
  CHECK(weekend_hour(at(0, 6, 23) / hour_ms));
  CHECK_FALSE(weekend_hour(at(0, 4, 23) / hour_ms));
  CHECK_FALSE(weekend_hour(at(1, 0, 0) / hour_ms));
}

TEST_CASE("decay: an old habit fades") {
  profile_params p;
  time_profile prof(at(0, 0, 0));
  for (int d = 0; d < 14; ++d)
    prof.record(at(0, d, 8, 0), p);
  const double fresh = prof.hour_probability(at(2, 0, 8) / hour_ms, at(2, 0, 0), p);
  const double stale = prof.hour_probability(at(20, 0, 8) / hour_ms, at(20, 0, 0), p);
  CHECK(fresh > 0.8);
  CHECK(stale < 0.2);
  CHECK(prof.weight(at(20, 0, 0), p) < prof.weight(at(2, 0, 0), p) / 8);
}

TEST_CASE("key patterns are learned from shapes and from value variety") {
  key_patterns kp(8);
  CHECK(kp.learn("user:1042:profile") == "user:*:profile");
  CHECK(kp.learn("user:7:profile") == "user:*:profile");
  CHECK(kp.learn("/images/ksc-logo.gif") == "/images/ksc-logo.gif");
  const char* names[] = {"alice", "bob",   "carol", "dave", "erin",
                         "frank", "grace", "heidi", "ivan", "judy"};
  std::string last;
  for (const char* n : names)
    last = kp.learn(std::string("session:") + n + ":cart");
  CHECK(last == "session:*:cart");
  CHECK(kp.pattern_of("session:mallory:cart") == "session:*:cart");
  // A position with few values stays literal.
  CHECK(kp.learn("session:alice:wishlist") == "session:*:wishlist");
  CHECK(kp.pattern_of("video:dQw4w9WgXcQ") == "video:*");
}

TEST_CASE("the plan loads the morning keys before the morning, not the evening keys") {
  predictor_config cfg;
  cfg.lift_evidence = 0; // (bucket evidence: its own case)
  cfg.first_evidence = 0;
  cfg.evidence_loads = 0; // the bar for a thin record: its own test
  cfg.reload_evicted = true;
  predictor pr(cfg);
  rng r(7);
  // Two weeks: 20 morning keys read on weekdays 08-09, 20 evening keys 19-20.
  for (int week = 0; week < 2; ++week)
    for (int d = 0; d < 7; ++d) {
      if (d < 5)
        for (int k = 0; k < 20; ++k)
          pr.record(read("morning:" + std::to_string(k), at(week, d, 8, r.below(60))));
      for (int k = 0; k < 20; ++k)
        pr.record(read("evening:" + std::to_string(k), at(week, d, 19, r.below(60))));
    }
  set_memory mem;
  auto plan = pr.make_plan(at(2, 0, 7, 58), mem);
  std::set<std::string> keys;
  for (auto& it : plan.items) {
    keys.insert(it.key);
    CHECK(it.confidence >= cfg.min_confidence);
    CHECK(it.pattern == "morning:*");
  }
  CHECK(keys.size() == 20);
  // Saturday morning: nothing from the weekday set.
  auto sat = pr.make_plan(at(2, 5, 7, 58), mem);
  CHECK(sat.items.empty());
  // Loaded keys are not planned again within the horizon while resident.
  for (auto& it : plan.items) {
    pr.on_loaded(it.key, it.bytes, at(2, 0, 7, 58));
    mem.keys.insert(it.key);
  }
  CHECK(pr.make_plan(at(2, 0, 8, 5), mem).items.empty());
  // Evicted before their read: loaded once more, not a third time.
  mem.keys.clear();
  auto again = pr.make_plan(at(2, 0, 8, 6), mem);
  CHECK(again.items.size() == 20);
  for (auto& it : again.items)
    pr.on_loaded(it.key, it.bytes, at(2, 0, 8, 6));
  CHECK(pr.make_plan(at(2, 0, 8, 7), mem).items.empty());
  // The first loads count as misses in the record.
  double outcomes = 0;
  for (auto [u, l] : pr.calibration_table())
    outcomes += l - u;
  CHECK(outcomes == 20);
  // Resident keys are never planned.
  for (int k = 0; k < 20; ++k)
    mem.keys.insert("evening:" + std::to_string(k));
  CHECK(pr.make_plan(at(2, 0, 18, 45), mem).items.empty());
  // The dry-run preview lists keys and patterns over the whole window.
  auto pv = pr.preview(at(2, 0, 0), 100);
  CHECK(pv.candidates == 40);
  bool has_pattern = false;
  for (auto& it : pv.items)
    has_pattern |= it.is_pattern && it.key == "morning:*";
  CHECK(has_pattern);
}

/// Keys k:0..k:29 read every day at 08:xx for ten days.
void read_mornings(predictor& pr) {
  for (int d = 0; d < 10; ++d)
    for (int k = 0; k < 30; ++k)
      pr.record(read("k:" + std::to_string(k), at(0, d, 8, k)));
}

TEST_CASE("the plan keeps to its byte budget and protects hotter residents") {
  predictor_config cfg;
  cfg.lift_evidence = 0; // (bucket evidence: its own case)
  cfg.first_evidence = 0;
  cfg.max_bytes_per_cycle = 1000; // ten keys of 100 bytes
  predictor pr(cfg);
  read_mornings(pr);
  set_memory mem;
  auto plan = pr.make_plan(at(1, 3, 7, 58), mem);
  CHECK(plan.candidates == 30);
  CHECK(plan.items.size() == 10);
  CHECK(plan.bytes <= 1000);
  // Memory of 1000 bytes, 8 hotter (always-read) keys resident: room for 2.
  predictor_config cfg_open;
  cfg_open.lift_evidence = 0; // (bucket evidence: its own case)
  cfg_open.first_evidence = 0;
  predictor pr2(cfg_open);
  for (int h = 0; h < 24 * 10 + 8; ++h) // every hour up to day 10 07:xx
    for (int k = 0; k < 8; ++k)
      pr2.record(read("hot:" + std::to_string(k), at(0, 0, 0) + h * hour_ms + k * 1000));
  read_mornings(pr2);
  set_memory small;
  small.cap = 1000;
  for (int k = 0; k < 8; ++k)
    small.keys.insert("hot:" + std::to_string(k));
  auto p2 = pr2.make_plan(at(1, 3, 7, 58), small);
  CHECK(p2.items.size() == 2);
  CHECK(p2.held_back == 28);
}

TEST_CASE("a cluster node's plan skips keys its memory may not hold (memory_view::here)") {
  predictor_config cfg;
  cfg.lift_evidence = 0; // (bucket evidence: its own case)
  cfg.first_evidence = 0;
  cfg.evidence_loads = 0;
  predictor pr(cfg);
  read_mornings(pr);
  // This node replicates the even keys only.
  struct slots_memory final : memory_view {
    bool resident(std::string_view) const override { return false; }
    uint64_t capacity_bytes() const override { return 1 << 20; }
    bool here(std::string_view key) const override {
      return std::stoi(std::string(key.substr(2))) % 2 == 0;
    }
  } mem;
  auto plan = pr.make_plan(at(1, 3, 7, 58), mem);
  CHECK(plan.elsewhere == 15);
  CHECK(plan.items.size() == 15);
  for (auto& it : plan.items)
    CHECK(std::stoi(it.key.substr(2)) % 2 == 0);
  // A node holding every key (the default) plans all 30.
  predictor pr2(cfg);
  read_mornings(pr2);
  set_memory all;
  auto p2 = pr2.make_plan(at(1, 3, 7, 58), all);
  CHECK(p2.elsewhere == 0);
  CHECK(p2.items.size() == 30);
}

TEST_CASE("the model stays within memory-bytes whatever the key count") {
  predictor_config cfg;
  cfg.memory_bytes = 1 << 20;
  cfg.coaccess_prefetch = true;
  predictor pr(cfg);
  rng r(42);
  uint64_t t = at(0, 0, 0);
  for (int i = 0; i < 300'000; ++i) {
    t += 200;
    const uint64_t k = r.chance(0.5) ? r.below(200) : r.next();
    const std::string key = "obj:" + std::to_string(k) + ":" + std::to_string(k % 7) + "x";
    pr.record(read(key, t));
    if (i % 3 == 0)
      pr.record_write("w:" + std::to_string(r.next()), t, 0, 10);
    if (i % 1000 == 0)
      pr.tick(t);
    if (i % 50'000 == 0)
      INFO("seed 42, step " << i);
  }
  auto s = pr.stats();
  INFO("bytes " << pr.bytes() << " keys " << s.tracked_keys);
  CHECK(pr.bytes() <= cfg.memory_bytes);
  CHECK(s.tracked_keys > 100);
  // The frequent keys made it into the table.
  CHECK(pr.key_probability("obj:5:5x", t, t + hour_ms, t).has_value());
}

TEST_CASE("co-access: B after A is prefetched when enabled") {
  predictor_config cfg;
  cfg.coaccess_prefetch = true;
  predictor pr(cfg);
  rng r(3);
  uint64_t t = at(0, 0, 0);
  for (int i = 0; i < 10; ++i) {
    pr.record(read("page:index", t));
    pr.record(read("img:logo", t + 500));
    pr.record(read("noise:" + std::to_string(r.next()), t + 900));
    t += 10 * minute_ms;
  }
  set_memory mem;
  auto f = pr.prefetch_for("page:index", t, mem);
  REQUIRE(f.size() == 1);
  CHECK(f[0] == "img:logo");
  mem.keys.insert("img:logo");
  CHECK(pr.prefetch_for("page:index", t, mem).empty());
  predictor off{predictor_config{}};
  off.record(read("a", t));
  off.record(read("b", t + 1));
  CHECK(off.prefetch_for("a", t, set_memory{}).empty());
}

TEST_CASE("TTL: longer for keys re-read after expiry, shorter for keys never read") {
  predictor_config cfg;
  cfg.adjust_ttl = true;
  cfg.min_write_evidence = 16;
  predictor pr(cfg);
  uint64_t t = at(0, 0, 0);
  for (int i = 0; i < 40; ++i) {
    const std::string s = "sess:" + std::to_string(i);
    pr.record_write(s, t, 60'000, 50);
    access_event e = read(s, t + 90'000);
    e.tier = access_tier::miss; // expired: a miss, and the client asks again
    pr.record(e);
    pr.record_write("tmp:" + std::to_string(i), t, 60'000, 50);
    t += 1000;
  }
  pr.tick(t + 2 * hour_ms);
  auto longer = pr.suggest_ttl("sess:999", 60'000);
  CHECK(longer.ttl_ms == 120'000);
  CHECK(longer.applied);
  auto shorter = pr.suggest_ttl("tmp:999", 60'000);
  CHECK(shorter.ttl_ms == 30'000);
  auto unknown = pr.suggest_ttl("other:1", 60'000);
  CHECK(!unknown.changed);
  CHECK(pr.stats().ttl_longer == 1);
  CHECK(pr.stats().ttl_shorter == 1);
  // The same decisions as a snapshot for a host's write path.
  auto rules = pr.applied_ttl_rules();
  CHECK(rules.rules().size() == 2);
  CHECK(rules.apply("sess:4711", 60'000) == 120'000);
  CHECK(rules.apply("tmp:4711", 60'000) == 30'000);
  CHECK(rules.apply("other:1", 60'000) == 60'000);
  CHECK(rules.apply("sess:4711", 0) == 0); // no TTL stays none
  CHECK(rules.adjusted(500, -1) == 500);   // never below min_ttl_ms (1 s) ...
  CHECK(rules.adjusted(1500, -1) == 1000);
  // Reads after the asked TTL that memory served (the applied longer TTL kept
  // the key) still count as reads after expiry: the rule stays.
  for (int i = 0; i < 40; ++i) {
    const std::string s = "sess:" + std::to_string(100 + i);
    pr.record_write(s, t, 60'000, 50);
    access_event e = read(s, t + 90'000);
    e.tier = access_tier::l1;
    pr.record(e);
    t += 1000;
  }
  pr.tick(t + 2 * hour_ms);
  CHECK(pr.applied_ttl_rules().apply("sess:1", 60'000) == 120'000);
  // Bounds hold.
  cfg.max_ttl_ms = 100'000;
  predictor bounded(cfg);
  t = at(0, 0, 0);
  for (int i = 0; i < 40; ++i) {
    const std::string s = "sess:" + std::to_string(i);
    bounded.record_write(s, t, 60'000, 50);
    access_event e = read(s, t + 90'000);
    bounded.record(e);
    t += 1000;
  }
  CHECK(bounded.suggest_ttl("sess:1", 60'000).ttl_ms == 100'000);
  CHECK(bounded.applied_ttl_rules().apply("sess:1", 60'000) == 100'000);
  CHECK(bounded.applied_ttl_rules().apply("sess:1", 200'000) == 200'000); // already above
  // Without adjust-ttl it only suggests.
  cfg.adjust_ttl = false;
  predictor quiet(cfg);
  CHECK(!quiet.suggest_ttl("sess:1", 60'000).applied);
}

TEST_CASE("tier choice: written-never-read goes to L3, read-at-once to L1") {
  predictor pr{predictor_config{}};
  uint64_t t = at(0, 0, 0);
  for (int i = 0; i < 64; ++i) {
    pr.record_write("log:" + std::to_string(i), t, 0, 10);
    pr.record_write("hot:" + std::to_string(i), t, 0, 10);
    pr.record(read("hot:" + std::to_string(i), t + 100));
    pr.record_write("mix:" + std::to_string(i), t, 0, 10);
    if (i % 3 == 0)
      pr.record(read("mix:" + std::to_string(i), t + 10 * minute_ms));
    t += 1000;
  }
  pr.tick(t + 2 * hour_ms);
  CHECK(pr.choose_tier("log:1000") == tier_choice::l3);
  CHECK(pr.choose_tier("hot:1000") == tier_choice::l1);
  CHECK(pr.choose_tier("mix:1000") == tier_choice::memory);
  CHECK(pr.choose_tier("new:1") == tier_choice::memory);
}

TEST_CASE("tier choice in the write rules: only with tier_choice, from followed writes") {
  predictor_config cfg;
  cfg.tier_choice = true;
  predictor pr{cfg};
  uint64_t t = at(0, 0, 0);
  for (int i = 0; i < 64; ++i) {
    pr.record_write("log:" + std::to_string(i) + ":event", t, 0, 10);
    pr.record_write("page:" + std::to_string(i) + ":body", t, 0, 10);
    // a host that samples reads reports the next read of a followed write
    pr.record_write_read("page:" + std::to_string(i) + ":body", t + 5 * minute_ms);
    t += 1000;
  }
  // not followed for write_track_ms yet: no outcome, no rule
  CHECK(pr.applied_ttl_rules().l3_only_patterns().empty());
  pr.tick(t + 2 * hour_ms);
  auto rules = pr.applied_ttl_rules();
  CHECK(rules.l3_only("log:77777:event"));
  CHECK(!rules.l3_only("page:77777:body"));
  CHECK(!rules.l3_only("other"));
  CHECK(rules.rules().empty()); // no TTL rule from writes without a TTL
  CHECK(rules.tiers_only().l3_only("log:1:event"));
  CHECK(!rules.ttls_only().l3_only("log:1:event"));
  // without tier_choice the snapshot carries no tier rule
  predictor off{predictor_config{}};
  for (int i = 0; i < 64; ++i)
    off.record_write("log:" + std::to_string(i) + ":event", at(0, 0, 0) + i, 0, 10);
  off.tick(at(0, 0, 0) + 2 * hour_ms);
  CHECK(off.applied_ttl_rules().empty());
  CHECK(off.choose_tier("log:5:event") == tier_choice::l3); // the core still knows
}

TEST_CASE("a write dropped from tracking before its outcome is known is not 'never read'") {
  predictor_config cfg;
  cfg.memory_bytes = 1 << 20; // tracks about 330 writes
  predictor pr{cfg};
  uint64_t t = at(0, 0, 0);
  // 20000 writes in 20 s, each read 30 minutes later: far more in flight
  // than the table follows; the ones it drops early are unknown, not unread
  for (int i = 0; i < 20000; ++i)
    pr.record_write("feed:" + std::to_string(i) + ":home", t + i, 0, 10);
  for (int i = 0; i < 20000; ++i)
    pr.record(read("feed:" + std::to_string(i) + ":home", t + 30 * minute_ms + i));
  pr.tick(t + 3 * hour_ms);
  CHECK(pr.choose_tier("feed:99999:home") != tier_choice::l3);
}

TEST_CASE("anomalies: each threshold alerts within one cycle and clears") {
  anomaly_detector d;
  observation o;
  o.requests = 1000;
  o.memory_hits = 950;
  o.l1_latency_ms = 0.05;
  o.l2_latency_ms = 0.2;
  o.storage_budget = 1000;
  o.storage_bytes = 500;
  uint64_t t = at(0, 0, 0);
  auto step = [&](observation x) {
    x.now_ms = t;
    t += minute_ms;
    return d.observe(x);
  };
  for (int i = 0; i < 10; ++i)
    CHECK(step(o).empty());
  observation f = o;
  f.memory_hits = 500;
  auto s = step(f);
  REQUIRE(s.size() == 1);
  CHECK(s[0].kind == alert_kind::hit_ratio);
  CHECK(s[0].start_ms == t - minute_ms);
  CHECK(s[0].reason.find("below") != std::string::npos);
  f = o;
  f.l1_latency_ms = 5;
  f.l2_latency_ms = 25;
  f.storage_bytes = 950;
  f.sync_failures = 2;
  s = step(f);
  CHECK(s.size() == 4);
  CHECK(d.active().size() == 5);
  for (int i = 0; i < 3; ++i)
    step(o);
  CHECK(d.active().empty());
  CHECK(d.recent().size() == 5);
  for (const auto& a : d.recent())
    CHECK(a.end_ms > a.start_ms);
  // Too few requests: no hit-ratio verdict.
  f = o;
  f.requests = 10;
  f.memory_hits = 0;
  CHECK(step(f).empty());
}

TEST_CASE("anomalies: the hour-of-week baseline catches a rate collapse, not noise") {
  anomaly_detector d;
  rng r(11);
  uint64_t raised = 0;
  uint64_t t = at(0, 0, 0);
  for (int m = 0; m < 2 * 7 * 24 * 60; ++m, t += minute_ms) {
    observation o;
    o.now_ms = t;
    // The cycle ending at t measured [t - 1 min, t).
    const unsigned h = static_cast<unsigned>(((t - minute_ms) / hour_ms) % 24);
    const double base = (h >= 8 && h < 20) ? 600 : 100;
    o.requests = static_cast<uint64_t>(base * (0.9 + 0.2 * r.uniform()));
    o.memory_hits = static_cast<uint64_t>(o.requests * (0.93 + 0.04 * r.uniform()));
    raised += d.observe(o).size();
  }
  INFO("seed 11");
  CHECK(raised < 24 * 14 / 24); // well under one per simulated hour (none expected)
  observation drop;
  drop.now_ms = at(2, 0, 10);
  drop.requests = 60;
  drop.memory_hits = 57;
  auto s = d.observe(drop);
  REQUIRE(!s.empty());
  CHECK(s[0].kind == alert_kind::request_rate);
}

TEST_CASE("the model survives a restart; a corrupt model is discarded, never a crash") {
  kura::testing::temp_dir dir("kura-predictor");
  predictor_config cfg;
  cfg.coaccess_prefetch = true;
  predictor pr(cfg);
  for (int week = 0; week < 2; ++week)
    for (int d = 0; d < 5; ++d)
      for (int k = 0; k < 10; ++k) {
        pr.record(read("m:" + std::to_string(k), at(week, d, 8, k)));
        pr.record_write("w:" + std::to_string(k), at(week, d, 8, k), 0, 10);
      }
  file_model_store store(dir.sub("predictor.model"));
  {
    predictor empty(cfg);
    CHECK(empty.load(store).ok()); // nothing stored yet
    CHECK(empty.stats().tracked_keys == 0);
  }
  REQUIRE(pr.save(store).ok());
  predictor back(cfg);
  REQUIRE(back.load(store).ok());
  CHECK(back.stats().tracked_keys == pr.stats().tracked_keys);
  CHECK(back.stats().patterns == pr.stats().patterns);
  const uint64_t now = at(2, 0, 7, 50);
  set_memory mem;
  CHECK(back.make_plan(now, mem).items.size() == pr.make_plan(now, mem).items.size());
  CHECK(*back.key_probability("m:3", now, now + hour_ms, now) ==
        doctest::Approx(*pr.key_probability("m:3", now, now + hour_ms, now)));

  // Every single flipped byte and every truncation is caught.
  const std::string blob = pr.serialize();
  for (size_t i = 0; i < blob.size(); i += 97) {
    std::string bad = blob;
    bad[i] ^= 0x5a;
    predictor p2(cfg);
    auto st = p2.deserialize(bad);
    CHECK(!st.ok());
    CHECK(p2.stats().tracked_keys == 0);
  }
  for (size_t n : {size_t(0), size_t(5), size_t(20), blob.size() / 2, blob.size() - 1}) {
    predictor p2(cfg);
    CHECK(!p2.deserialize(blob.substr(0, n)).ok());
  }
  {
    std::ofstream f(dir.sub("predictor.model"), std::ios::binary | std::ios::trunc);
    f << "garbage that is not a model";
  }
  predictor p3(cfg);
  auto st = p3.load(store);
  CHECK(st.code() == errc::foreign_file);
  CHECK(p3.stats().tracked_keys == 0);
  // A model saved with a larger budget loads into a smaller one, trimmed.
  predictor_config tiny = cfg;
  tiny.memory_bytes = 64 * 1024;
  predictor p4(tiny);
  REQUIRE(p4.deserialize(blob).ok());
  CHECK(p4.bytes() <= tiny.memory_bytes);
}

TEST_CASE(
    "a model saved before the flat key table loads bit for bit; another version is discarded") {
  // tests/predictor/data/model-v2-main-08545a6.bin: written by
  // tests/predictor/data/gen.cpp built against main 08545a6 (the key and
  // write tables were std::unordered_map then). Its figures, as that core
  // printed them, must come back unchanged, and saving it again must give
  // the same bytes: the in-memory layout changed, the file format did not.
  const char* src = std::getenv("KURA_SOURCE_DIR");
  REQUIRE(src != nullptr);
  std::ifstream f(std::string(src) + "/tests/predictor/data/model-v2-main-08545a6.bin",
                  std::ios::binary);
  const std::string old((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  REQUIRE(old.size() == 51464);
  predictor_config cfg;
  cfg.memory_bytes = 64 * 1024;
  predictor pr(cfg);
  REQUIRE(pr.deserialize(old).ok());
  CHECK(pr.stats().tracked_keys == 57);
  CHECK(pr.stats().patterns == 1);
  const uint64_t now = at(2, 0, 7);
  auto q = [&](const char* k) { return pr.key_probability(k, now, now + hour_ms, now); };
  CHECK(*q("m:3") == doctest::Approx(0.002539118).epsilon(1e-6));
  CHECK(*q("m:24") == doctest::Approx(0.006628953).epsilon(1e-6));
  CHECK(*q("m:48") == doctest::Approx(0.014805473).epsilon(1e-6));
  CHECK(*q("m:58") == doctest::Approx(0.006687886).epsilon(1e-6));
  CHECK(!q("m:12").has_value()); // not tracked when it was saved
  CHECK(pr.serialize() == old);

  // The same payload under another format version: discarded with a reason
  // that names the version (kura-node logs it and starts empty).
  std::string other = old;
  other[8] = 1; // "KURAPRED" | u32 version (little-endian) | ...
  predictor p2(cfg);
  auto st = p2.deserialize(other);
  CHECK(st.code() == errc::foreign_file);
  CHECK(st.message().find("version 1") != std::string::npos);
  CHECK(p2.stats().tracked_keys == 0);
}

TEST_CASE("the sampler keeps about one in N") {
  sampler s(16, 5);
  int kept = 0;
  for (int i = 0; i < 160'000; ++i)
    kept += s() ? 1 : 0;
  CHECK(kept > 9000);
  CHECK(kept < 11000);
  sampler all(1);
  CHECK(all());
  CHECK(all());
}

TEST_CASE(
    "the plan learns from its own record: misses stop loads, short survival shrinks the horizon") {
  predictor_config cfg;
  cfg.lift_evidence = 0; // (bucket evidence: its own case)
  cfg.first_evidence = 0;
  predictor pr(cfg);
  for (int week = 0; week < 3; ++week)
    for (int d = 0; d < 7; ++d)
      for (int k = 0; k < 20; ++k)
        pr.record(read("daily:" + std::to_string(k), at(week, d, 8, 10 + k)));
  set_memory mem;
  auto first = pr.make_plan(at(3, 0, 7, 58), mem);
  REQUIRE(first.items.size() == 20);
  CHECK(pr.effective_horizon_ms() == cfg.load_horizon_ms);
  // Every load is evicted before its read, at short leads.
  for (auto& it : first.items) {
    pr.on_loaded(it.key, it.bytes, at(3, 0, 7, 58));
    pr.on_load_read(it.key, 3 * minute_ms, false);
  }
  CHECK(pr.stats().prewarm_loads == 20);
  CHECK(pr.stats().prewarm_hits == 0);
  CHECK(pr.stats().precision() == 0);
  CHECK(pr.effective_horizon_ms() < 4 * minute_ms);
  CHECK(pr.make_plan(at(3, 1, 7, 58), mem).items.empty());
  // The record survives a restart with the model.
  predictor back(cfg);
  REQUIRE(back.deserialize(pr.serialize()).ok());
  CHECK(back.effective_horizon_ms() == pr.effective_horizon_ms());
  CHECK(back.calibrated(0.9) == doctest::Approx(pr.calibrated(0.9)));
}

TEST_CASE("loads never read within two horizons count against their confidence bucket") {
  predictor_config cfg;
  cfg.lift_evidence = 0; // (bucket evidence: its own case)
  cfg.first_evidence = 0;
  predictor pr(cfg);
  for (int week = 0; week < 3; ++week)
    for (int d = 0; d < 7; ++d)
      for (int k = 0; k < 20; ++k)
        pr.record(read("daily:" + std::to_string(k), at(week, d, 8, 10 + k)));
  set_memory mem;
  const double before = pr.calibrated(0.9);
  auto plan = pr.make_plan(at(3, 0, 7, 58), mem);
  REQUIRE(!plan.items.empty());
  for (auto& it : plan.items)
    pr.on_loaded(it.key, it.bytes, at(3, 0, 7, 58));
  pr.tick(at(3, 0, 7, 58) + 2 * cfg.load_horizon_ms);
  double after = 1;
  for (auto& it : plan.items)
    after = std::min(after, pr.calibrated(it.confidence));
  CHECK(after < before);
  CHECK(after < cfg.min_confidence);
}

// -- predictor3's gates: imminent reads, a week of history, cold drops ---------------

namespace {

// Keys read every day in the hours 08..11 (one read an hour), for `days` days.
void learn_mornings(predictor& pr, const std::string& prefix, int keys, int days) {
  for (int d = 0; d < days; ++d)
    for (int h = 8; h < 12; ++h)
      for (int k = 0; k < keys; ++k)
        pr.record(read(prefix + std::to_string(k), at(0, d, h, 5 + k)));
}

} // namespace

TEST_CASE("imminent gate: a key is loaded only when its reads are about to start") {
  predictor_config cfg;
  cfg.lift_evidence = 0; // (bucket evidence: its own case)
  cfg.first_evidence = 0;
  cfg.evidence_loads = 0;
  cfg.min_history_ms = 0;
  set_memory mem;
  // 07:45: the horizon (1 h) covers 45 minutes of the 08 hour, enough for
  // min-confidence, but the reads start in 15 minutes.
  const uint64_t early = at(2, 0, 7, 45);
  predictor gated(cfg);
  learn_mornings(gated, "m:", 10, 14);
  CHECK(gated.make_plan(early, mem).items.empty());
  // The first plan after a restart (memory empty) does not wait.
  CHECK(gated.make_plan(early, mem, true).items.size() == 10);
  // Two minutes before 08:00 the hour of the next cycle is a read hour.
  CHECK(gated.make_plan(at(2, 0, 7, 58), mem).items.size() == 10);
  // Without the gate the same plan loads at 07:45 already.
  cfg.imminent_ms = 0;
  predictor open(cfg);
  learn_mornings(open, "m:", 10, 14);
  CHECK(open.make_plan(early, mem).items.size() == 10);
  // A wider gate (20 min ahead) lets 07:45 through as well.
  cfg.imminent_ms = 20 * minute_ms;
  predictor wide(cfg);
  learn_mornings(wide, "m:", 10, 14);
  CHECK(wide.make_plan(early, mem).items.size() == 10);
}

TEST_CASE("history gate: a key followed for less than min_history_ms is not loaded") {
  predictor_config cfg;
  cfg.lift_evidence = 0; // (bucket evidence: its own case)
  cfg.first_evidence = 0;
  cfg.min_history_ms = week_ms;
  cfg.evidence_loads = 0;
  set_memory mem;
  predictor young(cfg);
  learn_mornings(young, "m:", 10, 5); // Monday..Friday of week 0
  // Monday of week 1, 07 minutes short of a week after the first read.
  const uint64_t mon = at(1, 0, 7, 58);
  auto plan = young.make_plan(mon, mem);
  CHECK(plan.items.empty());
  CHECK(young.make_plan(mon, mem, true).items.empty()); // a restart keeps this gate
  // The same evidence is enough once the gate is off.
  cfg.min_history_ms = 0;
  predictor no_gate(cfg);
  learn_mornings(no_gate, "m:", 10, 5);
  CHECK(no_gate.make_plan(mon, mem).items.size() == 10);
  // After a week of history the gated predictor loads them as well.
  cfg.min_history_ms = week_ms;
  predictor old(cfg);
  learn_mornings(old, "m:", 10, 8);
  CHECK(old.make_plan(at(1, 1, 7, 58), mem).items.size() == 10);
}

TEST_CASE("history gate at 48 h: a day of evidence is refused, five days load") {
  predictor_config cfg;
  cfg.lift_evidence = 0; // (bucket evidence: its own case)
  cfg.first_evidence = 0;
  cfg.min_history_ms = 2 * day_ms;
  cfg.evidence_loads = 0;
  set_memory mem;
  // Monday only (first seen Monday 08:05): Tuesday 07:58 is under 48 h later.
  predictor one_day(cfg);
  learn_mornings(one_day, "m:", 10, 1);
  CHECK(one_day.make_plan(at(0, 1, 7, 58), mem).items.empty());
  CHECK(one_day.make_plan(at(0, 1, 7, 58), mem, true).items.empty()); // a restart too
  // Monday..Friday: the next Monday 07:58 is past the gate and the evidence
  // is there (Saturday is not: a weekday habit is not assumed on a weekend).
  predictor five_days(cfg);
  learn_mornings(five_days, "m:", 10, 5);
  CHECK(five_days.make_plan(at(0, 5, 7, 58), mem).items.empty());
  CHECK(five_days.make_plan(at(1, 0, 7, 58), mem).items.size() == 10);
  // Wednesday 07:58 with two days: past the gate, but the profile of two
  // mornings stays under the bar without a record that lifts it.
  predictor two_days(cfg);
  learn_mornings(two_days, "m:", 10, 2);
  for (const auto& it : two_days.make_plan(at(0, 2, 7, 58), mem).items)
    CHECK(it.confidence >= cfg.min_confidence);
}

TEST_CASE("cold drops: resident keys predicted cold make room, one per load, never hot ones") {
  predictor_config cfg;
  cfg.lift_evidence = 0; // (bucket evidence: its own case)
  cfg.first_evidence = 0;
  rng r(11);
  auto learn = [&](predictor& pr) {
    for (int d = 0; d < 14; ++d)
      for (int k = 0; k < 10; ++k) {
        pr.record(read("morning:" + std::to_string(k), at(0, d, 8, r.below(60))));
        pr.record(read("evening:" + std::to_string(k), at(0, d, 19, r.below(60))));
        pr.record(read("evening:" + std::to_string(k), at(0, d, 20, r.below(60))));
      }
    // Read every hour: never cold.
    for (int h = 0; h < 14 * 24 + 7; ++h)
      for (int k = 0; k < 3; ++k)
        pr.record(read("hot:" + std::to_string(k), at(0, 0, 0) + h * hour_ms + k * 1000));
  };
  set_memory mem;
  for (int k = 0; k < 10; ++k)
    mem.keys.insert("evening:" + std::to_string(k));
  for (int k = 0; k < 3; ++k)
    mem.keys.insert("hot:" + std::to_string(k));
  const uint64_t now = at(2, 0, 7, 58);
  predictor pr(cfg);
  learn(pr);
  auto plan = pr.make_plan(now, mem);
  REQUIRE(plan.items.size() == 10);
  CHECK(plan.demote.size() == 10);
  for (const auto& k : plan.demote) {
    CHECK(k.rfind("evening:", 0) == 0); // not hot:, not a planned morning key
    CHECK(mem.keys.count(k) == 1);      // only resident keys
  }
  CHECK(pr.stats().demotions == 10);
  // At most one drop per load: a plan of 4 loads drops 4.
  cfg.max_bytes_per_cycle = 400;
  predictor few(cfg);
  learn(few);
  auto small = few.make_plan(now, mem);
  CHECK(small.items.size() == 4);
  CHECK(small.demote.size() == 4);
  // Without demote_cold nothing is dropped.
  cfg.max_bytes_per_cycle = 64ull << 20;
  cfg.demote_cold = false;
  predictor keep(cfg);
  learn(keep);
  auto kept = keep.make_plan(now, mem);
  CHECK(kept.items.size() == 10);
  CHECK(kept.demote.empty());
  CHECK(keep.stats().demotions == 0);
  // Evening keys are not cold in the evening.
  predictor late(predictor_config{});
  learn(late);
  auto eve = late.make_plan(at(2, 0, 18, 58), mem);
  for (const auto& k : eve.demote)
    CHECK(k.rfind("evening:", 0) != 0);
}

TEST_CASE("put_predicted: a predicted load enters L2's probation when L2 has room") {
  auto cfg = [](double window) {
    kura::memory_cache_config c;
    c.capacity_bytes = 100;
    c.count_objects = true;
    c.adaptive_window = false;
    c.window_fraction = window;
    return c;
  };
  auto make = [](std::string k, std::string v) {
    kura::entry e;
    e.key = std::move(k);
    e.value = std::move(v);
    return e;
  };
  kura::memory_cache m(cfg(0.2));
  REQUIRE(m.put_predicted(make("p", "loaded"), 1).ok());
  CHECK(m.locate("p") == kura::memory_region::l2);
  // A resident key is left alone (the newer value stays).
  REQUIRE(m.put(make("w", "written"), 2).ok());
  CHECK(m.locate("w") == kura::memory_region::l1);
  REQUIRE(m.put_predicted(make("w", "stale"), 3).ok());
  auto got = m.get("w", 4);
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK((*got)->value == "written");
  // An expired load is not stored.
  auto old = make("x", "gone");
  old.expiry_ms = 5;
  REQUIRE(m.put_predicted(std::move(old), 6).ok());
  CHECK(m.locate("x") == kura::memory_region::none);
  // All of memory is the window (no L2 room): a load goes to L1 like a put.
  kura::memory_cache lru(cfg(1.0));
  REQUIRE(lru.put_predicted(make("p", "loaded"), 1).ok());
  CHECK(lru.locate("p") == kura::memory_region::l1);
}

TEST_CASE("a thin record of load outcomes raises the bar") {
  predictor_config cfg;  // min_confidence 0.7, evidence_loads 32, thin_margin 0.5
  cfg.lift_evidence = 0; // (bucket evidence: its own case)
  cfg.first_evidence = 0;
  cfg.min_history_ms = 0;
  // Key k is read at 08:xx on each of the last k days (1..14): more days,
  // more confidence.
  auto learn = [](predictor& pr) {
    for (int k = 1; k <= 14; ++k)
      for (int d = 14 - k; d < 14; ++d)
        pr.record(read("m:" + std::to_string(k), at(0, d, 8, 5 + k)));
  };
  const uint64_t now = at(2, 0, 7, 58);
  set_memory mem;
  auto loaded_above = [&](predictor& pr, double bar) {
    auto plan = pr.make_plan(now, mem);
    std::set<std::string> got;
    for (const auto& it : plan.items)
      got.insert(it.key);
    int between = 0; // keys the thin record keeps out
    for (int k = 1; k <= 14; ++k) {
      const std::string key = "m:" + std::to_string(k);
      const double q = *pr.key_probability(key, now, now + hour_ms, now);
      CAPTURE(key);
      CAPTURE(q);
      if (std::abs(q - bar) < 0.01)
        continue; // too close to call
      CHECK((got.count(key) == 1) == (q >= bar));
      between += q >= cfg.min_confidence && q < bar;
    }
    return between;
  };
  predictor pr(cfg);
  learn(pr);
  CHECK(pr.load_bar() == doctest::Approx(0.85));
  CHECK(loaded_above(pr, 0.85) > 0);
  // Outcomes lower the bar: n of the 32 known take n/32 of the extra away.
  size_t n = 0;
  for (int k = 1; k <= 14; ++k) {
    const std::string key = "m:" + std::to_string(k);
    if (*pr.key_probability(key, now, now + hour_ms, now) < 0.86)
      continue;
    pr.on_loaded(key, 100, now);
    pr.on_load_read(key, 10 * minute_ms, true);
    ++n;
  }
  REQUIRE(n > 0);
  CHECK(pr.load_bar() == doctest::Approx(0.7 + 0.15 * (1 - n / 32.0)));
  cfg.evidence_loads = 0;
  predictor open(cfg);
  learn(open);
  CHECK(open.load_bar() == doctest::Approx(0.7));
  CHECK(loaded_above(open, 0.7) == 0);
}

TEST_CASE("shadows below the bar: refused candidates calibrate their bucket without a load") {
  predictor_config cfg;
  cfg.evidence_loads = 0;
  cfg.min_history_ms = 0;
  cfg.min_confidence = 0.95; // the morning keys' profile gives them less: refused
  set_memory mem;
  auto outcomes = [](const predictor& p) {
    double used = 0, loads = 0;
    for (auto [u, l] : p.calibration_table()) {
      used += u;
      loads += l;
    }
    return std::make_pair(used, loads);
  };
  for (bool below : {true, false}) {
    CAPTURE(below);
    cfg.shadow_below_bar = below;
    predictor pr(cfg);
    learn_mornings(pr, "m:", 10, 14);
    CHECK(pr.make_plan(at(2, 0, 7, 58), mem).items.empty());
    for (int k = 0; k < 10; ++k) // read at 08:10, within two horizons
      pr.record(read("m:" + std::to_string(k), at(2, 0, 8, 10)));
    auto [used, loads] = outcomes(pr);
    if (below) {
      CHECK(loads == 10);
      CHECK(used == 10);
    } else {
      CHECK(loads == 0); // only candidates min-confidence admits are shadowed
    }
  }
}

TEST_CASE("the plan looks no further ahead than memory's turnover") {
  predictor_config cfg;
  cfg.lift_evidence = 0; // (bucket evidence: its own case)
  cfg.first_evidence = 0;
  cfg.evidence_loads = 0;
  cfg.min_history_ms = 0;
  for (uint64_t cap : {uint64_t{1000}, uint64_t{100'000'000}}) {
    CAPTURE(cap);
    predictor pr(cfg);
    learn_mornings(pr, "m:", 10, 14);
    // 06:00-07:00: 2000 reads memory missed, 100 bytes each (200 kB entered
    // memory in that hour); a read at 07:30 closes the hour.
    for (int i = 0; i < 2000; ++i)
      pr.record(read("x:" + std::to_string(i), at(2, 0, 6, i % 60)));
    pr.record(read("x:0", at(2, 0, 7, 30)));
    set_memory mem;
    mem.cap = cap;
    if (cap == 1000)
      CHECK(pr.turnover_ms(cap) < minute_ms);
    else
      CHECK(pr.turnover_ms(cap) > hour_ms);
    auto plan = pr.make_plan(at(2, 0, 7, 58), mem);
    if (cap == 1000) { // turns over in seconds: nothing survives to 08:00
      CHECK(plan.horizon_ms == 0);
      CHECK(plan.items.empty());
    } else {
      CHECK(plan.horizon_ms == hour_ms);
      CHECK(plan.items.size() == 10);
    }
  }
}

TEST_CASE("a shadow read after memory turned over counts as a load lost before its read") {
  predictor_config cfg;
  cfg.evidence_loads = 0;
  cfg.min_history_ms = 0;
  cfg.min_confidence = 0.95; // refused: shadowed
  for (bool churn : {false, true}) {
    CAPTURE(churn);
    predictor pr(cfg);
    learn_mornings(pr, "m:", 10, 14);
    set_memory mem;
    mem.cap = 10'000;
    CHECK(pr.make_plan(at(2, 0, 7, 58), mem).items.empty());
    if (churn) // 20 kB of other entries enter a 10 kB memory before the reads
      for (int i = 0; i < 200; ++i)
        pr.record(read("x:" + std::to_string(i), at(2, 0, 8, 1)));
    for (int k = 0; k < 10; ++k)
      pr.record(read("m:" + std::to_string(k), at(2, 0, 8, 10)));
    double used = 0, loads = 0;
    for (auto [u, l] : pr.calibration_table()) {
      used += u;
      loads += l;
    }
    CHECK(loads == 10);
    CHECK(used == (churn ? 0 : 10));
  }
}

TEST_CASE("a record that realises far less than the profile said lowers every bucket's prior") {
  predictor_config cfg;
  cfg.evidence_loads = 0;
  cfg.min_history_ms = 0;
  cfg.min_confidence = 0.95;
  for (bool read_them : {true, false}) {
    CAPTURE(read_them);
    predictor pr(cfg);
    learn_mornings(pr, "m:", 10, 14);
    set_memory mem;
    const double before = pr.calibrated(0.99);
    CHECK(before == doctest::Approx(0.99));
    CHECK(pr.make_plan(at(2, 0, 7, 58), mem).items.empty());
    if (read_them)
      for (int k = 0; k < 10; ++k)
        pr.record(read("m:" + std::to_string(k), at(2, 0, 8, 10)));
    pr.tick(at(2, 0, 12)); // the unread shadows close as misses
    // q = 0.99 is a bucket without outcomes of its own.
    if (read_them)
      CHECK(pr.calibrated(0.99) == doctest::Approx(0.99)); // never scaled up
    else
      CHECK(pr.calibrated(0.99) < 0.5);
  }
}

TEST_CASE("a load needs outcomes of its own calibration bucket (lift_evidence)") {
  predictor_config cfg;
  cfg.evidence_loads = 0;
  cfg.min_history_ms = 0;
  cfg.first_evidence = 0;
  for (double lift : {0.0, 8.0}) {
    CAPTURE(lift);
    cfg.lift_evidence = lift;
    predictor pr(cfg);
    learn_mornings(pr, "m:", 10, 14);
    set_memory mem;
    auto first = pr.make_plan(at(2, 0, 7, 58), mem);
    if (lift == 0) {
      CHECK(first.items.size() == 10);
      continue;
    }
    CHECK(first.items.empty());  // no outcomes yet: shadows, not loads
    for (int k = 0; k < 10; ++k) // the shadows come true
      pr.record(read("m:" + std::to_string(k), at(2, 0, 8, 10)));
    double loads = 0;
    for (auto [u, l] : pr.calibration_table())
      loads += l;
    CHECK(loads == 10);
    // The next morning the bucket has its evidence: the keys are loaded.
    auto second = pr.make_plan(at(2, 1, 7, 58), mem);
    CHECK(second.items.size() == 10);
  }
}
