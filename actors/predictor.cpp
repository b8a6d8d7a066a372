#include "actors/predictor.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <iostream>
#include <memory>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <unordered_set>

namespace kura::actors {

namespace pred = kura::predictor;

namespace {

/// Memory as the plan sees it: the shortlisted keys the store said it holds.
/// On a cluster node also the shortlisted keys it does not replicate.
struct resident_view final : pred::memory_view {
  std::unordered_set<std::string> keys;
  std::unordered_set<std::string> elsewhere;
  uint64_t capacity = 0;
  bool resident(std::string_view key) const override { return keys.count(std::string(key)) > 0; }
  uint64_t capacity_bytes() const override { return capacity; }
  bool here(std::string_view key) const override {
    return elsewhere.empty() || elsewhere.count(std::string(key)) == 0;
  }
};

struct predictor_state {
  std::unique_ptr<pred::predictor> core;
  std::unique_ptr<pred::file_model_store> store_file;
  predictor_settings cfg;
  caf::actor store;
  const kura::clock* clk = nullptr;
  predictor_hook hook;
  std::string model_status = "new";
  uint64_t cycles = 0;
  uint64_t last_save_ms = 0;
  uint64_t last_plan_ms = 0;
  uint64_t lost = 0;
  uint64_t runs = 0;
  uint64_t dropped = 0;
  uint64_t sample_one_in = 1;
  /// The store's count of batches shipped and not learned yet (predictor_tap::in_flight).
  predictor_tap::counter tap_in_flight;
  /// The model was loaded from the file: the first plan refills an empty
  /// memory for the whole horizon (predictor::make_plan's `restart`).
  bool restart_plan = false;
  uint64_t cold_dropped = 0;
  uint64_t not_replicated = 0; ///< keys the plans skipped (a cluster node)
  /// The TTL rules last sent to the store (adjust-ttl) or suggested.
  pred::ttl_rules::rule_map ttl_in_force;
  /// The tier rules last sent (tier-choice) or suggested: patterns to L3 only.
  pred::ttl_rules::pattern_set tier_in_force;
  // anomaly inputs: figures at the last cycle and now
  store_figures fig, fig_at_cycle;
  bool have_fig = false;
  uint64_t last_cycle_ms = 0;
  // the prewarm run
  prewarm_report run;
  std::vector<pred::plan_item> items;
  size_t next = 0;
  uint64_t run_start_ms = 0;
  static inline const char* name = "kura.predictor";

  uint64_t now() const {
    auto t = static_cast<int64_t>(clk->now_ms()) + cfg.clock_offset_ms;
    return t > 0 ? static_cast<uint64_t>(t) : 1;
  }

  void save() {
    if (!store_file)
      return;
    auto st = core->save(*store_file);
    if (!st.ok())
      std::cerr << "kura-node: predictor: cannot save the model to " << store_file->path() << ": "
                << st.message() << std::endl;
    else
      last_save_ms = now();
  }

  predictor_report report() const {
    predictor_report r;
    r.enabled = true;
    auto s = core->stats();
    r.events = s.events;
    r.writes = s.writes;
    r.sample_one_in = sample_one_in;
    r.dropped = dropped;
    r.tracked_keys = s.tracked_keys;
    r.patterns = s.patterns;
    r.model_bytes = core->bytes();
    r.model_budget = cfg.core.memory_bytes;
    r.plans = s.plans;
    r.prewarm_runs = runs;
    r.prewarm_loads = s.prewarm_loads;
    r.prewarm_bytes = s.prewarm_bytes;
    r.prewarm_hits = s.prewarm_hits;
    r.prewarm_lost = lost;
    r.precision = s.precision();
    r.cold_dropped = cold_dropped;
    r.ttl_longer = fig.ttl_longer;
    r.ttl_shorter = fig.ttl_shorter;
    r.adjust_ttl = cfg.core.adjust_ttl;
    for (const auto& [pattern, dir] : ttl_in_force)
      r.ttl_rules.push_back(
          pattern + (dir > 0 ? " x2 (re-read after expiry)" : " /2 (never read before expiry)"));
    std::sort(r.ttl_rules.begin(), r.ttl_rules.end());
    r.tier_choice = cfg.core.tier_choice;
    r.tier_l3_only = fig.tier_l3_only;
    for (const auto& pattern : tier_in_force)
      r.tier_rules.push_back(pattern + " -> L3 only (written, never read)");
    std::sort(r.tier_rules.begin(), r.tier_rules.end());
    r.horizon_ms = core->effective_horizon_ms();
    r.interval_ms = cfg.core.interval_ms;
    r.min_confidence = cfg.core.min_confidence;
    r.model_path = store_file ? store_file->path() : std::string{};
    r.model_status = model_status;
    r.last_plan_ms = last_plan_ms;
    r.last_save_ms = last_save_ms;
    r.alerts_active.assign(pred::alert_kinds, 0);
    for (auto& a : core->anomalies().active())
      ++r.alerts_active[static_cast<size_t>(a.kind)];
    auto& raised = core->anomalies().raised();
    r.alerts_raised.assign(raised.begin(), raised.end());
    r.cluster = cfg.cluster;
    r.not_replicated = not_replicated;
    r.sync_failures = fig.sync_failures;
    return r;
  }

