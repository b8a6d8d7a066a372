// memory_cache: L1 (l1_lru, the window) + L2 (l2_lfu, the main region) with
// one shared frequency sketch -- W-TinyLFU, as in Caffeine.
//
// -- accesses and the sketch ----------------------------------------------------
//
// Every access is counted once in the sketch: a get() hit, a put() (a write, or
// the promotion of an entry that missed here and was found below), or
// record_miss() for a miss that nothing is put for. A get() miss alone is not
// counted, because the put that usually follows it counts it.
//
// -- admission -------------------------------------------------------------------
//
// A new key always enters L1, so the newest write is resident (read-your-writes
// from memory): when the window is smaller than the entry, L1 holds it over its
// share and L2 gives up the difference until L1 evicts. L1's LRU victims are
// offered to L2 (l2_lfu::offer), which admits one only if its estimated
// frequency beats L2's own victim by more than the admission margin. A victim
// that was hit again while in L1 may go straight to L2's protected segment
// ("promote reused"): with a tiny window a quick re-reference (a read followed
// by a write of the same block, say) is absorbed by L1, and without this it
// would need a third access to be protected (cloudPhysicsIO 10%: 0.763 with,
// 0.785 without; orm-night 10% prefers without, so it is adapted too).
//
// -- ghost admission (main_region_policy::slru_ghost) ------------------------------
//
// TinyLFU's frequency test keeps a key out of L2 until it is frequent; a key
// whose reuse distance is a little longer than the window (multi2, a mix of
// loops; scarab-recs) is rejected pass after pass. S3-FIFO's answer is a
// ghost queue: a key evicted recently that comes back is admitted without
// the test. Here an L1 victim that L2 rejects is remembered in a ghost queue
// (tiers/ghost_queue.hpp: 16-bit fingerprints of about half a capacity of
// keys, ~1 byte per entry), and when a remembered key leaves L1 again it is
// admitted without the frequency test (its fingerprint is used once). The
// ghost is fed whatever the setting (so a switch to it finds it warm); it is
// the bypass that the setting turns on. Measured as a fixed setting
// (kura-bench-hitratio --fixed ...,ghost,...): multi2 10% 0.4806 (0.01, +1,
// 20; the best setting without it 0.4869), scarab-recs 10% 0.3725 (0.05, 0,
// 10; without 0.3759); bench/RESULTS.md, issue 14 eighth pass.
//
// -- returning keys (a ghost history; memory_cache_config::returning_keys) --------
//
// Off by default (2 bytes per entry over the 80-byte budget). With it on and
// "promote reused", a key that misses but was read within about the last
// capacity reads (1..2 x capacity, tiers/recency_filter.hpp: two generations
// of a blocked Bloom filter, 8 bits per entry each, one 64-bit word per probe)
// is marked reused as it enters L1, as if it had been hit there: it was
// evicted too early, as a key in S3-FIFO's ghost queue or ARC's B1/B2 was,
// and goes to protected if admitted. Every read is noted (hits included: a
// key's last read, not its eviction, dates it), so the shadow simulations,
// which share one such filter over the sampled reads, model the same rule.
// Measured (bench/RESULTS.md, issue 14 third pass; kura-bench-hitratio
// --returning): web07 10% 0.4219 -> 0.4201, cloudPhysicsIO 10% 0.7538 ->
// 0.7530, 1% 0.8319 -> 0.8312.
//
// -- adapting the window: shadow simulations (default) ----------------------------
//
// No fixed setting is best everywhere: recency-heavy traces (orm-night, web07)
// want a big window, loops and scans (loop, multi2) want none and a strict
// admission, and cloudPhysicsIO wants no window but ties admitted. Caffeine
// hill-climbs the window on its own hit ratio, but that ratio moves with the
// workload's phases far more than with the window, so the climber mostly
// follows noise (measured: orm-night 1% 0.349 vs ARC's 0.335).
//
// Instead we run miniature simulations ("shadow" caches, after Waldspurger et
// al., ATC'17): 126 keys-only W-TinyLFU simulations (tiers/policy_sim.hpp),
// one per setting in {window 0 (= the newest entry), 1, 5, 20, 50, 80, 100%}
// x {admission margin -1, 0, +1} x {main region: SLRU with ghost admission,
// SLRU with promote reused, sampled LFU} x {sketch aging: halve every 10 or 20 x capacity
// increments} = 126, all fed the same reads. The sims of one aging period
// share one sketch (they would hold identical ones). The slower aging pays
// where popularity lasts longer than 10 x capacity requests (cloudPhysicsIO
// 10%: 0.7559 -> 0.7538; with bytes 0.7619 -> 0.7393). A 100% window is plain LRU
// (L2 empty), so on workloads where LRU is best (zigzag, corda-vaultservice,
// gcc-address) the cache can become LRU; sampled LFU in L2 (l2_lfu::
// set_main_lfu) is the main region that scan-and-frequency mixes want
// (scarab-recs 10%: 0.3815 with SLRU only, 0.3770 with it). The cache starts
// as plain LRU (100%, 0, SLRU with promote reused; see
// memory_cache_config::window_fraction) and leaves it only when a simulation
// misses less. The simulations are scaled down by spatial sampling: a key
// takes part when mix64(hash) falls in a 2^-k share, with k chosen so that a
// simulation holds at most ~1024 keys (k = 0, i.e. exact, for small caches).
// Because every setting sees the same requests at the same time, phases move
// all of them alike and their difference is signal. After each period (as
// many sampled reads as a simulation holds keys) each setting's misses are
// added to a score that forgets 2% per period; when another setting's score
// is at least 1% lower than the current one's, the cache switches to it. In
// the first 32 periods any score lower by at least one miss switches (the
// one-miss floor keeps a tie among 126 settings from switching on noise:
// zigzag 1%, a 20-entry cache, lost to LRU without it); until then the setting in
// use is the start, not a choice the evidence made, and every period spent
// there costs (cs 10%: 0.9528 with the 1% rule from the start, 0.9283
// without it early; multi2 10%: 0.5043 / 0.4977).
// Within a period: every quarter period (periods of at least 128 reads),
// when the setting in use has missed 5% of a period's reads more than the
// period's best so far and that setting's score with this period's misses
// counted is lower by the usual 1% and one miss, the cache switches to it
// there and then, not at the period's end: a phase change shows in the
// simulations long before the period ends (with a 25% lead required: cs 10%:
// 0.9531 -> 0.9425, orm-night 1% 0.3280 -> 0.3279, no other row of the full
// table worse; with periods under 128 reads allowed, cloudPhysicsIO --bytes
// 1%, ~100-key simulations, 0.8208 -> 0.8240; bench/RESULTS.md, issue 14,
// session 20. 25% -> 5%: cs 10% 0.9425 -> 0.9347, multi2 10% 0.4931 ->
// 0.4924, gcc-address 1% 0.0802 -> 0.0801, every other row identical; 10%
// and 15% gained less, 0 the same; session 21). The score test is what
// keeps a period's burst from leaving a setting the history favours
// (without it, with a 25% lead, zigzag 10%, where LRU wins only at the
// turnarounds, 0.9043 -> 0.9350).
// Growing the window moves L2's victims into L1; shrinking it moves L1's LRU
// entries into L2's probation (no admission test: they were already in
// memory). A switch costs the state the new setting would have built: its
// simulation was right on average because it held keys (loop keys from
// earlier passes, say) that the cache never admitted (multi2 10%: the
// settings in use missed 12,644 in their simulations, the cache 12,957). So a
// switch is warm: the hashes of the keys the chosen simulation holds in its
// main region are kept (at most a simulation's capacity, 8 bytes each), and
// such a key, when it next leaves L1, is admitted without the frequency test,
// so the cache converges to what the simulation held instead of re-learning
// it. Measured on the full table (bench/RESULTS.md, issue 14 eighth pass):
// cloudPhysicsIO 1% 0.8310 -> 0.8299, 10% 0.7536 -> 0.7517, web07 10% 0.4219
// -> 0.4200, orm-night 1% 0.3312 -> 0.3280. Unguarded it cost cs 10%
// (0.9454 -> 0.9648) and multi2 10% (0.4991 -> 0.5075): a warm key's
// admission evicted another key the simulation held, and on cs the state the
// cache had (keys of earlier phases) was better than the simulation's. So,
// when the simulations are exact (sampling shift 0, where "the simulation
// does not hold this key" is known for every key), a warm admission makes its
// room by evicting entries the simulation does not hold (L2's victim if it is
// one, else the first such entry within warm_scan of probation's, then
// protected's, LRU end; if there is none, the frequency test decides), and
// warming pays its way: a warm-admitted key's first hit is a gain, the first
// miss on a key a warm admission evicted is a cost, and no key is
// warm-admitted while the costs exceed the gains by more than warm_slack; a
// warm key enters protected (bench/RESULTS.md, issue 14 ninth pass: cs 10%
// 0.9648 -> 0.9531, multi2 10% 0.5075 -> 0.4964, cloudPhysicsIO 1% 0.8299 ->
// 0.8289, no other row worse by more than 0.0004). With sampled
// simulations only a sampled key's status is known, and the same rule cost
// cloudPhysicsIO 10% 0.0017, so there a warm key is admitted as before.
// The first switch: the cache leaves its LRU start with L2 holding the LRU
// window's entries in recency order, the keys the chosen simulation holds
// mixed with those it does not. When the new setting has a small window
// (<= 5%) and an SLRU main region and the simulations are exact, L2's
// probation is reordered once: the entries the simulation holds go to its
// most recently used end (their order kept), so the next admissions evict the
// others first instead of whichever the LRU order put last (multi2 10%:
// 0.4964 -> 0.4931; bench/RESULTS.md, issue 14, session 19). Only then: at
// every switch, or with protected's unheld entries demoted too, it cost
// 2_pools 10% 0.0011-0.0013 (above LRU); at a first switch to a 20% window
// (adaptsize-request 1%) 0.0006, to sampled LFU (2_pools 10%) 0.0006. The 18 settings with a 100%
// window are all plain LRU (no main region: margin, main policy and aging do not matter), so one
// simulation serves them: 109 simulations for 126 settings. Cost: ~1.1 MB of simulations per shard
// (~21 bytes per simulated key and simulation; in byte mode at most ~1/73 of the capacity, else
// adaptation is off), with returning keys on also the recency filter (2 bytes per entry), and for
// sampled reads 109 simulated accesses and 2 sketch increments (for a million-entry shard, 1 read
// in 1024; in kura-node's default 64 MiB shard of 1 KiB values, 1 in 64-256). The serving thread
// does not run them per read: a sampled read's hash is queued, and 256 of them are fed at once (and
// the queue always at the end of a period, before the decision, so every decision is what it was
// unbatched). Fed one by one between the cache's own hits, each of the ~1.1 MB of simulations'
// touches missed the CPU caches; fed in batches they stay warm (perf of kura-bench-memory
// --shard-only: policy_sim::access 3.6% -> 0.95% of the cycles; bench/RESULTS.md, issue 14 fifth
// pass).
//
// -- adapting the window: hill climbing (window_adaptation::hill_climbing) --------
//
// Caffeine's climber: after every sample of 10 x (sketch capacity) reads
// compare the sample's hit ratio with the previous one; if it improved keep
// moving the window in the same direction, else reverse. The step starts at
// 6.25% of the capacity, decays by 2% per sample, and restarts at 6.25% when
// the hit ratio jumps by 5 points or more.
//
// -- bytes -------------------------------------------------------------------------
//
// In byte mode the sketch's counters (8 bytes per entry, grown with the entry
// count) and the shadow simulations are charged too:
// L1 capacity + L2 capacity = capacity - sketch bytes - simulation bytes.
#include "tiers/memory_cache.hpp"

