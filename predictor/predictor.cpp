#include "predictor/predictor.hpp"

#include "tiers/hash.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace kura::predictor {

const char* to_string(tier_choice t) {
  switch (t) {
  case tier_choice::memory:
    return "memory";
  case tier_choice::l1:
    return "l1";
  case tier_choice::l3:
    return "l3";
  }
  return "memory";
}

namespace {

// Shares of memory_bytes (the rest is the sketch and fixed overhead).
constexpr double key_share = 0.68;
constexpr double pattern_share = 0.08;
constexpr double shape_share = 0.02;
constexpr double pair_share = 0.12;
constexpr double write_share = 0.05;
constexpr uint64_t write_track_overhead = 160;

} // namespace

predictor::predictor(predictor_config cfg)
    : cfg_(cfg), rng_(cfg.seed),
      sketch_(std::max<uint64_t>(16, static_cast<uint64_t>(cfg.memory_bytes * key_share) /
                                         (sizeof(key_slot) + 96))),
      shapes_(8, static_cast<uint64_t>(cfg.memory_bytes * shape_share)),
      pairs_(
          [&] {
            coaccess_config c = cfg.coaccess;
            c.max_bytes = static_cast<uint64_t>(cfg.memory_bytes * pair_share);
            return c;
          }(),
          cfg.seed ^ 0x70616972ull),
      anomalies_(cfg.anomaly) {
  // The key table's entries in one block sized to the budget (address space
  // only until used): the model grows to its budget without heap growth
  // (sysmalloc was a third of a fresh node's learning, bench/RESULTS.md
  // predictor16). Capped, for budgets far above the default.
  keys_.reserve(static_cast<size_t>(
      std::min<uint64_t>(key_budget() / key_slot_overhead + 1, uint64_t{1} << 20)));
}

uint64_t predictor::key_budget() const {
  // Without co-access learning its share goes to the key table.
  const double share = key_share + (cfg_.coaccess_prefetch ? 0.0 : pair_share);
  return static_cast<uint64_t>(cfg_.memory_bytes * share);
}

uint64_t predictor::pattern_budget() const {
  return static_cast<uint64_t>(cfg_.memory_bytes * pattern_share);
}

size_t predictor::write_track_limit() const {
  return static_cast<size_t>(cfg_.memory_bytes * write_share / write_track_overhead);
}

uint64_t predictor::bytes() const {
  return sizeof(*this) + key_bytes_ + pattern_bytes_ + write_bytes_ + shapes_.bytes() +
         pairs_.bytes() + sketch_.memory_bytes();
}

// -- learning -------------------------------------------------------------------

predictor::pattern_slot& predictor::pattern(const std::string& p, uint64_t now_ms) {
  auto it = patterns_.find(p);
  if (it != patterns_.end())
    return it->second;
  const uint64_t cost = pattern_slot_overhead + p.size();
  while (!patterns_.empty() && pattern_bytes_ + cost > pattern_budget())
    trim_patterns(now_ms);
  pattern_bytes_ += cost;
  auto& slot = patterns_.emplace(p, pattern_slot{}).first->second;
  slot.profile = time_profile(now_ms);
  return slot;
}

void predictor::trim_patterns(uint64_t now_ms) {
  // Evict the least active of a few sampled patterns.
  auto victim = patterns_.end();
  double least = 0;
  for (int i = 0; i < 8; ++i) {
    const size_t b = rng_.below(patterns_.bucket_count());
    if (patterns_.bucket_size(b) == 0)
      continue;
    auto it = patterns_.find(patterns_.begin(b)->first);
    const double w = it->second.profile.weight(now_ms, cfg_.profile) + it->second.writes;
    if (victim == patterns_.end() || w < least) {
      victim = it;
      least = w;
    }
  }
  if (victim == patterns_.end())
    victim = patterns_.begin();
  pattern_bytes_ -= pattern_slot_overhead + victim->first.size();
  patterns_.erase(victim);
}

void predictor::admit(std::string_view k, uint64_t h, const access_event& e) {
  sketch_.increment(h);
  const uint64_t cost = key_slot_overhead + k.size();
  auto init = [&](key_slot& slot) {
    slot.profile = time_profile(e.time_ms);
    slot.profile.record(e.time_ms, cfg_.profile);
    slot.size = e.size;
  };
  // A full table admits a key only if it was seen again recently and is more
  // frequent than the least active of a few sampled tracked keys.
  while (key_bytes_ + cost > key_budget()) {
    if (keys_.empty())
      return;
    const uint32_t freq = sketch_.frequency(h);
    if (freq < 2)
      return;
    // (uniform samples of the dense table: one cache miss each; this runs
    // for most sampled reads of a key space larger than the table)
    flat_table<key_slot>::iterator victim = nullptr;
    double least = 0;
    for (int i = 0; i < 8; ++i) {
      auto v = keys_.at(rng_.below(keys_.size()));
      const double w = v->second.profile.weight(e.time_ms, cfg_.profile);
      if (!victim || w < least) {
        victim = v;
        least = w;
      }
    }
    if (least >= freq)
      return;
    key_bytes_ -= key_slot_overhead + victim->first.size();
    if (key_bytes_ + cost <= key_budget()) {
      // the usual case: the key takes the victim's place (and its storage)
      key_bytes_ += cost;
      init(keys_.replace(victim, k, h)->second);
      return;
    }
    keys_.erase(victim);
  }
  key_bytes_ += cost;
  init(keys_.try_emplace(k, h).first->second);
}

