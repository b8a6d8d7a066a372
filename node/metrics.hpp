// Prometheus /metrics for kura-node (prometheus-cpp): per tier hits, misses,
// evictions, bytes and entries; per command calls, errors and a latency
// histogram; connections; the L3 write-behind queue. The RESP broker pushes
// its own counters here once per second (it keeps plain counters on the hot
// path, so a command costs no atomic or lock for metrics).
// Thread safety: every method is safe for concurrent use (prometheus-cpp's
// metric objects are thread-safe; deltas are kept under a mutex).
#pragma once

#include "node/commands.hpp"
#include "tiers/status.hpp"
#include "tiers/tier.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace prometheus {
class Exposer;
class Registry;
class Counter;
class Gauge;
class Histogram;
template <class T>
class Family;
} // namespace prometheus

namespace kura::node {

/// Who may read /metrics: HTTP basic auth when `user` is set, and/or only
/// clients on 127.0.0.0/8 (civetweb's access control list).
struct metrics_access {
  std::string user;
  std::string password;
  bool loopback_only = false;
};

class node_metrics {
public:
  /// Starts the HTTP exposer on bind:port (port 0: pick a free one); an error
  /// names the address when it cannot listen.
  static result<std::unique_ptr<node_metrics>> start(const std::string& bind, uint16_t port,
                                                     const metrics_access& access = {});
  ~node_metrics();

  /// The port the exposer listens on.
  uint16_t port() const noexcept { return port_; }

  void set_tier(const std::string& tier, const tier_stats& s);
  void set_commands(const std::vector<std::string>& names, const std::vector<command_stats>& stats);
  void set_connections(uint64_t current, uint64_t total, uint64_t rejected);
  void set_l3_queue(uint64_t queued, uint64_t pending_commit);
  /// The registry, for metrics defined elsewhere (node/archive_node.cpp).
  prometheus::Registry& registry() { return *registry_; }

private:
  node_metrics() = default;
  struct tier_metrics;
  struct command_metrics;
  std::mutex mtx_;
  uint16_t port_ = 0;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::map<std::string, std::unique_ptr<tier_metrics>> tiers_;
  std::map<std::string, std::unique_ptr<command_metrics>> commands_;
  prometheus::Family<prometheus::Counter>* tier_hits_ = nullptr;
  prometheus::Family<prometheus::Counter>* tier_misses_ = nullptr;
  prometheus::Family<prometheus::Counter>* tier_evictions_ = nullptr;
  prometheus::Family<prometheus::Gauge>* tier_bytes_ = nullptr;
  prometheus::Family<prometheus::Gauge>* tier_entries_ = nullptr;
  prometheus::Family<prometheus::Counter>* cmd_calls_ = nullptr;
  prometheus::Family<prometheus::Counter>* cmd_errors_ = nullptr;
  prometheus::Family<prometheus::Histogram>* cmd_latency_ = nullptr;
  prometheus::Gauge* connected_ = nullptr;
  prometheus::Counter* connections_total_ = nullptr;
  prometheus::Counter* rejected_total_ = nullptr;
  uint64_t last_total_ = 0, last_rejected_ = 0;
  prometheus::Gauge* l3_queue_ = nullptr;
  prometheus::Gauge* l3_pending_ = nullptr;
};

} // namespace kura::node
