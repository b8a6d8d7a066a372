// TLS on cluster links for an embedded member (node/tls_embedded.hpp).
#include "node/tls_embedded.hpp"

#include "node/audit_log.hpp"

#include <chrono>
#include <iostream>
#include <memory>

namespace kura::node {

namespace {

uint64_t wall_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

} // namespace

std::string configure_embedded_cluster_tls(caf::actor_system_config& cfg,
                                           const embedded_tls_options& o) {
  if (o.files.cert_file.empty() || o.files.key_file.empty() || o.files.ca_file.empty())
    return "cluster TLS needs a certificate, its key and a CA file";
  if (auto why = check_cluster_tls(o.files); !why.empty())
    return why;
  std::shared_ptr<audit_log> audit;
  if (!o.audit_log.empty()) {
    audit_log::options ao;
    ao.path = o.audit_log;
    ao.node = o.node_name;
    ao.fsync_every = 1; // refusals are rare: each one is on disk at once
    ao.repeat_window_ms = o.repeat_window_ms;
    audit = std::make_shared<audit_log>(ao);
    if (auto why = audit->open(); !why.empty())
      return why;
  }
  configure_cluster_tls(cfg, o.files);
  // called under node/cluster_tls.cpp's lock: one refusal at a time
  set_cluster_tls_refusals([audit, name = o.node_name](const std::string& peer,
                                                       const std::string& side,
                                                       const std::string& why) {
    auto r = describe_cluster_tls_refusal(peer, side, why);
    std::cerr << "kura (" << name << "): " << r.log_line << std::endl;
    if (!audit)
      return;
    audit_event e;
    e.time_ms = wall_ms();
    e.event = "cluster-tls";
    e.client = peer;
    e.command = r.command;
    e.result = r.result;
    audit->tick(e.time_ms); // summaries of windows that ended
    audit->record(e);
  });
  return {};
}

void stop_embedded_cluster_tls() {
  set_cluster_tls_refusals({});
}

} // namespace kura::node
