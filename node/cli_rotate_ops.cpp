// The ops actor's side of `kura rotate-key` (node/rotate_key.hpp).
#include "actors/archive_actors.hpp"
#include "actors/cluster.hpp"
#include "actors/store.hpp"
#include "node/rotate_key.hpp"
#include "tiers/seal.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <tuple>

namespace kura::node {

namespace {

using namespace actors;

void deliver_error(caf::typed_response_promise<std::string>& rp, const std::string& why) {
  kv_reply r;
  r.error = why;
  rp.deliver(encode_message(msg_type::kv_reply, r));
}

/// Asks L3 (then the compactor) for their progress and delivers the report.
void deliver_status(caf::event_based_actor* self, const rotate_targets& t, rotate_report base,
                    caf::typed_response_promise<std::string> rp) {
  auto timeout = std::chrono::seconds(10);
  auto with_l4 = [self, t, rp](rotate_report r) mutable {
    if (!t.compactor) {
      rp.deliver(encode_message(msg_rotate_report, r));
      return;
    }
    r.l4 = true;
    self->request(t.compactor, std::chrono::seconds(10), compact_status_atom::value)
        .then(
            [rp, r](compaction_report& c) mutable {
              if (c.trigger == "rotate") {
                r.l4_bytes_done = c.bytes_done;
                r.l4_bytes_total = c.bytes_total;
                r.l4_segments_done = c.segments_done;
                r.l4_segments_total = c.segments_total;
                r.running = r.running || c.running;
                if (!c.ok) {
                  r.ok = false;
                  r.error += (r.error.empty() ? "" : "; ") + std::string{"L4: "} + c.error;
                }
              }
              rp.deliver(encode_message(msg_rotate_report, r));
            },
            [rp, self](caf::error& err) mutable {
              deliver_error(rp, "the compactor did not answer: " + self->system().render(err));
            });
  };
  if (!t.l3) {
    with_l4(base);
    return;
  }
  self->request(t.l3, timeout, l3_reseal_atom::value)
      .then(
          [with_l4, base](bool running, bool ok, std::string& error, uint32_t active, uint64_t done,
                          uint64_t total, uint64_t resealed) mutable {
            rotate_report r = base;
            r.running = running;
            r.ok = base.ok && ok;
            if (!error.empty())
              r.error = "L3: " + error + (base.error.empty() ? "" : "; " + base.error);
            r.active_key = active;
            r.l3_done = done;
            r.l3_total = total;
            r.l3_resealed = resealed;
            with_l4(r);
          },
          [rp, self](caf::error& err) mutable {
            deliver_error(rp, "L3 did not answer: " + self->system().render(err));
          });
}

/// A cluster node: the coordinator runs the op (node/cluster_rotate.hpp)
/// and answers a sealed cluster_op_reply whose note is the rotate_report.
void ask_coordinator(caf::event_based_actor* self, const caf::actor& coordinator,
                     const std::string& op, caf::typed_response_promise<std::string> rp) {
  // reading a passphrase key file runs PBKDF2 on the multiplexer thread
  self->request(coordinator, std::chrono::seconds(60), cop_atom::value, op,
                std::vector<std::string>{})
      .then(
          [rp](std::string& bytes) mutable {
            auto env = decode_envelope(bytes);
            if (!env || env->type != static_cast<uint32_t>(cluster_msg_type::op_reply)) {
              deliver_error(rp, "bad answer from the cluster coordinator");
              return;
            }
            auto rep = from_msgpack<cluster_op_reply>(env->payload);
            if (!rep)
              deliver_error(rp, "bad answer from the cluster coordinator: " + rep.err().message);
            else if (!rep->error.empty())
              deliver_error(rp, rep->error);
            else
              rp.deliver(std::move(rep->note)); // an encoded rotate_report
          },
          [rp, self](caf::error& err) mutable {
            deliver_error(rp,
                          "the cluster coordinator did not answer: " + self->system().render(err));
          });
}

} // namespace

bool handle_rotate_op(caf::event_based_actor* self, const rotate_targets& t, uint8_t op,
                      caf::typed_response_promise<std::string> rp) {
  if (op != rotate_ops::rotate_key && op != rotate_ops::rotate_status)
    return false;
  if (t.key_file.empty()) {
    deliver_error(rp, "encryption at rest is off on this node (start it with "
                      "kura.security.encryption-key-file)");
    return true;
  }
  if (!t.l3 && !t.compactor) { // a cluster node: its store is the gossip core's
    if (!t.coordinator) {
      deliver_error(rp,
                    "this node has no L3 or archive of its own to re-seal (on a cluster node, "
                    "kura rotate-key does not re-seal the cluster store yet: docs/security.md)");
      return true;
    }
    ask_coordinator(self, t.coordinator,
                    op == rotate_ops::rotate_key ? "rotate-key" : "rotate-status", rp);
    return true;
  }
  if (op == rotate_ops::rotate_status) {
    deliver_status(self, t, rotate_report{}, rp);
    return true;
  }
  // Read the key file once here, so that a bad file is reported before
  // anything changes; L3 and L4 then each load it themselves.
  auto kr = crypto::keyring::load(t.key_file, t.salt_file);
  if (!kr) {
    deliver_error(rp, "cannot rotate: " + kr.err().to_string());
    return true;
  }
  auto timeout = std::chrono::seconds(60); // PBKDF2 for passphrase keys
  auto start_l4 = [self, t, rp, timeout]() mutable {
    if (!t.compactor) {
      deliver_status(self, t, rotate_report{}, rp);
      return;
    }
    self->request(t.compactor, timeout, l4_rotate_atom::value, t.key_file, t.salt_file)
        .then(
            [self, t, rp](compaction_report& c) mutable {
              rotate_report base;
              if (!c.ok) {
                base.ok = false;
                base.error = "L4: " + c.error;
              }
              deliver_status(self, t, base, rp);
            },
            [rp, self](caf::error& err) mutable {
              deliver_error(rp, "the compactor did not answer: " + self->system().render(err));
            });
  };
  if (!t.l3) {
    start_l4();
    return true;
  }
  self->request(t.l3, timeout, l3_rotate_atom::value, t.key_file, t.salt_file)
      .then(
          [start_l4, rp](std::string& error) mutable {
            if (!error.empty()) {
              deliver_error(rp, "cannot rotate L3: " + error);
              return;
            }
            start_l4();
          },
          [rp, self](caf::error& err) mutable {
            deliver_error(rp, "L3 did not answer: " + self->system().render(err));
          });
  return true;
}

} // namespace kura::node
