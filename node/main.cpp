// kura-node: one cache node. Starts the store (memory shards + L3 actor), the
// RESP front end, the metrics endpoint and the ops actor, then waits for
// SIGINT/SIGTERM, on which it stops accepting clients, flushes and syncs L3
// and exits 0. Start-up problems (bad config, port in use, unwritable data
// dir, corrupt L3) print one line and exit 1.
#include "actors/archive_actors.hpp"
#include "actors/cluster.hpp"
#include "actors/lost_keys.hpp"
#include "actors/predictor_cluster.hpp"
#include "actors/store.hpp"
#include "node/archive_node.hpp"
#include "node/cluster_erase.hpp"
#include "node/cluster_metrics.hpp"
#include "node/cluster_node.hpp"
#include "node/cluster_rotate.hpp"
#include "node/cluster_security.hpp"
#include "node/cluster_tls.hpp"
#include "node/config.hpp"
#include "node/erase.hpp"
#include "node/metrics.hpp"
#include "node/ops.hpp"
#include "node/predictor_node.hpp"
#include "node/resp_server.hpp"
#include "node/subjects.hpp"
#include "node/subjects_sync.hpp"
#include "tiers/clock.hpp"
#include "tiers/l3_lmdb.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <csignal>
#include <future>
#include <iostream>

#include <cerrno>
#include <unistd.h>

using namespace kura;

namespace {

int fail(const std::string& msg) {
  std::cerr << "kura-node: error: " << msg << std::endl;
  return 1;
}

// SIGINT/SIGTERM (and SIGHUP, which reloads the TLS certificates) write the
// signal number into a pipe that main() waits on.
// A handler (not a blocked mask + sigwait) works whichever thread the kernel
// picks, including threads created before main() (sanitizer runtimes).
int signal_pipe[2] = {-1, -1};
/// What the SHUTDOWN command writes into the pipe (no signal has this number).
constexpr int shutdown_command = 127;

extern "C" void on_stop_signal(int sig) {
  char c = static_cast<char>(sig);
  auto n = ::write(signal_pipe[1], &c, 1);
  (void)n;
}

int wait_for_stop_signal() {
  char c = 0;
  for (;;) {
    auto n = ::read(signal_pipe[0], &c, 1);
    if (n == 1)
      return c;
    if (n < 0 && errno == EINTR)
      continue;
    return SIGTERM;
  }
}

} // namespace

