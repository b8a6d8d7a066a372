// kura-node's configuration: CAF's config system (config file via
// --config-file=kura.conf, and flags). The flags a user needs first are
// top-level (--port --bind --metrics-port --cluster-port --data-dir
// --memory-bytes); everything else lives under kura.* (--kura.l3.sync=true,
// or [kura.l3] sync=true in the file). CAF 0.17 silently ignores unknown or
// mistyped keys in a config file (CAF-0.17.md §7), so `parse_and_validate` re-reads the file
// and refuses unknown keys, then checks every value's range and that the data
// directory is writable. Every failure is one line of text.
// Thread safety: filled once at start-up, read-only afterwards.
#pragma once

#include <caf/actor_system_config.hpp>
#include <caf/timestamp.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace kura::node {

struct node_config : caf::actor_system_config {
  // -- top level ---------------------------------------------------------------
  uint16_t port = 6379;
  std::string bind = "127.0.0.1";
  uint16_t metrics_port = 9379; ///< 0 = no metrics endpoint
  uint16_t cluster_port = 7379; ///< ops actor (kura CLI); 0 = off
  std::string data_dir = "kura-data";
  uint64_t memory_bytes = 256ull << 20;

  // -- kura.memory / kura.limits ------------------------------------------------
  size_t shards = 4;
  /// kura.memory.max-value-bytes: with L3, larger values are not copied into memory.
  uint64_t memory_max_value_bytes = 4ull << 20;
  uint64_t max_key_bytes = 64 * 1024;
  uint64_t max_value_bytes = 64ull << 20;
  uint64_t proto_max_bulk_len = 512ull << 20;
  uint64_t max_args = 1024 * 1024;
  uint64_t max_client_output_bytes = 256ull << 20;
  uint64_t max_clients = 10000;
  uint64_t read_buffer_bytes = 4096;

  // -- kura.l3 ------------------------------------------------------------------
  bool l3_enabled = true;
  bool l3_sync = false;
  bool l3_fsync_batches = true;
  bool l3_wal = true; ///< kura.l3.wal: the write-ahead log in front of LMDB (single node)
  uint64_t l3_batch_max_writes = 0;                              ///< 0 = auto (l3_batch_writes())
  caf::timespan l3_batch_max_age = std::chrono::milliseconds(0); ///< 0 = auto (l3_batch_age_ms())
  caf::timespan l3_max_loss_window = std::chrono::seconds(1);
  uint64_t l3_map_size = 8ull << 30;
  std::string l3_verify_on_open = "lazy"; ///< kura.l3.verify-on-open: full | lazy
  uint64_t l3_max_bytes = 0;
  uint64_t l3_write_behind_high_water = 1000000;
  uint64_t l3_write_behind_high_water_bytes = 256ull << 20;

  // -- kura.expiry ----------------------------------------------------------------
  caf::timespan sweep_interval = std::chrono::milliseconds(100);
  uint64_t sweep_budget = 2000;