  alerts_report alerts() const {
    auto row = [](const pred::alert& a) {
      alert_row r;
      r.kind = pred::to_string(a.kind);
      r.severity = pred::to_string(a.level);
      r.reason = a.reason;
      r.start_ms = a.start_ms;
      r.end_ms = a.end_ms;
      r.value = a.value;
      r.threshold = a.threshold;
      return r;
    };
    alerts_report out;
    for (auto& a : core->anomalies().active())
      out.active.push_back(row(a));
    auto& hist = core->anomalies().recent();
    for (auto it = hist.rbegin(); it != hist.rend() && out.recent.size() < 50; ++it)
      out.recent.push_back(row(*it));
    return out;
  }

  void learn(tap_batch& b) {
    for (auto& e : b.events) {
      const uint64_t t = static_cast<uint64_t>(
          std::max<int64_t>(1, static_cast<int64_t>(e.time_ms) + cfg.clock_offset_ms));
      switch (e.kind) {
      case tap_event::read: {
        pred::access_event ev;
        ev.key = e.key;
        ev.time_ms = t;
        ev.tier = static_cast<pred::access_tier>(std::min<uint8_t>(e.tier, 4));
        ev.size = e.size;
        ev.weight = e.weight;
        sample_one_in = e.weight; // the tap's pacing may have made it sparser
        core->record(ev);
        break;
      }
      case tap_event::write:
        core->record_write(e.key, t, e.arg, e.size, e.weight);
        sample_one_in = e.weight;
        break;
      case tap_event::write_read:
        core->record_write_read(e.key, t);
        break;
      case tap_event::prewarm_read:
        if (e.tier == 0)
          ++lost;
        core->on_load_read(e.key, e.arg, e.tier != 0);
        break;
      default:
        break;
      }
    }
    fig = b.fig;
    dropped = b.fig.tap_dropped;
    if (tap_in_flight && tap_in_flight->load(std::memory_order_relaxed) > 0)
      tap_in_flight->fetch_sub(1, std::memory_order_relaxed);
    if (!have_fig) {
      fig_at_cycle = fig;
      have_fig = true;
    }
  }

  /// The 99th percentile (ms) of the commands counted in the cumulative
  /// latency buckets `now` but not in `before` (bucket b holds 2^b..2^(b+1)
  /// ns; linear within the bucket); 0 = none in the cycle (not measured).
  static double cycle_p99_ms(const std::vector<uint64_t>& now,
                             const std::vector<uint64_t>& before) {
    auto delta = [&](size_t b) {
      uint64_t was = b < before.size() && before.size() == now.size() ? before[b] : 0;
      return now[b] >= was ? now[b] - was : now[b];
    };
    uint64_t total = 0;
    for (size_t b = 0; b < now.size(); ++b)
      total += delta(b);
    if (total == 0)
      return 0;
    const double target = 0.99 * static_cast<double>(total);
    double seen = 0;
    for (size_t b = 0; b < now.size(); ++b) {
      auto n = static_cast<double>(delta(b));
      if (n == 0 || seen + n < target) {
        seen += n;
        continue;
      }
      double lo = b == 0 ? 0 : std::ldexp(1.0, static_cast<int>(b));
      double hi = std::ldexp(1.0, static_cast<int>(b) + 1);
      return (lo + (hi - lo) * (target - seen) / n) / 1e6;
    }
    return std::ldexp(1.0, static_cast<int>(now.size())) / 1e6;
  }

