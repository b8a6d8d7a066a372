#include "node/metrics.hpp"

#include "node/status_page.hpp"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cmath>

namespace kura::node {

namespace {

// latency buckets: 2^9 ns (512 ns) ... 2^30 ns (~1.07 s)
constexpr int first_pow = 9;
constexpr int last_pow = 30;

prometheus::Histogram::BucketBoundaries latency_bounds() {
  prometheus::Histogram::BucketBoundaries b;
  for (int p = first_pow; p <= last_pow; ++p)
    b.push_back(std::ldexp(1.0, p) / 1e9);
  return b;
}

/// Adds the growth of a monotonic value (a reset, e.g. FLUSHALL, adds nothing).
void add_delta(prometheus::Counter& c, uint64_t& last, uint64_t now) {
  if (now > last)
    c.Increment(static_cast<double>(now - last));
  last = now;
}

} // namespace

struct node_metrics::tier_metrics {
  prometheus::Counter* hits;
  prometheus::Counter* misses;
  prometheus::Counter* evictions;
  prometheus::Gauge* bytes;
  prometheus::Gauge* entries;
  uint64_t last_hits = 0, last_misses = 0, last_evictions = 0;
};

struct node_metrics::command_metrics {
  prometheus::Counter* calls;
  prometheus::Counter* errors;
  prometheus::Histogram* latency;
  uint64_t last_calls = 0, last_errors = 0;
  latency_histogram last;
};

result<std::unique_ptr<node_metrics>> node_metrics::start(const std::string& bind, uint16_t port,
                                                          const metrics_access& access) {
  std::unique_ptr<node_metrics> m{new node_metrics};
  try {
    std::vector<std::string> opts{"listening_ports", bind + ":" + std::to_string(port),
                                  "num_threads", "2"};
    if (access.loopback_only) {
      opts.emplace_back("access_control_list");
      opts.emplace_back("-0.0.0.0/0,+127.0.0.0/8");
    }
    m->exposer_ = std::make_unique<prometheus::Exposer>(std::move(opts), status_page_callbacks());
    if (!access.user.empty()) {
      m->exposer_->RegisterAuth(
          [user = access.user, pass = access.password](const std::string& u, const std::string& p) {
            // compare every byte: no early exit that times the secret
            auto same = [](const std::string& a, const std::string& b) {
              unsigned char d = a.size() == b.size() ? 0 : 1;
              for (size_t i = 0; i < a.size(); ++i)
                d |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
              return d == 0;
            };
            return (static_cast<int>(same(u, user)) & static_cast<int>(same(p, pass))) != 0;
          },
          "kura metrics");
    }
  } catch (const std::exception& e) {
    return error{errc::io_error, "cannot listen for metrics on " + bind + ":" +
                                     std::to_string(port) + " (" + e.what() + ")"};
  }
  auto ports = m->exposer_->GetListeningPorts();
  m->port_ = ports.empty() ? port : static_cast<uint16_t>(ports.front());
  m->registry_ = std::make_shared<prometheus::Registry>();
  auto& r = *m->registry_;
  using namespace prometheus;
  m->tier_hits_ =
      &BuildCounter().Name("kura_tier_hits_total").Help("Lookups served by the tier").Register(r);
  m->tier_misses_ = &BuildCounter()
                         .Name("kura_tier_misses_total")
                         .Help("Lookups the tier could not serve")
                         .Register(r);
  m->tier_evictions_ = &BuildCounter()
                            .Name("kura_tier_evictions_total")
                            .Help("Entries evicted for capacity")
                            .Register(r);
  m->tier_bytes_ = &BuildGauge()
                        .Name("kura_tier_bytes")
                        .Help("Bytes used by the tier, overhead included")
                        .Register(r);
  m->tier_entries_ =
      &BuildGauge().Name("kura_tier_entries").Help("Live entries in the tier").Register(r);
  m->cmd_calls_ =
      &BuildCounter().Name("kura_command_calls_total").Help("RESP commands executed").Register(r);
  m->cmd_errors_ = &BuildCounter()
                        .Name("kura_command_errors_total")
                        .Help("RESP commands answered with an error")
                        .Register(r);
  m->cmd_latency_ = &BuildHistogram()
                         .Name("kura_command_duration_seconds")
                         .Help("RESP command execution time in the front end")
                         .Register(r);
  m->connected_ = &BuildGauge()
                       .Name("kura_connected_clients")
                       .Help("Open RESP connections")
                       .Register(r)
                       .Add({});
  m->connections_total_ = &BuildCounter()
                               .Name("kura_connections_received_total")
                               .Help("RESP connections accepted")
                               .Register(r)
                               .Add({});
  m->rejected_total_ = &BuildCounter()
                            .Name("kura_connections_rejected_total")
                            .Help("RESP connections refused (max clients)")
                            .Register(r)
                            .Add({});
  m->l3_queue_ = &BuildGauge()
                      .Name("kura_l3_write_behind_queue")
                      .Help("Write-behind operations not yet applied by L3")
                      .Register(r)
                      .Add({});
  m->l3_pending_ = &BuildGauge()
                        .Name("kura_l3_uncommitted_writes")
                        .Help("Writes applied by L3 but not yet committed to LMDB")
                        .Register(r)
                        .Add({});
  m->exposer_->RegisterCollectable(m->registry_);
  return m;
}

node_metrics::~node_metrics() = default;

void node_metrics::set_tier(const std::string& tier, const tier_stats& s) {
  std::lock_guard<std::mutex> g(mtx_);
  auto& t = tiers_[tier];
  if (!t) {
    t = std::make_unique<tier_metrics>();
    prometheus::Labels l{{"tier", tier}};
    t->hits = &tier_hits_->Add(l);
    t->misses = &tier_misses_->Add(l);
    t->evictions = &tier_evictions_->Add(l);
    t->bytes = &tier_bytes_->Add(l);
    t->entries = &tier_entries_->Add(l);
  }
  add_delta(*t->hits, t->last_hits, s.hits);
  add_delta(*t->misses, t->last_misses, s.misses);
  add_delta(*t->evictions, t->last_evictions, s.evictions);
  t->bytes->Set(static_cast<double>(s.bytes));
  t->entries->Set(static_cast<double>(s.entries));
}

void node_metrics::set_commands(const std::vector<std::string>& names,
                                const std::vector<command_stats>& stats) {
  std::lock_guard<std::mutex> g(mtx_);
  static const auto bounds = latency_bounds();
  for (size_t i = 0; i < names.size() && i < stats.size(); ++i) {
    auto& s = stats[i];
    auto& c = commands_[names[i]];
    if (!c) {
      if (s.calls == 0)
        continue; // export commands once they were used
      c = std::make_unique<command_metrics>();
      prometheus::Labels l{{"command", names[i]}};
      c->calls = &cmd_calls_->Add(l);
      c->errors = &cmd_errors_->Add(l);
      c->latency = &cmd_latency_->Add(l, bounds);
    }
    add_delta(*c->calls, c->last_calls, s.calls);
    add_delta(*c->errors, c->last_errors, s.errors);
    if (s.latency.samples < c->last.samples) // stats were reset
      c->last = latency_histogram{};
    if (s.latency.samples == c->last.samples)
      continue;
    std::vector<double> inc(bounds.size() + 1, 0.0);
    for (size_t b = 0; b < latency_histogram::buckets; ++b) {
      uint64_t d = s.latency.counts[b] - c->last.counts[b];
      if (d == 0)
        continue;
      // bucket b holds values below 2^(b+1) ns
      int p = static_cast<int>(b) + 1;
      size_t j = p <= first_pow ? 0 : static_cast<size_t>(p - first_pow);
      inc[std::min(j, bounds.size())] += static_cast<double>(d);
    }
    double sum = static_cast<double>(s.latency.total_ns - c->last.total_ns) / 1e9;
    c->latency->ObserveMultiple(inc, sum);
    c->last = s.latency;
  }
}

void node_metrics::set_connections(uint64_t current, uint64_t total, uint64_t rejected) {
  std::lock_guard<std::mutex> g(mtx_);
  connected_->Set(static_cast<double>(current));
  add_delta(*connections_total_, last_total_, total);
  add_delta(*rejected_total_, last_rejected_, rejected);
}

void node_metrics::set_l3_queue(uint64_t queued, uint64_t pending_commit) {
  std::lock_guard<std::mutex> g(mtx_);
  l3_queue_->Set(static_cast<double>(queued));
  l3_pending_->Set(static_cast<double>(pending_commit));
}

} // namespace kura::node
