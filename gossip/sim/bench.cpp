#include "gossip/sim/bench.hpp"

#include "gossip/anti_entropy.hpp"
#include "gossip/membership.hpp"
#include "gossip/ring.hpp"
#include "gossip/sim/network.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace kura::gossip::sim {

namespace {

constexpr uint64_t epoch_ms = 1'700'000'000'000ull;

/// A membership-only cluster on the simulated network (no data plane), so
/// that hundreds of nodes run quickly and the bytes counted are gossip only.
struct mcluster {
  uint32_t n;
  network net;
  std::vector<std::unique_ptr<outbox>> outs;
  std::vector<std::unique_ptr<membership>> m;
  uint64_t t = 0;
  uint64_t tick;

  mcluster(uint32_t nodes, uint64_t seed, const membership_config& base, double loss)
      : n(nodes), net(nodes, mix64(seed ^ 0x62656e6368ull)),
        tick(std::max<uint64_t>(10, std::min<uint64_t>(50, base.probe_interval_ms / 20))) {
    net.cfg.loss = 0; // joins happen on a clean network; loss starts later
    outs.resize(n + 1);
    m.resize(n + 1);
    for (node_id i = 1; i <= n; ++i) {
      outs[i] = std::make_unique<outbox>();
      auto c = base;
      c.self = i;
      c.seeds = {1};
      m[i] = std::make_unique<membership>(c, mix64(seed ^ i), *outs[i]);
    }
    pending_loss = loss;
  }
  double pending_loss;

  void drain(node_id i) {
    for (auto& o : *outs[i])
      net.send(i, o.to, std::move(o.bytes), t);
    outs[i]->clear();
  }

  void start_all() {
    for (node_id i = 1; i <= n; ++i) {
      m[i]->start(epoch_ms + t);
      drain(i);
      advance(10);
    }
  }

  void advance(uint64_t ms) {
    uint64_t end = t + ms;
    while (t < end) {
      uint64_t next = std::min(end, t + tick);
      network::delivery d;
      while (net.next(next, d)) {
        t = d.at;
        if (net.up(d.to)) {
          (void)m[d.to]->on_message(d.from, d.bytes, epoch_ms + t);
          drain(d.to);
        }
      }
      t = next;
      for (node_id i = 1; i <= n; ++i)
        if (net.up(i)) {
          m[i]->tick(epoch_ms + t);
          drain(i);
        }
    }
  }

  bool converged() const {
    for (node_id i = 1; i <= n; ++i)
      if (net.up(i) && m[i]->ring_members().size() != n)
        return false;
    return true;
  }