  /// One cycle's anomaly observation from the figures since the last cycle.
  void observe(uint64_t t) {
    if (!have_fig)
      return;
    pred::observation o;
    o.now_ms = t;
    o.cycle_ms = last_cycle_ms && t > last_cycle_ms ? t - last_cycle_ms : cfg.core.interval_ms;
    auto d = [](uint64_t a, uint64_t b) { return a >= b ? a - b : a; }; // FLUSHALL resets
    o.memory_hits = d(fig.memory_hits, fig_at_cycle.memory_hits);
    o.requests = o.memory_hits + d(fig.memory_misses, fig_at_cycle.memory_misses);
    o.storage_bytes = fig.storage_bytes;
    o.storage_budget = fig.storage_budget;
    o.sync_failures = d(fig.sync_failures, fig_at_cycle.sync_failures);
    o.l1_latency_ms = cycle_p99_ms(fig.l1_latency, fig_at_cycle.l1_latency);
    o.l2_latency_ms = cycle_p99_ms(fig.l2_latency, fig_at_cycle.l2_latency);
    for (auto& a : core->observe(o))
      std::cerr << "kura-node: alert " << pred::to_string(a.kind) << " ("
                << pred::to_string(a.level) << "): " << a.reason << std::endl;
    fig_at_cycle = fig;
    last_cycle_ms = t;
  }
};

using pred_self = caf::stateful_actor<predictor_state>*;

void load_next(pred_self self);

/// Sends the store the TTL rules when they changed (kura.prewarm.adjust-ttl;
/// without it they are only reported as suggestions).
void push_ttl_rules(pred_self self) {
  auto& st = self->state;
  const auto& c = st.cfg.core;
  // (the core lists tier rules only with tier_choice; a suggestion without it)
  pred::ttl_rules all = st.core->applied_ttl_rules();
  if (all.rules() == st.ttl_in_force && all.l3_only_patterns() == st.tier_in_force)
    return;
  st.ttl_in_force = all.rules();
  st.tier_in_force = all.l3_only_patterns();
  if (!c.adjust_ttl && !c.tier_choice)
    return;
  if (c.adjust_ttl)
    for (const auto& [pattern, dir] : st.ttl_in_force)
      std::cerr << "kura-node: predictor: TTLs of " << pattern << " "
                << (dir > 0 ? "doubled (re-read after expiry)"
                            : "halved (never read before expiry)")
                << std::endl;
  for (const auto& pattern : st.tier_in_force)
    std::cerr << "kura-node: predictor: new writes of " << pattern
              << " go to L3 only (written, never read)" << std::endl;
  auto rules = std::make_shared<const pred::ttl_rules>(!c.tier_choice  ? all.ttls_only()
                                                       : !c.adjust_ttl ? all.tiers_only()
                                                                       : std::move(all));
  self->send(st.store, prewarm_ttl_atom::value, ttl_rules_ptr(std::move(rules)));
}

void finish_run(pred_self self) {
  auto& st = self->state;
  st.run.running = false;
  st.run.elapsed_ms = st.clk->now_ms() - st.run_start_ms;
  st.items.clear();
  st.next = 0;
  if (st.run.loaded > 0 || st.run.trigger == "cli" || st.run.trigger == "start")
    std::cerr << "kura-node: prewarm " << st.run.run << " (" << st.run.trigger
              << "): " << st.run.loaded << " keys, " << st.run.bytes_loaded << " bytes loaded, "
              << st.run.resident << " already in memory, " << st.run.absent << " gone"
              << (st.run.error.empty() ? std::string{} : ", " + st.run.error) << std::endl;
  if (st.hook)
    st.hook(st.report());
}

/// Makes the plan from what the store said (`resident`: the shortlisted
/// keys memory holds; `away`: those a cluster node does not replicate) and
/// starts loading it.
void plan_run(pred_self self, bool restart, std::vector<std::string>& resident,
              std::vector<std::string>& away) {
  auto& s = self->state;
  resident_view view;
  view.capacity = s.fig.memory_capacity;
  view.keys.insert(std::make_move_iterator(resident.begin()),
                   std::make_move_iterator(resident.end()));
  view.elsewhere.insert(std::make_move_iterator(away.begin()), std::make_move_iterator(away.end()));
  auto t2 = s.now();
  auto plan = s.core->make_plan(t2, view, restart);
  s.last_plan_ms = t2;
  s.run.horizon_ms = plan.horizon_ms;
  s.run.keys_total = plan.items.size();
  s.run.bytes_planned = plan.bytes;
  s.run.candidates = plan.candidates;
  s.run.held_back = plan.held_back;
  s.run.not_replicated = plan.elsewhere;
  s.not_replicated += plan.elsewhere;
  for (size_t i = 0; i < plan.items.size() && i < 1000; ++i) {
    auto& it = plan.items[i];
    s.run.items.push_back(prewarm_row{it.key, it.pattern, it.confidence, it.bytes, it.is_pattern});
  }
  s.items = std::move(plan.items);
  s.next = 0;
  if (!plan.demote.empty()) {
    // room for the loads: sent before them (one sender: the store drops
    // before it loads)
    const auto run = s.run.run;
    self->request(s.store, std::chrono::seconds(30), prewarm_drop_atom::value,
                  std::move(plan.demote))
        .then(
            [self, run](uint64_t n) {
              self->state.cold_dropped += n;
              if (self->state.run.run == run)
                self->state.run.dropped += n;
            },
            [](caf::error&) {}); // the loads report a store that does not answer
  }
  load_next(self);
}

/// Starts a prewarm run (unless one is running): asks the store which
/// shortlisted keys memory holds, makes the plan, loads it chunk by chunk.
void start_run(pred_self self, const std::string& trigger) {
  auto& st = self->state;
  if (st.run.running)
    return;
  auto t = st.now();
  st.core->tick(t);
  st.run = prewarm_report{};
  st.run.run = ++st.runs;
  st.run.running = true;
  st.run.trigger = trigger;
  st.run.at_ms = t;
  st.run.rate_limit = st.cfg.core.max_load_bytes_per_second;
  st.run_start_ms = st.clk->now_ms();
  std::vector<std::string> shortlist = st.core->shortlist(t);
  const bool restart = st.restart_plan && trigger == "start";
  st.restart_plan = false;
  auto failed = [self](caf::error& err) {
    self->state.run.error = "the store did not answer: " + self->system().render(err);
    finish_run(self);
  };
  if (st.cfg.cluster) {
    self->request(st.store, std::chrono::seconds(30), prewarm_where_atom::value,
                  std::move(shortlist))
        .then(
            [self, restart](std::vector<std::string>& resident, std::vector<std::string>& away) {
              plan_run(self, restart, resident, away);
            },
            failed);
    return;
  }
  self->request(st.store, std::chrono::seconds(30), prewarm_resident_atom::value,
                std::move(shortlist))
      .then(
          [self, restart](std::vector<std::string>& resident) {
            std::vector<std::string> none;
            plan_run(self, restart, resident, none);
          },
          failed);
}

void load_next(pred_self self) {
  auto& st = self->state;
  if (st.next >= st.items.size())
    return finish_run(self);
  // A chunk of at most chunk_keys keys and about a quarter second of the rate.
  const uint64_t rate = std::max<uint64_t>(1, st.cfg.core.max_load_bytes_per_second);
  const uint64_t chunk_bytes = std::max<uint64_t>(1, rate / 4);
  std::vector<std::string> keys;
  uint64_t planned = 0;
  while (st.next < st.items.size() && keys.size() < st.cfg.chunk_keys &&
         (keys.empty() || planned + st.items[st.next].bytes <= chunk_bytes)) {
    planned += st.items[st.next].bytes;
    keys.push_back(st.items[st.next].key);
    ++st.next;
  }
  const auto run = st.run.run;
  const size_t n = keys.size();
  self->request(st.store, std::chrono::seconds(60), prewarm_load_atom::value, std::move(keys))
      .then(
          [self, run, n, rate](prewarm_loaded& r) {
            auto& s = self->state;
            if (s.run.run != run)
              return;
            auto t = s.now();
            uint64_t bytes = 0;
            for (size_t i = 0; i < r.keys.size(); ++i) {
              const uint64_t b = i < r.bytes.size() ? r.bytes[i] : 0;
              s.core->on_loaded(r.keys[i], b, t);
              bytes += b;
            }
            s.run.keys_done += n;
            s.run.loaded += r.keys.size();
            s.run.bytes_loaded += bytes;
            s.run.resident += r.resident;
            s.run.absent += r.absent;
            s.run.not_replicated += r.not_replicated; // the ring moved since the plan
            s.not_replicated += r.not_replicated;
            if (r.failed)
              s.run.error = "an L3 lookup failed";
            // the rate limit: the next chunk after this one's bytes at `rate`
            auto wait_ms = bytes * 1000 / rate;
            if (wait_ms == 0)
              load_next(self);
            else
              self->delayed_send(self, std::chrono::milliseconds(wait_ms), prewarm_next_atom::value,
                                 run);
          },
          [self, run](caf::error& err) {
            auto& s = self->state;
            if (s.run.run != run)
              return;
            s.run.error = "the store did not answer: " + self->system().render(err);
            finish_run(self);
          });
}

caf::behavior predictor_actor(pred_self self, predictor_settings cfg, caf::actor store,
                              const kura::clock* clk, predictor_hook hook) {
  auto& st = self->state;
  st.cfg = cfg;
  st.store = std::move(store);
  st.clk = clk;
  st.hook = std::move(hook);
  st.sample_one_in = std::max<uint32_t>(1, cfg.sample_one_in);
  // (the actor is detached: this runs on its own thread; named, so that its
  // CPU time can be told apart in /proc/PID/task, bench/predictor/learn-cost)
  ::pthread_setname_np(::pthread_self(), "kura.predictor");
  if (cfg.thread_nice != 0 &&
      ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), cfg.thread_nice) != 0)
    std::cerr << "kura-node: predictor: cannot lower its thread's priority: "
              << std::strerror(errno) << std::endl;
  st.core = std::make_unique<pred::predictor>(cfg.core);
  if (!cfg.model_path.empty()) {
    st.store_file = std::make_unique<pred::file_model_store>(cfg.model_path);
    auto loaded = st.core->load(*st.store_file);
    if (!loaded.ok()) {
      std::cerr << "kura-node: predictor: model " << cfg.model_path
                << " discarded, starting empty: " << loaded.message() << std::endl;
      st.model_status = "discarded: " + loaded.message();
    } else {
      auto s = st.core->stats();
      st.model_status = s.tracked_keys || s.patterns ? "loaded" : "new";
      st.restart_plan = s.tracked_keys > 0;
    }
  }
  self->set_default_handler(caf::drop);
  // the first prewarm at once (after the first figures arrive, so the plan
  // knows the memory's size: the store ships them every tick)
  self->send(self, predictor_cycle_atom::value, true);
  return {
      [=](tap_batch& b) { self->state.learn(b); },
      [=](tap_counter_atom, predictor_tap::counter& n) {
        self->state.tap_in_flight = std::move(n);
      },
      [=](predictor_cycle_atom, bool first) {
        auto& s = self->state;
        if (first && !s.have_fig) {
          self->delayed_send(self, std::chrono::milliseconds(50), predictor_cycle_atom::value,
                             true);
          return;
        }
        push_ttl_rules(self);
        if (!first) {
          s.observe(s.now());
          if (++s.cycles % std::max<uint32_t>(1, s.cfg.save_every) == 0)
            s.save();
        }
        start_run(self, first ? "start" : "cycle");
        if (s.hook)
          s.hook(s.report());
        self->delayed_send(self, std::chrono::milliseconds(s.cfg.core.interval_ms),
                           predictor_cycle_atom::value, false);
      },
      [=](prewarm_next_atom, uint64_t run) {
        if (self->state.run.run == run && self->state.run.running)
          load_next(self);
      },
      [=](predictor_op_atom, uint8_t op) -> std::string {
        auto& s = self->state;
        switch (op) {
        case predictor_ops::prewarm_plan: {
          auto t = s.now();
          auto plan = s.core->preview(t, 1000);
          prewarm_report r;
          r.dry_run = true;
          r.trigger = "plan";
          r.at_ms = t;
          r.horizon_ms = plan.horizon_ms;
          r.keys_total = plan.candidates;
          r.bytes_planned = plan.bytes;
          r.candidates = plan.candidates;
          r.rate_limit = s.cfg.core.max_load_bytes_per_second;
          for (auto& it : plan.items)
            r.items.push_back(
                prewarm_row{it.key, it.pattern, it.confidence, it.bytes, it.is_pattern});
          return encode_message(msg_prewarm_report, r);
        }
        case predictor_ops::prewarm_run:
          start_run(self, "cli");
          return encode_message(msg_prewarm_report, s.run);
        case predictor_ops::prewarm_status:
          return encode_message(msg_prewarm_report, s.run);
        case predictor_ops::report:
          return encode_message(msg_predictor_report, s.report());
        case predictor_ops::alerts:
          return encode_message(msg_alerts_report, s.alerts());
        default: {
          kv_reply r;
          r.error = "unknown predictor operation " + std::to_string(op);
          return encode_message(msg_type::kv_reply, r);
        }
        }
      },
      [=](shutdown_atom) -> caf::ok_atom {
        self->state.save();
        return caf::ok_atom::value;
      },
  };
}

} // namespace

