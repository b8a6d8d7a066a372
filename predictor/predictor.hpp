// The prewarm predictor, the entry point a newcomer reads first.
//
//   record(access) ─▶ key profiles (hour-of-week, frequent keys)  ─┐
//                  ─▶ pattern profiles (learned key shapes)        ├─▶ make_plan(now, memory)
//                  ─▶ co-access pairs (B within Δt after A)        ─┘   prefetch_for(A)
//   record_write   ─▶ per-pattern write outcomes ─▶ choose_tier(key), suggest_ttl(key, ttl)
//   observe(cycle) ─▶ anomaly detector ─▶ alerts
//   save / load    ─▶ model_store (a checksummed file beside the node's data)
//
// Every cycle (`interval_ms`) the host asks make_plan() for the keys to load
// into memory: keys whose probability of a read in the near part of the
// prediction window (`load_horizon_ms`) is at least `min_confidence`, ranked
// by expected hits saved per byte, within a byte budget and a load-rate
// budget, and only while the resident keys predicted hotter than a candidate
// plus what the plan already loads still fit the memory: a prewarm never
// needs room that hotter-predicted entries hold. The host loads them through
// its normal promotion path and reports loads and hits back, from which the
// predictor reports precision (hits / loads).
//
// Memory: every table is bounded; together they stay within `memory_bytes`
// whatever the key count (keys, patterns, pairs and tracked writes are
// evicted by sampling, least useful first). Time comes in as `now_ms`
// arguments, randomness from a seeded rng, storage through model_store: the
// core is deterministic and includes no CAF.
// Thread safety: not thread-safe; owned by one actor (or one thread).
#pragma once