#include "tiers/ghost_queue.hpp"
#include "tiers/l1_lru.hpp"
#include "tiers/l2_lfu.hpp"
#include "tiers/policy_sim.hpp"
#include "tiers/recency_filter.hpp"

#include <algorithm>
#include <cmath>

namespace kura {

using detail::node_id;

namespace {

// hill climbing (Caffeine's constants)
constexpr double step_percent = 0.0625;
constexpr double step_decay = 0.98;
constexpr double restart_threshold = 0.05;
constexpr double max_window_share = 1.0;
// shadow simulations
constexpr uint64_t shadow_entries = 1024;     // each simulation holds up to ~this many keys
constexpr double shadow_decay = 0.98;         // weight of the past per decision period
constexpr double shadow_hysteresis = 0.01;    // switch only for a 1% lower miss score
constexpr uint32_t shadow_early_periods = 32; // ... except in the first 32 periods
constexpr double shadow_min_gap = 1.0;        // and never for less than one miss
constexpr size_t n_shadow_sketches = 2;       // one per aging period of the grid
constexpr size_t shadow_batch = 256;          // sampled reads fed to the sims at once
// A switch within a period (see "within a period" above): checked every
// 1/shadow_mid_checks of a period, for a gap of shadow_mid_gap x the period's
// reads between the setting in use and the period's best so far.
constexpr uint64_t shadow_mid_checks = 4;
constexpr double shadow_mid_gap = 0.05;
// ... and only when a period has at least this many reads (a quarter at least
// 32): in a smaller one a quarter's lead is a few misses of noise.
constexpr uint64_t shadow_mid_min_period = 128;
// Warm switch with exact simulations (see "a switch is warm" above): entries
// scanned from each L2 list's LRU end for one the simulation does not hold,
// and how far a warm switch's costs may exceed its gains (in misses) before it
// stops admitting.
constexpr int warm_scan = 8;
constexpr uint64_t warm_slack = 8;
// The first switch reorders L2 only toward settings with at most this window
// (see "the first switch" above).
constexpr double first_switch_max_window = 0.05;
// The ghost queue (main_region_policy::slru_ghost) remembers this share of
// the sketch's capacity (about the entry count) of rejected keys: at 2 bytes
// per fingerprint, ~1 byte per entry (the 80-byte budget has no room for a
// full capacity's; 0.5 vs 1 on the exact static grid: multi2 10% 0.4800 vs
// 0.4779, web07 10% 0.4182 vs 0.4160; bench/RESULTS.md, issue 14 eighth pass).
constexpr double ghost_share = 0.5;
// In byte mode, per shard: 126 settings x 520 keys x ~21 bytes (policy_sim.hpp).
constexpr uint64_t shadow_max_bytes = 1344ull << 10;
constexpr uint64_t shadow_key_bytes = 21; // per simulated key and setting, sketches included
// One simulated key per this many bytes of capacity (126 settings x 48 bytes
// x 32: before the simulations were compacted to ~21 bytes per key, the rule
// was "1/32 of the capacity at 48 bytes per key"; the key counts, and so the
// simulations' choices, were kept).
constexpr uint64_t shadow_capacity_per_key = 193536;
// Byte mode: the sketch starts sized for capacity / 256 entries (16..1024) and
// doubles whenever the cache holds more entries than it is sized for, so a tiny
// cache is not eaten by its sketch.
uint64_t initial_sketch_entries(uint64_t capacity_bytes) {
  return std::clamp<uint64_t>(capacity_bytes / 256, 16, 1024);
}

} // namespace

struct memory_cache::impl {
  memory_cache_config cfg;
  l1_lru l1;
  l2_lfu l2;
  uint64_t now_ms = 0; // time of the operation in progress (for offers)
  // hill climbing
  double window = 0; // target L1 capacity (units: bytes or entries)
  double step = 0;
  double prev_rate = 0;
  uint64_t sample_hits = 0;
  uint64_t sample_misses = 0;
  bool climb_due = false;
  // Returning keys (see "returning keys" above): every read is noted in
  // `recent` (tiny unless returning keys are on); a read that missed
  // records in last_* whether the key was read in the last ~capacity reads,
  // and the put that follows it marks the new L1 entry reused.
  detail::recency_filter recent{0};
  bool recent_on = false;        // returning keys on: `recent` is sized and fed
  bool returning_reused = false; // the setting in use is "promote reused"
  uint64_t last_h = 0;
  bool last_returning = false;
  // Ghost admission (main_region_policy::slru_ghost): L1 victims that L2
  // rejects are remembered here whenever the ghost exists (adaptation on, or
  // the ghost setting fixed), so a switch to the ghost setting finds it warm;
  // one that returns and leaves L1 again while `ghost_admit` is set is
  // admitted without the frequency test.
  detail::ghost_queue ghost;
  bool ghost_on = false;    // `ghost` is sized and fed
  bool ghost_admit = false; // the setting in use is "SLRU + ghost"
  // memory-level stats
  uint64_t hits = 0, misses = 0, puts = 0, erases = 0;
  entry_view view{};
  std::function<void(std::string_view)> lazy_expired; // on_lazy_expire