void predictor::count_insert(uint64_t now_ms, uint32_t size, uint32_t weight) {
  const uint64_t h = now_ms / hour_ms;
  if (h != insert_hour_) {
    // an hour (or more, idle ones counting as nothing) has passed
    const double idle = h > insert_hour_ + 1 ? 0 : insert_acc_;
    insert_rate_ = insert_rate_ == 0 ? insert_acc_ : 0.5 * insert_rate_ + 0.5 * idle;
    insert_hour_ = h;
    insert_acc_ = 0;
  }
  const double bytes =
      static_cast<double>(std::max<uint32_t>(1, size)) * (weight ? weight : cfg_.event_scale);
  insert_acc_ += bytes;
  inserted_ += bytes;
}

bool predictor::would_survive(double at) const {
  return capacity_ == 0 || inserted_ - at < static_cast<double>(capacity_);
}

uint64_t predictor::turnover_ms(uint64_t capacity) const {
  if (insert_rate_ <= 0 || capacity == 0)
    return UINT64_MAX;
  return static_cast<uint64_t>(static_cast<double>(capacity) / insert_rate_ * hour_ms);
}

void predictor::record(const access_event& e) {
  ++st_.events;
  if (e.tier != access_tier::l1 && e.tier != access_tier::l2)
    count_insert(e.time_ms, e.size, e.weight);
  // A tracked key already counted in this hour: its pattern was counted in
  // this hour with it (profiles count an hour once), so only the key's size
  // and the outcomes below can change. Skipping the pattern's learning
  // halves the cost of a repeated read.
  // One hash and one lookup of the key per event (the predictor's hot spot,
  // see admit): the hash serves the key table, the write table and the sketch.
  const uint64_t h = flat_table<key_slot>::hash(e.key);
  auto known = keys_.find(e.key, h);
  if (known == keys_.end() || known->second.profile.last_hour() != e.time_ms / hour_ms) {
    const std::string p = shapes_.learn(e.key);
    pattern_slot& ps = pattern(p, e.time_ms);
    ps.profile.record(e.time_ms, cfg_.profile);
    ps.last_ms = e.time_ms;
  }
  if (known != keys_.end()) {
    key_slot& slot = known->second;
    slot.profile.record(e.time_ms, cfg_.profile);
    if (e.size)
      slot.size = e.size;
    // (a key admitted just now has no open shadow)
    if (slot.shadow_until && e.time_ms < slot.shadow_until)
      shadow_outcome(slot, would_survive(slot.shadow_inserted));
  }
  if (cfg_.coaccess_prefetch)
    pairs_.record(e.key, e.time_ms);
  // Outcome of a tracked write.
  if (!writes_.empty())
    write_read(e.key, h, e.time_ms);
  if (known == keys_.end())
    admit(e.key, h, e); // last: it may evict other keys
}

void predictor::write_read(std::string_view key, uint64_t h, uint64_t now_ms) {
  auto w = writes_.find(key, h);
  if (w != writes_.end()) {
    auto pi = patterns_.find(w->second.pattern);
    pattern_slot* wp = pi == patterns_.end() ? nullptr : &pi->second;
    const bool expired = w->second.expiry_ms && now_ms >= w->second.expiry_ms;
    if (!w->second.read && wp) {
      if (now_ms - w->second.write_ms <= cfg_.read_soon_ms)
        ++wp->read_soon;
      else
        ++wp->read_later;
      if (w->second.expiry_ms && !expired)
        ++wp->read_before_expiry;
    }
    w->second.read = true;
    if (expired) {
      // Read again after the asked TTL ran out: that TTL was too short (a
      // miss; or a hit where an applied longer TTL kept the key, which keeps
      // the rule that lengthened it).
      if (wp)
        ++wp->reread_after_expiry;
      write_bytes_ -= write_track_overhead + w->first.size();
      writes_.erase(w);
    }
  }
}

void predictor::close_write(const std::string& key, write_track& w, uint64_t now_ms) {
  auto pi = patterns_.find(w.pattern);
  // A write dropped from tracking (superseded, or the table full) before it
  // was followed for write_track_ms has no known outcome yet: not "never read"
  // (counting it so made every pattern with more writes in flight than the
  // table holds look unread to the tier choice); one whose TTL ran out unread
  // is known.
  const bool followed =
      now_ms >= w.write_ms + cfg_.write_track_ms || (w.expiry_ms && now_ms >= w.expiry_ms);
  if (pi != patterns_.end() && !w.read && followed) {
    ++pi->second.never_read;
    if (w.expiry_ms && now_ms >= w.expiry_ms)
      ++pi->second.expired_unread;
  }
  write_bytes_ -= write_track_overhead + key.size();
}

