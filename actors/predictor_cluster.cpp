#include "actors/predictor_cluster.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <chrono>

namespace kura::actors {

namespace {

using pw_tick_atom = caf::atom_constant<caf::atom("pw_tick")>;

/// Shipments to the predictor: as often as the store broker's tick (the
/// default kura.expiry.sweep-interval).
constexpr uint64_t ship_ms = 100;
/// The ring must not have changed for this long before the first shipment.
constexpr uint64_t settle_ms = 1000;
/// L3's size is read under the tiers' lock, which the store's worker holds
/// while it commits (an fdatasync): at most once per predictor cycle (the
/// storage alert's period), and not more often than this.
constexpr uint64_t min_storage_ms = 1000;

struct prewarm_broker_state {
  std::shared_ptr<cluster_core> core;
  gossip::tier_store* store = nullptr;
  std::shared_ptr<model_keys> mk;
  std::unique_ptr<cluster_tap> tap;
  caf::actor predictor;
  uint64_t memory_bytes = 0;
  const kura::clock* clk = nullptr;
  // the ring must settle before the first shipment
  bool settled = false;
  std::vector<gossip::node_id> ring_seen;
  uint64_t ring_since_ms = 0;
  // L3's size, read once a second
  uint64_t storage_bytes = 0, storage_budget = 0, next_storage_ms = 0;
  uint64_t storage_ms = min_storage_ms; ///< the predictor's cycle
  static inline const char* name = "kura.cluster_prewarm";

  /// Whether this node replicates `key` (owner or replica) in its ring now.
  bool here(std::string_view key) const {
    auto ids = core->replica_ids(key);
    return std::find(ids.begin(), ids.end(), core->self_id()) != ids.end();
  }
  std::string name_of(std::string&& key) const { return mk ? mk->hash(key) : std::move(key); }

  /// Joined, and the ring unchanged for settle_ms (a restarted node first
  /// sees itself alone, then the members its seed tells it of).
  bool ring_settled(uint64_t now) {
    if (settled)
      return true;
    const gossip::node* n = core->core();
    if (!n || !n->members().joined())
      return false;
    auto members = core->ring_members();
    if (members != ring_seen) {
      ring_seen = std::move(members);
      ring_since_ms = now;
      return false;
    }
    settled = now >= ring_since_ms + settle_ms;
    return settled;
  }

