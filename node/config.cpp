#include "node/config.hpp"

#include <caf/all.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

namespace kura::node {

namespace {

// Clang builds: libcaf (built by gcc) initializes the shared meta_state of a
// config option type partly at compile time (its function pointers) and
// partly at run time (its type name). A clang-built binary that instantiates
// the same type holds the interposing copy, in .bss: if libcaf's
// actor_system_config constructor gets to it first, the function pointers stay
// null and parsing any option of that type (--kura.memory.shards=2) crashes.
// Initializing our copies here, before main, completes them first.
[[maybe_unused]] const bool caf_option_types_ready = [] {
  caf::detail::option_meta_state_instance<bool>();
  caf::detail::option_meta_state_instance<uint16_t>();
  caf::detail::option_meta_state_instance<uint64_t>();
  caf::detail::option_meta_state_instance<size_t>();
  caf::detail::option_meta_state_instance<int64_t>();
  caf::detail::option_meta_state_instance<double>();
  caf::detail::option_meta_state_instance<std::string>();
  caf::detail::option_meta_state_instance<caf::timespan>();
  return true;
}();

} // namespace

node_config::node_config() {
  opt_group{custom_options_, "global"}
      .add(port, "port", "RESP (Redis protocol) port")
      .add(bind, "bind", "address to listen on (RESP, metrics, cluster)")
      .add(metrics_port, "metrics-port", "Prometheus /metrics port (0 = off)")
      .add(cluster_port, "cluster-port", "ops port for the kura CLI (0 = off)")
      .add(data_dir, "data-dir", "directory for L3 (and L4) data")
      .add(memory_bytes, "memory-bytes", "bytes for L1+L2, all shards together");
  opt_group{custom_options_, "kura.memory"}
      .add(shards, "shards", "memory shards (key-hash partitions)")
      .add(memory_max_value_bytes, "max-value-bytes",
           "with L3: values of this size or more stay out of memory (L3 serves them; 0 = none)");
  opt_group{custom_options_, "kura.limits"}
      .add(max_key_bytes, "max-key-bytes", "largest key")
      .add(max_value_bytes, "max-value-bytes", "largest value")
      .add(proto_max_bulk_len, "proto-max-bulk-len", "largest RESP bulk string")
      .add(max_args, "max-args", "most arguments per command")
      .add(max_client_output_bytes, "max-client-output-bytes",
           "unsent reply bytes per client before it is disconnected")
      .add(max_clients, "max-clients", "most concurrent RESP connections")
      .add(read_buffer_bytes, "read-buffer-bytes",
           "bytes per socket read (CAF zero-fills this much before each read)");
  opt_group{custom_options_, "kura.l3"}
      .add(l3_enabled, "enabled", "keep every entry in LMDB (write-behind)")
      .add(l3_sync, "sync", "commit and fsync every write")
      .add(l3_fsync_batches, "fsync-batches",
           "fdatasync each group commit (a machine crash loses at most one batch); "
           "false: rely on the page cache (a killed process still loses nothing)")
      .add(l3_wal, "wal",
           "write-ahead log in front of LMDB (a single node's L3 and a cluster node's store): "
           "writes are durable once logged, LMDB is applied behind it in large batches")
      .add(l3_batch_max_writes, "batch-max-writes",
           "group commit: writes per batch (0 = auto: 1M, 4096 in a cluster without the WAL)")
      .add(l3_batch_max_age, "batch-max-age",
           "group commit: oldest write in a batch (0 = auto: 1s with the WAL, "
           "max-loss-window/8 without, 5ms in a cluster without it)")
      .add(l3_max_loss_window, "max-loss-window",
           "after kill -9 every write acknowledged longer ago than this is on disk")
      .add(l3_map_size, "map-size", "LMDB map size in bytes")
      .add(l3_verify_on_open, "verify-on-open",
           "full: walk every LMDB page before serving; lazy: serve at once, check each record's "
           "checksum when read and scan every record in the background")
      .add(l3_max_bytes, "max-bytes",
           "L3 size budget (0 = half of map-size); a value larger than it allows is refused")
      .add(l3_write_behind_high_water, "write-behind-high-water",
           "queued write-behind operations before clients are slowed down")
      .add(l3_write_behind_high_water_bytes, "write-behind-high-water-bytes",
           "queued write-behind bytes (keys + values) before clients are slowed down");
  opt_group{custom_options_, "kura.expiry"}
      .add(sweep_interval, "sweep-interval", "active expiry period")
      .add(sweep_budget, "sweep-budget", "entries examined per sweep and shard");
  opt_group{custom_options_, "kura.archive"}
      .add(archive_max_bytes, "max-bytes", "L4 archive size budget")
      .add(archive_ttl_days, "ttl-days", "L4 retention in days")
      .add(archive_codec, "codec", "lz4, zstd or zstd-dict")
      .add(archive_index_memory, "index-memory", "L4 index memory")
      .add(archive_enabled, "enabled", "archive entries L3 evicts (L4)")
      .add(archive_level, "level", "codec level (lz4: 0 fast, 1..12 hc; zstd: 1..22)")
      .add(archive_compact_threshold, "compact-threshold",
           "rewrite segments whose live fraction is below this (0..1)")
      .add(archive_compact_interval, "compact-interval", "scheduled compaction (0s = off)")
      .add(archive_compact_rate, "compact-rate", "compaction read rate in bytes/s (0 = unlimited)")
      .add(archive_segment_bytes, "segment-bytes",
           "archive segment size (sealed segments compact)");
  opt_group{custom_options_, "kura.prewarm"}
      .add(prewarm_enabled, "enabled", "predictive prewarming")
      .add(prediction_window, "prediction-window", "how far ahead to predict")
      .add(min_confidence, "min-confidence", "least confidence to prewarm a key")
      .add(prewarm_interval, "interval", "period of the prewarm plan")
      .add(prewarm_load_horizon, "load-horizon",
           "the near part of the prediction window a plan loads for")
      .add(prewarm_min_history, "min-history", "how long a key is followed before prewarm loads it")
      .add(prewarm_memory_bytes, "memory-bytes", "memory of the predictor's model")
      .add(prewarm_max_load_rate, "max-load-rate", "prewarm load rate in bytes/s")
      .add(prewarm_sample_one_in, "sample-one-in", "the predictor sees 1 in N reads and writes")
      .add(prewarm_max_event_rate, "max-event-rate",
           "... and at most this many events per second (sampling sparser above; 0 = no cap)")
      .add(prewarm_thread_nice, "thread-nice",
           "nice value of the predictor's thread (0..19; 19: it learns from spare CPU only)")
      .add(prewarm_bucket_evidence, "bucket-evidence",
           "outcomes a calibration bucket needs before its keys are loaded (0 = off)")
      .add(prewarm_adjust_ttl, "adjust-ttl",
           "lengthen / shorten TTLs of key patterns re-read after / never read before expiry")
      .add(prewarm_tier_choice, "tier-choice",
           "new writes of key patterns written and never read go to L3 only, not memory")
      .add(prewarm_min_ttl, "min-ttl", "adjust-ttl never shortens a TTL below this")
      .add(prewarm_max_ttl, "max-ttl", "adjust-ttl never lengthens a TTL above this")
      .add(prewarm_clock_offset_ms, "clock-offset-ms",
           "shifts the predictor's clock (replays and tests; 0 in production)");
  opt_group{custom_options_, "kura.alerts"}
      .add(alerts_min_hit_ratio, "min-hit-ratio", "alert when the memory hit ratio is below")
      .add(alerts_max_storage_share, "max-storage-share",
           "alert when L3 uses more than this share of its budget")
      .add(alerts_max_l1_latency, "max-l1-latency",
           "alert when the p99 latency of reads answered from L1 in a cycle is above")
      .add(alerts_max_l2_latency, "max-l2-latency",
           "alert when the p99 latency of reads answered from L2 in a cycle is above")
      .add(alerts_max_sync_failures, "max-sync-failures",
           "alert when a cluster node has more failed syncs in a cycle than this");
  opt_group{custom_options_, "kura.cluster"}
      .add(sync_interval, "sync-interval", "anti-entropy period")
      .add(heartbeat, "heartbeat", "membership heartbeat")
      .add(replication_factor, "replication-factor", "copies of each key")
      .add(cluster_node_id, "node-id", "this node's id in the cluster (kept in the data dir)")
      .add(cluster_seeds, "seeds", "comma-separated host:port of other nodes' cluster ports")
      .add(cluster_write_acks, "write-acks",
           "copies that hold a write before it is acknowledged (0 = min(2, replication-factor))")
      .add(cluster_secret, "secret", "shared secret peers must prove (HMAC challenge)")
      .add(cluster_advertise, "advertise",
           "host:port other nodes dial to reach this node (default: bind:cluster-port)")
      .add(cluster_request_timeout, "request-timeout", "bound on every request to a peer")
      .add(cluster_near_cache, "near-cache", "keep near copies of keys served for other owners")
      .add(cluster_redirect, "redirect",
           "proxy (forward to the owner) or moved (answer -MOVED) for keys owned elsewhere")
      .add(cluster_advertise_resp, "advertise-resp",
           "host:port Redis clients reach this node's RESP port on (CLUSTER SLOTS, MOVED)")
      .add(cluster_stream_rate, "stream-rate",
           "bytes/s a node receives moved ranges at (join, leave, re-replication); 0 = unlimited")
      .add(cluster_hedge_delay, "hedge-delay",
           "longest wait for a replica's answer before a read also asks the next replica "
           "(below it: that replica's observed p99); 0 = no hedged reads")
      .add(cluster_leave_timeout, "leave-timeout",
           "how long a graceful leave (SIGTERM, kura leave) may hand off before it exits")
      .add(cluster_tls, "tls", "mutual TLS on cluster links and the ops port (kura CLI)")
      .add(cluster_tls_cert_file, "tls-cert-file",
           "this node's certificate on cluster links (PEM; default kura.tls.cert-file)")
      .add(cluster_tls_key_file, "tls-key-file",
           "its private key (PEM, unencrypted; default kura.tls.key-file)")
      .add(cluster_tls_ca_file, "tls-ca-file",
           "CA peers' and CLI certificates must chain to (default kura.tls.ca-file)");
  opt_group{custom_options_, "kura.security"}
      .add(requirepass, "requirepass", "password of the default user (AUTH <password>)")
      .add(aclfile, "aclfile", "ACL file (Redis format: user <name> <rules>...)")
      .add(encryption_key_file, "encryption-key-file",
           "encrypt L3 and L4 at rest with the keys in this file (docs/security.md)")
      .add(protected_mode, "protected-mode",
           "refuse non-loopback clients when bound to a non-loopback address without passwords")
      .add(audit_log, "audit-log", "audit log path (default <data-dir>/audit.log; off = none)")
      .add(audit_max_bytes, "audit-max-bytes", "rotate the audit log above this size")
      .add(audit_keep, "audit-keep", "rotated audit logs kept")
      .add(audit_fsync_every, "audit-fsync-every", "audit lines between fsyncs (and every 100 ms)")
      .add(audit_args, "audit-args", "log command arguments (secrets stay redacted)")
      .add(audit_repeat_window, "audit-repeat-window",
           "identical refusals from one address within it: one audit line with a count (0s: each)")
      .add(hash_keys_in_models, "hash-keys-in-models",
           "keyed hashes (HMAC-SHA-256) instead of keys in the predictor's model and the audit log")
      .add(acllog_max_len, "acllog-max-len", "entries kept by ACL LOG (Redis's acllog-max-len)")
      .add(acl_pubsub_default, "acl-pubsub-default",
           "channels of new users: resetchannels (none, Redis 7's default) or allchannels")
      .add(metrics_user, "metrics-user", "/metrics basic-auth user (empty = no auth)")
      .add(metrics_password, "metrics-password", "/metrics basic-auth password")
      .add(metrics_loopback_only, "metrics-loopback-only", "/metrics for loopback clients only")
      .add(sensitive_patterns, "sensitive-patterns",
           "sensitive keys (comma-separated globs): TTL capped, never archived, invalidated on "
           "expiry")
      .add(sensitive_max_ttl, "sensitive-max-ttl", "longest TTL of a sensitive key (0s = no cap)")
      .add(subject_patterns, "subject-patterns",
           "data subjects' keys: comma-separated globs with {id}, e.g. user:{id}:*")
      .add(subject_tag_retry, "subject-tag-retry",
           "cluster: how long a new subject tag is resent to a member that does not answer")
      .add(subject_sync_interval, "subject-sync-interval",
           "cluster: how often members compare subject tags (also at start and a member's "
           "return)");
  opt_group{custom_options_, "kura.retention"}.add(
      retention_max_age, "max-age",
      "no entry lives longer than this after its last write, in any tier (0s = no cap)");
  opt_group{custom_options_, "kura.tls"}
      .add(tls_port, "port", "RESP over TLS port, beside --port or alone with --port=0 (0 = off)")
      .add(tls_cert_file, "cert-file", "server certificate (PEM, chain allowed)")
      .add(tls_key_file, "key-file", "server private key (PEM, unencrypted)")
      .add(tls_ca_file, "ca-file", "CA certificates (PEM) that client certificates must chain to")
      .add(tls_auth_clients, "auth-clients",
           "with ca-file: yes (clients need a certificate), optional (checked if sent), no");
}

std::vector<std::string> node_config::sensitive_pattern_list() const {
  std::vector<std::string> out;
  std::stringstream ss(sensitive_patterns);
  std::string one;
  while (std::getline(ss, one, ',')) {
    auto b = one.find_first_not_of(" \t");
    if (b == std::string::npos)
      continue;
    auto e = one.find_last_not_of(" \t");
    out.push_back(one.substr(b, e - b + 1));
  }
  return out;
}

std::string node_config::audit_log_path() const {
  if (audit_log == "off")
    return {};
  if (audit_log.empty())
    return data_dir + "/audit.log";
  return audit_log;
}

std::string check_writable_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return "data dir '" + dir + "' cannot be created: " + ec.message();
  if (!std::filesystem::is_directory(dir, ec))
    return "data dir '" + dir + "' is not a directory";
  auto probe = dir + "/.kura-write-test";
  {
    std::ofstream f(probe);
    if (!f || !(f << "ok") || !f.flush())
      return "data dir '" + dir + "' is not writable: " + std::strerror(errno);
  }
  std::filesystem::remove(probe, ec);
  return {};
}