int main(int argc, char** argv) {
  if (::pipe(signal_pipe) != 0)
    return fail("cannot create the signal pipe");
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  node::node_config cfg;
  cfg.load<caf::io::middleman>();
  if (auto err = cfg.parse_and_validate(argc, argv); !err.empty())
    return fail(err);
  if (cfg.cli_helptext_printed)
    return 0;
  std::string cluster_id;
  uint64_t incarnation = 0;
  if (cfg.cluster_enabled()) {
    if (auto e = node::resolve_cluster_identity(cfg, cluster_id, incarnation); !e.empty())
      return fail(e);
    node::set_cluster_transport_defaults(cfg);
  }
  // TLS on cluster links and the ops port (node/cluster_tls.hpp)
  if (cfg.cluster_tls) {
    node::cluster_tls_files tf{cfg.cluster_tls_cert(), cfg.cluster_tls_key(), cfg.cluster_tls_ca()};
    if (auto e = node::check_cluster_tls(tf); !e.empty())
      return fail("kura.cluster.tls: " + e);
    node::configure_cluster_tls(cfg, tf);
  }

  // Data subjects' patterns (node/subjects.hpp)
  auto subject_rules = std::make_shared<node::subject_patterns>();
  if (auto why = node::subject_patterns::parse(cfg.subject_patterns, *subject_rules); !why.empty())
    return fail("bad value for kura.security.subject-patterns: " + why);

  auto& clk = real_clock::instance();
  // Encryption at rest: the key file's keys seal L3 and L4 (docs/security.md).
  std::shared_ptr<const crypto::keyring> keys;
  if (!cfg.encryption_key_file.empty()) {
    auto kr = crypto::keyring::load(cfg.encryption_key_file, cfg.data_dir + "/encryption.salt");
    if (!kr)
      return fail("kura.security.encryption-key-file: " + kr.err().to_string());
    keys = *kr;
  }
  // kura.security.hash-keys-in-models: the per-node HMAC secret (actors/model_keys.hpp)
  std::string model_key_secret;
  if (cfg.hash_keys_in_models) {
    auto sec = actors::model_keys::load_secret(cfg.data_dir, keys);
    if (!sec)
      return fail("kura.security.hash-keys-in-models: " + sec.err().to_string());
    model_key_secret = *sec;
  }
  // KURA.SUBJECT's explicit tags (on a cluster, each member keeps every tag)
  auto subjects = std::make_shared<node::subject_index>(cfg.data_dir + "/subjects", keys);
  if (auto why = subjects->load(); !why.empty())
    return fail("data subjects: " + why);
  std::shared_ptr<l3_lmdb> l3db;
  std::unique_ptr<gossip::replica_store> cluster_store;
  node::cluster_archive cluster_l4; // the cluster store's L4, for its compactor
  if (cfg.l3_enabled) {
    l3_config lc;
    lc.keys = keys;
    lc.path = cfg.data_dir + "/l3";
    lc.map_size = cfg.l3_map_size;
    lc.max_bytes = cfg.l3_max_bytes;
    lc.batch_max_writes = cfg.l3_batch_writes();
    lc.batch_max_ms = cfg.l3_batch_age_ms();
    // a single node's sync mode commits each write-behind batch before it is
    // acknowledged (actors/store.hpp); the cluster store commits every write
    lc.sync_mode = cfg.l3_sync && cfg.cluster_enabled();
    lc.fsync_batches = cfg.l3_fsync_batches;
    lc.verify_on_open = cfg.l3_verify_on_open == "full";
    lc.lim.max_key_bytes = cfg.max_key_bytes;
    lc.lim.max_value_bytes = cfg.max_value_bytes;
    if (cfg.cluster_enabled()) {
      // Cluster data lives in L3 + L4 under the gossip core (docs/cluster.md).
      auto opened = node::open_cluster_store(cfg, lc, clk, &cluster_l4);
      if (!opened)
        return fail(opened.err().message);
      cluster_store = std::move(*opened);
    } else {
      auto opened = l3_lmdb::open(lc, clk);
      if (!opened)
        return fail("cannot open L3 in " + lc.path + ": " + opened.err().to_string());
      l3db = std::shared_ptr<l3_lmdb>(std::move(*opened));
    }
  }
  std::shared_ptr<archive::archive> ar; // L4: below L3, so only with L3
  if (l3db && cfg.archive_enabled) {
    auto opened = node::open_archive(cfg, clk, keys);
    if (!opened)
      return fail(opened.err().message);
    ar = std::move(*opened);
  }

  // protected mode covers the ops and metrics ports too: with a non-loopback
  // bind and no password, they listen on loopback only
  bool guard = cfg.protected_mode && !node::is_loopback(cfg.bind) && cfg.requirepass.empty() &&
               cfg.aclfile.empty();
  std::string aux_bind = guard ? std::string("127.0.0.1") : cfg.bind;
  if (guard)
    std::cerr << "kura-node: protected mode: no password set, so the ops and metrics ports "
                 "listen on 127.0.0.1 only and non-loopback RESP clients are refused"
              << std::endl;
  std::unique_ptr<node::node_metrics> metrics;
  if (cfg.metrics_port != 0) {
    auto m = node::node_metrics::start(
        aux_bind, cfg.metrics_port,
        node::metrics_access{cfg.metrics_user, cfg.metrics_password, cfg.metrics_loopback_only});
    if (!m)
      return fail(m.err().message);
    metrics = std::move(*m);
  }

  int rc = 0;
  {
    caf::actor_system sys{cfg};
    actors::store_config sc;
    sc.ks.shards = cfg.shards;
    sc.ks.memory_bytes = cfg.memory_bytes;
    sc.ks.memory_max_value_bytes = cfg.memory_max_value_bytes;
    sc.ks.lim.max_key_bytes = cfg.max_key_bytes;
    sc.ks.lim.max_value_bytes = cfg.max_value_bytes;
    sc.ks.node_id = static_cast<uint32_t>(::getpid());
    sc.ks.max_age_ms = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(cfg.retention_max_age).count());
    sc.ks.sensitive_patterns = cfg.sensitive_pattern_list();
    sc.ks.sensitive_max_ttl_ms = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(cfg.sensitive_max_ttl).count());
    sc.write_behind_high_water = cfg.l3_write_behind_high_water;
    sc.write_behind_high_water_bytes = cfg.l3_write_behind_high_water_bytes;
    sc.max_loss_window_ms = cfg.l3_max_loss_window_ms();
    sc.sync_writes = cfg.l3_sync;
    sc.lazy_open = cfg.l3_verify_on_open == "lazy";
    sc.sweep_interval_ms = static_cast<uint32_t>(std::max<int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(cfg.sweep_interval).count()));
    sc.sweep_budget = cfg.sweep_budget;
    actors::l4_handles l4;
    // keys L3 (without L4) or L4 lose for good: tracking clients are told
    // (actors/lost_keys.hpp)
    auto lost = std::make_shared<actors::lost_keys>();
    if (l3db && !ar)
      l3db->set_eviction_listener([lost](entry&& e) {
        if (!e.is_tombstone())
          lost->add(std::move(e.key));
      });
    if (ar) {
      l4 = actors::spawn_l4(sys, ar, node::l4_settings(cfg), clk,
                            [hook = node::archive_metrics_hook(metrics.get()), lost,
                             seen = std::make_shared<uint64_t>(~uint64_t{0})](
                                archive::archive& a, const actors::l4_counters& c) {
                              if (hook)
                                hook(a, c);
                              auto info = a.inspect();
                              uint64_t dropped =
                                  info.segments_dropped_ttl + info.segments_dropped_size;
                              if (*seen != ~uint64_t{0} && dropped != *seen)
                                lost->add_all();
                              *seen = dropped;
                            });
      std::function<bool(std::string_view)> never_archive; // sensitive keys
      if (!sc.ks.sensitive_patterns.empty())
        never_archive = [p = sc.ks.sensitive_patterns](std::string_view k) {
          for (auto& g : p)
            if (actors::glob_match(g, k))
              return true;
          return false;
        };
      l4.link->attach(*l3db, clk, std::move(never_archive));
      ar.reset(); // the L4 actors own it now
    } else if (cluster_l4.l4) {
      // A cluster node's L4 belongs to the cluster store (L3's victims go
      // there); the compactor runs beside it: compaction, retention, expiry
      // sweeps, `kura compact`, `kura archive`, the L4 metrics.
      l4 = actors::spawn_l4(sys, cluster_l4.l4, node::l4_settings(cfg), clk,
                            node::archive_metrics_hook(metrics.get()), cluster_l4.gate);
      l4.link.reset(); // no L3 actor hands it anything
      cluster_l4.l4.reset();
    }
    std::unique_ptr<wal> log; // the write-ahead log: replayed into L3 first
    if (l3db && cfg.l3_wal) {
      auto wc = actors::node_wal_config(cfg.data_dir + "/l3-wal", cfg.l3_max_loss_window_ms(),
                                        cfg.l3_sync, keys);
      wal_replay_stats replayed;
      auto opened = actors::recover_wal(*l3db, l4.link.get(), wc, clk, &replayed);
      if (!opened) {
        if (l4.link)
          actors::stop_l4(sys, l4);
        return fail("cannot recover the L3 write-ahead log: " + opened.err().to_string());
      }
      if (replayed.records > 0 || !replayed.cut_reason.empty())
        std::cerr << "kura-node: replayed " << replayed.records << " write-ahead log records from "
                  << replayed.segments << " segments"
                  << (replayed.cut_reason.empty()
                          ? std::string()
                          : "; cut " + std::to_string(replayed.cut_bytes) +
                                " bytes of a torn or damaged tail (" + replayed.cut_reason + ")")
                  << std::endl;
      if (replayed.skipped > 0)
        std::cerr << "kura-node: skipped " << replayed.skipped
                  << " write-ahead log records larger than the whole L3 budget (the first: "
                  << replayed.skipped_reason << "); those keys keep their older value" << std::endl;
      log = std::move(*opened);
    }
    if (!model_key_secret.empty())
      sc.model_key_hashes = std::make_shared<actors::model_keys>(model_key_secret);
    auto store = actors::spawn_store(sys, sc, l3db, clk, l4.link, std::move(log));
    store.core->lost = lost;
    l3db.reset(); // the L3 actor owns it now (closed when it exits)
    // prewarm loads from L3: only with L3 (a cluster node's predictor: below,
    // over the cluster store, actors/predictor_cluster.hpp)
    caf::actor predictor;
    actors::cluster_predictor_handles cluster_predictor;
    if (cfg.prewarm_enabled && store.l3)
      predictor = actors::spawn_predictor(sys, node::predictor_settings_of(cfg), store, clk,
                                          node::predictor_metrics_hook(metrics.get()));
    else if (cfg.prewarm_enabled && !cluster_store)
      std::cerr << "kura-node: kura.prewarm.enabled ignored: the predictor needs L3 "
                   "(kura.l3.enabled=false)"
                << std::endl;
    auto* cluster_tiers = dynamic_cast<gossip::tier_store*>(cluster_store.get());

    node::resp_server_config rc_cfg;
    rc_cfg.bind = cfg.bind;
    rc_cfg.port = cfg.port;
    rc_cfg.limits.max_bulk_bytes = cfg.proto_max_bulk_len;
    rc_cfg.limits.max_args = cfg.max_args;
    rc_cfg.max_output_bytes = cfg.max_client_output_bytes;
    rc_cfg.max_clients = cfg.max_clients;
    rc_cfg.read_buffer_bytes = static_cast<uint32_t>(cfg.read_buffer_bytes);
    rc_cfg.facts.data_dir = cfg.data_dir;
    rc_cfg.facts.start_ms = clk.now_ms();
    rc_cfg.facts.shutdown = [] { on_stop_signal(shutdown_command); };
    if (l4.ar)
      rc_cfg.facts.l4_stats = [ar = l4.ar] { return ar->stats(); };
    rc_cfg.security.requirepass = cfg.requirepass;
    rc_cfg.security.aclfile = cfg.aclfile;
    rc_cfg.security.protected_mode = cfg.protected_mode;
    rc_cfg.security.audit_log = cfg.audit_log_path();
    rc_cfg.security.audit_max_bytes = cfg.audit_max_bytes;
    rc_cfg.security.audit_keep = static_cast<unsigned>(cfg.audit_keep);
    rc_cfg.security.audit_fsync_every = static_cast<unsigned>(cfg.audit_fsync_every);
    rc_cfg.security.audit_args = cfg.audit_args;
    rc_cfg.security.audit_repeat_window_ms = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(cfg.audit_repeat_window).count());
    rc_cfg.security.key_hash_secret = model_key_secret;
    rc_cfg.security.acllog_max_len = static_cast<size_t>(cfg.acllog_max_len);
    rc_cfg.security.acl_pubsub_allchannels = cfg.acl_pubsub_default == "allchannels";
    rc_cfg.security.node_name = cfg.bind + ":" + std::to_string(cfg.port);
    rc_cfg.tls.port = cfg.tls_port;
    rc_cfg.tls.cert_file = cfg.tls_cert_file;
    rc_cfg.tls.key_file = cfg.tls_key_file;
    rc_cfg.tls.ca_file = cfg.tls_ca_file;
    rc_cfg.tls.auth_clients = cfg.tls_auth_clients;
    // refused TLS handshakes and refused peers of the cluster (ops) port go
    // to the audit log, which the RESP broker owns (node/cluster_tls.hpp)
    auto audit_to = std::make_shared<node::audit_forwarder>();
    if (cfg.cluster_tls)
      node::set_cluster_tls_refusals(
          [audit_to](const std::string& peer, const std::string& side, const std::string& why) {
            auto r = node::describe_cluster_tls_refusal(peer, side, why);
            std::cerr << "kura-node: " << r.log_line << std::endl;
            audit_to->send("cluster-tls", peer, r.command, r.result);
          });
    actors::cluster_handles cluster;
    if (cfg.cluster_enabled()) {
      auto cs = node::cluster_settings_of(cfg, cluster_id);
      if (auto why = actors::load_ring_marks(cfg.data_dir, cs.marks); !why.empty())
        return fail(why); // kura drain / rebalance marks (actors/ring_marks.hpp)
      cs.marks_dir = cfg.data_dir;
      cs.report = node::cluster_metrics_hook(metrics.get());
      cs.on_leave = [] { on_stop_signal(shutdown_command); }; // kura leave
      cs.cap_expiry = node::cluster_expiry_cap(cfg);          // retention, sensitive keys
      if (cluster_tiers) // a value larger than L3's whole budget: refused, not acked and lost
        cs.admit = [fit = cluster_tiers->l3().fit()](std::string_view key, size_t bytes) {
          return fit.check(key, bytes, true);
        };
      cs.on_refused = [audit_to](const std::string& why) { // peers without the secret
        audit_to->send("cluster-peer", "", "CLUSTER HELLO", "DENIED " + why);
      };
      if (sc.ks.max_age_ms != 0) { // retention of entries written before the cap
        auto sweep = std::make_shared<node::cluster_retention>(sc.ks.max_age_ms, cfg.sweep_budget,
                                                               sc.sweep_interval_ms);
        cs.maintain = [sweep](actors::cluster_core& c, uint64_t now) {
          if (auto* g = c.core_mut())
            sweep->step(g->store_for_maintenance(), now);
        };
      }
      // KURA.ERASE's per-member steps (node/cluster_erase.hpp)
      auto erase_mem = std::make_shared<node::cluster_erase_memory>();
      erase_mem->subjects = subjects;
      cs.exec = node::cluster_erase_exec(erase_mem, std::move(cs.exec));
      // subject tags: members pull the ones they lack (node/subjects_sync.hpp)
      auto ms = [](caf::timespan t) {
        return static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(t).count());
      };
      node::subject_sync_settings tag_sync{ms(cfg.subject_tag_retry),
                                           ms(cfg.subject_sync_interval)};
      cs.maintain = node::subject_sync_hook(subjects, tag_sync, std::move(cs.maintain));
      cs.local_op = node::cluster_rotate_op(cfg.encryption_key_file, // kura rotate-key
                                            cfg.data_dir + "/encryption.salt", audit_to);
      cluster = actors::spawn_cluster(sys, std::move(cs), incarnation, std::move(cluster_store));
      rc_cfg.cluster = cluster.core;
      if (cfg.prewarm_enabled && cluster_tiers) { // docs/predictor.md "Cluster"
        cluster_predictor =
            actors::spawn_cluster_predictor(sys, node::predictor_settings_of(cfg), cluster.core,
                                            *cluster_tiers, sc.model_key_hashes, cfg.memory_bytes,
                                            clk, node::predictor_metrics_hook(metrics.get()));
        predictor = cluster_predictor.predictor;
      }
      // INFO's l3, l4 and keyspace sections: the cluster data held here
      std::weak_ptr<actors::cluster_core> wc = cluster.core;
      rc_cfg.facts.l3_stats = [wc] {
        auto core = wc.lock();
        return core ? node::holdings_of(*core, false).l3 : tier_stats{};
      };
      rc_cfg.facts.memory_stats = [wc] {
        auto core = wc.lock();
        if (!core)
          return std::pair<tier_stats, tier_stats>{};
        auto h = node::holdings_of(*core, false);
        return std::make_pair(h.l1, h.l2);
      };
      rc_cfg.facts.l3_queue = [wc] {
        auto core = wc.lock();
        return core ? node::write_queue_of(*core).queued : 0;
      };
      rc_cfg.facts.l3_uncommitted = [wc] {
        auto core = wc.lock();
        return core ? node::write_queue_of(*core).uncommitted : 0;
      };
      rc_cfg.facts.l3_expires = [wc] {
        auto core = wc.lock();
        return core ? node::holdings_of(*core, true).expires : 0;
      };
      if (cfg.archive_enabled)
        rc_cfg.facts.l4_stats = [wc] {
          auto core = wc.lock();
          return core ? node::holdings_of(*core, false).l4 : tier_stats{};
        };
      node::announce_subject_tags(subjects, cluster.core, tag_sync); // KURA.SUBJECT reaches all
    }
    // KURA.ERASE (node/erase.hpp; on a cluster node/cluster_erase.hpp)
    std::shared_ptr<node::erase_book> erasures = std::make_shared<node::erase_book>(
        cfg.data_dir + "/erase-receipts.log", rc_cfg.security.node_name);
    if (auto why = erasures->load(); !why.empty())
      std::cerr << "kura-node: erase: " << why << std::endl;
    rc_cfg.facts.erase = erasures;
    rc_cfg.facts.subjects = subjects;
    if (!subject_rules->empty())
      rc_cfg.facts.subject_rules = subject_rules;
    auto listening = std::make_shared<std::promise<std::string>>();
    auto ready = listening->get_future();
    auto resp = node::spawn_resp_server(sys, store.core, rc_cfg, metrics.get(), listening);
    std::string listen_err = ready.get();
    audit_to->set(resp);
    caf::actor eraser;
    if (cluster.core)
      eraser =
          node::spawn_cluster_eraser(sys, erasures, cluster.core, resp, subject_rules, subjects);
    else
      eraser = node::spawn_erase_coordinator(
          sys, erasures, {store.broker, store.l3, l4.compactor, resp, subject_rules, subjects});
    caf::actor ops;
    if (listen_err.empty() && cfg.cluster_port != 0) {
      auto o = node::start_ops(sys, store, cfg, aux_bind, cfg.cluster_port, l4.compactor, resp,
                               cluster.coordinator, predictor, erasures);
      if (!o)
        listen_err = sys.render(o.error());
      else
        ops = *o;
    }
    if (!listen_err.empty()) {
      rc = fail(listen_err);
    } else {
      std::cerr << "kura-node: ready: RESP on "
                << (cfg.port != 0 ? cfg.bind + ":" + std::to_string(cfg.port) : "-")
                << (cfg.tls_port != 0
                        ? ", RESP over TLS on " + cfg.bind + ":" + std::to_string(cfg.tls_port)
                        : std::string{})
                << (metrics ? ", metrics on " + cfg.bind + ":" + std::to_string(metrics->port())
                            : std::string{})
                << (ops ? ", ops on " + cfg.bind + ":" + std::to_string(cfg.cluster_port)
                        : std::string{})
                << (cluster.core ? ", cluster node " + cluster_id : std::string{}) << " ("
                << cfg.summary() << ")" << std::endl;
      int sig = wait_for_stop_signal();
      while (sig == SIGHUP) { // reload TLS files, keep serving
        caf::anon_send(resp, node::tls_reload_atom::value);
        sig = wait_for_stop_signal();
      }
      std::cerr << "kura-node: "
                << (sig == SIGINT             ? "SIGINT"
                    : sig == shutdown_command ? "SHUTDOWN"
                                              : "SIGTERM")
                << " received, flushing L3 and shutting down" << std::endl;
    }
    if (cluster.coordinator) {
      // Leave the ring first (gossip `left`, hand off), then stop serving.
      auto hb = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.heartbeat).count();
      auto linger = std::clamp<int64_t>(2 * hb, 200, 3000);
      actors::stop_cluster(sys, cluster, listen_err.empty() ? static_cast<uint64_t>(linger) : 0);
    }
    node::set_cluster_tls_refusals({});
    audit_to->set({});
    caf::anon_send_exit(resp, caf::exit_reason::user_shutdown);
    if (ops)
      caf::anon_send_exit(ops, caf::exit_reason::user_shutdown);
    if (eraser) {
      erasures->set_dispatcher({});
      caf::anon_send_exit(eraser, caf::exit_reason::user_shutdown);
    }
    if (cluster_predictor.predictor)
      actors::stop_cluster_predictor(sys, cluster_predictor);
    else
      actors::stop_predictor(sys, predictor);
    actors::stop_store(sys, store);
    actors::stop_l4(sys, l4);
  }
  if (rc == 0)
    std::cerr << "kura-node: stopped cleanly" << std::endl;
  return rc;
}
