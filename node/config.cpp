#include "node/config.hpp"

#include <caf/all.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

namespace kura::node {

node_config::node_config() {
  opt_group{custom_options_, "global"}
    .add(port, "port", "RESP (Redis protocol) port")
    .add(bind, "bind", "address to listen on (RESP, metrics, cluster)")
    .add(metrics_port, "metrics-port", "Prometheus /metrics port (0 = off)")
    .add(cluster_port, "cluster-port", "ops port for the kura CLI (0 = off)")
    .add(data_dir, "data-dir", "directory for L3 (and L4) data")
    .add(memory_bytes, "memory-bytes", "bytes for L1+L2, all shards together");
  opt_group{custom_options_, "kura.memory"}
    .add(shards, "shards", "memory shards (key-hash partitions)");
  opt_group{custom_options_, "kura.limits"}
    .add(max_key_bytes, "max-key-bytes", "largest key")
    .add(max_value_bytes, "max-value-bytes", "largest value")
    .add(proto_max_bulk_len, "proto-max-bulk-len", "largest RESP bulk string")
    .add(max_args, "max-args", "most arguments per command")
    .add(max_client_output_bytes, "max-client-output-bytes",
         "unsent reply bytes per client before it is disconnected")
    .add(max_clients, "max-clients", "most concurrent RESP connections");
  opt_group{custom_options_, "kura.l3"}
    .add(l3_enabled, "enabled", "keep every entry in LMDB (write-behind)")
    .add(l3_sync, "sync", "commit and fsync every write")
    .add(l3_batch_max_writes, "batch-max-writes", "group commit: writes per batch")
    .add(l3_batch_max_age, "batch-max-age", "group commit: oldest write in a batch")
    .add(l3_map_size, "map-size", "LMDB map size in bytes")
    .add(l3_max_bytes, "max-bytes", "L3 size budget (0 = 90% of map-size)")
    .add(l3_write_behind_high_water, "write-behind-high-water",
         "queued write-behind operations before clients are slowed down");
  opt_group{custom_options_, "kura.expiry"}
    .add(sweep_interval, "sweep-interval", "active expiry period")
    .add(sweep_budget, "sweep-budget", "entries examined per sweep and shard");
  opt_group{custom_options_, "kura.archive"}
    .add(archive_max_bytes, "max-bytes", "L4 archive size budget")
    .add(archive_ttl_days, "ttl-days", "L4 retention in days")
    .add(archive_codec, "codec", "lz4 or zstd")
    .add(archive_index_memory, "index-memory", "L4 index memory");
  opt_group{custom_options_, "kura.prewarm"}
    .add(prewarm_enabled, "enabled", "predictive prewarming")
    .add(prediction_window, "prediction-window", "how far ahead to predict")
    .add(min_confidence, "min-confidence", "least confidence to prewarm a key");
  opt_group{custom_options_, "kura.cluster"}
    .add(sync_interval, "sync-interval", "anti-entropy period")
    .add(heartbeat, "heartbeat", "membership heartbeat")
    .add(replication_factor, "replication-factor", "copies of each key");
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

std::string node_config::check_file_keys() {
  if (config_file_path.empty())
    return {};
  std::ifstream f(config_file_path);
  if (!f)
    return {}; // CAF already refused a missing explicit file; the default may be absent
  auto parsed = actor_system_config::parse_config_file(config_file_path.c_str());
  if (!parsed)
    return "config file " + config_file_path + ": " + render(parsed.error());
  std::vector<std::string> keys;
  std::function<void(const caf::settings&, const std::string&)> walk =
    [&](const caf::settings& s, const std::string& prefix) {
      for (auto& kv : s) {
        std::string name = prefix.empty() ? kv.first : prefix + "." + kv.first;
        if (auto d = caf::get_if<caf::settings>(&kv.second))
          walk(*d, name);
        else
          keys.push_back(name);
      }
    };
  walk(*parsed, "");
  for (auto& k : keys) {
    if (!custom_options_.qualified_name_lookup(k))
      return "config file " + config_file_path + ": unknown key '" + k + "'";
  }
  // type check against the declared options
  auto typed = actor_system_config::parse_config_file(config_file_path.c_str(), custom_options_);
  if (!typed)
    return "config file " + config_file_path + ": " + render(typed.error());
  return {};
}

std::string node_config::check_values() {
  auto bad = [](const char* key, const std::string& why) {
    return std::string("bad value for ") + key + ": " + why;
  };
  if (port == 0)
    return bad("port", "must be 1..65535");
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
  if (l3_batch_max_writes == 0)
    return bad("kura.l3.batch-max-writes", "at least 1");
  if (l3_map_size < (1u << 20))
    return bad("kura.l3.map-size", "at least 1048576");
  if (sweep_interval.count() <= 0)
    return bad("kura.expiry.sweep-interval", "must be positive");
  if (archive_codec != "lz4" && archive_codec != "zstd")
    return bad("kura.archive.codec", "lz4 or zstd");
  if (min_confidence < 0 || min_confidence > 1)
    return bad("kura.prewarm.min-confidence", "must be within 0..1");
  if (replication_factor == 0)
    return bad("kura.cluster.replication-factor", "at least 1");
  if (metrics_port != 0 && metrics_port == port)
    return bad("metrics-port", "same as port");
  if (cluster_port != 0 && (cluster_port == port || cluster_port == metrics_port))
    return bad("cluster-port", "same as another port");
  return {};
}

std::string node_config::parse_and_validate(int argc, char** argv) {
  if (auto err = parse(argc, argv))
    return render(err);
  if (cli_helptext_printed)
    return {};
  if (!remainder.empty())
    return "unexpected argument '" + remainder.front() + "' (options are --name=value)";
  if (auto e = check_file_keys(); !e.empty())
    return e;
  if (auto e = check_values(); !e.empty())
    return e;
  return check_writable_dir(data_dir);
}

std::string node_config::summary() const {
  std::ostringstream os;
  os << "port=" << port << " bind=" << bind << " metrics-port=" << metrics_port
     << " cluster-port=" << cluster_port << " data-dir=" << data_dir
     << " memory-bytes=" << memory_bytes << " shards=" << shards
     << " l3=" << (l3_enabled ? (l3_sync ? "sync" : "write-behind") : "off");
  return os.str();
}

} // namespace kura::node