void attach_predictor(store_core& c, caf::actor predictor, uint32_t sample_one_in,
                      uint32_t max_events_per_second, bool follow_writes) {
  tap_config tc;
  tc.sample_one_in = sample_one_in;
  tc.max_events_per_second = max_events_per_second;
  tc.follow_writes = follow_writes;
  c.tap = std::make_unique<predictor_tap>(tc);
  c.predictor = std::move(predictor);
  c.ks().set_tap(c.tap.get());
  caf::anon_send(c.predictor, tap_counter_atom::value, c.tap->in_flight());
}

bool begin_shipment(predictor_tap* tap, const std::shared_ptr<model_keys>& mk, tap_batch& b) {
  if (tap) {
    auto& n = *tap->in_flight();
    if (n.load(std::memory_order_relaxed) >= predictor_tap::max_in_flight)
      return false; // the predictor is behind: the events wait in the tap (bounded)
    n.fetch_add(1, std::memory_order_relaxed);
    b.events = tap->take();
    b.fig.tap_dropped = tap->dropped();
  }
  if (mk) // hash-keys-in-models
    for (auto& e : b.events)
      e.key = mk->remember(e.key);
  return true;
}

void ship_tap(store_core& c) {
  tap_batch b;
  if (!begin_shipment(c.tap.get(), c.config().model_key_hashes, b))
    return;
  auto l1 = c.ks().l1_stats(), l2 = c.ks().l2_stats();
  b.fig.memory_hits = l1.hits + l2.hits;
  b.fig.memory_misses = l2.misses; // a read missing L1 and L2 counts in both
  b.fig.memory_capacity = c.ks().config().memory_bytes;
  if (c.has_l3()) {
    auto l3 = c.l3_stats->get().stats;
    b.fig.storage_bytes = l3.bytes;
    b.fig.storage_budget = l3.capacity_bytes;
  }
  b.fig.ttl_longer = c.ks().ttl_longer();
  b.fig.ttl_shorter = c.ks().ttl_shorter();
  b.fig.tier_l3_only = c.ks().tier_l3_only();
  for (bool l2 : {false, true}) {
    const auto& h = c.ks().read_latency(l2);
    (l2 ? b.fig.l2_latency : b.fig.l1_latency).assign(h.counts.begin(), h.counts.end());
  }
  caf::anon_send(c.predictor, std::move(b));
}

