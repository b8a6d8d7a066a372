// The predictor actor: the node's shell around predictor::predictor.
//
//   memory shards ─(predictor_tap, sampled)─▶ store broker tick ─(tap_batch)─▶ predictor actor
//   predictor actor ── every kura.prewarm.interval ──────────────────────────▶ plan
//        plan: (prewarm_resident_atom, shortlist) ─▶ store broker: which keys memory holds
//              make_plan(now, those) ─▶ keys in priority order
//              (prewarm_load_atom, chunk) ─▶ store broker: L3 (← L4) lookup + promote,
//              one chunk at a time, spaced so that loads stay within the byte rate;
//              before them (prewarm_drop_atom, plan.demote) ─▶ store broker: drop
//              those predicted-cold keys from memory (L3 keeps them)
//   ops actor ─(predictor_op_atom, op)─▶ reports for `kura prewarm | predictor | alerts`
//
// The model is a file in the data dir (<data-dir>/predictor.model, see
// predictor/model_file.hpp), loaded at spawn (a bad file is discarded with a
// log line and the predictor starts empty), saved every `save_every` cycles
// and at stop. The first plan runs at once after spawn, so a restarted node
// fills memory with what the model predicts before clients ask.
// Every cycle also feeds the anomaly detector with the store's figures (hit
// ratio, storage against its budget, request rate) and reports to a hook
// (the node's metrics).
// Thread safety: an actor; talk to it with messages.
#pragma once

#include "actors/messages.hpp"
#include "actors/predictor_tap.hpp"
#include "actors/store.hpp"
#include "predictor/predictor.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kura::actors {

using prewarm_resident_atom = caf::atom_constant<caf::atom("pw_resid")>;
/// A cluster node's (prewarm_where_atom, keys) -> (resident, not replicated
/// here): the plan skips the latter (actors/predictor_cluster.hpp).
using prewarm_where_atom = caf::atom_constant<caf::atom("pw_where")>;
using prewarm_load_atom = caf::atom_constant<caf::atom("pw_load")>;
using prewarm_drop_atom = caf::atom_constant<caf::atom("pw_drop")>;
using prewarm_next_atom = caf::atom_constant<caf::atom("pw_next")>;
using predictor_op_atom = caf::atom_constant<caf::atom("pred_op")>;
using predictor_cycle_atom = caf::atom_constant<caf::atom("pred_cyc")>;
using predictor_attach_atom = caf::atom_constant<caf::atom("pred_att")>;
using prewarm_ttl_atom = caf::atom_constant<caf::atom("pw_ttl")>;
using tap_counter_atom = caf::atom_constant<caf::atom("tap_cnt")>;

/// The TTL rules the predictor actor sends the store (kura.prewarm.adjust-ttl;
/// local only: the store and the predictor are in one process).
using ttl_rules_ptr = std::shared_ptr<const predictor::ttl_rules>;

// -- in-node messages -------------------------------------------------------------

/// What the store broker knows that the anomaly detector needs (cumulative).
struct store_figures {
  uint64_t memory_hits = 0;
  uint64_t memory_misses = 0;
  uint64_t storage_bytes = 0;  ///< L3 bytes
  uint64_t storage_budget = 0; ///< L3 budget (0 = unknown)
  uint64_t memory_capacity = 0;
  uint64_t tap_dropped = 0;  ///< events the tap dropped (predictor behind)
  uint64_t ttl_longer = 0;   ///< writes whose TTL the applied rules lengthened
  uint64_t ttl_shorter = 0;  ///< ... shortened
  uint64_t tier_l3_only = 0; ///< new writes the tier choice sent to L3 only
  /// Failed cluster syncs (anti-entropy rounds, replicated writes, hint
  /// hand-offs: kura_cluster_sync_failures_total, all kinds); 0 on a single node.
  uint64_t sync_failures = 0;
  /// Latency of read commands answered from L1 / L2 (keyspace::read_latency):
  /// the buckets of a latency_histogram (bucket b: 2^b..2^(b+1) ns).
  std::vector<uint64_t> l1_latency, l2_latency;
};

/// One shipment from the store broker's tick.
struct tap_batch {
  std::vector<tap_event> events;
  store_figures fig;
};