  // -- shadow adaptation -----------------------------------------------------------
  struct shadow_state {
    // One simulation per distinct setting: the settings whose window is the
    // whole capacity are all plain LRU (margin, main region and aging do not
    // matter without a main region), so one sim serves those 18 of the 126.
    std::vector<detail::policy_sim> sims;
    std::vector<uint8_t> sim_of; // per setting: its sim in `sims`
    // One sketch per aging period, shared by the sims of that period (they
    // would hold identical ones).
    frequency_sketch sketch[n_shadow_sketches];
    detail::recency_filter recent;
    std::vector<double> score;    // per setting
    std::vector<uint64_t> misses; // per sim, this period
    uint32_t shift = 0;           // a key is sampled when mix64(h) % 2^shift == 0
    uint64_t period = 0;          // sampled reads per decision
    uint64_t in_period = 0;
    uint64_t built_for = 0; // entries the sims were sized for
    size_t current = 0;     // grid index in use (set by the constructor)
    uint32_t periods = 0;   // decisions since the sims were built
    uint64_t sampled = 0;
    // Sampled reads not yet fed to the sims (shadow_flush). They are fed in
    // batches so that the sims' ~1.1 MB is pulled into the CPU's caches once
    // per batch, not once per sampled read in between the cache's own random
    // (cache-missing) hits. A batch is flushed whenever a period ends, so
    // every decision sees exactly the reads it saw unbatched.
    std::vector<uint64_t> pending;
    // Warm switch: the keys the chosen setting's simulation held in its main
    // region when the cache switched to it; one that leaves L1 is admitted
    // without the frequency test (the cache builds the state the simulation
    // had, instead of re-learning it). Sorted; cleared at the next switch.
    std::vector<uint64_t> warm;
    // Per warm key: warm_pending (not admitted yet), warm_admitted, or
    // warm_hit (admitted, and hit since).
    std::vector<uint8_t> warm_state;
    // Exact simulations only (shift 0): the keys warm admissions evicted that
    // have not missed since (sorted), and the switch's gains (first hits of
    // warm-admitted keys) and costs (first misses of the evicted keys).
    std::vector<uint64_t> warm_evicted;
    uint64_t warm_gain = 0;
    uint64_t warm_cost = 0;
    uint64_t period_misses = 0;            // the cache's misses on this period's sampled reads
    size_t period_start = 0;               // grid index in use when the period began
    size_t mid_switch = SIZE_MAX;          // a switch within the period, due (mid_check)
    memory_cache::adaptation_stats totals; // since construction
    std::function<void(const memory_cache::period_report&)> report; // on_period
    uint64_t bytes = 0; // all of the above (fixed from shadow_build on)
  } sh;

  explicit impl(const memory_cache_config& c)
      : cfg(c), l1(0, c.lim, c.count_objects),
        l2(0, c.lim, c.count_objects, c.sketch_seed,
           c.count_objects ? std::max<uint64_t>(c.capacity_bytes, 16)
                           : initial_sketch_entries(c.capacity_bytes)) {}

  uint64_t effective() const {
    if (cfg.count_objects)
      return cfg.capacity_bytes;
    const uint64_t fixed = overhead_bytes();
    return cfg.capacity_bytes > fixed ? cfg.capacity_bytes - fixed : 0;
  }

  status too_large(uint64_t cost) const {
    return status{errc::out_of_space, "entry of " + std::to_string(cost) +
                                          " bytes exceeds memory capacity of " +
                                          std::to_string(effective())};
  }

  /// Bytes outside L1 and L2: the sketch and the shadow simulations.
  uint64_t overhead_bytes() const {
    // Called on every put (fit_caps): the simulations' share is summed once
    // per shadow_build, not per call.
    return l2.sketch().memory_bytes() + recent.memory_bytes() + ghost.memory_bytes() + sh.bytes;
  }

  frequency_sketch& sketch() { return l2.sketch_; }

  void fill_view(const detail::node_view& v, bool l2) {
    view = entry_view{v.key, v.value, v.expiry_ms, v.ver, v.flags, l2};
  }

  // -- window sizing ------------------------------------------------------------

  /// Sets L1's capacity to the window target, but never below what L1 holds
  /// now or below `l1_need` (room for the newest write), and gives L2 the
  /// rest; L2 evicts down to it. Keeps l1 + l2 capacity = effective().
  void fit_caps(uint64_t l1_need) {
    const uint64_t eff = effective();
    uint64_t c1 = std::max<uint64_t>(static_cast<uint64_t>(window), std::max(l1.bytes(), l1_need));
    c1 = std::min(c1, eff);
    l1.capacity_ = c1;
    l2.capacity_ = eff - c1;
    while (l2.table_.size() > 0 && l2.bytes() > l2.capacity_)
      l2.evict(l2.victim());
    l2.rebalance_protected();
  }

  /// Applies a window target: moves entries between L1 and L2 as needed.
  void apply_window(double target) {
    const uint64_t eff = effective();
    const double max_window = static_cast<double>(eff) * max_window_share;
    window = std::clamp(target, 0.0, max_window);
    const auto w = static_cast<uint64_t>(window);
    const uint64_t old_l1 = l1.capacity_;
    l1.capacity_ = w;
    l2.capacity_ = eff - w;
    // An entry moves from node to node (the slab bytes copied once), not
    // through an `entry` (two allocations and two copies): a switch of the
    // setting moves up to a whole shard, and under uniform reads (GET -P 16
    // -d 1024, 100k keys) the switches were ~20% of all instructions.
    if (w < old_l1) {
      // Shrink L1: its LRU entries move to L2's probation.
      while (l1.lru_.count > 0 && l1.bytes() > l1.capacity_) {
        node_id id = l1.lru_.tail;
        const detail::node_view v = l1.table_.view(id); // valid until l1 changes
        const uint64_t h = hash64(v.key);
        const size_t charge = l2.charge_of(v);
        while (l2.table_.size() > 0 && l2.used_after_insert(charge) > l2.capacity_)
          l2.evict(l2.victim());
        if (l2.cost(v) <= l2.capacity_)
          l2.insert_probation(v, h);
        l1.remove_node(id);
      }
    } else {
      // Grow L1: L2's victims move to L1's most recently used end.
      while (l2.table_.size() > 0 && l2.bytes() > l2.capacity_) {
        node_id id = l2.victim();
        const detail::node_view v = l2.table_.view(id); // valid until l2 changes
        const size_t charge =
            l1.count_objects_ ? 1 : l1.cost(v.key, v.value.size(), v.expiry_ms, v.ver);
        if (l1.used_after_insert(charge) <= l1.capacity_) {
          l1.insert_front(v, hash64(v.key));
          l2.remove_node(id);
        } else {
          entry e = l2.table_.to_entry(id);
          l2.remove_node(id);
          ++l2.st_.evictions; // leaves memory
          l2.notify_evicted(std::move(e));
        }
      }
    }
    l2.rebalance_protected();
  }