std::string node_config::file_to_args(const std::string& path, std::vector<std::string>& out) {
  std::ifstream f(path);
  if (!f)
    return "cannot read config file " + path;
  auto parsed = actor_system_config::parse_config_file(path.c_str());
  if (!parsed)
    return "config file " + path + ": " + render(parsed.error());
  std::function<std::string(const caf::settings&, const std::string&)> walk =
      [&](const caf::settings& s, const std::string& prefix) -> std::string {
    for (auto& kv : s) {
      std::string name = prefix.empty() ? kv.first : prefix + "." + kv.first;
      if (auto d = caf::get_if<caf::settings>(&kv.second)) {
        if (auto e = walk(*d, name); !e.empty())
          return e;
        continue;
      }
      auto dot = name.rfind('.');
      std::string category = dot == std::string::npos ? "global" : name.substr(0, dot);
      std::string key = dot == std::string::npos ? name : name.substr(dot + 1);
      if (!custom_options_.qualified_name_lookup(category, key))
        return "config file " + path + ": unknown key '" + name + "'";
      std::string value;
      if (auto str = caf::get_if<std::string>(&kv.second))
        value = *str;
      else
        value = caf::to_string(kv.second);
      out.push_back("--" + (category == "global" ? key : category + "." + key) + "=" + value);
    }
    return {};
  };
  return walk(*parsed, "");
}