/// The store's answer to a prewarm chunk.
struct prewarm_loaded {
  std::vector<std::string> keys; ///< loaded into memory
  std::vector<uint64_t> bytes;   ///< per loaded key: key + value bytes
  uint64_t resident = 0;         ///< already in memory (skipped)
  uint64_t absent = 0;           ///< in no tier (deleted or expired since)
  bool failed = false;           ///< the L3 lookup failed
  uint64_t not_replicated = 0;   ///< a cluster node: keys it does not replicate (not loaded)
};

// -- ops reports (msgpack, the `kura` CLI) ------------------------------------------

namespace predictor_ops {
constexpr uint8_t prewarm_plan = 20;   ///< --dry-run: the plan, nothing loaded
constexpr uint8_t prewarm_run = 21;    ///< start a prewarm now (or join the running one)
constexpr uint8_t prewarm_status = 22; ///< the running or last prewarm
constexpr uint8_t report = 23;         ///< `kura predictor`
constexpr uint8_t alerts = 24;         ///< `kura alerts`
} // namespace predictor_ops

constexpr msg_type msg_prewarm_report = static_cast<msg_type>(30);
constexpr msg_type msg_predictor_report = static_cast<msg_type>(31);
constexpr msg_type msg_alerts_report = static_cast<msg_type>(32);

struct prewarm_row {
  std::string key; ///< a key, or a pattern when is_pattern
  std::string pattern;
  double confidence = 0;
  uint64_t bytes = 0;
  bool is_pattern = false;
  MSGPACK_DEFINE(key, pattern, confidence, bytes, is_pattern);
};

/// A prewarm run (progress while running, the summary when done) or, for
/// --dry-run, the plan.
struct prewarm_report {
  uint64_t run = 0; ///< run number since start (0 = none yet)
  bool running = false;
  bool dry_run = false;
  std::string trigger; ///< "start", "cycle", "cli" or "plan"
  std::string error;   ///< non-empty: the predictor is off or the run failed
  uint64_t at_ms = 0;
  uint64_t horizon_ms = 0;
  uint64_t keys_total = 0; ///< keys in the plan
  uint64_t keys_done = 0;  ///< keys handled (loaded, resident or absent)
  uint64_t loaded = 0;
  uint64_t bytes_planned = 0;
  uint64_t bytes_loaded = 0;
  uint64_t resident = 0;
  uint64_t absent = 0;
  uint64_t candidates = 0;
  uint64_t held_back = 0;
  uint64_t elapsed_ms = 0;
  uint64_t dropped = 0;           ///< predicted-cold keys dropped from memory for the loads
  uint64_t rate_limit = 0;        ///< bytes/s
  std::vector<prewarm_row> items; ///< the plan (first 1000)
  /// A cluster node: shortlisted keys the plan skipped, this node does not
  /// replicate them (memory_view::here).
  uint64_t not_replicated = 0;
  MSGPACK_DEFINE(run, running, dry_run, trigger, error, at_ms, horizon_ms, keys_total, keys_done,
                 loaded, bytes_planned, bytes_loaded, resident, absent, candidates, held_back,
                 elapsed_ms, rate_limit, items, dropped, not_replicated);
};

