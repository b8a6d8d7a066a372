#include "node/cluster_node.hpp"

#include "gossip/tier_store.hpp"
#include "node/archive_node.hpp"
#include "node/cluster_routing.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace kura::node {

namespace {

bool read_file(const std::string& path, std::string& out) {
  std::ifstream f(path);
  if (!f)
    return false;
  std::stringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' '))
    out.pop_back();
  return true;
}

std::string write_file(const std::string& path, const std::string& text) {
  auto tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text << "\n";
    if (!f.flush())
      return "cannot write " + tmp;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    return "cannot write " + path + ": " + ec.message();
  return {};
}

uint64_t ms(caf::timespan t) {
  return static_cast<uint64_t>(
      std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(t).count()));
}

} // namespace

std::string resolve_cluster_identity(const node_config& cfg, std::string& id,
                                     uint64_t& incarnation) {
  auto id_path = cfg.data_dir + "/cluster.id";
  auto inc_path = cfg.data_dir + "/cluster.incarnation";
  std::string recorded;
  bool have = read_file(id_path, recorded) && !recorded.empty();
  if (have && !cfg.cluster_node_id.empty() && recorded != cfg.cluster_node_id)
    return "data dir '" + cfg.data_dir + "' belongs to cluster node '" + recorded +
           "'; refusing to start as '" + cfg.cluster_node_id +
           "' (start with --kura.cluster.node-id=" + recorded + " or use another data dir)";
  if (!cfg.cluster_node_id.empty()) {
    id = cfg.cluster_node_id;
  } else if (have) {
    id = recorded;
  } else {
    std::random_device rd;
    std::ostringstream os;
    os << "n-" << std::hex << rd() << rd();
    id = os.str();
  }
  if (!have)
    if (auto e = write_file(id_path, id); !e.empty())
      return e;
  std::string inc_text;
  uint64_t inc = 0;
  if (read_file(inc_path, inc_text) && !inc_text.empty() &&
      inc_text.find_first_not_of("0123456789") == std::string::npos && inc_text.size() < 19)
    inc = std::stoull(inc_text);
  incarnation = inc + 1;
  return write_file(inc_path, std::to_string(incarnation));
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
  s.exec = exec_owned;
  return s;
}

result<std::unique_ptr<gossip::replica_store>>
open_cluster_store(const node_config& cfg, l3_config l3, const kura::clock& clk) {
  std::shared_ptr<archive::archive> l4;
  if (cfg.archive_enabled) {
    auto a = open_archive(cfg, clk);
    if (!a)
      return a.err();
    l4 = std::move(*a);
  }
  auto path = l3.path;
  // Background commits: LMDB commits (and their fdatasync) run on the
  // store's worker thread, not on the multiplexer thread that serves clients.
  auto s =
      gossip::tier_store::open(std::move(l3), std::move(l4), clk, gossip::ring_config{}.seed, true);
  if (!s)
    return error{s.err().code, "cannot open L3 in " + path + ": " + s.err().to_string()};
  return std::unique_ptr<gossip::replica_store>(std::move(*s));
}

void set_cluster_transport_defaults(node_config& cfg) {
  // The middleman's own liveness check: a heartbeat well inside the SWIM
  // period, and a connection timeout of a few heartbeats, so a frozen peer's
  // connection is dropped (and it becomes suspect) within ~3 heartbeats.
  auto& content = caf::content(cfg);
  // CAF-0.17.md §8.1: a connect whose handshake has not finished by the next
  // heartbeat tick fails, so the interval stays far above a loopback handshake.
  auto hb_ms = std::max<uint64_t>(500, ms(cfg.heartbeat) / 2);
  if (!caf::get_if<caf::timespan>(&content, "middleman.heartbeat-interval") ||
      caf::get<caf::timespan>(content, "middleman.heartbeat-interval").count() == 0)
    cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::milliseconds(hb_ms)});
  if (!caf::get_if<caf::timespan>(&content, "middleman.connection-timeout") ||
      caf::get<caf::timespan>(content, "middleman.connection-timeout").count() == 0)
    cfg.set("middleman.connection-timeout",
            caf::timespan{
                std::chrono::milliseconds(std::max<uint64_t>(4 * hb_ms, ms(cfg.heartbeat) * 3))});
}

} // namespace kura::node