std::string node_config::check_values() {
  auto bad = [](const char* key, const std::string& why) {
    return std::string("bad value for ") + key + ": " + why;
  };
  if (port == 0 && tls_port == 0)
    return bad("port", "must be 1..65535 (0 only with kura.tls.port)");
  if (bind.empty())
    return bad("bind", "must not be empty");
  if (memory_bytes < (1u << 20))
    return bad("memory-bytes", "at least 1048576 (1 MiB)");
  if (shards == 0 || shards > 1024)
    return bad("kura.memory.shards", "must be 1..1024");
  if (max_key_bytes == 0 || max_value_bytes == 0)
    return bad("kura.limits", "key and value limits must be positive");
  if (proto_max_bulk_len < max_value_bytes && proto_max_bulk_len < (1u << 20))
    return bad("kura.limits.proto-max-bulk-len", "at least 1048576");
  if (max_args < 2)
    return bad("kura.limits.max-args", "at least 2");
  if (max_client_output_bytes < (1u << 16))
    return bad("kura.limits.max-client-output-bytes", "at least 65536");
  if (max_clients == 0)
    return bad("kura.limits.max-clients", "at least 1");
  if (read_buffer_bytes < 512 || read_buffer_bytes > (16u << 20))
    return bad("kura.limits.read-buffer-bytes", "must be 512..16777216");
  if (l3_max_loss_window < std::chrono::milliseconds(10))
    return bad("kura.l3.max-loss-window", "at least 10ms");
  if (l3_batch_max_age.count() < 0)
    return bad("kura.l3.batch-max-age", "must not be negative");
  if (l3_map_size < (1u << 20))
    return bad("kura.l3.map-size", "at least 1048576");
  if (l3_verify_on_open != "full" && l3_verify_on_open != "lazy")
    return bad("kura.l3.verify-on-open", "full or lazy");
  if (sweep_interval.count() <= 0)
    return bad("kura.expiry.sweep-interval", "must be positive");
  if (archive_codec != "lz4" && archive_codec != "zstd" && archive_codec != "zstd-dict")
    return bad("kura.archive.codec", "lz4, zstd or zstd-dict");
  if (archive_level != -1 && archive_codec == "lz4" && (archive_level < 0 || archive_level > 12))
    return bad("kura.archive.level", "0..12 for lz4");
  if (archive_level != -1 && archive_codec != "lz4" && (archive_level < 1 || archive_level > 22))
    return bad("kura.archive.level", "1..22 for zstd");
  if (archive_max_bytes < (1u << 20))
    return bad("kura.archive.max-bytes", "at least 1048576");
  if (archive_ttl_days > 36500)
    return bad("kura.archive.ttl-days", "0..36500 (0 = no age limit)");
  if (archive_index_memory < (1u << 20))
    return bad("kura.archive.index-memory", "at least 1048576");
  if (!(archive_compact_threshold >= 0 && archive_compact_threshold <= 1))
    return bad("kura.archive.compact-threshold", "must be within 0..1");
  if (archive_segment_bytes < (64u << 10) || archive_segment_bytes > (4ull << 30))
    return bad("kura.archive.segment-bytes", "65536..4294967296");
  if (archive_compact_interval.count() < 0)
    return bad("kura.archive.compact-interval", "must not be negative");
  if (min_confidence < 0 || min_confidence > 1)
    return bad("kura.prewarm.min-confidence", "must be within 0..1");
  if (prewarm_interval < std::chrono::milliseconds(100))
    return bad("kura.prewarm.interval", "at least 100ms");
  if (prediction_window < std::chrono::minutes(1))
    return bad("kura.prewarm.prediction-window", "at least 1min");
  if (prewarm_load_horizon < std::chrono::minutes(1) || prewarm_load_horizon > prediction_window)
    return bad("kura.prewarm.load-horizon", "1min..kura.prewarm.prediction-window");
  if (prewarm_min_history.count() < 0)
    return bad("kura.prewarm.min-history", "0 or more");
  if (prewarm_min_ttl.count() <= 0 || prewarm_max_ttl < prewarm_min_ttl)
    return bad("kura.prewarm.min-ttl / max-ttl", "0 < min-ttl <= max-ttl");
  if (prewarm_memory_bytes < (1u << 20))
    return bad("kura.prewarm.memory-bytes", "at least 1048576");
  if (prewarm_max_load_rate < 1024)
    return bad("kura.prewarm.max-load-rate", "at least 1024 bytes/s");
  if (prewarm_sample_one_in == 0 || prewarm_sample_one_in > 1000000)
    return bad("kura.prewarm.sample-one-in", "1..1000000");
  if (prewarm_max_event_rate > 100000000)
    return bad("kura.prewarm.max-event-rate", "0..100000000");
  if (prewarm_thread_nice > 19)
    return bad("kura.prewarm.thread-nice", "0..19");
  if (!(alerts_min_hit_ratio >= 0 && alerts_min_hit_ratio <= 1))
    return bad("kura.alerts.min-hit-ratio", "must be within 0..1");
  if (!(alerts_max_storage_share > 0 && alerts_max_storage_share <= 1))
    return bad("kura.alerts.max-storage-share", "must be within 0..1 (above 0)");
  if (alerts_max_l1_latency.count() <= 0)
    return bad("kura.alerts.max-l1-latency", "must be above 0");
  if (alerts_max_l2_latency.count() <= 0)
    return bad("kura.alerts.max-l2-latency", "must be above 0");
  if (cluster_enabled() && prewarm_enabled && (prewarm_adjust_ttl || prewarm_tier_choice))
    return bad(prewarm_adjust_ttl ? "kura.prewarm.adjust-ttl" : "kura.prewarm.tier-choice",
               "not available on a cluster node yet (docs/predictor.md \"Cluster\")");
  if (replication_factor == 0)
    return bad("kura.cluster.replication-factor", "at least 1");
  if (effective_write_acks() > replication_factor)
    return bad("kura.cluster.write-acks", "at most kura.cluster.replication-factor");
  if (cluster_request_timeout.count() <= 0)
    return bad("kura.cluster.request-timeout", "must be positive");
  if (cluster_hedge_delay.count() < 0 || cluster_hedge_delay >= cluster_request_timeout)
    return bad("kura.cluster.hedge-delay", "0 (off) or below kura.cluster.request-timeout");
  if (heartbeat.count() <= 0 || sync_interval.count() <= 0)
    return bad("kura.cluster.heartbeat", "heartbeat and sync-interval must be positive");
  if (cluster_node_id.size() > 128 ||
      cluster_node_id.find_first_of("@, \t\r\n") != std::string::npos)
    return bad("kura.cluster.node-id", "at most 128 characters, no '@', ',' or spaces");
  if (cluster_enabled() && cluster_port == 0)
    return bad("cluster-port", "a cluster node needs its cluster port");
  auto host_port_ok = [](const std::string& one) {
    auto c = one.rfind(':');
    bool ok = !one.empty() && c != std::string::npos && c > 0 && c + 1 < one.size() &&
              c + 6 >= one.size() &&
              one.find_first_not_of("0123456789", c + 1) == std::string::npos;
    if (ok) {
      auto p = std::stoul(one.substr(c + 1));
      ok = p > 0 && p <= 65535;
    }
    return ok;
  };
  if (!cluster_seeds.empty()) {
    std::stringstream ss(cluster_seeds);
    std::string one;
    while (std::getline(ss, one, ','))
      if (!host_port_ok(one))
        return bad("kura.cluster.seeds", "comma-separated host:port, got '" + one + "'");
  }
  if (!cluster_advertise.empty() && !host_port_ok(cluster_advertise))
    return bad("kura.cluster.advertise", "host:port, got '" + cluster_advertise + "'");
  if (!cluster_advertise_resp.empty() && !host_port_ok(cluster_advertise_resp))
    return bad("kura.cluster.advertise-resp", "host:port, got '" + cluster_advertise_resp + "'");
  if (cluster_redirect != "proxy" && cluster_redirect != "moved")
    return bad("kura.cluster.redirect", "proxy or moved, got '" + cluster_redirect + "'");
  if (!requirepass.empty() && !aclfile.empty())
    return bad("kura.security.requirepass",
               "not together with kura.security.aclfile (set the default user's password in the "
               "ACL file)");
  if (audit_max_bytes < 4096)
    return bad("kura.security.audit-max-bytes", "at least 4096");
  if (acl_pubsub_default != "resetchannels" && acl_pubsub_default != "allchannels")
    return bad("kura.security.acl-pubsub-default", "resetchannels or allchannels");
  if (audit_keep > 1000)
    return bad("kura.security.audit-keep", "0..1000");
  if (audit_fsync_every == 0)
    return bad("kura.security.audit-fsync-every", "at least 1");
  if (audit_repeat_window.count() < 0)
    return bad("kura.security.audit-repeat-window", "must not be negative");
  if (metrics_user.empty() != metrics_password.empty())
    return bad("kura.security.metrics-user", "set together with metrics-password");
  if (retention_max_age.count() < 0)
    return bad("kura.retention.max-age", "must not be negative");
  if (retention_max_age.count() != 0 && retention_max_age < std::chrono::seconds(1))
    return bad("kura.retention.max-age", "at least 1s (or 0s: no cap)");
  if (subject_tag_retry < std::chrono::seconds(1))
    return bad("kura.security.subject-tag-retry", "at least 1s");
  if (subject_sync_interval < std::chrono::seconds(1))
    return bad("kura.security.subject-sync-interval", "at least 1s");
  if (sensitive_max_ttl.count() < 0)
    return bad("kura.security.sensitive-max-ttl", "must not be negative");
  if (tls_port != 0) {
    if (tls_cert_file.empty() || tls_key_file.empty())
      return bad("kura.tls.port", "needs kura.tls.cert-file and kura.tls.key-file");
    if (tls_port == port || tls_port == metrics_port || tls_port == cluster_port)
      return bad("kura.tls.port", "same as another port");
  }
  if (cluster_tls) {
    if (cluster_port == 0)
      return bad("kura.cluster.tls", "needs cluster-port (the port it protects)");
    if (cluster_tls_cert().empty() || cluster_tls_key().empty() || cluster_tls_ca().empty())
      return bad("kura.cluster.tls",
                 "needs a certificate, a key and a CA file "
                 "(kura.cluster.tls-cert-file/-key-file/-ca-file or kura.tls.*)");
  } else if (!cluster_tls_cert_file.empty() || !cluster_tls_key_file.empty() ||
             !cluster_tls_ca_file.empty()) {
    return bad("kura.cluster.tls-cert-file", "set, but kura.cluster.tls is off");
  }
  if (tls_auth_clients != "yes" && tls_auth_clients != "no" && tls_auth_clients != "optional")
    return bad("kura.tls.auth-clients", "yes, no or optional");
  if (metrics_port != 0 && metrics_port == port)
    return bad("metrics-port", "same as port");
  if (cluster_port != 0 && (cluster_port == port || cluster_port == metrics_port))
    return bad("cluster-port", "same as another port");
  return {};
}