void set_ttl_rules(store_core& c, ttl_rules_ptr rules) {
  // hash-keys-in-models: the model's patterns are those of key hashes, which
  // no client key matches; the rules would change nothing
  if (rules && (rules->empty() || c.config().model_key_hashes))
    rules.reset();
  c.ks().set_ttl_rules(std::move(rules));
}

void unhash_keys(const std::shared_ptr<model_keys>& mk, std::vector<std::string>& keys,
                 uint64_t* forgotten) {
  if (!mk)
    return;
  size_t n = 0;
  for (auto& h : keys)
    if (auto* k = mk->key_of(h))
      keys[n++] = *k;
  if (forgotten)
    *forgotten += keys.size() - n;
  keys.resize(n);
}

std::vector<std::string> resident_keys(store_core& c, std::vector<std::string>& keys) {
  unhash_keys(c.config().model_key_hashes, keys, nullptr);
  auto& ks = c.ks();
  auto& mk = c.config().model_key_hashes;
  std::vector<std::string> out;
  for (auto& k : keys)
    if (ks.shard_for(k).locate(k) != memory_region::none)
      out.push_back(mk ? mk->hash(k) : std::move(k));
  return out;
}

uint64_t prewarm_drop(store_core& c, std::vector<std::string>& keys) {
  unhash_keys(c.config().model_key_hashes, keys, nullptr);
  auto& ks = c.ks();
  if (!ks.has_l3())
    return 0;
  uint64_t n = 0;
  for (auto& k : keys) {
    if (!ks.maybe_in_l3(k))
      continue; // memory may hold the only copy: keep it
    auto erased = ks.shard_for(k).erase(k);
    n += erased.ok() && *erased;
  }
  return n;
}