void predictor::record_write(std::string_view key, uint64_t now_ms, uint64_t ttl_ms, uint32_t size,
                             uint32_t weight) {
  ++st_.writes;
  count_insert(now_ms, size, weight);
  const std::string p = shapes_.learn(key);
  pattern_slot& ps = pattern(p, now_ms);
  ++ps.writes;
  if (ttl_ms)
    ++ps.ttl_writes;
  ps.last_ms = now_ms;
  const uint64_t h = flat_table<write_track>::hash(key);
  auto it = writes_.find(key, h);
  if (it != writes_.end()) {
    close_write(it->first, it->second, now_ms); // superseded
    writes_.erase(it);
  }
  write_bytes_ += write_track_overhead + key.size();
  write_order_.emplace_back(std::string(key), now_ms);
  writes_.try_emplace(key, h).first->second =
      write_track{now_ms, ttl_ms ? now_ms + ttl_ms : 0, false, p};
  while (writes_.size() > write_track_limit() && !write_order_.empty()) {
    auto [old, at] = std::move(write_order_.front());
    write_order_.pop_front();
    auto o = writes_.find(old);
    if (o != writes_.end() && o->second.write_ms == at) {
      close_write(o->first, o->second, now_ms);
      writes_.erase(o);
    }
  }
}

void predictor::tick(uint64_t now_ms) {
  // Loads not read within twice the horizon: the prediction missed.
  const uint64_t deadline = 2 * cfg_.load_horizon_ms;
  while (!open_loads_.empty() && open_loads_.front().second + deadline <= now_ms) {
    auto it = keys_.find(open_loads_.front().first);
    if (it != keys_.end() && it->second.last_load_ms == open_loads_.front().second)
      load_outcome(it->second, false);
    open_loads_.pop_front();
  }
  while (!shadows_.empty() && shadows_.front().second <= now_ms) {
    auto it = keys_.find(shadows_.front().first);
    if (it != keys_.end() && it->second.shadow_until == shadows_.front().second)
      shadow_outcome(it->second, false);
    shadows_.pop_front();
  }
  // Close tracked writes whose outcome is known: followed for write_track_ms
  // (and, with a TTL, until write_track_ms after expiry, to see re-reads).
  size_t budget = std::min<size_t>(write_order_.size(), 1024);
  while (budget-- > 0) {
    auto [key, at] = std::move(write_order_.front());
    write_order_.pop_front();
    auto it = writes_.find(key);
    if (it == writes_.end() || it->second.write_ms != at)
      continue; // superseded or closed
    const write_track& w = it->second;
    const uint64_t until =
        (w.expiry_ms ? std::max(w.expiry_ms, w.write_ms) : w.write_ms) + cfg_.write_track_ms;
    if (now_ms >= until) {
      close_write(it->first, it->second, now_ms);
      writes_.erase(it);
    } else {
      write_order_.emplace_back(std::move(key), at);
    }
  }
}

// -- prewarm --------------------------------------------------------------------

std::optional<double> predictor::key_probability(std::string_view key, uint64_t from_ms,
                                                 uint64_t to_ms, uint64_t now_ms) const {
  auto it = keys_.find(key);
  if (it == keys_.end())
    return std::nullopt;
  return it->second.profile.window_probability(from_ms, to_ms, now_ms, cfg_.profile);
}

void predictor::refresh_shortlist(uint64_t now_ms) {
  const uint64_t hour = now_ms / hour_ms;
  if (hour == shortlist_hour_)
    return;
  // An upper bound per key: the best hour probability over the hours the
  // longest horizon can touch. Keys below min-confidence cannot qualify
  // (coverage and survival only lower it) and neither can they be "hotter"
  // than a candidate.
  shortlist_.clear();
  shortlist_hour_ = hour;
  const uint64_t last = (now_ms + cfg_.load_horizon_ms) / hour_ms + 1;
  std::vector<std::pair<double, const std::string*>> cold;
  // Calibrated buckets may lift a key from the calibration floor up.
  const double least = std::min(cfg_.min_confidence, calibration_floor);
  for (const auto& [key, slot] : keys_) {
    double none = 1; // an upper bound of the window probability (full hours)
    for (uint64_t h = hour; h <= last && 1 - none < least; ++h)
      none *= 1 - slot.profile.hour_probability(h, now_ms, cfg_.profile);
    if (1 - none >= least) {
      shortlist_.push_back(key);
    } else if (cfg_.demote_cold && slot.profile.hours_seen() >= 2 &&
               slot.profile.window_probability(now_ms, now_ms + cfg_.cold_window_ms, now_ms,
                                               cfg_.profile) < cfg_.cold_max_probability) {
      cold.emplace_back(slot.profile.weight(now_ms, cfg_.profile), &key);
    }
  }
  shortlist_hot_ = shortlist_.size();
  // The most active cold keys are those the memory policy holds on to.
  const size_t keep = std::min(cold.size(), 2 * shortlist_hot_);
  std::partial_sort(cold.begin(), cold.begin() + keep, cold.end(),
                    [](const auto& a, const auto& b) {
                      return a.first != b.first ? a.first > b.first : *a.second < *b.second;
                    });
  for (size_t i = 0; i < keep; ++i)
    shortlist_.push_back(*cold[i].second);
}