std::string node_config::parse_and_validate(int argc, char** argv) {
  // CAF 0.17 ignores unknown and mistyped keys in a config file, does not
  // apply nested sections ([kura.l3]) and lets the file beat the command line
  // for top-level keys. So kura reads the file itself, refuses unknown keys,
  // and turns every entry into a flag placed before the real flags: CAF then
  // type-checks them like flags, and the command line wins.
  std::vector<std::string> file_args, cli_args;
  std::string file;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--config-file=", 0) == 0)
      file = a.substr(14);
    else if (a == "--config-file" && i + 1 < argc)
      file = argv[++i];
    else
      cli_args.push_back(std::move(a));
  }
  if (!file.empty()) {
    if (auto e = file_to_args(file, file_args); !e.empty())
      return e;
    config_file_path = file;
  }
  file_args.insert(file_args.end(), cli_args.begin(), cli_args.end());
  // CAF 0.17 takes booleans only as bare flags (--kura.l3.sync); accept
  // --name=true|false as well, which is what people type.
  std::vector<std::pair<bool*, bool>> bools;
  std::vector<std::string> args;
  const std::pair<const char*, bool*> bool_opts[] = {
      {"kura.l3.enabled", &l3_enabled},
      {"kura.l3.sync", &l3_sync},
      {"kura.l3.fsync-batches", &l3_fsync_batches},
      {"kura.l3.wal", &l3_wal},
      {"kura.prewarm.enabled", &prewarm_enabled},
      {"kura.prewarm.adjust-ttl", &prewarm_adjust_ttl},
      {"kura.prewarm.tier-choice", &prewarm_tier_choice},
      {"kura.archive.enabled", &archive_enabled},
      {"kura.cluster.near-cache", &cluster_near_cache},
      {"kura.cluster.tls", &cluster_tls},
      {"kura.security.protected-mode", &protected_mode},
      {"kura.security.audit-args", &audit_args},
      {"kura.security.hash-keys-in-models", &hash_keys_in_models},
      {"kura.security.metrics-loopback-only", &metrics_loopback_only},
  };
  for (auto& a : file_args) {
    bool handled = false;
    for (auto& [name, ptr] : bool_opts) {
      std::string prefix = std::string("--") + name + "=";
      if (a.rfind(prefix, 0) != 0)
        continue;
      auto v = a.substr(prefix.size());
      if (v == "true" || v == "1" || v == "yes" || v == "on")
        bools.emplace_back(ptr, true);
      else if (v == "false" || v == "0" || v == "no" || v == "off")
        bools.emplace_back(ptr, false);
      else
        return std::string("bad value for ") + name + ": expected true or false, got '" + v + "'";
      handled = true;
    }
    if (!handled)
      args.push_back(a);
  }
  std::istringstream no_ini;
  if (auto err = parse(std::move(args), no_ini))
    return "invalid option: " + render(err);
  for (auto& [ptr, v] : bools)
    *ptr = v;
  if (cli_helptext_printed)
    return {};
  if (!remainder.empty())
    return "unexpected argument '" + remainder.front() + "' (options are --name=value)";
  if (auto e = check_values(); !e.empty())
    return e;
  return check_writable_dir(data_dir);
}

