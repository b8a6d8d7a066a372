#include "node/cluster_node.hpp"
#include "node/cluster_security.hpp"

#include "actors/kura.hpp"
#include "actors/store.hpp"
#include "gossip/tier_store.hpp"
#include "node/archive_node.hpp"
#include "node/cluster_routing.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

namespace kura::node {

namespace {

uint64_t ms(caf::timespan t) {
  return static_cast<uint64_t>(
      std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(t).count()));
}

} // namespace

std::string resolve_cluster_identity(const node_config& cfg, std::string& id,
                                     uint64_t& incarnation) {
  return actors::resolve_cluster_identity(cfg.data_dir, cfg.cluster_node_id, id, incarnation);
}

actors::cluster_settings cluster_settings_of(const node_config& cfg, const std::string& id) {
  actors::cluster_settings s;
  s.name = id;
  s.host = cfg.bind == "0.0.0.0" ? std::string("127.0.0.1") : cfg.bind;
  s.port = cfg.cluster_port;
  std::stringstream ss(cfg.cluster_seeds);
  std::string one;
  while (std::getline(ss, one, ','))
    if (!one.empty())
      s.seeds.push_back(one);
  s.replication_factor = static_cast<uint32_t>(cfg.replication_factor);
  s.write_acks = static_cast<uint32_t>(cfg.effective_write_acks());
  s.secret = cfg.cluster_secret;
  s.advertise = cfg.cluster_advertise;
  if (!cfg.cluster_advertise_resp.empty()) {
    s.resp_addr = cfg.cluster_advertise_resp;
  } else { // the host peers reach us on, with the RESP port
    auto h = s.advertise.empty() ? s.host : s.advertise.substr(0, s.advertise.rfind(':'));
    s.resp_addr = h + ":" + std::to_string(cfg.port);
  }
  s.redirect_moved = cfg.cluster_redirect == "moved";
  s.heartbeat_ms = ms(cfg.heartbeat);
  s.sync_ms = ms(cfg.sync_interval);
  s.request_timeout_ms = ms(cfg.cluster_request_timeout);
  s.tick_ms = std::clamp<uint64_t>(s.heartbeat_ms / 10, 10, 100);
  s.near_cache = cfg.cluster_near_cache;
  s.stream_rate = cfg.cluster_stream_rate;
  s.leave_timeout_ms = ms(cfg.cluster_leave_timeout);
  s.hedge_max_ms = ms(cfg.cluster_hedge_delay);
  s.exec = exec_owned;
  return s;
}

result<std::unique_ptr<gossip::replica_store>> open_cluster_store(const node_config& cfg,
                                                                  l3_config l3,
                                                                  const kura::clock& clk,
                                                                  cluster_archive* out) {
  std::shared_ptr<archive::archive> l4;
  if (cfg.archive_enabled) {
    // sealed with the same keyring as L3 (kura.security.encryption-key-file)
    auto a = open_archive(cfg, clk, l3.keys);
    if (!a)
      return a.err();
    l4 = std::move(*a);
  }
  auto path = l3.path;
  std::optional<wal_config> log;
  if (cfg.cluster_wal()) {
    // The lone node's write-ahead log in front of the store's LMDB: every
    // apply and erase is appended, LMDB commits in large batches behind it
    // (l3_batch_age_ms). Its writer writes every 5 ms at most, as often as
    // L3 committed without it: a kill -9 loses no more than it did.
    log = actors::node_wal_config(cfg.data_dir + "/l3-wal", cfg.l3_max_loss_window_ms(), false,
                                  l3.keys);
    log->write_interval_ms = std::min<uint64_t>(log->write_interval_ms, 5);
  }
  // Background commits: LMDB commits (and their fdatasync) run on the
  // store's worker thread, not on the multiplexer thread that serves clients.
  wal_replay_stats replayed;
  auto s = gossip::tier_store::open(std::move(l3), l4, clk, gossip::ring_config{}.seed, true,
                                    sensitive_matcher(cfg), // sensitive keys are never archived
                                    log, &replayed);
  if (!s)
    return error{s.err().code, "cannot open L3 in " + path + ": " + s.err().to_string()};
  if (replayed.records > 0 || !replayed.cut_reason.empty())
    std::cerr << "kura-node: replayed " << replayed.records
              << " write-ahead log records of the cluster store from " << replayed.segments
              << " segments"
              << (replayed.cut_reason.empty()
                      ? std::string()
                      : "; cut " + std::to_string(replayed.cut_bytes) +
                            " bytes of a torn or damaged tail (" + replayed.cut_reason + ")")
              << std::endl;
  // The memory tier (--memory-bytes) is the read cache in front of cluster
  // data (the node's own keyspace holds none in cluster mode).
  (*s)->set_read_cache(cfg.memory_bytes);
  if (l4 && out) { // the caller's L4 compactor shares the archive's jobs with the store
    out->l4 = l4;
    out->gate = std::make_shared<archive::job_gate>();
    (*s)->set_job_gate(out->gate);
  }
  // kura.retention.max-age: nothing older is served (node/cluster_security.hpp)
  (*s)->set_max_age(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(cfg.retention_max_age).count()));
  return std::unique_ptr<gossip::replica_store>(std::move(*s));
}

void set_cluster_transport_defaults(node_config& cfg) {
  actors::prepare_cluster_config(cfg, ms(cfg.heartbeat));
  // CAF's thread setup (docs/cluster.md, "Threads"): incoming BASP messages
  // are deserialized on the multiplexer thread, which runs the coordinator
  // anyway, instead of by a middleman worker on the scheduler whose every job
  // wakes the work-stealing workers into ~25 ms of polling. Cuts the CPU per
  // replicated SET 2-4x (bench/RESULTS.md, cluster17). A value the user gave
  // (command line or config file) stays.
  if (caf::get_if(&caf::content(cfg), "middleman.workers") == nullptr)
    cfg.set("middleman.workers", size_t{0});
}

} // namespace kura::node
