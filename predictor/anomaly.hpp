// Anomaly detection over one observation per predictor cycle.
//
// Fixed thresholds (the specification's, all configurable): memory hit ratio
// below 85 %, L1 latency above 2 ms, L2 above 10 ms, storage above 90 % of its
// budget, any cluster sync failure. Learned baselines: per hour-of-week bin, an
// exponentially weighted mean and variance of the request rate and of the hit
// ratio; a cycle deviating by more than `baseline_sigmas` standard deviations
// (and by a minimum relative amount, so a flat baseline does not alarm on
// noise) raises a baseline alert, once the bin has `baseline_min_samples`.
//
// An alert starts on the first cycle that breaches (so a fault is reported
// within one cycle) and ends after `clear_cycles` consecutive healthy cycles;
// its severity is `critical` when the breach is twice the threshold's margin.
// Ended alerts are kept in a bounded history.
// Thread safety: not thread-safe; owned by one predictor.
#pragma once

#include "predictor/codec.hpp"

#include <array>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace kura::predictor {

enum class alert_kind : uint8_t {
  hit_ratio,         ///< overall memory hit ratio below the threshold
  l1_latency,        ///< L1 latency above the threshold
  l2_latency,        ///< L2 latency above the threshold
  storage,           ///< storage above its share of the budget
  sync,              ///< cluster sync failures
  request_rate,      ///< request rate far from the hour-of-week baseline
  hit_ratio_baseline ///< hit ratio far below the hour-of-week baseline
};
constexpr size_t alert_kinds = 7;
const char* to_string(alert_kind k);

enum class severity : uint8_t { warning, critical };
const char* to_string(severity s);

struct alert {
  alert_kind kind;
  severity level = severity::warning;
  std::string reason;
  uint64_t start_ms = 0;
  uint64_t end_ms = 0; ///< 0 while active
  double value = 0;    ///< the worst value seen
  double threshold = 0;
};

struct anomaly_config {
  double min_hit_ratio = 0.85;
  double max_l1_latency_ms = 2;
  double max_l2_latency_ms = 10;
  double max_storage_share = 0.9;
  uint64_t max_sync_failures = 0; ///< failures per cycle tolerated
  uint64_t min_requests = 50;     ///< hit-ratio checks need this many requests in the cycle
  double baseline_sigmas = 4;
  double baseline_min_relative = 0.5; ///< and at least this relative deviation
  uint32_t baseline_min_samples = 30; ///< observations in a bin before it judges
  double baseline_alpha = 0.05;       ///< EWMA weight of a new observation
  uint32_t clear_cycles = 3;
  size_t history = 256;
};

/// What the host measured in one cycle.
struct observation {
  uint64_t now_ms = 0;
  uint64_t cycle_ms = 60'000;
  uint64_t requests = 0; ///< reads in the cycle
  uint64_t memory_hits = 0;
  double l1_latency_ms = 0; ///< p99 (or mean) of the cycle; 0 = not measured
  double l2_latency_ms = 0;
  uint64_t storage_bytes = 0;
  uint64_t storage_budget = 0; ///< 0 = no budget known
  uint64_t sync_failures = 0;
};

class anomaly_detector {
public:
  explicit anomaly_detector(anomaly_config cfg = {});

  /// Judges one cycle; returns the alerts that started in it.
  std::vector<alert> observe(const observation& o);

  std::vector<alert> active() const;
  /// Ended alerts, oldest first.
  const std::deque<alert>& recent() const { return history_; }
  /// Alerts raised so far (started), by kind.
  const std::array<uint64_t, alert_kinds>& raised() const { return raised_; }
  const anomaly_config& config() const { return cfg_; }

  void encode(byte_writer& w) const;
  bool decode(byte_reader& r);

private:
  struct baseline {
    float mean = 0;
    float var = 0;
    uint32_t n = 0;
  };
  struct state {
    bool active = false;
    uint32_t healthy = 0;
    alert current;
  };
  void judge(alert_kind k, bool breach, double value, double threshold, bool critical,
             std::string reason, uint64_t now, std::vector<alert>& started);
  static void learn(baseline& b, double x, double alpha);

  anomaly_config cfg_;
  std::array<state, alert_kinds> state_{};
  std::array<uint64_t, alert_kinds> raised_{};
  std::deque<alert> history_;
  std::array<baseline, 168> rate_{};
  std::array<baseline, 168> ratio_{};
};

} // namespace kura::predictor