std::vector<std::string> prewarm_split(store_core& c, std::vector<std::string>& keys,
                                       prewarm_loaded& out) {
  unhash_keys(c.config().model_key_hashes, keys, &out.absent);
  auto& ks = c.ks();
  std::vector<std::string> ask;
  for (auto& k : keys) {
    if (ks.shard_for(k).locate(k) != memory_region::none)
      ++out.resident;
    else if (!ks.maybe_in_l3(k))
      ++out.absent;
    else
      ask.push_back(std::move(k));
  }
  return ask;
}

void prewarm_promote(store_core& c, staged_entries& staged, uint64_t seq, prewarm_loaded& out) {
  std::vector<std::pair<std::string, uint64_t>> found;
  for (auto& kv : staged) {
    if (kv.second)
      found.emplace_back(kv.first, kv.first.size() + kv.second->value.size());
    else
      ++out.absent;
  }
  finish_lookup(c, staged, seq);
  auto& ks = c.ks();
  const auto now = ks.clock().now_ms();
  for (auto& [k, bytes] : found) {
    if (ks.shard_for(k).locate(k) == memory_region::none)
      continue; // written meanwhile or not admitted
    if (c.tap)
      c.tap->prewarmed(k, now);
    auto& mk = c.config().model_key_hashes;
    out.keys.push_back(mk ? mk->hash(k) : std::move(k));
    out.bytes.push_back(bytes);
  }
}

