#include "predictor/anomaly.hpp"

#include "predictor/time_profile.hpp"

#include <cmath>
#include <cstdio>

namespace kura::predictor {

const char* to_string(alert_kind k) {
  switch (k) {
  case alert_kind::hit_ratio:
    return "hit_ratio";
  case alert_kind::l1_latency:
    return "l1_latency";
  case alert_kind::l2_latency:
    return "l2_latency";
  case alert_kind::storage:
    return "storage";
  case alert_kind::sync:
    return "sync";
  case alert_kind::request_rate:
    return "request_rate";
  case alert_kind::hit_ratio_baseline:
    return "hit_ratio_baseline";
  }
  return "unknown";
}

const char* to_string(severity s) {
  return s == severity::critical ? "critical" : "warning";
}

namespace {

std::string fmt(const char* f, double a, double b) {
  char buf[160];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

} // namespace

anomaly_detector::anomaly_detector(anomaly_config cfg) : cfg_(cfg) {}

void anomaly_detector::learn(baseline& b, double x, double alpha) {
  if (b.n == 0) {
    b.mean = static_cast<float>(x);
    b.var = 0;
  } else {
    // West's exponentially weighted mean and variance.
    const double d = x - b.mean;
    const double incr = alpha * d;
    b.mean = static_cast<float>(b.mean + incr);
    b.var = static_cast<float>((1 - alpha) * (b.var + d * incr));
  }
  if (b.n < UINT32_MAX)
    ++b.n;
}

void anomaly_detector::judge(alert_kind k, bool breach, double value, double threshold,
                             bool critical, std::string reason, uint64_t now,
                             std::vector<alert>& started) {
  state& s = state_[static_cast<size_t>(k)];
  if (breach) {
    s.healthy = 0;
    if (!s.active) {
      s.active = true;
      s.current = alert{k, severity::warning, std::move(reason), now, 0, value, threshold};
      ++raised_[static_cast<size_t>(k)];
      if (critical)
        s.current.level = severity::critical;
      started.push_back(s.current);
    } else {
      if (critical && s.current.level != severity::critical) {
        s.current.level = severity::critical;
        s.current.reason = std::move(reason);
      }
      // Keep the worst value (direction: away from the threshold).
      if (std::fabs(value - threshold) > std::fabs(s.current.value - threshold))
        s.current.value = value;
    }
    return;
  }
  if (s.active && ++s.healthy >= cfg_.clear_cycles) {
    s.active = false;
    s.current.end_ms = now;
    history_.push_back(s.current);
    while (history_.size() > cfg_.history)
      history_.pop_front();
  }
}

std::vector<alert> anomaly_detector::observe(const observation& o) {
  std::vector<alert> started;
  const uint64_t now = o.now_ms;
  // -- fixed thresholds --
  const bool enough = o.requests >= cfg_.min_requests;
  const double ratio = o.requests ? static_cast<double>(o.memory_hits) / o.requests : 1.0;
  const double ratio_margin = cfg_.min_hit_ratio;
  judge(alert_kind::hit_ratio, enough && ratio < cfg_.min_hit_ratio, ratio, cfg_.min_hit_ratio,
        ratio < cfg_.min_hit_ratio - ratio_margin / 2,
        fmt("memory hit ratio %.3f below %.3f", ratio, cfg_.min_hit_ratio), now, started);
  judge(alert_kind::l1_latency, o.l1_latency_ms > cfg_.max_l1_latency_ms, o.l1_latency_ms,
        cfg_.max_l1_latency_ms, o.l1_latency_ms > 2 * cfg_.max_l1_latency_ms,
        fmt("L1 latency %.3f ms above %.3f ms", o.l1_latency_ms, cfg_.max_l1_latency_ms), now,
        started);
  judge(alert_kind::l2_latency, o.l2_latency_ms > cfg_.max_l2_latency_ms, o.l2_latency_ms,
        cfg_.max_l2_latency_ms, o.l2_latency_ms > 2 * cfg_.max_l2_latency_ms,
        fmt("L2 latency %.3f ms above %.3f ms", o.l2_latency_ms, cfg_.max_l2_latency_ms), now,
        started);
  const double share =
      o.storage_budget ? static_cast<double>(o.storage_bytes) / o.storage_budget : 0.0;
  judge(alert_kind::storage, share > cfg_.max_storage_share, share, cfg_.max_storage_share,
        share > 0.98,
        fmt("storage at %.1f %% of its budget (threshold %.1f %%)", share * 100,
            cfg_.max_storage_share * 100),
        now, started);
  judge(alert_kind::sync, o.sync_failures > cfg_.max_sync_failures,
        static_cast<double>(o.sync_failures), static_cast<double>(cfg_.max_sync_failures),
        o.sync_failures > 2 * cfg_.max_sync_failures + 2,
        fmt("%.0f cluster sync failures in the cycle (tolerated %.0f)",
            static_cast<double>(o.sync_failures), static_cast<double>(cfg_.max_sync_failures)),
        now, started);

  // -- learned hour-of-week baselines --
  // The cycle's requests belong to the hour its middle falls in (a cycle
  // ending at 09:00 measured 08:59-09:00).
  const unsigned bin = hour_of_week(now - std::min(now, o.cycle_ms / 2));
  const double minutes = std::max<uint64_t>(o.cycle_ms, 1) / 60'000.0;
  const double rate = o.requests / minutes; // requests per minute
  baseline& br = rate_[bin];
  bool rate_breach = false;
  double rate_dev = 0;
  if (br.n >= cfg_.baseline_min_samples) {
    const double sd = std::sqrt(std::max<double>(br.var, 0));
    rate_dev = rate - br.mean;
    // Poisson noise is a floor on the spread: sqrt(mean) per minute.
    const double spread = std::max(sd, std::sqrt(std::max<double>(br.mean, 1.0)));
    rate_breach = std::fabs(rate_dev) > cfg_.baseline_sigmas * spread &&
                  std::fabs(rate_dev) > cfg_.baseline_min_relative * std::max<double>(br.mean, 1);
  }
  judge(alert_kind::request_rate, rate_breach, rate, br.mean, false,
        fmt("request rate %.1f/min, hour-of-week baseline %.1f/min", rate, br.mean), now, started);
  baseline& bh = ratio_[bin];
  bool ratio_breach = false;
  if (enough && bh.n >= cfg_.baseline_min_samples) {
    const double sd = std::sqrt(std::max<double>(bh.var, 0));
    // Binomial noise floor for this cycle's sample size.
    const double noise = std::sqrt(std::max<double>(bh.mean * (1 - bh.mean), 0.0025) / o.requests);
    const double spread = std::max(sd, noise);
    const double drop = bh.mean - ratio;
    ratio_breach = drop > cfg_.baseline_sigmas * spread &&
                   drop > cfg_.baseline_min_relative * (1 - bh.mean) && drop > 0.05;
  }
  judge(alert_kind::hit_ratio_baseline, ratio_breach, ratio, bh.mean, false,
        fmt("hit ratio %.3f, hour-of-week baseline %.3f", ratio, bh.mean), now, started);
  // Learn from healthy cycles only, so a long fault does not become normal.
  if (!rate_breach)
    learn(br, rate, cfg_.baseline_alpha);
  if (enough && !ratio_breach && !state_[static_cast<size_t>(alert_kind::hit_ratio)].active)
    learn(bh, ratio, cfg_.baseline_alpha);
  return started;
}

std::vector<alert> anomaly_detector::active() const {
  std::vector<alert> out;
  for (const auto& s : state_)
    if (s.active)
      out.push_back(s.current);
  return out;
}

void anomaly_detector::encode(byte_writer& w) const {
  // Only the learned baselines persist: alerts describe the process that saw them.
  for (const auto* tab : {&rate_, &ratio_})
    for (const auto& b : *tab) {
      w.f32(b.mean);
      w.f32(b.var);
      w.u32(b.n);
    }
}

bool anomaly_detector::decode(byte_reader& r) {
  for (auto* tab : {&rate_, &ratio_})
    for (auto& b : *tab) {
      b.mean = r.f32();
      b.var = r.f32();
      b.n = r.u32();
      if (!std::isfinite(b.mean) || !std::isfinite(b.var) || b.var < 0)
        r.fail();
    }
  return r.ok();
}

} // namespace kura::predictor