  /// Counts an access for the hill climber; a finished sample makes the
  /// climb due (run at the start of the next operation, so that no entry
  /// moves while a caller holds a view).
  void on_access(bool hit, uint64_t h) {
    if (cfg.adaptive_window && cfg.adaptation == window_adaptation::shadow) {
      shadow_access(h, hit);
      return;
    }
    if (hit)
      ++sample_hits;
    else
      ++sample_misses;
    if (cfg.adaptive_window && sample_hits + sample_misses >= sketch().sample_size())
      climb_due = true;
  }

  void climb() {
    climb_due = false;
    if (cfg.adaptation == window_adaptation::shadow) {
      shadow_decide();
      return;
    }
    const uint64_t n = sample_hits + sample_misses;
    if (n == 0)
      return;
    const double rate = static_cast<double>(sample_hits) / static_cast<double>(n);
    const double change = rate - prev_rate;
    const double amount = change >= 0 ? step : -step;
    const double cap = static_cast<double>(effective());
    double next = std::fabs(change) >= restart_threshold
                      ? step_percent * cap * (amount >= 0 ? 1 : -1)
                      : step_decay * amount;
    prev_rate = rate;
    step = next;
    sample_hits = sample_misses = 0;
    apply_window(window + amount);
  }

  // The grid of settings the shadow simulations try.
  static constexpr double grid_windows[] = {0.0, 0.01, 0.05, 0.2, 0.5, 0.8, 1.0};
  static constexpr int grid_margins[] = {-1, 0, 1};
  static constexpr size_t n_margins = 3;
  // Main-region variants: SLRU with ghost admission (L1 victims rejected
  // recently are admitted without the frequency test); SLRU with L1-reused
  // victims admitted into protected ("promote reused"); sampled LFU. Plain
  // SLRU (a fixed setting's option) is not in the grid: the ghost variant
  // took its place (bench/RESULTS.md, issue 14 eighth pass: the best setting
  // of the exact static grid of each row of the 10 smaller traces is at most
  // 0.0001 worse with it, and multi2 10% 0.4869 -> 0.4779, scarab-recs 10%
  // 0.3757 -> 0.3686).
  static constexpr size_t n_main = 3;
  enum : size_t { main_slru_ghost = 0, main_slru_promote = 1, main_lfu = 2 };
  // Sketch aging period (halve every F x capacity increments).
  static constexpr uint32_t grid_decay[] = {10, 20};
  static constexpr size_t n_decay = std::size(grid_decay);
  static constexpr size_t n_base = std::size(grid_windows) * n_margins * n_main;
  static constexpr size_t n_settings = n_base * n_decay;
  static size_t setting_index(size_t w, size_t m, size_t v, size_t d = 0) {
    return d * n_base + (w * n_margins + m) * n_main + v;
  }
  static size_t window_of(size_t i) { return (i % n_base) / (n_main * n_margins); }
  static size_t margin_of(size_t i) { return ((i % n_base) / n_main) % n_margins; }
  static size_t main_of(size_t i) { return (i % n_base) % n_main; }
  static size_t decay_of(size_t i) { return i / n_base; }
  static_assert(n_decay == n_shadow_sketches, "one shared sketch per aging period");
  // Distinct sims: every setting but those with a 100% window, plus one LRU.
  static constexpr size_t n_lru_settings = n_margins * n_main * n_decay;
  static constexpr size_t n_sims = n_settings - n_lru_settings + 1;
  static_assert(n_settings <= 256, "sim_of holds 8-bit sim indexes");

  /// Puts grid setting `i` into effect in L2 and the window.
  void use_setting(size_t i) {
    sh.current = i;
    l2.set_promote_reused(main_of(i) == main_slru_promote);
    returning_reused = recent_on && main_of(i) == main_slru_promote;
    l2.set_main_lfu(main_of(i) == main_lfu);
    ghost_admit = main_of(i) == main_slru_ghost;
    l2.set_admission_margin(grid_margins[margin_of(i)]);
    sketch().set_sample_factor(grid_decay[decay_of(i)]);
    apply_window(grid_windows[window_of(i)] * static_cast<double>(effective()));
  }

  uint64_t entries_now() const { return l1.table_.size() + l2.table_.size(); }

  /// Keys per simulation the memory budget allows: in byte mode one
  /// simulated key per shadow_capacity_per_key bytes of capacity (the
  /// simulations, ~21 bytes per simulated key and setting, then take about
  /// 1/73 of the capacity) and at most shadow_max_bytes in all; below 64
  /// keys a simulation says nothing and adaptation is off.
  uint64_t shadow_budget() const {
    if (cfg.count_objects)
      return shadow_entries; // the benchmarks' mode
    const uint64_t per_key = shadow_key_bytes * n_settings;
    return std::min<uint64_t>(
        {shadow_entries, cfg.capacity_bytes / shadow_capacity_per_key, shadow_max_bytes / per_key});
  }

  void shadow_build(uint64_t entries) {
    const uint64_t target = shadow_budget();
    uint32_t shift = 0;
    while ((entries >> shift) > target)
      ++shift;
    const auto cap = static_cast<uint32_t>(std::max<uint64_t>(1, entries >> shift));
    sh.sims.clear();
    sh.sims.reserve(n_sims);
    sh.sim_of.assign(n_settings, 0);
    size_t lru = SIZE_MAX;
    for (size_t d = 0; d < n_decay; ++d) {
      sh.sketch[d] = frequency_sketch(cap);
      sh.sketch[d].set_sample_factor(grid_decay[d]);
      for (size_t w = 0; w < std::size(grid_windows); ++w)
        for (size_t m = 0; m < n_margins; ++m)
          for (size_t v = 0; v < n_main; ++v) {
            const size_t i = setting_index(w, m, v, d);
            const auto wcap = static_cast<uint32_t>(std::lround(grid_windows[w] * cap));
            if (wcap >= cap && lru != SIZE_MAX) {
              sh.sim_of[i] = static_cast<uint8_t>(lru);
              continue;
            }
            sh.sim_of[i] = static_cast<uint8_t>(sh.sims.size());
            if (wcap >= cap)
              lru = sh.sims.size();
            sh.sims.emplace_back(cap, wcap, grid_margins[m], v == main_slru_promote, v == main_lfu,
                                 cfg.sketch_seed + i % n_base, &sh.sketch[d],
                                 v == main_slru_promote && recent_on,
                                 v == main_slru_ghost ? ghost_capacity(cap) : 0);
          }
    }
    if (recent_on)
      sh.recent.reset(cap);
    sh.score.assign(n_settings, 0);
    sh.misses.assign(sh.sims.size(), 0);
    sh.pending.clear();
    sh.pending.reserve(shadow_batch);
    sh.warm.clear(); // hashes of the old simulations' keys
    sh.warm.reserve(cap);
    sh.warm_state.clear();
    sh.warm_state.reserve(cap);
    sh.warm_evicted.clear();
    if (shift == 0)
      sh.warm_evicted.reserve(cap); // a warm admission evicts at most one entry each
    sh.bytes = sh.recent.memory_bytes() + sh.pending.capacity() * sizeof(uint64_t) +
               sh.warm.capacity() * sizeof(uint64_t) + sh.warm_state.capacity() +
               sh.warm_evicted.capacity() * sizeof(uint64_t) + sh.sim_of.capacity() +
               sh.score.capacity() * sizeof(double) + sh.misses.capacity() * sizeof(uint64_t);
    for (const auto& k : sh.sketch)
      sh.bytes += k.memory_bytes();
    for (const auto& sim : sh.sims)
      sh.bytes += sim.memory_bytes();
    sh.shift = shift;
    sh.period = cap;
    sh.in_period = 0;
    sh.period_misses = 0;
    sh.built_for = entries;
    sh.periods = 0;
    sh.period_start = sh.current;
    sh.mid_switch = SIZE_MAX;
  }