  // -- defaults of DESIGN.md, read by the archive, prewarm and cluster parts -----
  uint64_t archive_max_bytes = 10ull * 1000 * 1000 * 1000;
  uint64_t archive_ttl_days = 365;
  std::string archive_codec = "lz4";
  uint64_t archive_index_memory = 100ull * 1000 * 1000;
  bool archive_enabled = true; ///< L4 under <data-dir>/archive (needs L3)
  int64_t archive_level = -1;  ///< -1 = the codec's default (lz4: 0, zstd: 3)
  double archive_compact_threshold = 0.5;
  caf::timespan archive_compact_interval = std::chrono::minutes(10);
  uint64_t archive_compact_rate = 32ull << 20;  ///< bytes/s, 0 = unlimited
  uint64_t archive_segment_bytes = 64ull << 20; ///< a segment is sealed at this size
  bool prewarm_enabled = false;                 ///< off by default: docs/predictor.md "Default"
  caf::timespan prediction_window = std::chrono::hours(24);
  double min_confidence = 0.7;
  // -- kura.prewarm (docs/predictor.md) ---------------------------------------------
  caf::timespan prewarm_interval = std::chrono::minutes(1);
  caf::timespan prewarm_load_horizon = std::chrono::hours(1);
  caf::timespan prewarm_min_history = std::chrono::hours(48);
  uint64_t prewarm_memory_bytes = 32ull << 20;
  uint64_t prewarm_max_load_rate = 16ull << 20; ///< bytes/s
  uint64_t prewarm_sample_one_in = 8;
  uint64_t prewarm_max_event_rate = 2500; ///< sampled events per second at most (0 = no cap)
  uint64_t prewarm_thread_nice = 0;       ///< nice value of the predictor's thread (0..19)
  int64_t prewarm_clock_offset_ms = 0;
  uint64_t prewarm_bucket_evidence =
      8;                            ///< outcomes a calibration bucket needs before loads (0 = off)
  bool prewarm_adjust_ttl = false;  ///< apply the predictor's TTL rules to writes with a TTL
  bool prewarm_tier_choice = false; ///< new writes of never-read key patterns go to L3 only
  caf::timespan prewarm_min_ttl = std::chrono::seconds(1);     ///< adjust-ttl's lower bound
  caf::timespan prewarm_max_ttl = std::chrono::hours(24 * 30); ///< adjust-ttl's upper bound
  double alerts_min_hit_ratio = 0.85;
  double alerts_max_storage_share = 0.9;
  caf::timespan alerts_max_l1_latency = std::chrono::milliseconds(2);  ///< p99 of L1-served reads
  caf::timespan alerts_max_l2_latency = std::chrono::milliseconds(10); ///< p99 of L2-served reads
  uint64_t alerts_max_sync_failures = 0; ///< cluster sync failures tolerated per predictor cycle
  caf::timespan sync_interval = std::chrono::seconds(30);
  caf::timespan heartbeat = std::chrono::seconds(10);
  uint64_t replication_factor = 2;
  // -- kura.cluster (docs/cluster.md) ---------------------------------------------
  std::string cluster_node_id;     ///< empty + no seeds: a lone node, as without a cluster
  std::string cluster_seeds;       ///< comma-separated host:port of cluster ports
  uint64_t cluster_write_acks = 0; ///< 0 = min(2, replication-factor)
  std::string cluster_secret;      ///< HMAC challenge on connect; empty = none
  std::string cluster_advertise;   ///< host:port peers dial (default bind:cluster-port)
  caf::timespan cluster_request_timeout = std::chrono::seconds(2);
  bool cluster_near_cache = true;
  std::string cluster_redirect = "proxy";     ///< proxy | moved (node/cluster_faces.hpp)
  std::string cluster_advertise_resp;         ///< host:port clients reach RESP on (CLUSTER SLOTS)
  uint64_t cluster_stream_rate = 32ull << 20; ///< bytes/s a node pulls ranges at; 0 = unlimited
  /// kura.cluster.hedge-delay: bound on a hedged read's wait (0 = no hedging)
  caf::timespan cluster_hedge_delay = std::chrono::milliseconds(50);
  caf::timespan cluster_leave_timeout =
      std::chrono::seconds(60); ///< graceful leave's handoff bound

  /// True when this node takes part in a cluster (a node id or seeds given).
  bool cluster_enabled() const { return !cluster_node_id.empty() || !cluster_seeds.empty(); }
  /// Whether a cluster node's store logs its writes (kura.l3.wal, not with
  /// kura.l3.sync, which commits every write to LMDB anyway).
  bool cluster_wal() const { return cluster_enabled() && l3_wal && !l3_sync; }
  /// write-acks with the default resolved.
  uint64_t effective_write_acks() const {
    return cluster_write_acks != 0 ? cluster_write_acks : std::min<uint64_t>(2, replication_factor);
  }