#include "predictor/anomaly.hpp"
#include "predictor/coaccess.hpp"
#include "predictor/flat_table.hpp"
#include "predictor/key_pattern.hpp"
#include "predictor/model_file.hpp"
#include "predictor/time_profile.hpp"
#include "predictor/ttl_rules.hpp"
#include "tiers/frequency_sketch.hpp"
#include "tiers/random.hpp"
#include "tiers/status.hpp"

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kura::predictor {

struct predictor_config {
  uint64_t memory_bytes = 32ull << 20;              ///< kura.prewarm.memory-bytes
  uint64_t interval_ms = minute_ms;                 ///< kura.prewarm.interval
  uint64_t prediction_window_ms = day_ms;           ///< kura.prewarm.prediction-window
  uint64_t load_horizon_ms = hour_ms;               ///< the near part the plan loads for
  double min_confidence = 0.7;                      ///< kura.prewarm.min-confidence
  uint64_t max_bytes_per_cycle = 64ull << 20;       ///< byte budget of one plan
  uint64_t max_load_bytes_per_second = 16ull << 20; ///< load-rate budget
  size_t max_keys_per_cycle = 100'000;
  /// A key is loaded only when its reads are about to start: the hour holding
  /// now + imminent_ms is one it is read in with at least
  /// imminent_probability (0 = no such gate: load as soon as the horizon
  /// qualifies).
  uint64_t imminent_ms = 2 * minute_ms;
  double imminent_probability = 0.3;
  /// A key is loaded only once it has been followed this long (48 h; before
  /// that the profile knows its recent rate, not its time of day). With 48 h
  /// and no lift_evidence rule nasa at 1 % loaded 6 keys at precision 0.5
  /// (bench/RESULTS.md "Eighth pass"); a week gave 1.2 points less on the
  /// generated workload.
  uint64_t min_history_ms = 2 * day_ms;
  /// A candidate is loaded only once its own calibration bucket (the profile
  /// probability, by 0.05) holds this many outcomes (loads and shadows);
  /// until then it is checked without a load (a shadow). With fewer, its
  /// confidence is mostly the profile's figure: nasa at 1 % loaded 2 keys at
  /// profile 0.75-0.8 from buckets with 1-2 outcomes, precision 0.5
  /// (bench/RESULTS.md "Ninth pass").
  double lift_evidence = 8;
  /// No loads at all until the record holds this many outcomes (shadows
  /// build it: candidates are checked without a load until then).
  double first_evidence = 32;
  /// Make room for a plan's loads by dropping from memory (not from L3)
  /// resident keys the model predicts cold: read in the next `cold_window_ms`
  /// with probability below `cold_max_probability`. A load never displaces a
  /// key predicted hotter; the memory policy, which knows frequency but not
  /// time of day, would otherwise keep yesterday's evening keys over this
  /// morning's (bench/RESULTS.md "Predictor").
  bool demote_cold = true;
  /// Where the plan's own record is thin, the bar is higher: until
  /// `evidence_loads` outcomes are known (loads read while resident, or not;
  /// and predictions checked without a load: candidates the raised bar
  /// refused, read within their horizon or not), a load needs min_confidence plus `thin_margin` of
  /// the rest of the way to 1 (0.85 for 0.7), the extra shrinking linearly with the record.
  /// Workloads with structure build the record within a few cycles; traces
  /// with little (a few exploratory loads in weeks) keep the high bar.
  double evidence_loads = 32;
  /// Shadow every refused candidate whose profile probability is at least
  /// calibration_floor (0.3; not only those the raised bar refused), judged like a load: read
  /// within two horizons. Calibrates the buckets below min_confidence, which
  /// loads never reach.
  bool shadow_below_bar = true;
  /// A load evicted from memory before its read is loaded once more while
  /// the key is still predicted (its reads about to start, above the bar);
  /// the first load counts as a miss (bench/RESULTS.md "Eighth pass").
  bool reload_evicted = true;
  /// Events stand for this many accesses each (the node's 1-in-N sampling);
  /// scales the insert rate the plan estimates a memory's turnover from.
  uint32_t event_scale = 1;
  double thin_margin = 0.5;
  uint64_t cold_window_ms = 4 * hour_ms;
  double cold_max_probability = 0.2;
  /// Prefetch co-accessed keys when a key is read (off by default: it did not
  /// pay on the measured traces, see bench/RESULTS.md "Predictor").
  bool coaccess_prefetch = false;
  coaccess_config coaccess;
  /// Apply the tier choice to new writes (kura.prewarm.tier-choice; off by
  /// default, see RESULTS.md): applied_ttl_rules() then lists the patterns
  /// whose new writes go to L3 only.
  bool tier_choice = false;
  /// kura.prewarm.adjust-ttl: apply TTL suggestions (else only suggest).
  bool adjust_ttl = false;
  uint64_t min_ttl_ms = 1000;
  uint64_t max_ttl_ms = 30 * day_ms;
  uint32_t min_write_evidence = 32;  ///< closed writes of a pattern before it decides
  uint64_t read_soon_ms = minute_ms; ///< "read immediately" for the tier choice
  uint64_t write_track_ms = hour_ms; ///< how long a write is followed for a read
  profile_params profile;
  anomaly_config anomaly;
  uint64_t seed = 0x707265646963ull;
};

/// Which tier answered an access.
enum class access_tier : uint8_t { l1, l2, l3, l4, miss };

/// One sampled access (a read).
struct access_event {
  std::string_view key;
  uint64_t time_ms = 0;
  access_tier tier = access_tier::miss;
  uint32_t size = 0; ///< bytes the entry occupies in memory (0 = unknown)
  /// Accesses this event stands for (the sampler's 1-in-N when it was taken;
  /// 0 = predictor_config::event_scale).
  uint32_t weight = 0;
};

/// What the plan needs to know about memory.
class memory_view {
public:
  virtual ~memory_view() = default;
  virtual bool resident(std::string_view key) const = 0;
  virtual uint64_t capacity_bytes() const = 0;
  /// Whether this memory may hold `key` at all: a cluster node's memory
  /// holds only keys of the slots it replicates (owner or replica), so the
  /// plan skips the others (counted in prewarm_plan::elsewhere; no load, no
  /// shadow). A single node: every key.
  virtual bool here(std::string_view) const { return true; }
};

struct plan_item {
  std::string key;          ///< a key, or a pattern when `is_pattern`
  std::string pattern;      ///< the key's learned pattern
  double confidence = 0;    ///< probability of a read within the horizon
  double expected_hits = 0; ///< hits the load saves (expected hours with reads)
  uint64_t bytes = 0;
  bool is_pattern = false;
};

struct prewarm_plan {
  uint64_t at_ms = 0;
  uint64_t horizon_ms = 0;
  std::vector<plan_item> items;
  /// Resident keys predicted cold, to drop from memory (not from the
  /// persistent tiers) before the loads, at most one per load.
  std::vector<std::string> demote;
  uint64_t bytes = 0;
  size_t candidates = 0; ///< keys above min-confidence before budgets
  size_t held_back = 0;  ///< candidates refused to protect hotter residents
  size_t elsewhere = 0;  ///< shortlisted keys skipped: not here (memory_view::here)
  double survival = 1;   ///< estimated share of loads still resident at their read
};

enum class tier_choice : uint8_t { memory, l1, l3 };
const char* to_string(tier_choice t);

struct ttl_suggestion {
  uint64_t ttl_ms = 0;  ///< the suggested TTL (the asked one when unchanged)
  bool changed = false; ///< differs from the asked TTL
  bool applied = false; ///< changed and adjust_ttl is on: use ttl_ms
  const char* reason = "too little evidence";
};

struct predictor_stats {
  uint64_t events = 0;
  uint64_t writes = 0;
  size_t tracked_keys = 0;
  size_t patterns = 0;
  size_t coaccess_sources = 0;
  uint64_t model_bytes = 0;
  uint64_t plans = 0;
  uint64_t prewarm_loads = 0;
  uint64_t prewarm_bytes = 0;
  uint64_t prewarm_hits = 0; ///< loads that served a read while resident
  uint64_t prefetch_loads = 0;
  uint64_t prefetch_hits = 0;
  uint64_t demotions = 0; ///< cold residents dropped from memory for loads
  uint64_t ttl_longer = 0;
  uint64_t ttl_shorter = 0;
  uint64_t tier_l3_only = 0;
  uint64_t tier_l1 = 0;
  double precision() const {
    const uint64_t loads = prewarm_loads + prefetch_loads;
    return loads ? static_cast<double>(prewarm_hits + prefetch_hits) / loads : 0.0;
  }
};

class predictor {
public:
  explicit predictor(predictor_config cfg = {});

  // -- learning ----------------------------------------------------------------

  /// Records a sampled read.
  void record(const access_event& e);
  /// Records a write of `key` with a TTL (0 = none).
  /// `weight`: writes this one stands for (0 = predictor_config::event_scale).
  void record_write(std::string_view key, uint64_t now_ms, uint64_t ttl_ms, uint32_t size,
                    uint32_t weight = 0);
  /// A read of `key` that only decides a tracked write's outcome (read soon,
  /// later, after its TTL): a host that samples reads follows each sampled
  /// write to its next read unsampled and reports it here, so a write whose
  /// read was not sampled does not look unread. record() does this itself.
  void record_write_read(std::string_view key, uint64_t now_ms) {
    write_read(key, flat_table<write_track>::hash(key), now_ms);
  }

  // -- prewarm -----------------------------------------------------------------

  /// The keys to load now (see the file comment). `restart`: the first plan
  /// after the model was loaded into a process whose memory starts empty;
  /// the imminent gate is skipped (it keeps loads from waiting long in a full
  /// memory, but an empty one is filled with everything predicted for the
  /// horizon, so that the hit ratio recovers at once). The history gate
  /// stays: skipping it loaded keys of a day's history on sdsc that were
  /// evicted before their read (precision 0.38, bench/RESULTS.md).
  prewarm_plan make_plan(uint64_t now_ms, const memory_view& mem, bool restart = false);
  /// The keys make_plan(now_ms, ...) looks at (those that may reach
  /// min-confidence within the horizon, and with demote_cold the resident
  /// candidates for demotion; rebuilt hourly): a host whose memory lives
  /// elsewhere asks which of these are resident before make_plan.
  const std::vector<std::string>& shortlist(uint64_t now_ms);
  /// Everything predicted over the whole prediction window above
  /// min-confidence (keys and patterns), for `kura prewarm --dry-run`; no
  /// budgets, nothing marked as loaded.
  prewarm_plan preview(uint64_t now_ms, size_t limit) const;
  /// Co-accessed keys to prefetch after a read of `key` (empty unless
  /// coaccess_prefetch), not resident ones.
  std::vector<std::string> prefetch_for(std::string_view key, uint64_t now_ms,
                                        const memory_view& mem);
  /// The host loaded `key` for a plan (`prefetch` = for prefetch_for).
  void on_loaded(std::string_view key, uint64_t bytes, uint64_t now_ms, bool prefetch = false);
  /// A loaded key was read `lead_ms` after its load; `resident`: it was still
  /// in memory (the load bought a hit) or not (evicted before its read). This
  /// feedback teaches the plan how long a load survives in this memory: the
  /// plan looks only as far ahead as loads survive (survival >= min-confidence).
  /// The same outcome also calibrates the plan's confidence: loads are
  /// bucketed by the probability the profile gave them, and a bucket's
  /// realised hit rate (loads read while resident / loads) replaces the
  /// profile's figure as evidence accumulates; a load not read within twice
  /// the horizon counts as a miss (see tick()).
  void on_load_read(std::string_view key, uint64_t lead_ms, bool resident, bool prefetch = false);
  /// The confidence the plan uses for a profile probability `q`.
  double calibrated(double q) const;
  /// The least confidence a load needs now (min_confidence, raised while the
  /// record of load outcomes is thin; see evidence_loads).
  double load_bar() const;
  /// (used, loads) per calibration bucket of q in [calibration_floor, 1.0) by 0.05.
  std::vector<std::pair<double, double>> calibration_table() const;
  /// How far ahead the plan looks now (<= load_horizon_ms; 0 = loads do not
  /// survive long enough in this memory to be worth making).
  uint64_t effective_horizon_ms() const;
  /// How long an entry new to a memory of `capacity` bytes stays in it: the
  /// capacity over the bytes entering memory per ms (reads memory missed and
  /// writes, over the last completed hour); UINT64_MAX while unknown. The plan
  /// looks no further ahead than this: a load into a memory that turns over
  /// in minutes would be evicted before its read (a tiny memory).
  uint64_t turnover_ms(uint64_t capacity) const;
  struct survival_row {
    uint64_t lead_bound_ms; ///< reads with lead up to this bound
    double survived, lost;  ///< (decayed) counts in this bucket
  };
  /// The survival feedback, for reports.
  std::vector<survival_row> survival_table() const;

  // -- writes: tier and TTL ------------------------------------------------------

  /// Where a new write of `key` should go (counted in the stats): L3 only
  /// when its pattern's writes (min_write_evidence of them followed) were
  /// read after fewer than 5 %; L1 when at least half were read within
  /// read_soon_ms; else memory. (A host whose memory takes new writes into
  /// its window, L1, as kura's does, has nothing to change for `l1`.)
  tier_choice choose_tier(std::string_view key);
  /// The TTL to use for a write of `key` asked with `ttl_ms` (within bounds);
  /// counts a change when adjust_ttl is on.
  ttl_suggestion suggest_ttl(std::string_view key, uint64_t ttl_ms);
  /// The TTL decisions of every pattern with evidence enough (the same as
  /// suggest_ttl's), as a snapshot a host applies on its write path (empty
  /// when no pattern's TTL should change). The writes it records should carry
  /// the TTL the client asked for, not the applied one, so that the evidence
  /// stays about the asked TTL.
  ttl_rules applied_ttl_rules() const;

  // -- anomalies -----------------------------------------------------------------

  std::vector<alert> observe(const observation& o) { return anomalies_.observe(o); }
  const anomaly_detector& anomalies() const { return anomalies_; }

  // -- upkeep and state -----------------------------------------------------------

  /// Per-cycle upkeep: closes tracked writes whose outcome is known.
  void tick(uint64_t now_ms);
  predictor_stats stats() const;
  const predictor_config& config() const { return cfg_; }
  /// Bytes the model holds now (<= memory_bytes).
  uint64_t bytes() const;
  /// The learned pattern of a key.
  std::string pattern_of(std::string_view key) const { return shapes_.pattern_of(key); }
  /// Probability of a read of `key` in [from, to), nullopt when not tracked.
  std::optional<double> key_probability(std::string_view key, uint64_t from_ms, uint64_t to_ms,
                                        uint64_t now_ms) const;

  /// The model as a sealed blob (model_file.hpp).
  std::string serialize() const;
  /// Replaces the model with a sealed blob; on any error the model is empty and
  /// the error says why (the caller logs it and carries on).
  status deserialize(std::string_view blob);
  status save(model_store& store) const { return store.write(serialize()); }
  /// Loads the stored model if there is one (nothing stored: ok, empty model).
  status load(model_store& store);

private:
  struct key_slot {
    time_profile profile;
    uint32_t size = 0;
    uint64_t last_load_ms = 0;  ///< 0 = never loaded by a plan
    float planned_q = 0;        ///< profile probability when last planned
    float load_q = 0;           ///< profile probability of the open load
    bool load_open = false;     ///< loaded, outcome not known yet
    bool reloaded = false;      ///< the open load is a reload of one evicted unread
    float shadow_q = 0;         ///< profile probability of an open shadow prediction
    uint64_t shadow_until = 0;  ///< a refused candidate's horizon end (0 = none open)
    double shadow_inserted = 0; ///< inserted_ when the shadow opened
  };
  struct pattern_slot {
    time_profile profile;
    uint64_t writes = 0, ttl_writes = 0;
    uint64_t read_soon = 0, read_later = 0, never_read = 0;
    uint64_t read_before_expiry = 0, reread_after_expiry = 0, expired_unread = 0;
    uint64_t last_ms = 0;
  };
  struct write_track {
    uint64_t write_ms = 0;
    uint64_t expiry_ms = 0;
    bool read = false;
    std::string pattern;
  };
  static constexpr size_t survival_buckets = 11;
  static constexpr uint64_t survival_bound_min[survival_buckets] = {1,  2,   4,   8,   15,  30,
                                                                    60, 120, 240, 480, 1440};
  /// Survival of loads read within bucket j's bound (prior: 2 survivals).
  double survival(size_t j) const;
  static constexpr uint64_t key_slot_overhead = sizeof(key_slot) + 64;
  static constexpr uint64_t pattern_slot_overhead = sizeof(pattern_slot) + 64;
  uint64_t key_budget() const;
  uint64_t pattern_budget() const;
  size_t write_track_limit() const;
  /// Admits a key the table does not hold (hash `h`; or not, when it is full
  /// and the key is less active than the victims sampled).
  void admit(std::string_view key, uint64_t h, const access_event& e);
  pattern_slot& pattern(const std::string& p, uint64_t now_ms);
  void trim_patterns(uint64_t now_ms);
  /// record_write_read for a key whose hash (flat_table::hash) the caller has.
  void write_read(std::string_view key, uint64_t h, uint64_t now_ms);
  void close_write(const std::string& key, write_track& w, uint64_t now_ms);
  /// +1 longer, -1 shorter, 0 unchanged (reason set when decided).
  int ttl_direction(const pattern_slot& p, const char** reason) const;
  tier_choice tier_of(const pattern_slot& p) const;
  void reset();
  void refresh_shortlist(uint64_t now_ms);
  bool imminent(const time_profile& prof, uint64_t now_ms) const;

  predictor_config cfg_;
  rng rng_;
  frequency_sketch sketch_;
  key_patterns shapes_;
  coaccess_table pairs_;
  anomaly_detector anomalies_;
  /// Tracked keys (flat_table.hpp: one hash per event serves this table,
  /// writes_ and the sketch).
  flat_table<key_slot> keys_;
  uint64_t key_bytes_ = 0;
  std::unordered_map<std::string, pattern_slot> patterns_;
  uint64_t pattern_bytes_ = 0;
  flat_table<write_track> writes_;
  std::deque<std::pair<std::string, uint64_t>> write_order_;
  uint64_t write_bytes_ = 0;
  predictor_stats st_;
  /// Keys that may reach min-confidence within the horizon, rebuilt hourly
  /// (hour probabilities change only with new evidence within an hour), so a
  /// cycle looks at a short list instead of every tracked key.
  std::vector<std::string> shortlist_;
  /// Where the shortlist ends and the cold list begins: tracked keys predicted
  /// cold for cold_window_ms, the most active first, at most twice as many as
  /// the shortlist proper (demotion candidates; rebuilt with it).
  size_t shortlist_hot_ = 0;
  uint64_t shortlist_hour_ = UINT64_MAX;

public:
  /// Profile probabilities from here up are calibrated by the record (and
  /// shadowed when refused).
  static constexpr double calibration_floor = 0.3;
  static constexpr size_t calibration_buckets = 14; // q in [0.3, 1.0) by 0.05

private:
  static size_t calibration_bucket(double q);
  void load_outcome(key_slot& slot, bool used);
  float cal_used_[calibration_buckets] = {};
  float cal_loads_[calibration_buckets] = {};
  std::deque<std::pair<std::string, uint64_t>> open_loads_;
  /// Shadow predictions: candidates the raised bar refused are checked
  /// without loading them (read within the horizon or not), so the record
  /// builds even while nothing is loaded (key, horizon end).
  std::deque<std::pair<std::string, uint64_t>> shadows_;
  void shadow_outcome(key_slot& slot, bool read);
  void count_insert(uint64_t now_ms, uint32_t size, uint32_t weight);
  /// Would an entry loaded when `inserted_` was `at` still be in memory now?
  /// (fewer bytes than the memory's capacity have entered it since: an LRU's
  /// answer; a shadow read after that counts as a load lost before its read).
  bool would_survive(double at) const;
  double inserted_ = 0;   ///< bytes that entered memory since start (scaled)
  uint64_t capacity_ = 0; ///< memory capacity at the last plan (0 = unknown)
  uint64_t insert_hour_ = 0;
  double insert_acc_ = 0;  ///< bytes entering memory in insert_hour_
  double insert_rate_ = 0; ///< bytes per hour, the last completed hour (smoothed)
  float survived_[survival_buckets] = {};
  float lost_[survival_buckets] = {};
};

/// 1-in-N sampler for the hot path: a countdown with seeded jitter (mean N), so
/// deciding costs a decrement.
class sampler {
public:
  explicit sampler(uint32_t one_in = 1, uint64_t seed = 1) : n_(one_in ? one_in : 1), rng_(seed) {
    left_ = next_gap();
  }
  bool operator()() {
    if (--left_ != 0)
      return false;
    left_ = next_gap();
    return true;
  }
  uint32_t one_in() const { return n_; }

private:
  uint32_t next_gap() { return n_ == 1 ? 1 : 1 + static_cast<uint32_t>(rng_.below(2 * n_ - 1)); }
  uint32_t n_;
  rng rng_;
  uint32_t left_ = 1;
};

} // namespace kura::predictor