caf::actor spawn_predictor_actor(caf::actor_system& sys, predictor_settings s, caf::actor store,
                                 const kura::clock& clk, predictor_hook hook) {
  return sys.spawn<caf::detached>(predictor_actor, std::move(s), std::move(store), &clk,
                                  std::move(hook));
}

caf::actor spawn_predictor(caf::actor_system& sys, predictor_settings s, const store_handles& store,
                           const kura::clock& clk, predictor_hook hook) {
  const uint32_t one_in = std::max<uint32_t>(1, s.sample_one_in);
  const uint32_t max_rate = s.max_events_per_second;
  const bool follow = s.core.tier_choice || s.core.adjust_ttl;
  auto a = spawn_predictor_actor(sys, std::move(s), store.broker, clk, std::move(hook));
  caf::anon_send(store.broker, predictor_attach_atom::value, a, one_in, max_rate, follow);
  return a;
}

void stop_predictor(caf::actor_system& sys, const caf::actor& predictor) {
  if (!predictor)
    return;
  caf::scoped_actor self{sys};
  self->request(predictor, std::chrono::seconds(30), shutdown_atom::value)
      .receive([](caf::ok_atom) {},
               [&](caf::error& err) {
                 std::cerr << "kura-node: predictor: saving the model at shutdown failed: "
                           << sys.render(err) << std::endl;
               });
  self->send_exit(predictor, caf::exit_reason::user_shutdown);
}

bool handle_predictor_op(caf::event_based_actor* self, const caf::actor& predictor, uint8_t op,
                         caf::typed_response_promise<std::string> rp) {
  if (op < predictor_ops::prewarm_plan || op > predictor_ops::alerts)
    return false;
  if (!predictor) {
    kv_reply r;
    r.error = "the predictor is off on this node (kura.prewarm.enabled=false)";
    rp.deliver(encode_message(msg_type::kv_reply, r));
    return true;
  }
  self->request(predictor, std::chrono::seconds(10), predictor_op_atom::value, op)
      .then([rp](std::string& bytes) mutable { rp.deliver(std::move(bytes)); },
            [rp, self](caf::error& err) mutable {
              kv_reply r;
              r.error = self->system().render(err);
              rp.deliver(encode_message(msg_type::kv_reply, r));
            });
  return true;
}

} // namespace kura::actors
