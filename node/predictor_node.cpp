#include "node/predictor_node.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <mutex>

namespace kura::node {

namespace pred = kura::predictor;

actors::predictor_settings predictor_settings_of(const node_config& cfg) {
  auto ms = [](caf::timespan t) {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(t).count());
  };
  actors::predictor_settings s;
  s.core.memory_bytes = cfg.prewarm_memory_bytes;
  s.core.interval_ms = ms(cfg.prewarm_interval);
  s.core.prediction_window_ms = ms(cfg.prediction_window);
  s.core.load_horizon_ms = ms(cfg.prewarm_load_horizon);
  s.core.min_confidence = cfg.min_confidence;
  s.core.max_load_bytes_per_second = cfg.prewarm_max_load_rate;
  // predictor3's gates (bench/RESULTS.md "Third pass"), as in the bench: a
  // key is loaded only when its reads start within two cycles (the first plan
  // after a restart skips that: actors/predictor.cpp) and once it has been
  // followed for kura.prewarm.min-history (48 h), and resident keys predicted cold are dropped
  // from memory to make room (the store's prewarm_drop; L3 keeps them).
  s.core.imminent_ms = 2 * s.core.interval_ms;
  s.core.min_history_ms = ms(cfg.prewarm_min_history);
  s.core.lift_evidence = static_cast<double>(cfg.prewarm_bucket_evidence);
  s.core.first_evidence = 4 * s.core.lift_evidence; // 32 by default, as measured
  s.core.adjust_ttl = cfg.prewarm_adjust_ttl;
  s.core.tier_choice = cfg.prewarm_tier_choice;
  s.core.min_ttl_ms = ms(cfg.prewarm_min_ttl);
  s.core.max_ttl_ms = ms(cfg.prewarm_max_ttl);
  s.core.anomaly.min_hit_ratio = cfg.alerts_min_hit_ratio;
  s.core.anomaly.max_storage_share = cfg.alerts_max_storage_share;
  s.core.anomaly.max_l1_latency_ms = static_cast<double>(cfg.alerts_max_l1_latency.count()) / 1e6;
  s.core.anomaly.max_l2_latency_ms = static_cast<double>(cfg.alerts_max_l2_latency.count()) / 1e6;
  s.core.anomaly.max_sync_failures = cfg.alerts_max_sync_failures;
  s.model_path = cfg.data_dir + "/predictor.model";
  s.clock_offset_ms = cfg.prewarm_clock_offset_ms;
  s.sample_one_in = static_cast<uint32_t>(cfg.prewarm_sample_one_in);
  s.max_events_per_second = static_cast<uint32_t>(cfg.prewarm_max_event_rate);
  s.thread_nice = static_cast<int>(cfg.prewarm_thread_nice);
  s.core.event_scale = std::max<uint32_t>(1, s.sample_one_in); // insert rate from sampled events
  return s;
}

namespace {

struct predictor_metrics {
  std::mutex mtx;
  prometheus::Counter* loads = nullptr;
  prometheus::Counter* bytes = nullptr;
  prometheus::Counter* hits = nullptr;
  prometheus::Counter* lost = nullptr;
  prometheus::Counter* events = nullptr;
  prometheus::Gauge* precision = nullptr;
  prometheus::Gauge* model_bytes = nullptr;
  prometheus::Gauge* tracked = nullptr;
  std::array<prometheus::Gauge*, pred::alert_kinds> active{};
  std::array<prometheus::Counter*, pred::alert_kinds> raised{};
  uint64_t last_loads = 0, last_bytes = 0, last_hits = 0, last_lost = 0, last_events = 0;
  std::array<uint64_t, pred::alert_kinds> last_raised{};

  static void add(prometheus::Counter& c, uint64_t& last, uint64_t now) {
    if (now > last)
      c.Increment(static_cast<double>(now - last));
    last = now;
  }
  void update(const actors::predictor_report& r) {
    std::lock_guard<std::mutex> g(mtx);
    add(*loads, last_loads, r.prewarm_loads);
    add(*bytes, last_bytes, r.prewarm_bytes);
    add(*hits, last_hits, r.prewarm_hits);
    add(*lost, last_lost, r.prewarm_lost);
    add(*events, last_events, r.events);
    precision->Set(r.precision);
    model_bytes->Set(static_cast<double>(r.model_bytes));
    tracked->Set(static_cast<double>(r.tracked_keys));
    for (size_t k = 0; k < pred::alert_kinds; ++k) {
      active[k]->Set(k < r.alerts_active.size() ? static_cast<double>(r.alerts_active[k]) : 0);
      if (k < r.alerts_raised.size())
        add(*raised[k], last_raised[k], r.alerts_raised[k]);
    }
  }
};

} // namespace

actors::predictor_hook predictor_metrics_hook(node_metrics* m) {
  if (!m)
    return {};
  auto pm = std::make_shared<predictor_metrics>();
  auto& r = m->registry();
  using namespace prometheus;
  pm->loads = &BuildCounter()
                   .Name("kura_prewarm_loads_total")
                   .Help("Keys loaded into memory by prewarm")
                   .Register(r)
                   .Add({});
  pm->bytes = &BuildCounter()
                   .Name("kura_prewarm_bytes_total")
                   .Help("Bytes loaded into memory by prewarm")
                   .Register(r)
                   .Add({});
  pm->hits = &BuildCounter()
                  .Name("kura_prewarm_hits_total")
                  .Help("Prewarmed keys whose first read was served from memory")
                  .Register(r)
                  .Add({});
  pm->lost = &BuildCounter()
                  .Name("kura_prewarm_lost_total")
                  .Help("Prewarmed keys evicted before their first read")
                  .Register(r)
                  .Add({});
  pm->events = &BuildCounter()
                    .Name("kura_predictor_events_total")
                    .Help("Sampled reads the predictor learned from")
                    .Register(r)
                    .Add({});
  pm->precision = &BuildGauge()
                       .Name("kura_prewarm_precision")
                       .Help("Prewarm hits / prewarm loads since start")
                       .Register(r)
                       .Add({});
  pm->model_bytes = &BuildGauge()
                         .Name("kura_predictor_model_bytes")
                         .Help("Memory held by the predictor's model")
                         .Register(r)
                         .Add({});
  pm->tracked = &BuildGauge()
                     .Name("kura_predictor_tracked_keys")
                     .Help("Keys with a time profile")
                     .Register(r)
                     .Add({});
  auto& active = BuildGauge().Name("kura_alerts_active").Help("Active alerts by kind").Register(r);
  auto& raised =
      BuildCounter().Name("kura_alerts_raised_total").Help("Alerts raised by kind").Register(r);
  for (size_t k = 0; k < pred::alert_kinds; ++k) {
    Labels l{{"kind", pred::to_string(static_cast<pred::alert_kind>(k))}};
    pm->active[k] = &active.Add(l);
    pm->raised[k] = &raised.Add(l);
  }
  return [pm](const actors::predictor_report& rep) { pm->update(rep); };
}

} // namespace kura::node