  void ship(uint64_t now) {
    if (!predictor || !ring_settled(now))
      return; // events wait in the tap (bounded)
    tap_batch b;
    if (!begin_shipment(tap ? &tap->tap() : nullptr, mk, b))
      return;
    b.fig.memory_hits = store->cache_hits();
    b.fig.memory_misses = store->cache_misses();
    b.fig.memory_capacity = memory_bytes;
    if (now >= next_storage_ms) {
      next_storage_ms = now + storage_ms;
      auto h = store->report_holdings(false);
      storage_bytes = h.l3.bytes;
      storage_budget = h.l3.capacity_bytes;
    }
    b.fig.storage_bytes = storage_bytes;
    b.fig.storage_budget = storage_budget;
    if (const gossip::node* n = core->core()) {
      auto& st = n->stats();
      b.fig.sync_failures =
          st.sync_failures_ae + st.sync_failures_replication + st.sync_failures_hint;
    }
    // (no L1/L2 latency probe on a cluster node: the detector gets 0, "not measured")
    caf::anon_send(predictor, std::move(b));
  }
};

using broker_ptr = caf::stateful_actor<prewarm_broker_state, caf::io::broker>*;

caf::behavior prewarm_broker(broker_ptr self, std::shared_ptr<cluster_core> core,
                             gossip::tier_store* store, std::shared_ptr<model_keys> mk,
                             uint64_t memory_bytes, uint64_t cycle_ms, const kura::clock* clk) {
  auto& st = self->state;
  st.storage_ms = std::max(min_storage_ms, cycle_ms);
  st.core = std::move(core);
  st.store = store;
  st.mk = std::move(mk);
  st.memory_bytes = memory_bytes;
  st.clk = clk;
  // The tap lives in this state: the store forgets it before it goes (on the
  // multiplexer thread, like every use of the store).
  self->attach_functor([store](const caf::error&) { store->set_tap(nullptr); });
  self->set_default_handler(caf::drop);
  self->send(self, pw_tick_atom::value);
  return {
      [self](pw_tick_atom) {
        self->state.ship(self->state.clk->now_ms());
        self->delayed_send(self, std::chrono::milliseconds(ship_ms), pw_tick_atom::value);
      },
      [self](predictor_attach_atom, caf::actor pred, uint32_t one_in, uint32_t max_rate, bool) {
        auto& s = self->state;
        tap_config tc;
        tc.sample_one_in = one_in;
        tc.max_events_per_second = max_rate;
        // (follow_writes is for adjust-ttl and tier-choice, which a cluster
        // node refuses at start: node/main.cpp)
        s.tap = std::make_unique<cluster_tap>(tc);
        s.store->set_tap(s.tap.get());
        s.predictor = std::move(pred);
        caf::anon_send(s.predictor, tap_counter_atom::value, s.tap->tap().in_flight());
      },
      [self](prewarm_where_atom, std::vector<std::string>& names)
          -> caf::result<std::vector<std::string>, std::vector<std::string>> {
        auto& s = self->state;
        std::vector<std::string> resident, away;
        auto keys = names;
        unhash_keys(s.mk, keys, nullptr);
        if (s.mk) { // names and keys no longer line up: name the keys again
          names.clear();
          for (auto& k : keys)
            names.push_back(s.mk->hash(k));
        }
        for (size_t i = 0; i < keys.size(); ++i) {
          if (!s.here(keys[i]))
            away.push_back(std::move(names[i]));
          else if (s.store->cached(keys[i]))
            resident.push_back(std::move(names[i]));
        }
        return {std::move(resident), std::move(away)};
      },
      [self](prewarm_drop_atom, std::vector<std::string>& keys) -> uint64_t {
        auto& s = self->state;
        unhash_keys(s.mk, keys, nullptr);
        uint64_t n = 0;
        for (auto& k : keys)
          n += s.store->drop_cached(k) ? 1 : 0;
        return n;
      },
      [self](prewarm_load_atom, std::vector<std::string>& keys) -> prewarm_loaded {
        auto& s = self->state;
        prewarm_loaded out;
        unhash_keys(s.mk, keys, &out.absent);
        const uint64_t now = s.clk->now_ms();
        using outcome = gossip::tier_store::prewarm_outcome;
        for (auto& k : keys) {
          if (!s.here(k)) { // the ring moved since the plan
            ++out.not_replicated;
            continue;
          }
          uint64_t bytes = 0;
          switch (s.store->prewarm(k, bytes)) {
          case outcome::loaded:
            if (s.tap)
              s.tap->tap().prewarmed(k, now);
            out.keys.push_back(s.name_of(std::move(k)));
            out.bytes.push_back(bytes);
            break;
          case outcome::resident:
            ++out.resident;
            break;
          case outcome::failed:
            out.failed = true;
            break;
          case outcome::absent:
          case outcome::refused: // (too big for memory: as on a single node, not loaded)
            ++out.absent;
            break;
          }
        }
        return out;
      },
  };
}

} // namespace

cluster_predictor_handles spawn_cluster_predictor(caf::actor_system& sys, predictor_settings s,
                                                  std::shared_ptr<cluster_core> core,
                                                  gossip::tier_store& store,
                                                  std::shared_ptr<model_keys> mk,
                                                  uint64_t memory_bytes, const kura::clock& clk,
                                                  predictor_hook hook) {
  cluster_predictor_handles h;
  h.broker = sys.middleman().spawn_broker(prewarm_broker, std::move(core), &store, std::move(mk),
                                          memory_bytes, s.core.interval_ms, &clk);
  s.cluster = true;
  const uint32_t one_in = std::max<uint32_t>(1, s.sample_one_in);
  const uint32_t max_rate = s.max_events_per_second;
  h.predictor = spawn_predictor_actor(sys, std::move(s), h.broker, clk, std::move(hook));
  caf::anon_send(h.broker, predictor_attach_atom::value, h.predictor, one_in, max_rate, false);
  return h;
}

void stop_cluster_predictor(caf::actor_system& sys, const cluster_predictor_handles& h) {
  stop_predictor(sys, h.predictor);
  if (h.broker)
    caf::anon_send_exit(h.broker, caf::exit_reason::user_shutdown);
}

} // namespace kura::actors