  void shadow_access(uint64_t h, bool hit) {

    if (sh.sims.empty()) {
      const uint64_t n = cfg.count_objects ? cfg.capacity_bytes : entries_now();
      if (n >= 16 && shadow_budget() >= 64)
        climb_due = true; // built at the start of the next operation
      return;
    }
    if (sh.shift && (mix64(h ^ 0x5bd1e995ull) & ((1ull << sh.shift) - 1)) != 0)
      return;
    if (sh.shift == 0 && !sh.warm.empty())
      warm_account(h, hit);
    if (!hit)
      ++sh.period_misses;
    sh.pending.push_back(h);
    if (++sh.in_period >= sh.period) {
      shadow_flush();
      climb_due = true; // decided at the start of the next operation
    } else if (sh.period >= shadow_mid_min_period &&
               sh.in_period % (sh.period / shadow_mid_checks) == 0) {
      shadow_flush();
      mid_check();
    } else if (sh.pending.size() >= shadow_batch) {
      shadow_flush();
    }
  }

  /// Feeds the pending sampled reads to the sims, in their order.
  void shadow_flush() {
    const size_t n = sh.sims.size();
    for (const uint64_t h : sh.pending) {
      ++sh.sampled;
      for (auto& k : sh.sketch)
        k.increment(h);
      bool ret = false;
      if (recent_on) {
        ret = sh.recent.contains(h);
        sh.recent.insert(h);
      }
      for (size_t i = 0; i < n; ++i)
        if (!sh.sims[i].access(h, ret))
          ++sh.misses[i];
    }
    sh.pending.clear();
  }

  /// Within a period (see "within a period" above): when the setting in use
  /// has missed shadow_mid_gap x the period's reads more than the period's
  /// best so far, and that setting's score would beat it with this period's
  /// misses counted, a switch to it is due at the start of the next operation.
  void mid_check() {
    const uint64_t cur = sh.misses[sh.sim_of[sh.current]];
    size_t best = sh.current;
    for (size_t i = 0; i < n_settings; ++i)
      if (sh.misses[sh.sim_of[i]] < sh.misses[sh.sim_of[best]])
        best = i;
    const uint64_t lead = cur - sh.misses[sh.sim_of[best]];
    if (best == sh.current ||
        static_cast<double>(lead) < shadow_mid_gap * static_cast<double>(sh.period))
      return;
    const double with_best =
        shadow_decay * sh.score[best] + static_cast<double>(sh.misses[sh.sim_of[best]]);
    const double with_cur = shadow_decay * sh.score[sh.current] + static_cast<double>(cur);
    if (with_best < with_cur * (1 - shadow_hysteresis) - shadow_min_gap) {
      sh.mid_switch = best;
      climb_due = true;
    }
  }

  /// Puts grid setting `i` into effect and makes the switch warm: the keys
  /// its simulation holds in its main region are admitted without the
  /// frequency test when they next leave L1 (see shadow_state::warm).
  void switch_to(size_t i) {
    const size_t before = sh.current;
    use_setting(i);
    ++sh.totals.switches;
    sh.warm.clear();
    sh.sims[sh.sim_of[i]].for_each_main([this](uint64_t h) { sh.warm.push_back(h); });
    std::sort(sh.warm.begin(), sh.warm.end());
    sh.warm_state.assign(sh.warm.size(), warm_pending);
    sh.warm_evicted.clear();
    sh.warm_gain = sh.warm_cost = 0;
    // The first switch leaves the start (LRU): L2 holds the LRU window's
    // entries in recency order. To a small-window SLRU setting, the ones
    // the chosen simulation holds go ahead of those it does not hold (see
    // "the first switch" above).
    if (sh.shift == 0 && sh.totals.switches == 1 && grid_windows[window_of(before)] == 1.0 &&
        main_of(i) != main_lfu && grid_windows[window_of(i)] <= first_switch_max_window)
      unheld_last();
  }

  void shadow_decide() {
    if (sh.sims.empty()) {
      shadow_build(cfg.count_objects ? cfg.capacity_bytes : entries_now());
      if (!cfg.count_objects)
        apply_window(window); // the simulations' bytes come out of the capacity
      return;
    }
    if (sh.mid_switch != SIZE_MAX) { // a switch within the period
      switch_to(sh.mid_switch);
      sh.mid_switch = SIZE_MAX;
      return;
    }
    const double decay = shadow_decay;
    for (size_t i = 0; i < n_settings; ++i)
      sh.score[i] = decay * sh.score[i] + static_cast<double>(sh.misses[sh.sim_of[i]]);
    memory_cache::period_report rep;
    if (sh.report) {
      size_t in_period_best = 0;
      for (size_t i = 1; i < n_settings; ++i)
        if (sh.misses[sh.sim_of[i]] < sh.misses[sh.sim_of[in_period_best]])
          in_period_best = i;
      rep.sampling_shift = sh.shift;
      rep.setting = setting_of(sh.period_start);
      rep.cache_misses = sh.period_misses;
      rep.setting_misses = sh.misses[sh.sim_of[sh.period_start]];
      rep.best = setting_of(in_period_best);
      rep.best_misses = sh.misses[sh.sim_of[in_period_best]];
      rep.all_misses.resize(n_settings);
      for (size_t i = 0; i < n_settings; ++i)
        rep.all_misses[i] = sh.misses[sh.sim_of[i]];
    }
    const size_t started = sh.period_start;
    std::fill(sh.misses.begin(), sh.misses.end(), 0);
    sh.in_period = 0;
    sh.period_misses = 0;
    ++sh.periods;
    size_t best = sh.current;
    for (size_t i = 0; i < n_settings; ++i)
      if (sh.score[i] < sh.score[best])
        best = i;
    // The setting in use while the evidence is young is the arbitrary start,
    // not a choice worth defending: no hysteresis for the first periods.
    const double hyst = sh.periods <= shadow_early_periods ? 0.0 : shadow_hysteresis;
    if (best != sh.current && sh.score[best] < sh.score[sh.current] * (1 - hyst) - shadow_min_gap) {
      switch_to(best);
    }
    sh.period_start = sh.current;
    if (sh.report) {
      rep.period = sh.periods;
      rep.switched = sh.current != started;
      rep.next = setting_of(sh.current);
      sh.report(rep);
    }
    if (!cfg.count_objects) {
      const uint64_t n = entries_now();
      if (n > sh.built_for * 2 || n * 2 < sh.built_for) {
        shadow_build(n);
        apply_window(window);
      }
    }
  }