bool predictor::imminent(const time_profile& prof, uint64_t now_ms) const {
  if (cfg_.imminent_ms == 0)
    return true;
  const uint64_t soon = now_ms + cfg_.imminent_ms;
  // Already read in the hour of `soon`: its reads have started (a resident
  // key is skipped anyway; an evicted one may be needed again).
  return prof.hour_probability(soon / hour_ms, now_ms, cfg_.profile) >= cfg_.imminent_probability ||
         (prof.last_hour() != UINT64_MAX && prof.last_hour() == soon / hour_ms);
}

const std::vector<std::string>& predictor::shortlist(uint64_t now_ms) {
  refresh_shortlist(now_ms);
  return shortlist_;
}

prewarm_plan predictor::make_plan(uint64_t now_ms, const memory_view& mem, bool restart) {
  prewarm_plan plan;
  plan.at_ms = now_ms;
  capacity_ = mem.capacity_bytes();
  plan.horizon_ms = effective_horizon_ms();
  if (const uint64_t turnover = turnover_ms(mem.capacity_bytes()); turnover < plan.horizon_ms) {
    uint64_t h = 0;
    for (size_t j = 0; j < survival_buckets && survival_bound_min[j] * minute_ms <= turnover; ++j)
      h = survival_bound_min[j] * minute_ms;
    plan.horizon_ms = h;
  }
  ++st_.plans;
  if (plan.horizon_ms == 0)
    return plan;
  size_t bucket = 0;
  while (survival_bound_min[bucket] * minute_ms < plan.horizon_ms)
    ++bucket;
  plan.survival = survival(bucket);
  const uint64_t to = now_ms + plan.horizon_ms;
  struct cand {
    const std::string* key;
    key_slot* slot;
    double q;
    uint64_t bytes;
  };
  std::vector<cand> cands;
  std::vector<std::pair<double, uint64_t>> hotter; // resident: (q, bytes)
  const uint64_t hour = now_ms / hour_ms;
  const double bar = load_bar();
  double outcomes = 0;
  for (size_t b = 0; b < calibration_buckets; ++b)
    outcomes += cal_loads_[b];
  const bool first = outcomes < cfg_.first_evidence; // shadows only, no loads yet
  refresh_shortlist(now_ms);
  for (size_t i = 0; i < shortlist_hot_; ++i) {
    auto found = keys_.find(shortlist_[i]);
    if (found == keys_.end())
      continue;
    const std::string& key = found->first;
    key_slot& slot = found->second;
    if (!mem.here(key)) { // a cluster node: a slot another node replicates
      ++plan.elsewhere;
      continue;
    }
    // A load pays if the key is read within the horizon and still resident
    // then; the plan's own track record calibrates that figure.
    // Reads of one key within a day are correlated: a key that skipped the
    // hours it was predicted for today is likely off today. The probability
    // of the horizon is discounted by the best prediction among the last two
    // completed hours that passed without a read.
    double skipped = 0;
    for (uint64_t h = hour >= 2 ? hour - 2 : 0; h < hour; ++h) {
      const uint64_t last = slot.profile.last_hour();
      if (h < slot.profile.first_hour() || (last != UINT64_MAX && last >= h))
        continue;
      skipped = std::max(skipped, slot.profile.hour_probability(h, now_ms, cfg_.profile));
    }
    // Load as late as it can be: only when the key's reads are about to start
    // (the hour of the next cycle is one it is likely read in), so a load does
    // not wait long in memory for its read; the horizon then says how likely
    // the read is at all.
    if ((!restart && !imminent(slot.profile, now_ms)) ||
        slot.profile.first_hour() + cfg_.min_history_ms / hour_ms > hour)
      continue;
    const double raw = slot.profile.window_probability(now_ms, to, now_ms, cfg_.profile) *
                       plan.survival * (1 - skipped);
    const double q = calibrated(raw);
    const uint64_t b = std::max<uint64_t>(1, slot.size);
    if (mem.resident(key)) {
      hotter.emplace_back(q, b);
      continue;
    }
    // Loaded recently and gone again, or not read yet: do not load it twice
    // for the same prediction (a key that skips its usual hour today is
    // likely to skip the next one too).
    // An open load of a key no longer resident was evicted before its read:
    // loaded once more if still predicted.
    const bool evicted_unread = cfg_.reload_evicted && slot.load_open && !slot.reloaded;
    if (slot.last_load_ms && now_ms - slot.last_load_ms < 2 * cfg_.load_horizon_ms &&
        !evicted_unread)
      continue;
    slot.planned_q = static_cast<float>(raw);
    // A load needs outcomes of its own calibration bucket: with a few, its
    // confidence is mostly the (pooled, scaled) profile figure; it is checked
    // without a load (a shadow) until the bucket has lift_evidence outcomes.
    const bool unproven =
        raw >= calibration_floor && cal_loads_[calibration_bucket(raw)] < cfg_.lift_evidence;
    if (q >= bar && !unproven && !first) {
      cands.push_back(cand{&key, &slot, q, b});
    } else if (!slot.shadow_until && raw >= calibration_floor &&
               (cfg_.shadow_below_bar || q >= cfg_.min_confidence)) {
      // A load is judged by a read within two horizons (tick()); so is its shadow.
      const uint64_t until = cfg_.shadow_below_bar ? now_ms + 2 * plan.horizon_ms : to;
      slot.shadow_until = until;
      slot.shadow_q = static_cast<float>(raw);
      slot.shadow_inserted = inserted_;
      shadows_.emplace_back(key, until);
    }
  }
  plan.candidates = cands.size();
  if (cands.empty())
    return plan;
  // Residents by prediction, hottest first, with running byte sums.
  std::sort(hotter.begin(), hotter.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<uint64_t> prefix(hotter.size() + 1, 0);
  for (size_t i = 0; i < hotter.size(); ++i)
    prefix[i + 1] = prefix[i] + hotter[i].second;
  // Expected hits saved per byte: a load saves the first read of the horizon.
  std::sort(cands.begin(), cands.end(), [](const cand& a, const cand& b) {
    const double x = a.q / a.bytes, y = b.q / b.bytes;
    return x != y ? x > y : *a.key < *b.key;
  });
  const double secs = cfg_.interval_ms / 1000.0;
  const uint64_t rate_budget =
      static_cast<uint64_t>(std::max(1.0, cfg_.max_load_bytes_per_second * secs));
  const uint64_t budget = std::min(cfg_.max_bytes_per_cycle, rate_budget);
  const uint64_t cap = mem.capacity_bytes();
  for (const cand& c : cands) {
    if (plan.items.size() >= cfg_.max_keys_per_cycle || plan.bytes + c.bytes > budget)
      break;
    // Resident keys predicted at least as hot as this one keep their room.
    const size_t n_hot = std::lower_bound(hotter.begin(), hotter.end(), c.q,
                                          [](const auto& h, double q) { return h.first >= q; }) -
                         hotter.begin();
    if (prefix[n_hot] + plan.bytes + c.bytes > cap) {
      ++plan.held_back;
      continue;
    }
    plan_item it;
    it.key = *c.key;
    it.confidence = c.q;
    it.expected_hits = c.q;
    it.bytes = c.bytes;
    plan.bytes += c.bytes;
    plan.items.push_back(std::move(it));
  }
  for (auto& it : plan.items)
    it.pattern = shapes_.pattern_of(it.key);
  // Room for the loads: resident keys predicted cold (rechecked now), the
  // most active first, at most one per load.
  for (size_t i = shortlist_hot_; i < shortlist_.size() && plan.demote.size() < plan.items.size();
       ++i) {
    const std::string& key = shortlist_[i];
    auto found = keys_.find(key);
    if (found == keys_.end() || !mem.resident(key))
      continue;
    if (found->second.profile.window_probability(now_ms, now_ms + cfg_.cold_window_ms, now_ms,
                                                 cfg_.profile) >= cfg_.cold_max_probability)
      continue;
    plan.demote.push_back(key);
  }
  st_.demotions += plan.demote.size();
  return plan;
}

prewarm_plan predictor::preview(uint64_t now_ms, size_t limit) const {
  prewarm_plan plan;
  plan.at_ms = now_ms;
  plan.horizon_ms = cfg_.prediction_window_ms;
  const uint64_t to = now_ms + cfg_.prediction_window_ms;
  auto consider = [&](const std::string& name, const time_profile& prof, uint64_t bytes,
                      bool is_pattern) {
    const double q = prof.window_probability(now_ms, to, now_ms, cfg_.profile);
    if (q < cfg_.min_confidence)
      return;
    plan_item it;
    it.key = name;
    it.pattern = is_pattern ? name : shapes_.pattern_of(name);
    it.confidence = q;
    it.expected_hits = prof.expected_hours(now_ms, to, now_ms, cfg_.profile);
    it.bytes = bytes;
    it.is_pattern = is_pattern;
    plan.items.push_back(std::move(it));
  };
  for (const auto& [key, slot] : keys_)
    consider(key, slot.profile, std::max<uint64_t>(1, slot.size), false);
  plan.candidates = plan.items.size();
  for (const auto& [p, slot] : patterns_)
    consider(p, slot.profile, 0, true);
  std::sort(plan.items.begin(), plan.items.end(), [](const plan_item& a, const plan_item& b) {
    if (a.is_pattern != b.is_pattern)
      return !a.is_pattern;
    const double x = a.expected_hits / std::max<uint64_t>(1, a.bytes);
    const double y = b.expected_hits / std::max<uint64_t>(1, b.bytes);
    return x != y ? x > y : a.key < b.key;
  });
  if (plan.items.size() > limit)
    plan.items.resize(limit);
  for (const auto& it : plan.items)
    plan.bytes += it.bytes;
  return plan;
}

std::vector<std::string> predictor::prefetch_for(std::string_view key, uint64_t now_ms,
                                                 const memory_view& mem) {
  std::vector<std::string> out;
  if (!cfg_.coaccess_prefetch)
    return out;
  for (auto& f : pairs_.followers(key, cfg_.min_confidence)) {
    if (mem.resident(f.key))
      continue;
    auto it = keys_.find(f.key);
    if (it != keys_.end() && it->second.last_load_ms &&
        now_ms - it->second.last_load_ms < cfg_.coaccess.window_ms)
      continue;
    out.push_back(std::move(f.key));
  }
  return out;
}

size_t predictor::calibration_bucket(double q) {
  const double x = (q - calibration_floor) / 0.05;
  return x <= 0 ? 0 : std::min<size_t>(calibration_buckets - 1, static_cast<size_t>(x));
}

double predictor::calibrated(double q) const {
  if (q < calibration_floor)
    return q;
  const size_t b = calibration_bucket(q);
  // The prior of a bucket is the profile's figure, scaled down by how the
  // record as a whole realised its figures (never up): on a trace where
  // predictions in every bucket came true a third as often as the profile
  // said, a bucket with few outcomes of its own is not trusted at face value
  // (nasa at 1 %: loads at q 0.85 with 5 outcomes in the bucket).
  double used = 0, expected = 0;
  for (size_t i = 0; i < calibration_buckets; ++i) {
    used += cal_used_[i];
    expected += cal_loads_[i] * (calibration_floor + 0.05 * (i + 0.5));
  }
  const double scale = expected > 0 ? std::min(1.0, (used + 2) / (expected + 2)) : 1.0;
  constexpr double prior = 4; // the profile's figure counts as four loads
  return (cal_used_[b] + prior * q * scale) / (cal_loads_[b] + prior);
}

double predictor::load_bar() const {
  double outcomes = 0;
  for (size_t b = 0; b < calibration_buckets; ++b)
    outcomes += cal_loads_[b];
  const double thin =
      cfg_.evidence_loads > 0 ? std::max(0.0, 1 - outcomes / cfg_.evidence_loads) : 0.0;
  return cfg_.min_confidence + (1 - cfg_.min_confidence) * cfg_.thin_margin * thin;
}

std::vector<std::pair<double, double>> predictor::calibration_table() const {
  std::vector<std::pair<double, double>> out;
  for (size_t b = 0; b < calibration_buckets; ++b)
    out.emplace_back(cal_used_[b], cal_loads_[b]);
  return out;
}

void predictor::load_outcome(key_slot& slot, bool used) {
  if (!slot.load_open)
    return;
  slot.load_open = false;
  const size_t b = calibration_bucket(slot.load_q);
  cal_loads_[b] += 1;
  if (used)
    cal_used_[b] += 1;
  if (cal_loads_[b] > 4000) {
    cal_loads_[b] /= 2;
    cal_used_[b] /= 2;
  }
}

void predictor::shadow_outcome(key_slot& slot, bool read) {
  slot.shadow_until = 0;
  const size_t b = calibration_bucket(slot.shadow_q);
  cal_loads_[b] += 1;
  if (read)
    cal_used_[b] += 1;
  if (cal_loads_[b] > 4000) {
    cal_loads_[b] /= 2;
    cal_used_[b] /= 2;
  }
}

void predictor::on_loaded(std::string_view key, uint64_t bytes, uint64_t now_ms, bool prefetch) {
  auto it = keys_.find(key);
  if (it != keys_.end()) {
    // an earlier load never read: a reload if it is still open and recent
    const bool reload = it->second.load_open && it->second.last_load_ms &&
                        now_ms - it->second.last_load_ms < 2 * cfg_.load_horizon_ms;
    load_outcome(it->second, false);
    it->second.reloaded = reload;
    it->second.last_load_ms = std::max<uint64_t>(now_ms, 1);
    if (!prefetch && it->second.planned_q >= calibration_floor) {
      it->second.load_open = true;
      it->second.load_q = it->second.planned_q;
      open_loads_.emplace_back(it->first, it->second.last_load_ms);
    }
  }
  if (prefetch) {
    ++st_.prefetch_loads;
  } else {
    ++st_.prewarm_loads;
  }
  st_.prewarm_bytes += bytes;
}

void predictor::on_load_read(std::string_view key, uint64_t lead_ms, bool resident, bool prefetch) {
  if (!prefetch) {
    auto it = keys_.find(key);
    if (it != keys_.end())
      load_outcome(it->second, resident);
  }
  if (resident) {
    if (prefetch)
      ++st_.prefetch_hits;
    else
      ++st_.prewarm_hits;
  }
  size_t j = 0;
  while (j + 1 < survival_buckets && lead_ms > survival_bound_min[j] * minute_ms)
    ++j;
  (resident ? survived_ : lost_)[j] += 1;
  // Forget slowly, so a memory that grows or shrinks is followed.
  float total = 0;
  for (size_t i = 0; i < survival_buckets; ++i)
    total += survived_[i] + lost_[i];
  if (total > 2000)
    for (size_t i = 0; i < survival_buckets; ++i) {
      survived_[i] /= 2;
      lost_[i] /= 2;
    }
}

double predictor::survival(size_t j) const {
  double s = 2, n = 2; // prior: two survivals
  for (size_t i = 0; i <= j; ++i) {
    s += survived_[i];
    n += survived_[i] + lost_[i];
  }
  return s / n;
}

std::vector<predictor::survival_row> predictor::survival_table() const {
  std::vector<survival_row> out;
  for (size_t j = 0; j < survival_buckets; ++j)
    out.push_back(survival_row{survival_bound_min[j] * minute_ms, survived_[j], lost_[j]});
  return out;
}

uint64_t predictor::effective_horizon_ms() const {
  uint64_t h = 0;
  for (size_t j = 0; j < survival_buckets; ++j) {
    const uint64_t b = survival_bound_min[j] * minute_ms;
    if (b > cfg_.load_horizon_ms || survival(j) < cfg_.min_confidence)
      break;
    h = b;
  }
  return std::min(h, cfg_.prediction_window_ms);
}

// -- writes: tier and TTL -------------------------------------------------------------

tier_choice predictor::tier_of(const pattern_slot& p) const {
  const uint64_t closed = p.read_soon + p.read_later + p.never_read;
  if (closed < cfg_.min_write_evidence)
    return tier_choice::memory;
  if (p.read_soon + p.read_later < closed / 20) // read after fewer than 5 % of writes
    return tier_choice::l3;
  if (2 * p.read_soon >= closed)
    return tier_choice::l1;
  return tier_choice::memory;
}

tier_choice predictor::choose_tier(std::string_view key) {
  auto it = patterns_.find(shapes_.pattern_of(key));
  if (it == patterns_.end())
    return tier_choice::memory;
  const tier_choice t = tier_of(it->second);
  if (t == tier_choice::l3)
    ++st_.tier_l3_only;
  else if (t == tier_choice::l1)
    ++st_.tier_l1;
  return t;
}

int predictor::ttl_direction(const pattern_slot& p, const char** reason) const {
  const uint64_t closed = p.read_before_expiry + p.reread_after_expiry + p.expired_unread;
  if (closed < cfg_.min_write_evidence)
    return 0;
  if (4 * p.reread_after_expiry >= closed) {
    *reason = "re-read after expiry";
    return 1;
  }
  if (4 * p.expired_unread >= 3 * closed) {
    *reason = "never read before expiry";
    return -1;
  }
  *reason = "ttl fits";
  return 0;
}

ttl_suggestion predictor::suggest_ttl(std::string_view key, uint64_t ttl_ms) {
  ttl_suggestion s;
  s.ttl_ms = ttl_ms;
  if (ttl_ms == 0) {
    s.reason = "no ttl";
    return s;
  }
  auto it = patterns_.find(shapes_.pattern_of(key));
  if (it == patterns_.end())
    return s;
  const int dir = ttl_direction(it->second, &s.reason);
  s.ttl_ms = ttl_rules(key_patterns(), {}, cfg_.min_ttl_ms, cfg_.max_ttl_ms).adjusted(ttl_ms, dir);
  s.changed = s.ttl_ms != ttl_ms;
  s.applied = s.changed && cfg_.adjust_ttl;
  if (s.applied) {
    if (s.ttl_ms > ttl_ms)
      ++st_.ttl_longer;
    else
      ++st_.ttl_shorter;
  }
  return s;
}

ttl_rules predictor::applied_ttl_rules() const {
  ttl_rules::rule_map rules;
  ttl_rules::pattern_set l3_only;
  for (const auto& [name, slot] : patterns_) {
    const char* why = "";
    if (const int dir = ttl_direction(slot, &why); dir != 0)
      rules.emplace(name, static_cast<int8_t>(dir));
    if (cfg_.tier_choice && tier_of(slot) == tier_choice::l3)
      l3_only.insert(name);
  }
  const bool none = rules.empty() && l3_only.empty();
  return ttl_rules(none ? key_patterns() : shapes_, std::move(rules), cfg_.min_ttl_ms,
                   cfg_.max_ttl_ms, std::move(l3_only));
}

// -- state ------------------------------------------------------------------------------

predictor_stats predictor::stats() const {
  predictor_stats s = st_;
  s.tracked_keys = keys_.size();
  s.patterns = patterns_.size();
  s.coaccess_sources = pairs_.sources();
  s.model_bytes = bytes();
  return s;
}

void predictor::reset() {
  keys_.clear();
  key_bytes_ = 0;
  patterns_.clear();
  pattern_bytes_ = 0;
  writes_.clear();
  write_order_.clear();
  write_bytes_ = 0;
  shapes_ = key_patterns(8, static_cast<uint64_t>(cfg_.memory_bytes * shape_share));
  coaccess_config c = cfg_.coaccess;
  c.max_bytes = static_cast<uint64_t>(cfg_.memory_bytes * pair_share);
  pairs_ = coaccess_table(c, cfg_.seed ^ 0x70616972ull);
  anomalies_ = anomaly_detector(cfg_.anomaly);
  sketch_.clear();
  shortlist_.clear();
  shortlist_hot_ = 0;
  shortlist_hour_ = UINT64_MAX;
  open_loads_.clear();
  shadows_.clear();
  insert_hour_ = 0;
  insert_acc_ = insert_rate_ = 0;
  inserted_ = 0;
  capacity_ = 0;
  for (size_t i = 0; i < survival_buckets; ++i)
    survived_[i] = lost_[i] = 0;
  for (size_t i = 0; i < calibration_buckets; ++i)
    cal_used_[i] = cal_loads_[i] = 0;
}

std::string predictor::serialize() const {
  std::string payload;
  byte_writer w(payload);
  shapes_.encode(w);
  w.u32(static_cast<uint32_t>(keys_.size()));
  for (const auto& [key, slot] : keys_) {
    w.str(key);
    w.u32(slot.size);
    slot.profile.encode(w);
  }
  w.u32(static_cast<uint32_t>(patterns_.size()));
  for (const auto& [p, slot] : patterns_) {
    w.str(p);
    slot.profile.encode(w);
    for (uint64_t v :
         {slot.writes, slot.ttl_writes, slot.read_soon, slot.read_later, slot.never_read,
          slot.read_before_expiry, slot.reread_after_expiry, slot.expired_unread, slot.last_ms})
      w.u64(v);
  }
  pairs_.encode(w);
  anomalies_.encode(w);
  // The plan's track record: survival of loads and realised rate per bucket.
  for (size_t i = 0; i < survival_buckets; ++i) {
    w.f32(survived_[i]);
    w.f32(lost_[i]);
  }
  for (size_t i = 0; i < calibration_buckets; ++i) {
    w.f32(cal_used_[i]);
    w.f32(cal_loads_[i]);
  }
  return seal_model(payload);
}

status predictor::deserialize(std::string_view blob) {
  reset();
  auto payload = unseal_model(blob);
  if (!payload.ok())
    return payload.to_status();
  byte_reader r(*payload);
  bool ok = shapes_.decode(r);
  const uint32_t nk = r.u32();
  for (uint32_t i = 0; ok && r.ok() && i < nk; ++i) {
    std::string key = r.str(64 * 1024);
    key_slot slot;
    slot.size = r.u32();
    ok = slot.profile.decode(r);
    if (!ok)
      break;
    // A smaller memory budget than the one that saved the model: keep what fits.
    if (key_bytes_ + key_slot_overhead + key.size() > key_budget())
      continue;
    const uint64_t h = flat_table<key_slot>::hash(key);
    auto [it, fresh] = keys_.try_emplace(std::move(key), h);
    if (!fresh)
      continue; // (a key twice: the first one stays)
    key_bytes_ += key_slot_overhead + it->first.size();
    it->second = std::move(slot);
  }
  const uint32_t np = ok && r.ok() ? r.u32() : 0;
  for (uint32_t i = 0; ok && r.ok() && i < np; ++i) {
    std::string p = r.str(64 * 1024);
    pattern_slot slot;
    ok = slot.profile.decode(r);
    for (uint64_t* v :
         {&slot.writes, &slot.ttl_writes, &slot.read_soon, &slot.read_later, &slot.never_read,
          &slot.read_before_expiry, &slot.reread_after_expiry, &slot.expired_unread, &slot.last_ms})
      *v = r.u64();
    if (!ok || !r.ok())
      break;
    if (pattern_bytes_ + pattern_slot_overhead + p.size() > pattern_budget())
      continue;
    pattern_bytes_ += pattern_slot_overhead + p.size();
    patterns_.emplace(std::move(p), std::move(slot));
  }
  ok = ok && r.ok() && pairs_.decode(r) && anomalies_.decode(r);
  auto good = [](float x) { return std::isfinite(x) && x >= 0; };
  for (size_t i = 0; ok && i < survival_buckets; ++i) {
    survived_[i] = r.f32();
    lost_[i] = r.f32();
    ok = good(survived_[i]) && good(lost_[i]);
  }
  for (size_t i = 0; ok && i < calibration_buckets; ++i) {
    cal_used_[i] = r.f32();
    cal_loads_[i] = r.f32();
    ok = good(cal_used_[i]) && good(cal_loads_[i]) && cal_used_[i] <= cal_loads_[i];
  }
  ok = ok && r.ok() && r.at_end();
  if (!ok) {
    reset();
    return status{errc::corrupt, "predictor model payload does not decode"};
  }
  return {};
}

status predictor::load(model_store& store) {
  auto blob = store.read();
  if (!blob.ok())
    return blob.to_status();
  if (!blob->has_value())
    return {};
  return deserialize(**blob);
}

} // namespace kura::predictor