  /// Runs until `pred` holds (checked every `step` ms) or `limit` ms pass;
  /// returns the elapsed ms or -1.
  template <class F>
  int64_t until(F pred, uint64_t limit, uint64_t step) {
    uint64_t start = t;
    while (t - start <= limit) {
      if (pred())
        return static_cast<int64_t>(t - start);
      advance(step);
    }
    return -1;
  }
};

membership_config base_config(uint64_t period) {
  membership_config c;
  c.probe_interval_ms = period;
  c.probe_timeout_ms = period * 3 / 10;
  c.sync_interval_ms = 30'000;
  return c;
}

double median(std::vector<double> v) {
  if (v.empty())
    return NAN;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void detection_table(bool quick) {
  std::printf("\n### Failure detection (10 nodes, crash of one node; false positives on a "
              "crash-free run)\n\n");
  std::printf("Protocol period P (probe timeout 0.3 P, suspicion 4 x log10(n) x P .. 6x that, "
              "Lifeguard on); medians over %d seeds.\n\n",
              quick ? 2 : 5);
  std::printf("| period | loss | first declares dead | all declare dead | all (periods) | "
              "false dead / node-h | false suspicions / node-h |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  const uint32_t n = 10;
  const int seeds = quick ? 2 : 5;
  const uint64_t fp_minutes = quick ? 5 : 20;
  for (uint64_t period : {1'000ull, 2'000ull, 5'000ull, 10'000ull}) {
    for (double loss : {0.0, 0.05, 0.10, 0.20}) {
      std::vector<double> first, all;
      double false_dead = 0, false_susp = 0, node_hours = 0;
      for (int s = 0; s < seeds; ++s) {
        mcluster c(n, 1000 + s, base_config(period), loss);
        c.start_all();
        if (c.until([&] { return c.converged(); }, 600'000, 500) < 0)
          continue;
        c.net.cfg.loss = loss;
        // False positives: a crash-free stretch under loss.
        std::vector<size_t> ev0(n + 1);
        for (node_id i = 1; i <= n; ++i)
          ev0[i] = c.m[i]->events().size();
        c.advance(fp_minutes * 60'000);
        for (node_id i = 1; i <= n; ++i) {
          auto& ev = c.m[i]->events();
          for (size_t k = ev0[i]; k < ev.size(); ++k) {
            if (ev[k].state == member_state::dead)
              ++false_dead;
            if (ev[k].state == member_state::suspect)
              ++false_susp;
          }
        }
        node_hours += n * fp_minutes / 60.0;
        // Detection: crash node n.
        node_id x = n;
        c.net.set_up(x, false);
        uint64_t crash_at = c.t;
        int64_t t_first = -1;
        int64_t t_all = c.until(
            [&] {
              size_t dead = 0;
              for (node_id i = 1; i < n; ++i)
                if (c.m[i]->is_dead(x))
                  ++dead;
              if (dead > 0 && t_first < 0)
                t_first = static_cast<int64_t>(c.t - crash_at);
              return dead == n - 1;
            },
            period * 200, std::max<uint64_t>(50, period / 20));
        if (t_all >= 0) {
          first.push_back(t_first / 1000.0);
          all.push_back(t_all / 1000.0);
        }
      }
      double a = median(all);
      std::printf("| %.0f s | %.0f%% | %.1f s | %.1f s | %.1f | %.2f | %.2f |\n", period / 1000.0,
                  loss * 100, median(first), a, a * 1000.0 / static_cast<double>(period),
                  false_dead / node_hours, false_susp / node_hours);
      std::fflush(stdout);
    }
  }
}

void dissemination_table(bool quick) {
  std::printf("\n### Dissemination time against cluster size\n\n");
  std::printf("A node leaves gracefully in a converged cluster; time until every member "
              "knows. Period 1 s, piggyback limit 4 x ceil(log10(n+1)), up to 32 updates per "
              "message, full-state sync every 30 s; medians over seeds.\n\n");
  std::printf("| nodes | seeds | all know (s) | periods | log2(n) | periods / log2(n) |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (uint32_t n : {10u, 50u, 100u, 500u}) {
    int seeds = quick ? 1 : (n >= 500 ? 2 : (n >= 100 ? 3 : 5));
    std::vector<double> times;
    for (int s = 0; s < seeds; ++s) {
      mcluster c(n, 2000 + s, base_config(1'000), 0.0);
      c.start_all();
      if (c.until([&] { return c.converged(); }, 900'000, 1'000) < 0)
        continue;
      // Let the join news drain so the measured update does not queue behind it.
      c.until(
          [&] {
            for (node_id i = 1; i <= n; ++i)
              if (c.m[i]->pending_broadcasts() != 0)
                return false;
            return true;
          },
          600'000, 1'000);
      node_id x = n / 2;
      c.m[x]->leave(epoch_ms + c.t);
      c.drain(x);
      int64_t dt = c.until(
          [&] {
            for (node_id i = 1; i <= n; ++i)
              if (i != x && !c.m[i]->is_dead(x))
                return false;
            return true;
          },
          300'000, 50);
      if (dt >= 0)
        times.push_back(dt / 1000.0);
    }
    double med = median(times);
    double l2 = std::log2(static_cast<double>(n));
    std::printf("| %u | %zu | %.2f | %.1f | %.2f | %.2f |\n", n, times.size(), med, med, l2,
                med / l2);
    std::fflush(stdout);
  }
}

void bytes_table(bool quick) {
  std::printf("\n### Gossip bytes per node per second (stable cluster, no loss)\n\n");
  std::printf("All membership traffic (ping, ack, ping-req, push-pull), envelope included, "
              "measured over %d simulated minutes after convergence.\n\n",
              quick ? 2 : 10);
  std::printf("| nodes | period | sync | bytes / node / s | messages / node / s |\n");
  std::printf("|---|---|---|---|---|\n");
  for (uint32_t n : {10u, 100u})
    for (uint64_t period : {1'000ull, 10'000ull}) {
      mcluster c(n, 3000, base_config(period), 0.0);
      c.start_all();
      c.until([&] { return c.converged(); }, 900'000, 1'000);
      c.advance(60'000);
      uint64_t b0 = c.net.bytes, m0 = c.net.sent;
      uint64_t span = (quick ? 2 : 10) * 60'000ull;
      c.advance(span);
      double secs = span / 1000.0;
      std::printf("| %u | %.0f s | 30 s | %.0f | %.2f |\n", n, period / 1000.0,
                  (c.net.bytes - b0) / (n * secs), (c.net.sent - m0) / (n * secs));
      std::fflush(stdout);
    }
}

void balance_table() {
  std::printf("\n### Ring balance (200,000 keys, RF 2)\n\n");
  std::printf("| nodes | vnodes | owned max/mean | owned min/mean | replicated max/mean | "
              "owned slots max/mean |\n");
  std::printf("|---|---|---|---|---|---|\n");
  const uint32_t keys = 200'000;
  for (uint32_t n : {3u, 10u, 100u})
    for (uint32_t v : {64u, 256u, 512u, 1024u}) {
      std::vector<node_id> ms;
      for (node_id i = 1; i <= n; ++i)
        ms.push_back(i);
      ring_config rc;
      rc.vnodes = v;
      ring r(ms, rc);
      std::vector<double> own(n + 1, 0), rep(n + 1, 0);
      for (uint32_t k = 0; k < keys; ++k) {
        auto reps = r.replicas("key:" + std::to_string(k));
        own[reps[0]] += 1;
        for (node_id x : reps)
          rep[x] += 1;
      }
      double mean = static_cast<double>(keys) / n;
      double rmean = mean * std::min<uint32_t>(2, n);
      double mx = *std::max_element(own.begin() + 1, own.end());
      double mn = *std::min_element(own.begin() + 1, own.end());
      double rmx = *std::max_element(rep.begin() + 1, rep.end());
      auto slots = r.owned_slots();
      double smx = *std::max_element(slots.begin(), slots.end());
      std::printf("| %u | %u%s | %.3f | %.3f | %.3f | %.3f |\n", n, v,
                  v == ring_config{}.vnodes ? " (default)" : "", mx / mean, mn / mean, rmx / rmean,
                  smx / (16384.0 / n));
    }
}

void anti_entropy_table() {
  std::printf("\n### Anti-entropy cost against the difference (100,000 keys per replica)\n\n");
  std::printf("One round between two replicas that differ in d keys (a quarter each: newer on "
              "A, newer on B, only on A, deleted on B); bytes of all messages of the round, "
              "envelopes included. Both replicas are equal afterwards.\n\n");
  std::printf("| differing keys | messages | bytes | bytes / differing key | equal after |\n");
  std::printf("|---|---|---|---|---|\n");
  namespace ae = anti_entropy;
  const ae::slot_mask all; // every slot
  for (int d : {0, 1, 10, 100, 1'000, 10'000}) {
    memory_store a, b;
    const int n = 100'000;
    for (int i = 0; i < n; ++i) {
      entry e{"key:" + std::to_string(i), std::string(100, 'v'), 0, version{1'000u + i, 1}, 0};
      a.apply(e);
      b.apply(e);
    }
    rng r(9);
    for (int i = 0; i < d; ++i) {
      std::string k = "key:" + std::to_string(r.below(n));
      entry e{k, std::string(100, 'w'), 0, version{1'000'000u + i, 2}, 0};
      switch (i % 4) {
      case 0:
        a.apply(e);
        break;
      case 1:
        b.apply(e);
        break;
      case 2:
        e.key = "new:" + std::to_string(i);
        a.apply(e);
        break;
      case 3:
        e.value.clear();
        e.flags = entry_flags::tombstone;
        b.apply(e);
        break;
      }
    }
    size_t bytes = 0, msgs = 0;
    auto count = [&](const message& m) {
      bytes += encode(m).size();
      ++msgs;
    };
    // A starts; the same steps as node.cpp's handlers.
    auto l1 = ae::level1(a, all);
    count(ae_digest_msg{1, 0, false, {}, l1});
    auto diff1 = ae::differing(ae::level1(b, all), l1);
    if (!diff1.empty()) {
      std::vector<uint16_t> prefixes(diff1.begin(), diff1.end());
      auto l2 = ae::level2(b, all, prefixes);
      count(ae_digest_msg{1, 8, true, prefixes, l2});
      auto diff2 = ae::differing(ae::level2(a, all, prefixes), l2);
      std::vector<uint16_t> buckets;
      for (size_t i : diff2)
        buckets.push_back(static_cast<uint16_t>((prefixes[i / 256] << 8) | (i % 256)));
      auto keys = ae::list_keys(a, all, buckets);
      count(ae_keys_msg{1, buckets, keys});
      auto plan = ae::compare(b, all, buckets, keys);
      ae_repair_msg rep{1, {}, plan.want};
      for (auto& e : plan.push) {
        rep.entries.push_back(wire_entry::from(e));
        a.apply(e);
      }
      count(rep);
      ae_repair_msg back{1, {}, {}};
      for (auto& k : plan.want)
        if (auto e = a.get(k)) {
          back.entries.push_back(wire_entry::from(*e));
          b.apply(*e);
        }
      if (!back.entries.empty())
        count(back);
    }
    bool equal = ae::differing(ae::level1(a, all), ae::level1(b, all)).empty();
    std::printf("| %d | %zu | %zu | %s | %s |\n", d, msgs, bytes,
                d == 0 ? "-" : std::to_string(bytes / static_cast<size_t>(d)).c_str(),
                equal ? "yes" : "NO");
  }
}

} // namespace

int run_bench(bool quick) {
  anti_entropy_table();
  balance_table();
  dissemination_table(quick);
  bytes_table(quick);
  detection_table(quick);
  return 0;
}

} // namespace kura::gossip::sim