  // -- kura.security (docs/security.md) ------------------------------------------
  std::string requirepass; ///< default user's password ("" = nopass)
  std::string aclfile;     ///< ACL file in Redis's format ("" = none)
  /// Encryption at rest: key file (docs/security.md); "" = plaintext.
  std::string encryption_key_file;
  bool protected_mode = true;
  std::string audit_log; ///< "" = <data-dir>/audit.log, "off" = none
  uint64_t audit_max_bytes = 64ull << 20;
  uint64_t audit_keep = 5;
  uint64_t audit_fsync_every = 64;
  bool audit_args = false;
  /// Identical refusals from one address within this window: one line with a count (0: each).
  caf::timespan audit_repeat_window = std::chrono::seconds(60);
  /// kura.security.hash-keys-in-models: keyed hashes instead of keys in the
  /// predictor's statistics and model and in the audit log's arguments.
  bool hash_keys_in_models = false;
  uint64_t acllog_max_len = 128;                    ///< ACL LOG entries kept
  std::string acl_pubsub_default = "resetchannels"; ///< or "allchannels"
  std::string metrics_user;                         ///< /metrics basic auth ("" = none)
  std::string metrics_password;
  bool metrics_loopback_only = false; ///< /metrics answers loopback clients only
  /// Data subjects: comma-separated patterns with {id} (node/subjects.hpp).
  std::string subject_patterns;
  /// Cluster: a new subject tag is resent to a member that does not answer
  /// for this long; every member compares tag digests with the others this
  /// often (and at start and a member's return) (node/subjects_sync.hpp).
  caf::timespan subject_tag_retry = std::chrono::seconds(60);
  caf::timespan subject_sync_interval = std::chrono::seconds(30);
  /// kura.retention.max-age: no entry lives longer after its last write, in
  /// any tier (actors/retention.hpp); 0 = no cap.
  caf::timespan retention_max_age{0};
  /// Sensitive keys: comma-separated globs; their TTL is capped at
  /// sensitive_max_ttl (0 = no cap), they are never archived to L4 and
  /// tracking clients are invalidated when they expire (docs/security.md).
  std::string sensitive_patterns;
  caf::timespan sensitive_max_ttl = std::chrono::hours(1);
  /// sensitive_patterns split at the commas (blanks trimmed).
  std::vector<std::string> sensitive_pattern_list() const;

  // -- kura.tls (docs/security.md) -------------------------------------------------
  uint16_t tls_port = 0; ///< RESP over TLS (Redis's tls-port); 0 = off
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_ca_file;              ///< client certificates must chain to it
  std::string tls_auth_clients = "yes"; ///< yes | no | optional (with a CA file)
  // -- kura.cluster.tls* (TLS on cluster links and the ops port, docs/security.md) --
  bool cluster_tls = false;          ///< mutual TLS on the cluster/ops port
  std::string cluster_tls_cert_file; ///< "" = kura.tls.cert-file
  std::string cluster_tls_key_file;  ///< "" = kura.tls.key-file
  std::string cluster_tls_ca_file;   ///< "" = kura.tls.ca-file; peers must chain to it
  /// The cluster TLS files with kura.tls.*'s as defaults.
  std::string cluster_tls_cert() const {
    return cluster_tls_cert_file.empty() ? tls_cert_file : cluster_tls_cert_file;
  }
  std::string cluster_tls_key() const {
    return cluster_tls_key_file.empty() ? tls_key_file : cluster_tls_key_file;
  }
  std::string cluster_tls_ca() const {
    return cluster_tls_ca_file.empty() ? tls_ca_file : cluster_tls_ca_file;
  }

  node_config();

  /// The audit log path the settings give ("" = none).
  std::string audit_log_path() const;

  /// Parses flags and the config file and validates everything. Returns ""
  /// on success (or when --help was printed: check cli_helptext_printed), or
  /// one line saying what is wrong.
  std::string parse_and_validate(int argc, char** argv);

  /// The effective settings as "key=value" lines (logged at start-up).
  /// The group commit L3 runs with: the settings, or when they are 0 (auto)
  /// up to 1M writes and max-loss-window / 8 on a single node (big batches:
  /// an LMDB commit costs about the pages it touches, not the writes it
  /// holds), 1M writes and 1 s with the write-ahead log (a single node or a
  /// cluster node), 4096 writes and 5 ms in a cluster without it
  /// (docs/cluster.md).
  uint64_t l3_batch_writes() const;
  uint64_t l3_batch_age_ms() const;
  uint64_t l3_max_loss_window_ms() const;
  std::string summary() const;

private:
  std::string file_to_args(const std::string& path, std::vector<std::string>& out);
  std::string check_values();
};

/// "" when `dir` exists (created if needed) and a file can be written in it.
std::string check_writable_dir(const std::string& dir);

} // namespace kura::node