uint64_t node_config::l3_max_loss_window_ms() const {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(l3_max_loss_window).count());
}

uint64_t node_config::l3_batch_writes() const {
  if (l3_batch_max_writes != 0)
    return l3_batch_max_writes;
  return cluster_enabled() && !cluster_wal() ? 4096 : 1u << 20;
}

uint64_t node_config::l3_batch_age_ms() const {
  auto ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(l3_batch_max_age).count());
  if (ms != 0)
    return ms;
  if (cluster_enabled() && !cluster_wal())
    return 5;
  // with the log, LMDB's batches need not fit in the loss window
  return l3_wal ? 1000 : std::max<uint64_t>(1, l3_max_loss_window_ms() / 8);
}

std::string node_config::summary() const {
  std::ostringstream os;
  os << "port=" << port << " bind=" << bind << " metrics-port=" << metrics_port
     << " cluster-port=" << cluster_port << " data-dir=" << data_dir
     << " memory-bytes=" << memory_bytes << " shards=" << shards
     << " l3=" << (l3_enabled ? (l3_sync ? "sync" : "write-behind") : "off")
     << (l3_enabled && !l3_sync ? (l3_fsync_batches ? " fsync-batches" : " no-fsync") : "")
     << " l4=" << (l3_enabled && archive_enabled ? archive_codec : std::string("off"))
     << " prewarm=" << (prewarm_enabled && l3_enabled ? "on" : "off");
  if (retention_max_age.count() != 0)
    os << " retention.max-age="
       << std::chrono::duration_cast<std::chrono::milliseconds>(retention_max_age).count() << "ms";
  if (tls_port != 0)
    os << " tls-port=" << tls_port
       << " tls-auth-clients=" << (tls_ca_file.empty() ? std::string("no") : tls_auth_clients);
  if (cluster_enabled())
    os << " cluster=" << cluster_node_id << " rf=" << replication_factor
       << " write-acks=" << effective_write_acks()
       << " seeds=" << (cluster_seeds.empty() ? std::string("none") : cluster_seeds)
       << " secret=" << (cluster_secret.empty() ? "off" : "on");
  if (cluster_tls)
    os << " cluster-tls=on";
  return os.str();
}

} // namespace kura::node