/// What `kura predictor` shows.
struct predictor_report {
  bool enabled = false;
  std::string error;
  uint64_t events = 0; ///< sampled reads learned from
  uint64_t writes = 0;
  uint64_t sample_one_in = 0;
  uint64_t dropped = 0;
  uint64_t tracked_keys = 0;
  uint64_t patterns = 0;
  uint64_t model_bytes = 0;
  uint64_t model_budget = 0;
  uint64_t plans = 0;
  uint64_t prewarm_runs = 0;
  uint64_t prewarm_loads = 0; ///< keys prewarmed
  uint64_t prewarm_bytes = 0; ///< bytes loaded
  uint64_t prewarm_hits = 0;  ///< prewarmed keys whose first read memory served
  uint64_t prewarm_lost = 0;  ///< prewarmed keys evicted before their first read
  double precision = 0;       ///< prewarm_hits / prewarm_loads
  uint64_t cold_dropped = 0;  ///< predicted-cold keys dropped from memory to make room
  uint64_t ttl_longer = 0;    ///< writes whose TTL kura.prewarm.adjust-ttl lengthened
  uint64_t ttl_shorter = 0;   ///< ... shortened
  bool adjust_ttl = false;    ///< kura.prewarm.adjust-ttl
  /// The TTL rules in force (adjust-ttl) or suggested (off): "pattern x2
  /// (reason)" / "pattern /2 (reason)".
  std::vector<std::string> ttl_rules;
  bool tier_choice = false;  ///< kura.prewarm.tier-choice
  uint64_t tier_l3_only = 0; ///< new writes it sent to L3 only (not memory)
  /// Patterns whose new writes go to L3 only (tier-choice on) or would (off).
  std::vector<std::string> tier_rules;
  uint64_t horizon_ms = 0;
  uint64_t interval_ms = 0;
  double min_confidence = 0;
  std::string model_path;
  std::string model_status; ///< how the model was loaded at start
  uint64_t last_plan_ms = 0;
  uint64_t last_save_ms = 0;
  std::vector<uint64_t> alerts_active; ///< by alert kind (predictor::alert_kind order)
  std::vector<uint64_t> alerts_raised;
  bool cluster = false;        ///< a cluster node: plans only the keys it replicates
  uint64_t not_replicated = 0; ///< keys the plans skipped since start: not replicated here
  uint64_t sync_failures = 0;  ///< failed cluster syncs since start (the sync alert's input)
  MSGPACK_DEFINE(enabled, error, events, writes, sample_one_in, dropped, tracked_keys, patterns,
                 model_bytes, model_budget, plans, prewarm_runs, prewarm_loads, prewarm_bytes,
                 prewarm_hits, prewarm_lost, precision, ttl_longer, ttl_shorter, horizon_ms,
                 interval_ms, min_confidence, model_path, model_status, last_plan_ms, last_save_ms,
                 alerts_active, alerts_raised, cold_dropped, adjust_ttl, ttl_rules, tier_choice,
                 tier_l3_only, tier_rules, cluster, not_replicated, sync_failures);
};

struct alert_row {
  std::string kind;
  std::string severity;
  std::string reason;
  uint64_t start_ms = 0;
  uint64_t end_ms = 0; ///< 0 while active
  double value = 0;
  double threshold = 0;
  MSGPACK_DEFINE(kind, severity, reason, start_ms, end_ms, value, threshold);
};

struct alerts_report {
  std::string error;
  std::vector<alert_row> active;
  std::vector<alert_row> recent; ///< ended, newest first (at most 50)
  MSGPACK_DEFINE(error, active, recent);
};

// -- CAF inspection (in-node messages) ------------------------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tap_event& x) {
  return f(caf::meta::type_name("kura.tap_event"), x.key, x.time_ms, x.arg, x.size, x.weight,
           x.kind, x.tier);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, store_figures& x) {
  return f(caf::meta::type_name("kura.store_figures"), x.memory_hits, x.memory_misses,
           x.storage_bytes, x.storage_budget, x.memory_capacity, x.tap_dropped, x.ttl_longer,
           x.ttl_shorter, x.tier_l3_only, x.sync_failures, x.l1_latency, x.l2_latency);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tap_batch& x) {
  return f(caf::meta::type_name("kura.tap_batch"), x.events, x.fig);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, prewarm_loaded& x) {
  return f(caf::meta::type_name("kura.prewarm_loaded"), x.keys, x.bytes, x.resident, x.absent,
           x.failed, x.not_replicated);
}

// -- the store broker's side (multiplexer thread) -----------------------------------

/// Installs the tap in the store's keyspace; batches go to `predictor`.
/// `follow_writes`: tap_config::follow_writes.
void attach_predictor(store_core& c, caf::actor predictor, uint32_t sample_one_in,
                      uint32_t max_events_per_second, bool follow_writes);
/// Sends the tap's events and the store's figures to the predictor (the tick).
void ship_tap(store_core& c);
/// The first half of a tick's shipment: unless the predictor is behind
/// (predictor_tap::max_in_flight batches not learned yet: false, the events
/// wait in the tap), moves the tap's events into `b` (keys hashed with `mk`
/// when set) with its drop count. The caller adds its figures and sends `b`.
bool begin_shipment(predictor_tap* tap, const std::shared_ptr<model_keys>& mk, tap_batch& b);
/// Installs the predictor's write rules (TTL, tier) in the store's keyspace.
void set_ttl_rules(store_core& c, ttl_rules_ptr rules);
/// The keys of `keys` that memory holds.
std::vector<std::string> resident_keys(store_core& c, std::vector<std::string>& keys);
/// Drops from memory the keys of `keys` (a plan's predicted-cold residents)
/// that L3 holds: memory only, like an eviction (every write reaches L3
/// through the write-behind queue, which a later lookup flushes first).
/// Returns how many memory held.
uint64_t prewarm_drop(store_core& c, std::vector<std::string>& keys);
/// Splits a prewarm chunk: resident and absent keys are counted in `out`, the
/// rest (to look up in L3) returned.
std::vector<std::string> prewarm_split(store_core& c, std::vector<std::string>& keys,
                                       prewarm_loaded& out);
