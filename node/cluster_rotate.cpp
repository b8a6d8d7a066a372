#include "node/cluster_rotate.hpp"

#include "gossip/tier_store.hpp"
#include "node/cluster_tls.hpp"
#include "node/rotate_key.hpp"
#include "tiers/seal.hpp"

#include <chrono>

namespace kura::node {

namespace {

/// Records per L3 slice and archive bytes per L4 slice of the re-seal, and
/// how long one timer callback may run slices before it yields.
constexpr size_t l3_slice = 2000;
constexpr uint64_t l4_slice = 1u << 20;
constexpr auto slice_budget = std::chrono::milliseconds(20);

struct rotation {
  std::string key_file, salt_file;
  std::shared_ptr<audit_forwarder> audit;
  bool started = false; ///< a rotation ran since the node started
  bool running = false;
  bool ok = true;
  std::string error;
  uint32_t active = 0;
  gossip::tier_store::reseal_report progress;
  bool stepping = false; ///< a timer chain of slices is scheduled

  void note(const std::string& result) {
    if (audit)
      audit->send("rotate-key", "", "KURA ROTATE-KEY", result);
  }
  void fail(const std::string& why) {
    running = false;
    ok = false;
    error = why;
    note("ERROR " + why);
  }
};

gossip::tier_store* store_of(actors::cluster_core& core) {
  auto* g = core.core_mut();
  return g ? dynamic_cast<gossip::tier_store*>(&g->store_for_maintenance()) : nullptr;
}

rotate_report report_of(const rotation& r, bool with_l4) {
  rotate_report out;
  out.running = r.running;
  out.ok = r.ok;
  out.error = r.error;
  out.active_key = r.active;
  out.l3_done = r.progress.l3.records_done;
  out.l3_total = r.progress.l3.records_total;
  out.l3_resealed = r.progress.l3.resealed;
  out.l4 = with_l4;
  out.l4_bytes_done = r.progress.l4.bytes_done;
  out.l4_bytes_total = r.progress.l4.bytes_total;
  out.l4_segments_done = r.progress.l4.segments_done;
  out.l4_segments_total = r.progress.l4.segments_total;
  return out;
}

/// Runs slices for up to slice_budget, then schedules itself again.
void step(const std::shared_ptr<rotation>& r, actors::cluster_core& core) {
  r->stepping = false;
  if (!r->running)
    return;
  auto* ts = store_of(core);
  if (!ts) {
    r->fail("the cluster store went away");
    return;
  }
  auto until = std::chrono::steady_clock::now() + slice_budget;
  do {
    auto p = ts->reseal_step(l3_slice, l4_slice);
    if (!p) {
      r->fail(p.err().to_string());
      return;
    }
    r->progress = *p;
    if (p->done) {
      r->running = false;
      r->note("OK key " + std::to_string(r->active) + " seals everything: L3 " +
              std::to_string(p->l3.resealed) + " of " + std::to_string(p->l3.records_done) +
              " records re-sealed, L4 " + std::to_string(p->l4.segments_done) +
              " segments re-sealed; older keys are no longer needed");
      return;
    }
  } while (std::chrono::steady_clock::now() < until);
  r->stepping = true;
  core.after(0, [r, &core] { step(r, core); });
}

} // namespace

std::function<bool(actors::cluster_core&, const std::string&, const std::vector<std::string>&,
                   actors::cluster_op_reply&)>
cluster_rotate_op(std::string key_file, std::string salt_file,
                  std::shared_ptr<audit_forwarder> audit) {
  auto r = std::make_shared<rotation>();
  r->key_file = std::move(key_file);
  r->salt_file = std::move(salt_file);
  r->audit = std::move(audit);
  return [r](actors::cluster_core& core, const std::string& op, const std::vector<std::string>&,
             actors::cluster_op_reply& rep) {
    if (op != "rotate-key" && op != "rotate-status")
      return false;
    if (r->key_file.empty()) {
      rep.error = "encryption at rest is off on this node (start it with "
                  "kura.security.encryption-key-file)";
      return true;
    }
    auto* ts = store_of(core);
    if (!ts) {
      rep.error = "this node has no cluster store to re-seal";
      return true;
    }
    bool with_l4 = ts->l4() != nullptr;
    if (op == "rotate-key") {
      // the key file is read once here: a bad one changes nothing
      auto kr = crypto::keyring::load(r->key_file, r->salt_file);
      if (!kr) {
        rep.error = "cannot rotate: " + kr.err().to_string();
        r->note("ERROR cannot rotate: " + kr.err().to_string());
        return true;
      }
      uint32_t active = (*kr)->active();
      if (auto st = ts->rotate_keys(std::move(*kr)); !st) {
        rep.error = "cannot rotate: " + st.message();
        r->note("ERROR cannot rotate: " + st.message());
        return true;
      }
      r->started = true;
      r->running = true;
      r->ok = true;
      r->error.clear();
      r->active = active;
      r->progress = {};
      r->note("STARTED new data sealed with key " + std::to_string(active) + "; re-sealing L3" +
              (with_l4 ? " and L4" : ""));
      if (!r->stepping) {
        r->stepping = true;
        core.after(0, [r, &core] { step(r, core); });
      }
    } else if (!r->started) {
      rep.error = "no key rotation has run on this node since it started";
      return true;
    }
    rep.note = encode_message(msg_rotate_report, report_of(*r, with_l4));
    return true;
  };
}

} // namespace kura::node