  static memory_cache::shadow_setting setting_of(size_t i) {
    memory_cache::shadow_setting s;
    s.window = grid_windows[window_of(i)];
    s.margin = grid_margins[margin_of(i)];
    s.main = main_of(i) == main_slru_ghost     ? main_region_policy::slru_ghost
             : main_of(i) == main_slru_promote ? main_region_policy::slru_promote_reused
                                               : main_region_policy::sampled_lfu;
    s.aging = grid_decay[decay_of(i)];
    return s;
  }

  static uint32_t ghost_capacity(uint64_t entries) {
    return static_cast<uint32_t>(
        std::max<uint64_t>(1, static_cast<uint64_t>(ghost_share * static_cast<double>(entries))));
  }

  enum : uint8_t { warm_pending = 0, warm_admitted = 1, warm_hit = 2 };

  /// Index of `h` in the warm keys, or SIZE_MAX.
  size_t warm_index(uint64_t h) const {
    auto it = std::lower_bound(sh.warm.begin(), sh.warm.end(), h);
    return it != sh.warm.end() && *it == h ? static_cast<size_t>(it - sh.warm.begin()) : SIZE_MAX;
  }

  /// A read while a warm switch is on (exact simulations): counts its gains
  /// and costs.
  void warm_account(uint64_t h, bool hit) {
    if (hit) {
      const size_t k = warm_index(h);
      if (k != SIZE_MAX && sh.warm_state[k] == warm_admitted) {
        sh.warm_state[k] = warm_hit;
        ++sh.warm_gain;
        ++sh.totals.warm_gains;
      }
      return;
    }
    auto it = std::lower_bound(sh.warm_evicted.begin(), sh.warm_evicted.end(), h);
    if (it != sh.warm_evicted.end() && *it == h) {
      sh.warm_evicted.erase(it);
      ++sh.warm_cost;
      ++sh.totals.warm_costs;
    }
  }

  /// An L2 entry the chosen simulation does not hold: L2's victim if it is
  /// one, else the first within warm_scan of each list's LRU end; 0 if none.
  detail::node_id unheld_victim() {
    const detail::node_id v = l2.victim();
    if (v != 0 && warm_index(hash64(l2.table_.key(v))) == SIZE_MAX)
      return v;
    for (const detail::node_list* l : {&l2.probation_, &l2.protected_}) {
      int n = 0;
      for (detail::node_id id = l->tail; id != 0 && n < warm_scan; id = l2.table_.prev(id), ++n)
        if (warm_index(hash64(l2.table_.key(id))) == SIZE_MAX)
          return id;
    }
    return 0;
  }

  /// Moves L2's probation entries that the chosen simulation holds (the warm
  /// keys) to probation's most recently used end, in their order, so the
  /// entries it does not hold are the next victims. No allocation: walks the
  /// list once from its LRU end; a moved entry is not visited again.
  void unheld_last() {
    detail::node_list& l = l2.probation_;
    detail::node_id id = l.tail;
    for (uint64_t n = l.count; n > 0 && id != 0; --n) {
      const detail::node_id prev = l2.table_.prev(id);
      if (warm_index(hash64(l2.table_.key(id))) != SIZE_MAX)
        l.move_front(l2.table_, id);
      id = prev;
    }
  }

  /// Whether the L1 victim `e` (hash `h`), a warm key, is admitted without
  /// the frequency test. With exact simulations: only while the switch's
  /// costs do not exceed its gains by more than warm_slack, and only after
  /// room was made by evicting entries the simulation does not hold.
  bool warm_admit(const entry& e, uint64_t h) {
    const size_t k = warm_index(h);
    if (k == SIZE_MAX || sh.warm_state[k] != warm_pending)
      return false;
    if (sh.shift == 0) {
      if (sh.warm_cost > sh.warm_gain + warm_slack)
        return false;
      if (!e.expired(now_ms) && l2.cost(e) <= l2.capacity_) {
        const size_t charge = l2.charge_of(e);
        while (l2.table_.size() > 0 && l2.used_after_insert(charge) > l2.capacity_) {
          const detail::node_id v = unheld_victim();
          if (v == 0)
            return false; // only keys the simulation holds: the frequency test decides
          const uint64_t vh = hash64(l2.table_.key(v));
          auto it = std::lower_bound(sh.warm_evicted.begin(), sh.warm_evicted.end(), vh);
          if ((it == sh.warm_evicted.end() || *it != vh) &&
              sh.warm_evicted.size() < sh.warm_evicted.capacity()) // fixed memory
            sh.warm_evicted.insert(it, vh);
          l2.evict(v);
        }
      }
    }
    sh.warm_state[k] = warm_admitted;
    ++sh.totals.warm_admissions;
    return true;
  }

  /// An L1 victim leaves for L2: a ghost hit is admitted without the
  /// frequency test when the setting says so, a rejection is remembered.
  void offer_l1_victim(entry&& e) {
    if (!ghost_on && sh.warm.empty()) {
      l2.offer(std::move(e), now_ms, l1.last_evicted_reused_);
      return;
    }
    const uint64_t h = hash64(e.key);
    const bool returned = ghost_on && ghost.take(h);
    const bool warm = !sh.warm.empty() && warm_admit(e, h);
    // With exact simulations a warm key enters protected: the simulation
    // held it in its main region, and in probation the next admissions'
    // victims would be the keys just warmed (bench/RESULTS.md, issue 14
    // ninth pass: cloudPhysicsIO 1% 0.8303 -> 0.8289).
    std::string warm_key;
    if (warm && sh.shift == 0)
      warm_key = e.key;
    const bool admitted =
        l2.offer(std::move(e), now_ms, l1.last_evicted_reused_, (returned && ghost_admit) || warm);
    if (!admitted && ghost_on)
      ghost.insert(h);
    if (admitted && warm && sh.shift == 0)
      if (const detail::node_id id = l2.table_.find(warm_key, h);
          id != 0 && l2.table_.aux(id) == l2_lfu::seg_probation)
        l2.on_hit(id); // probation -> protected
  }