/// Promotes what L3 (and L4) answered, marks the keys that landed in memory
/// as prewarmed and lists them in `out`.
void prewarm_promote(store_core& c, staged_entries& staged, uint64_t seq, prewarm_loaded& out);

/// Loads `keys` into memory through the normal promotion (L3, which asks L4
/// for what it lacks), like a client read's lookup.
template <class Self>
caf::result<prewarm_loaded> prewarm_load(Self* self, std::shared_ptr<store_core> core,
                                         std::vector<std::string> keys) {
  prewarm_loaded out;
  auto ask = prewarm_split(*core, keys, out);
  if (ask.empty())
    return out;
  auto rp = self->template make_response_promise<prewarm_loaded>();
  lookup_l3(self, *core, std::move(ask),
            [core, rp, out](staged_entries& staged, uint64_t seq, lookup_outcome o) mutable {
              if (o == lookup_outcome::ok)
                prewarm_promote(*core, staged, seq, out);
              else
                out.failed = o == lookup_outcome::failed;
              rp.deliver(std::move(out));
            });
  return rp;
}

// -- spawning ----------------------------------------------------------------------

struct predictor_settings {
  predictor::predictor_config core;
  std::string model_path;      ///< "" = the model is not kept
  int64_t clock_offset_ms = 0; ///< added to the clock (replays and tests)
  uint32_t save_every = 10;    ///< cycles between model saves
  size_t chunk_keys = 256;     ///< keys per load request to the store
  uint32_t sample_one_in = 8;  ///< the tap samples 1 in N reads and writes
  /// ... and at most this many per second (sparser above; 0 = no cap):
  /// tap_config::max_events_per_second
  uint32_t max_events_per_second = 2500;
  /// Nice value of the actor's thread (kura.prewarm.thread-nice): 19 makes
  /// learning and planning background work that takes spare CPU, not the
  /// serving threads' (RocksDB lowers its compaction threads' priority the
  /// same way). 0 = unchanged (the default until measured: bench/RESULTS.md,
  /// "Predictor, tenth pass").
  int thread_nice = 0;
  /// The "store" is a cluster node's prewarm broker (actors/predictor_cluster.hpp):
  /// the plan asks it which keys this node replicates (prewarm_where_atom)
  /// and skips the others.
  bool cluster = false;
};

/// Called after every cycle with the predictor's figures (the node's metrics).
using predictor_hook = std::function<void(const predictor_report&)>;

/// Spawns the predictor actor (detached: it reads and writes the model file)
/// and connects the store to it: the store gets a tap (core->tap) and ships
/// its batches to the actor. Loads the model, then runs the first plan.
caf::actor spawn_predictor(caf::actor_system& sys, predictor_settings s, const store_handles& store,
                           const kura::clock& clk, predictor_hook hook = {});

/// The predictor actor alone, addressing `store` (the store broker, or a
/// cluster node's prewarm broker) with the prewarm_* atoms; the caller
/// attaches the tap (predictor_attach_atom to `store`).
caf::actor spawn_predictor_actor(caf::actor_system& sys, predictor_settings s, caf::actor store,
                                 const kura::clock& clk, predictor_hook hook);

/// With kura.security.hash-keys-in-models (`mk` set) the predictor names
/// keys by their hashes: turns `keys` into the keys they stand for (a hash
/// no longer remembered is dropped, counted in `forgotten`). No-op without `mk`.
void unhash_keys(const std::shared_ptr<model_keys>& mk, std::vector<std::string>& keys,
                 uint64_t* forgotten);

/// Saves the model and stops the actor (call from a non-actor thread, before
/// stop_store).
void stop_predictor(caf::actor_system& sys, const caf::actor& predictor);

/// Serves a predictor_ops::* request in the ops actor: asks `predictor` and
/// delivers the encoded report; false when `op` is not a predictor op. An
/// invalid `predictor` (prewarm off) answers with an error saying so.
bool handle_predictor_op(caf::event_based_actor* self, const caf::actor& predictor, uint8_t op,
                         caf::typed_response_promise<std::string> rp);

} // namespace kura::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kura::actors::ttl_rules_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kura::actors::predictor_tap::counter)
