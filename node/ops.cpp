#include "node/ops.hpp"

#include "actors/cluster.hpp"
#include "actors/messages.hpp"
#include "actors/predictor.hpp"
#include "node/archive_node.hpp"
#include "node/cluster_tls.hpp"
#include "node/erase.hpp"
#include "node/rotate_key.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <chrono>
#include <unistd.h>

namespace kura::node {

namespace {

using namespace actors;

struct ops_state {
  caf::actor store;
  caf::actor l4;
  rotate_targets rotate; ///< kura rotate-key (node/rotate_key.hpp)
  caf::actor coordinator;
  caf::actor predictor;              ///< invalid when prewarm is off
  caf::actor resp;                   ///< checks credentials (invalid: none)
  std::shared_ptr<erase_book> erase; ///< kura erase (node/erase.hpp; null: off)
  node_status config;
  uint64_t start_ms = 0;
  static inline const char* name = "kura.ops";
};

std::string reply_error(const std::string& why) {
  kv_reply r;
  r.error = why;
  return encode_message(msg_type::kv_reply, r);
}

/// The RESP command an ops request needs permission for: (command, key).
std::pair<std::string, std::string> ops_command(const kv_request& r) {
  switch (r.op) {
  case kv_request::get:
    return {"get", r.key};
  case kv_request::set:
    return {"set", r.key};
  case kv_request::del:
    return {"del", r.key};
  case kv_request::expire:
    return {"pexpire", r.key};
  case kv_request::tier:
    return {"kura.tier", r.key};
  case kv_request::flush:
    return {"flushall", {}};
  case kv_request::config:
    return {"config|get", {}};
  case kv_request::status:
  case kv_request::stats:
    return {"info", {}};
  case predictor_ops::prewarm_plan:
  case predictor_ops::prewarm_status:
  case predictor_ops::report:
  case predictor_ops::alerts:
    return {"info", {}};
  default:
    return {"config|set", {}}; // archive maintenance: administrators
  }
}

using ops_self = caf::stateful_actor<ops_state>*;

/// Serves one decoded request into `rp`.
void serve_ops(ops_self self, const kv_request& request,
               caf::typed_response_promise<std::string> rp) {
  const kv_request* req = &request;
  auto timeout = std::chrono::seconds(10);
  auto& st = self->state;
  auto deliver_reply = [rp](kv_reply& r) mutable {
    rp.deliver(encode_message(msg_type::kv_reply, r));
  };
  auto on_err = [rp, self](caf::error& err) mutable {
    rp.deliver(reply_error(self->system().render(err)));
  };
  switch (req->op) {
  case kv_request::get:
    self->request(st.store, timeout, kv_get_atom::value, req->key).then(deliver_reply, on_err);
    break;
  case kv_request::set:
    self->request(st.store, timeout, kv_set_atom::value, req->key, req->value, req->ttl_ms)
        .then(deliver_reply, on_err);
    break;
  case kv_request::del:
    self->request(st.store, timeout, kv_del_atom::value, req->key).then(deliver_reply, on_err);
    break;
  case kv_request::expire:
    self->request(st.store, timeout, kv_expire_atom::value, req->key, req->ttl_ms)
        .then(deliver_reply, on_err);
    break;
  case kv_request::tier:
    self->request(st.store, timeout, kv_tier_atom::value, req->key).then(deliver_reply, on_err);
    break;
  case kv_request::flush:
    self->request(st.store, timeout, kv_flush_atom::value).then(deliver_reply, on_err);
    break;
  case kv_request::config:
    rp.deliver(encode_message(msg_type::node_status, st.config));
    break;
  case kv_request::status:
  case kv_request::stats: {
    bool full = req->op == kv_request::stats;
    auto start = st.start_ms;
    self->request(st.store, timeout, kv_stats_atom::value)
        .then(
            [rp, full, start](node_status& s) mutable {
              node_status out;
              auto row = [&](std::string n, std::string v) {
                out.names.push_back(std::move(n));
                out.values.push_back(std::move(v));
              };
              row("state", "up");
              row("pid", std::to_string(::getpid()));
              row("uptime_s", std::to_string((real_clock::instance().now_ms() - start) / 1000));
              for (size_t i = 0; i < s.names.size() && i < s.values.size(); ++i) {
                auto& n = s.names[i];
                if (full || n.find(".entries") != std::string::npos ||
                    n.find(".bytes") != std::string::npos ||
                    n.find("write_behind") != std::string::npos)
                  row(n, s.values[i]);
              }
              rp.deliver(encode_message(msg_type::node_status, out));
            },
            on_err);
    break;
  }
  default:
    if (handle_rotate_op(self, st.rotate, req->op, rp))
      break;
    if (handle_erase_op(st.erase.get(), *req, rp))
      break;
    if (!handle_archive_op(self, st.l4, req->op, rp) &&
        !handle_predictor_op(self, st.predictor, req->op, rp))
      rp.deliver(reply_error("unknown operation " + std::to_string(req->op)));
  }
}

/// Checks the credentials with the RESP broker, then serves the request.
caf::result<std::string> checked_ops(ops_self self, const std::string& user,
                                     const std::string& pass, const std::string& bytes) {
  auto req = decode_message<kv_request>(msg_type::kv_request, bytes);
  if (!req)
    return reply_error("bad request: " + req.err().message);
  auto rp = self->make_response_promise<std::string>();
  if (!self->state.resp) {
    serve_ops(self, *req, rp);
    return rp;
  }
  auto [cmd, key] = ops_command(*req);
  self->request(self->state.resp, std::chrono::seconds(10), ops_auth_atom::value, user, pass, cmd,
                key)
      .then(
          [self, rp, r = *req](std::string& verdict) mutable {
            if (verdict.empty())
              serve_ops(self, r, rp);
            else
              rp.deliver(reply_error(verdict));
          },
          [rp, self](caf::error& err) mutable {
            rp.deliver(reply_error(self->system().render(err)));
          });
  return rp;
}

/// A request for the cluster coordinator (`kura members | status | ring |
/// join | leave`), after the credential check of the RESP command `perm`
/// (INFO to look, SHUTDOWN to change the cluster) when a password or ACL is
/// set. `refuse(why)` seals the refusal in the answer's own type. (`coord`
/// stays open: peers prove the cluster secret instead.)
template <class Refuse>
caf::result<std::string> checked_coordinator(ops_self self, const std::string& user,
                                             const std::string& pass, const std::string& perm,
                                             caf::message req, Refuse refuse) {
  if (!self->state.coordinator)
    return refuse("this node is not in a cluster (start it with --kura.cluster.node-id and "
                  "--kura.cluster.seeds)");
  auto rp = self->make_response_promise<std::string>();
  auto fetch = [self, rp, refuse, req]() mutable {
    self->request(self->state.coordinator, std::chrono::seconds(10), req)
        .then([rp](std::string& bytes) mutable { rp.deliver(std::move(bytes)); },
              [rp, refuse, self](caf::error& err) mutable {
                rp.deliver(refuse(self->system().render(err)));
              });
  };
  if (!self->state.resp) {
    fetch();
    return rp;
  }
  self->request(self->state.resp, std::chrono::seconds(10), ops_auth_atom::value, user, pass, perm,
                std::string())
      .then(
          [rp, refuse, fetch](std::string& verdict) mutable {
            if (verdict.empty())
              fetch();
            else
              rp.deliver(refuse(verdict));
          },
          [rp, refuse, self](caf::error& err) mutable {
            rp.deliver(refuse(self->system().render(err)));
          });
  return rp;
}

caf::result<std::string> checked_members(ops_self self, const std::string& user,
                                         const std::string& pass) {
  return checked_coordinator(self, user, pass, "info", caf::make_message(members_atom::value),
                             [](std::string why) {
                               members_reply r;
                               r.error = std::move(why);
                               return seal(static_cast<uint32_t>(cluster_msg_type::members), r);
                             });
}

caf::result<std::string> checked_cop(ops_self self, const std::string& user,
                                     const std::string& pass, const std::string& op,
                                     std::vector<std::string> args) {
  std::string perm = op == "status" || op == "ring" ? "info" : "shutdown"; // join leave drain
  return checked_coordinator(self, user, pass, perm,
                             caf::make_message(cop_atom::value, op, std::move(args)),
                             [](std::string why) {
                               cluster_op_reply r;
                               r.error = std::move(why);
                               return seal(static_cast<uint32_t>(cluster_msg_type::op_reply), r);
                             });
}

caf::behavior ops_actor(caf::stateful_actor<ops_state>* self, caf::actor store, node_status config,
                        caf::actor l4, caf::actor resp, caf::actor coordinator,
                        caf::actor predictor, rotate_targets rotate,
                        std::shared_ptr<erase_book> erase) {
  self->state.erase = std::move(erase);
  self->state.predictor = std::move(predictor);
  self->state.rotate = std::move(rotate);
  self->state.store = std::move(store);
  self->state.l4 = std::move(l4);
  self->state.resp = std::move(resp);
  self->state.coordinator = std::move(coordinator);
  self->state.config = std::move(config);
  self->state.start_ms = real_clock::instance().now_ms();
  self->set_default_handler(caf::drop);
  return {
      [=](coord_atom) { return self->state.coordinator; },
      [=](members_atom) -> caf::result<std::string> { return checked_members(self, {}, {}); },
      [=](members_atom, const std::string& user, const std::string& pass)
          -> caf::result<std::string> { return checked_members(self, user, pass); },
      [=](cop_atom, const std::string& user, const std::string& pass, const std::string& op,
          std::vector<std::string>& args) -> caf::result<std::string> {
        return checked_cop(self, user, pass, op, std::move(args));
      },
      [=](ops_request_atom, const std::string& bytes) -> caf::result<std::string> {
        return checked_ops(self, {}, {}, bytes);
      },
      [=](ops_request_atom, const std::string& user, const std::string& pass,
          const std::string& bytes) -> caf::result<std::string> {
        return checked_ops(self, user, pass, bytes);
      },
  };
}

} // namespace

caf::expected<caf::actor> start_ops(caf::actor_system& sys, const store_handles& store,
                                    const node_config& cfg, const std::string& bind, uint16_t port,
                                    caf::actor l4, caf::actor resp, caf::actor coordinator,
                                    caf::actor predictor, std::shared_ptr<erase_book> erase) {
  node_status conf;
  auto add = [&](std::string n, std::string v) {
    conf.names.push_back(std::move(n));
    conf.values.push_back(std::move(v));
  };
  add("port", std::to_string(cfg.port));
  add("bind", cfg.bind);
  add("metrics-port", std::to_string(cfg.metrics_port));
  add("cluster-port", std::to_string(cfg.cluster_port));
  add("data-dir", cfg.data_dir);
  add("memory-bytes", std::to_string(cfg.memory_bytes));
  add("kura.memory.shards", std::to_string(cfg.shards));
  add("kura.limits.max-key-bytes", std::to_string(cfg.max_key_bytes));
  add("kura.limits.max-value-bytes", std::to_string(cfg.max_value_bytes));
  add("kura.limits.proto-max-bulk-len", std::to_string(cfg.proto_max_bulk_len));
  add("kura.limits.max-args", std::to_string(cfg.max_args));
  add("kura.limits.max-client-output-bytes", std::to_string(cfg.max_client_output_bytes));
  add("kura.limits.max-clients", std::to_string(cfg.max_clients));
  add("kura.l3.enabled", cfg.l3_enabled ? "true" : "false");
  add("kura.l3.sync", cfg.l3_sync ? "true" : "false");
  add("kura.l3.batch-max-writes", std::to_string(cfg.l3_batch_writes()));
  add("kura.l3.batch-max-age", std::to_string(cfg.l3_batch_age_ms()) + "ms");
  add("kura.l3.max-loss-window", std::to_string(cfg.l3_max_loss_window_ms()) + "ms");
  add("kura.l3.write-behind-high-water", std::to_string(cfg.l3_write_behind_high_water));
  add("kura.archive.enabled", l4 ? "true" : "false");
  add("kura.archive.codec", cfg.archive_codec);
  add("kura.archive.max-bytes", std::to_string(cfg.archive_max_bytes));
  add("kura.archive.ttl-days", std::to_string(cfg.archive_ttl_days));
  add("kura.prewarm.enabled", predictor ? "true" : "false");
  // On a cluster node the cluster store re-seals L3 and L4 itself (its
  // compactor only compacts): rotation goes to the coordinator.
  rotate_targets rotate{store.l3, coordinator ? caf::actor{} : l4, cfg.encryption_key_file,
                        cfg.data_dir + "/encryption.salt", coordinator};
  auto ops =
      sys.spawn(ops_actor, store.broker, std::move(conf), std::move(l4), std::move(resp),
                std::move(coordinator), std::move(predictor), std::move(rotate), std::move(erase));
  auto p = publish_ops_port(ops, port, bind.c_str()); // TLS with kura.cluster.tls
  if (!p) {
    caf::anon_send_exit(ops, caf::exit_reason::user_shutdown);
    return caf::make_error(caf::sec::cannot_open_port,
                           "cannot listen for ops on " + bind + ":" + std::to_string(port));
  }
  return ops;
}

} // namespace kura::node