  void maybe_grow_sketch() {
    if (cfg.count_objects)
      return;
    const uint64_t n = l1.table_.size() + l2.table_.size();
    if (n > sketch().capacity()) {
      sketch().ensure_capacity(sketch().capacity() * 2);
      if (recent_on)
        recent.reset(sketch().capacity()); // forgets, as the sketch's re-size does
      if (ghost_on)
        ghost.reset(ghost_capacity(sketch().capacity())); // likewise
      apply_window(window); // the sketch's bytes come out of the capacity
    }
  }
};

memory_cache::memory_cache(memory_cache_config cfg) : impl_(std::make_unique<impl>(cfg)) {
  if (cfg.adaptive_window && cfg.adaptation == window_adaptation::shadow &&
      impl_->shadow_budget() < 64 && cfg.window_fraction == memory_cache_config{}.window_fraction) {
    // Byte mode too small for the simulations (~12 MB): the start would be the
    // setting for good, so take fixed W-TinyLFU (window = the newest entry,
    // margin 0, promote reused) rather than LRU (adaptsize-request --bytes 1%,
    // 2.9 MB: 0.7570 vs LRU's 0.7911).
    cfg.window_fraction = 0.0;
  }
  // The ghost queue exists when its setting may be used: fixed, or in the
  // shadow grid (when the simulations fit their budget).
  impl_->ghost_admit = cfg.main_policy == main_region_policy::slru_ghost;
  impl_->ghost_on =
      impl_->ghost_admit || (cfg.adaptive_window && cfg.adaptation == window_adaptation::shadow &&
                             impl_->shadow_budget() >= 64);
  if (impl_->ghost_on)
    impl_->ghost.reset(
        impl::ghost_capacity(cfg.count_objects ? cfg.capacity_bytes : impl_->sketch().capacity()));
  impl_->window =
      std::clamp(cfg.window_fraction, 0.0, 1.0) * static_cast<double>(impl_->effective());
  impl_->step = step_percent * static_cast<double>(impl_->effective());
  impl_->apply_window(impl_->window);
  impl_->l2.set_admission_margin(std::clamp(cfg.admission_margin, -1, 1));
  // SLRU with promote reused is the default start: measured the better one
  // (see the grid above).
  impl_->l2.set_promote_reused(cfg.main_policy == main_region_policy::slru_promote_reused);
  impl_->l2.set_main_lfu(cfg.main_policy == main_region_policy::sampled_lfu);
  impl_->sketch().set_sample_factor(std::max<uint32_t>(cfg.sketch_aging, 1));
  impl_->returning_reused =
      cfg.returning_keys && cfg.adaptive_window && cfg.adaptation == window_adaptation::shadow;
  {
    // The grid setting nearest to the initial one.
    const size_t main = cfg.main_policy == main_region_policy::sampled_lfu ? impl::main_lfu
                        : cfg.main_policy == main_region_policy::slru_promote_reused
                            ? impl::main_slru_promote
                            : impl::main_slru_ghost; // slru: the grid's SLRU
    size_t decay = 0;
    for (size_t d = 1; d < impl::n_decay; ++d)
      if (std::abs(static_cast<double>(impl::grid_decay[d]) - cfg.sketch_aging) <
          std::abs(static_cast<double>(impl::grid_decay[decay]) - cfg.sketch_aging))
        decay = d;
    size_t best = 0;
    double dist = 1e9;
    for (size_t i = 0; i < std::size(impl::grid_windows); ++i)
      for (size_t j = 0; j < impl::n_margins; ++j) {
        double d = std::fabs(impl::grid_windows[i] - cfg.window_fraction) +
                   (impl::grid_margins[j] == impl_->l2.admission_margin() ? 0 : 10);
        if (d < dist) {
          dist = d;
          best = impl::setting_index(i, j, main, decay);
        }
      }
    impl_->sh.current = best;
  }
  impl_->recent_on = impl_->returning_reused;
  if (impl_->recent_on)
    impl_->recent.reset(cfg.count_objects ? cfg.capacity_bytes : impl_->sketch().capacity());
  impl_->l1.set_eviction_listener([this](entry&& e) { impl_->offer_l1_victim(std::move(e)); });
  impl_->l2.set_eviction_listener([this](entry&& e) { notify_evicted(std::move(e)); });
}

memory_cache::~memory_cache() = default;

const memory_cache::entry_view* memory_cache::find_view(std::string_view key, uint64_t now_ms,
                                                        bool touch) {
  impl& m = *impl_;
  if (m.climb_due)
    m.climb();
  const uint64_t h = hash64(key);
  detail::node_view nv;
  if (node_id id = m.l1.table_.find(key, h, nv)) {
    const uint64_t exp = nv.expiry_ms;
    if (exp != 0 && exp <= now_ms) {
      if (m.lazy_expired)
        m.lazy_expired(key);
      m.l1.remove_node(id);
      ++m.l1.st_.expirations;
      ++m.l1.st_.misses;
    } else {
      ++m.l1.st_.hits;
      ++m.hits;
      if (touch) {
        m.l1.lru_.move_front(m.l1.table_, id);
        m.l1.table_.set_aux(id, 1);
        m.sketch().increment(h);
        if (m.recent_on)
          m.recent.insert(h);
        m.on_access(true, h);
      }
      m.fill_view(nv, false);
      return &m.view;
    }
  } else {
    ++m.l1.st_.misses;
  }
  if (node_id id = m.l2.table_.find(key, h, nv)) {
    const uint64_t exp = nv.expiry_ms;
    if (exp != 0 && exp <= now_ms) {
      if (m.lazy_expired)
        m.lazy_expired(key);
      m.l2.remove_node(id);
      ++m.l2.st_.expirations;
      ++m.l2.st_.misses;
    } else {
      ++m.l2.st_.hits;
      ++m.hits;
      if (touch) {
        m.l2.on_hit(id);
        m.sketch().increment(h);
        if (m.recent_on)
          m.recent.insert(h);
        m.on_access(true, h);
      }
      m.fill_view(nv, true);
      return &m.view;
    }
  } else {
    ++m.l2.st_.misses;
  }
  ++m.misses;
  if (touch) {
    if (m.recent_on) {
      m.last_h = h;
      m.last_returning = m.recent.contains(h);
      m.recent.insert(h);
    }
    m.on_access(false, h);
  }
  return nullptr;
}

uint64_t memory_cache::removals() const noexcept {
  return impl_->l1.table_.removals() + impl_->l2.table_.removals();
}

void memory_cache::prefetch(const std::string_view* keys, size_t n, bool* maybe_resident,
                            bool* resident) const {
  const impl& m = *impl_;
  const detail::entry_table& t1 = m.l1.table_;
  const detail::entry_table& t2 = m.l2.table_;
  const frequency_sketch& sk = m.l2.sketch_;
  constexpr size_t chunk = 32;
  uint64_t h[chunk];
  node_id id[chunk];
  const detail::entry_table* in[chunk];
  for (size_t base = 0; base < n; base += chunk) {
    const size_t k = std::min(chunk, n - base);
    for (size_t i = 0; i < k; ++i) { // 1: the index groups and sketch blocks
      h[i] = hash64(keys[base + i]);
      t1.prefetch_index(h[i]);
      t2.prefetch_index(h[i]);
      sk.prefetch(h[i]);
    }
    for (size_t i = 0; i < k; ++i) { // 2: the nodes the lookups will compare
      in[i] = &t1;
      id[i] = t1.peek(h[i]);
      if (id[i] == 0) {
        in[i] = &t2;
        id[i] = t2.peek(h[i]);
      }
      if (id[i] != 0)
        in[i]->prefetch_node(id[i], 128);
      if (maybe_resident)
        maybe_resident[base + i] = id[i] != 0;
    }
    for (size_t i = 0; i < k; ++i) { // 3: the list neighbours a hit relinks
      if (resident)                  // (the node's line is loaded for prev() below anyway)
        resident[base + i] = id[i] != 0 && in[i]->key(id[i]) == keys[base + i];
      if (id[i] == 0)
        continue;
      if (node_id p = in[i]->prev(id[i]))
        in[i]->prefetch_node(p, 64);
      if (node_id x = in[i]->next(id[i]))
        in[i]->prefetch_node(x, 64);
    }
  }
}

void memory_cache::on_lazy_expire(std::function<void(std::string_view)> f) {
  impl_->lazy_expired = std::move(f);
}

result<std::optional<entry>> memory_cache::get(std::string_view key, uint64_t now_ms, bool touch) {
  const entry_view* v = find_view(key, now_ms, touch);
  if (!v)
    return std::optional<entry>{};
  entry e;
  e.key.assign(v->key.data(), v->key.size());
  e.value.assign(v->value.data(), v->value.size());
  e.expiry_ms = v->expiry_ms;
  e.ver = v->ver;
  e.flags = v->flags;
  return std::optional<entry>{std::move(e)};
}

status memory_cache::put(entry e, uint64_t now_ms) {
  return store(e, now_ms);
}

status memory_cache::store(const entry& e, uint64_t now_ms) {
  impl& m = *impl_;
  if (auto st = m.cfg.lim.check(e); !st)
    return st;
  m.now_ms = now_ms;
  if (m.climb_due)
    m.climb();
  ++m.puts;
  const uint64_t h = hash64(e.key);
  m.sketch().increment(h);
  node_id in_l1 = m.l1.table_.find(e.key, h);
  node_id in_l2 = in_l1 ? 0 : m.l2.table_.find(e.key, h);
  if (e.expired(now_ms)) {
    if (in_l1)
      m.l1.remove_node(in_l1);
    if (in_l2)
      m.l2.remove_node(in_l2);
    return {};
  }
  const uint64_t cost = m.l1.cost(e);
  if (cost > m.effective()) {
    if (in_l1)
      m.l1.remove_node(in_l1);
    if (in_l2)
      m.l2.remove_node(in_l2);
    return m.too_large(cost);
  }
  status st;
  if (in_l2 && m.l2.cost(e) <= m.l2.capacity_) {
    // A resident key is overwritten where it lives.
    m.fit_caps(0);
    st = m.l2.upsert(e, h, now_ms);
  } else {
    // A new key (or one too big for L2 now) always lands in L1, so the newest
    // write is resident (read-your-writes from memory); admission applies to
    // L1's victims. When the window is smaller than this entry, L1 holds it
    // over its share for now and L2 gives up the difference.
    if (in_l2)
      m.l2.remove_node(in_l2);
    m.fit_caps(m.l1.cost(e));
    st = m.l1.upsert(e, h, now_ms);
    if (m.returning_reused && !in_l2 && m.last_h == h && m.last_returning)
      if (node_id id = m.l1.table_.find(e.key, h))
        m.l1.table_.set_aux(id, 1);
  }
  m.maybe_grow_sketch();
  return st;
}

status memory_cache::admits(std::string_view key, size_t value_bytes) const {
  const impl& m = *impl_;
  const uint64_t cost = m.l1.cost(key, value_bytes, ~uint64_t{0}, version{~uint64_t{0}, ~0u});
  return cost > m.effective() ? m.too_large(cost) : status{};
}

status memory_cache::put_predicted(entry e, uint64_t now_ms) {
  impl& m = *impl_;
  const uint64_t h = hash64(e.key);
  if (m.l1.table_.find(e.key, h) || m.l2.table_.find(e.key, h))
    return {};
  if (auto st = m.cfg.lim.check(e); !st)
    return st;
  if (e.expired(now_ms))
    return {};
  m.fit_caps(0);
  if (m.l2.used_after_insert(m.l2.charge_of(e)) > m.l2.capacity_)
    return put(std::move(e), now_ms);
  m.now_ms = now_ms;
  ++m.puts;
  m.sketch().increment(h);
  if (m.l2.insert_probation(e, h) == 0)
    return status{errc::out_of_space, "no room in L2"};
  m.maybe_grow_sketch();
  return {};
}

result<bool> memory_cache::erase(std::string_view key) {
  impl& m = *impl_;
  const uint64_t h = hash64(key);
  bool found = false;
  if (node_id id = m.l1.table_.find(key, h)) {
    m.l1.remove_node(id);
    found = true;
  }
  if (node_id id = m.l2.table_.find(key, h)) {
    m.l2.remove_node(id);
    found = true;
  }
  if (found)
    ++m.erases;
  return found;
}

size_t memory_cache::sweep_expired(uint64_t now_ms, size_t budget) {
  size_t n = impl_->l1.sweep_expired(now_ms, budget);
  if (n < budget)
    n += impl_->l2.sweep_expired(now_ms, budget - n);
  return n;
}

status memory_cache::clear() {
  (void)impl_->l1.clear();
  (void)impl_->l2.clear();
  return {};
}

tier_stats memory_cache::stats() const {
  const impl& m = *impl_;
  tier_stats a = m.l1.stats(), b = m.l2.stats();
  tier_stats s;
  s.hits = m.hits;
  s.misses = m.misses;
  s.puts = m.puts;
  s.erases = m.erases;
  s.evictions = b.evictions;
  s.expirations = a.expirations + b.expirations;
  s.entries = a.entries + b.entries;
  s.bytes = a.bytes + b.bytes;
  if (!m.cfg.count_objects && s.entries > 0)
    s.bytes += m.overhead_bytes();
  s.capacity_bytes = m.cfg.capacity_bytes;
  return s;
}

void memory_cache::record_miss(std::string_view key) {
  impl_->sketch().increment(hash64(key));
}

memory_region memory_cache::locate(std::string_view key) const {
  const uint64_t h = hash64(key);
  if (impl_->l1.table_.find(key, h))
    return memory_region::l1;
  if (impl_->l2.table_.find(key, h))
    return memory_region::l2;
  return memory_region::none;
}

uint32_t memory_cache::frequency(std::string_view key) const {
  return impl_->l2.sketch_.frequency(hash64(key));
}

uint64_t memory_cache::charged_bytes(std::string_view key) const {
  const uint64_t h = hash64(key);
  if (node_id id = impl_->l1.table_.find(key, h))
    return impl_->l1.table_.charge(id);
  if (node_id id = impl_->l2.table_.find(key, h))
    return impl_->l2.table_.charge(id);
  return 0;
}

bool memory_cache::set_expiry(std::string_view key, uint64_t expiry_ms) {
  impl& m = *impl_;
  const uint64_t h = hash64(key);
  if (node_id id = m.l1.table_.find(key, h)) {
    if (m.l1.table_.set_expiry_inplace(id, expiry_ms))
      return true;
    entry e = m.l1.table_.to_entry(id);
    e.expiry_ms = expiry_ms;
    m.fit_caps(m.l1.cost(e));
    (void)m.l1.upsert(e, h, 0);
    return true;
  }
  if (node_id id = m.l2.table_.find(key, h)) {
    if (m.l2.table_.set_expiry_inplace(id, expiry_ms))
      return true;
    entry e = m.l2.table_.to_entry(id);
    e.expiry_ms = expiry_ms;
    m.fit_caps(0);
    if (m.l2.cost(e) <= m.l2.capacity_) {
      (void)m.l2.upsert(e, h, 0);
    } else {
      m.l2.remove_node(id);
      m.fit_caps(m.l1.cost(e));
      (void)m.l1.upsert(e, h, 0);
    }
    return true;
  }
  return false;
}

void memory_cache::for_each(const std::function<void(const entry_view&)>& f) const {
  const impl& m = *impl_;
  auto walk = [&f](const detail::entry_table& t, const detail::node_list& l) {
    for (node_id id = l.head; id != 0; id = t.next(id)) {
      detail::node_view v = t.view(id);
      f(entry_view{v.key, v.value, v.expiry_ms, v.ver, v.flags});
    }
  };
  walk(m.l1.table_, m.l1.lru_);
  walk(m.l2.table_, m.l2.probation_);
  walk(m.l2.table_, m.l2.protected_);
}

tier_stats memory_cache::l1_stats() const {
  return impl_->l1.stats();
}
tier_stats memory_cache::l2_stats() const {
  return impl_->l2.stats();
}
uint64_t memory_cache::window_capacity() const {
  return impl_->l1.capacity_;
}

memory_cache::adaptation_stats memory_cache::adaptation() const {
  return impl_->sh.totals;
}

std::vector<memory_cache::shadow_setting> memory_cache::shadow_grid() {
  std::vector<shadow_setting> grid(impl::n_settings);
  for (size_t i = 0; i < grid.size(); ++i)
    grid[i] = impl::setting_of(i);
  return grid;
}

void memory_cache::on_period(std::function<void(const period_report&)> f) {
  impl_->sh.report = std::move(f);
}

} // namespace kura
