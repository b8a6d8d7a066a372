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
// New keys enter L1. L1's LRU victims are offered to L2 (l2_lfu::offer), which
// admits one only if its estimated frequency beats L2's own victim. An entry
// larger than the whole window goes straight to L2's admission.
//
// -- the adaptive window (hill climbing) -----------------------------------------
//
// No fixed L1 share is best everywhere: recency-heavy traces (orm-night, web07)
// want a big window, frequency-heavy ones (loop, multi2) want a tiny one. As
// Caffeine does, after every sample of 10 x (sketch capacity) accesses we
// compare the hit ratio of the sample with the previous one: if it improved,
// keep moving the window in the same direction, else reverse. The step starts
// at 6.25% of the capacity, decays by 2% per sample so that the window
// settles, and restarts at 6.25% when the hit ratio jumps by 5 points or more
// (the workload changed). Growing the window moves L2's victims into L1;
// shrinking it moves L1's LRU entries into L2's probation (no admission test:
// they were already in memory).
//
// -- bytes -------------------------------------------------------------------------
//
// In byte mode the sketch's counters (4 bytes per entry, grown with the entry
// count) are charged too: L1 capacity + L2 capacity = capacity - sketch bytes.
#include "tiers/memory_cache.hpp"

#include "tiers/l1_lru.hpp"
#include "tiers/l2_lfu.hpp"

#include <algorithm>
#include <cmath>

namespace kura {

using detail::node_id;

namespace {

constexpr double step_percent = 0.0625;
constexpr double step_decay = 0.98;
constexpr double restart_threshold = 0.05;
constexpr uint64_t initial_sketch_entries = 1024;

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
  // memory-level stats
  uint64_t hits = 0, misses = 0, puts = 0, erases = 0;
  entry_view view{};

  explicit impl(const memory_cache_config& c)
    : cfg(c),
      l1(0, c.lim, c.count_objects),
      l2(0, c.lim, c.count_objects, c.sketch_seed,
         c.count_objects ? std::max<uint64_t>(c.capacity_bytes, 16) : initial_sketch_entries) {
  }

  uint64_t effective() const {
    if (cfg.count_objects)
      return cfg.capacity_bytes;
    const uint64_t sk = l2.sketch().memory_bytes();
    return cfg.capacity_bytes > sk ? cfg.capacity_bytes - sk : 0;
  }

  frequency_sketch& sketch() { return l2.sketch_; }

  void fill_view(const detail::entry_table& t, node_id id) {
    detail::node_view v = t.view(id);
    view = entry_view{v.key, v.value, v.expiry_ms, v.ver, v.flags};
  }

  // -- window sizing ------------------------------------------------------------

  /// Applies a window target: moves entries between L1 and L2 as needed.
  void apply_window(double target) {
    const uint64_t eff = effective();
    const double max_window = static_cast<double>(eff) * 0.99;
    window = std::clamp(target, 0.0, max_window);
    const auto w = static_cast<uint64_t>(window);
    const uint64_t old_l1 = l1.capacity_;
    l1.capacity_ = w;
    l2.capacity_ = eff - w;
    if (w < old_l1) {
      // Shrink L1: its LRU entries move to L2's probation.
      while (l1.lru_.count > 0 && l1.bytes() > l1.capacity_) {
        node_id id = l1.lru_.tail;
        entry e = l1.table_.to_entry(id);
        l1.remove_node(id);
        const uint64_t h = hash64(e.key);
        const size_t charge = l2.charge_of(e);
        while (l2.table_.size() > 0 && l2.used_after_insert(charge) > l2.capacity_)
          l2.evict(l2.victim());
        if (l2.cost(e) <= l2.capacity_)
          l2.insert_probation(e, h);
      }
    } else {
      // Grow L1: L2's victims move to L1's most recently used end.
      while (l2.table_.size() > 0 && l2.bytes() > l2.capacity_) {
        node_id id = l2.victim();
        entry e = l2.table_.to_entry(id);
        l2.remove_node(id);
        const size_t charge = l1.count_objects_ ? 1 : l1.cost(e);
        if (l1.used_after_insert(charge) <= l1.capacity_)
          l1.insert_front(e, hash64(e.key));
        else {
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
  void on_access(bool hit) {
    if (hit)
      ++sample_hits;
    else
      ++sample_misses;
    if (cfg.adaptive_window && sample_hits + sample_misses >= sketch().sample_size())
      climb_due = true;
  }

  void climb() {
    climb_due = false;
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

  void maybe_grow_sketch() {
    if (cfg.count_objects)
      return;
    const uint64_t n = l1.table_.size() + l2.table_.size();
    if (n > sketch().capacity()) {
      sketch().ensure_capacity(sketch().capacity() * 2);
      apply_window(window); // the sketch's bytes come out of the capacity
    }
  }
};

memory_cache::memory_cache(memory_cache_config cfg) : impl_(std::make_unique<impl>(cfg)) {
  impl_->window = std::clamp(cfg.window_fraction, 0.0, 1.0)
                  * static_cast<double>(impl_->effective());
  impl_->step = step_percent * static_cast<double>(impl_->effective());
  impl_->apply_window(impl_->window);
  impl_->l1.set_eviction_listener([this](entry&& e) {
    impl_->l2.offer(std::move(e), impl_->now_ms);
  });
  impl_->l2.set_eviction_listener([this](entry&& e) { notify_evicted(std::move(e)); });
}

memory_cache::~memory_cache() = default;

const memory_cache::entry_view* memory_cache::find_view(std::string_view key, uint64_t now_ms,
                                                        bool touch) {
  impl& m = *impl_;
  if (m.climb_due)
    m.climb();
  const uint64_t h = hash64(key);
  if (node_id id = m.l1.table_.find(key, h)) {
    const uint64_t exp = m.l1.table_.expiry(id);
    if (exp != 0 && exp <= now_ms) {
      m.l1.remove_node(id);
      ++m.l1.st_.expirations;
      ++m.l1.st_.misses;
    } else {
      ++m.l1.st_.hits;
      ++m.hits;
      if (touch) {
        m.l1.lru_.move_front(m.l1.table_, id);
        m.sketch().increment(h);
        m.on_access(true);
      }
      m.fill_view(m.l1.table_, id);
      return &m.view;
    }
  } else {
    ++m.l1.st_.misses;
  }
  if (node_id id = m.l2.table_.find(key, h)) {
    const uint64_t exp = m.l2.table_.expiry(id);
    if (exp != 0 && exp <= now_ms) {
      m.l2.remove_node(id);
      ++m.l2.st_.expirations;
      ++m.l2.st_.misses;
    } else {
      ++m.l2.st_.hits;
      ++m.hits;
      if (touch) {
        m.l2.on_hit(id);
        m.sketch().increment(h);
        m.on_access(true);
      }
      m.fill_view(m.l2.table_, id);
      return &m.view;
    }
  } else {
    ++m.l2.st_.misses;
  }
  ++m.misses;
  if (touch)
    m.on_access(false);
  return nullptr;
}

result<std::optional<entry>> memory_cache::get(std::string_view key, uint64_t now_ms,
                                               bool touch) {
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
    return status{errc::out_of_space, "entry of " + std::to_string(cost)
                                        + " bytes exceeds memory capacity of "
                                        + std::to_string(m.effective())};
  }
  status st;
  if (in_l2) {
    if (m.l2.cost(e) <= m.l2.capacity_) {
      st = m.l2.upsert(std::move(e), h, now_ms);
    } else {
      // Too big for the main region now: it goes to the window instead.
      m.l2.remove_node(in_l2);
      st = m.l1.upsert(e, h, now_ms);
    }
  } else if (m.l1.cost(e) <= m.l1.capacity_) {
    st = m.l1.upsert(e, h, now_ms);
  } else {
    if (in_l1)
      m.l1.remove_node(in_l1);
    m.l2.offer_hashed(std::move(e), h, now_ms);
  }
  m.maybe_grow_sketch();
  return st;
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
  (void) impl_->l1.clear();
  (void) impl_->l2.clear();
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
    s.bytes += m.l2.sketch().memory_bytes();
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

bool memory_cache::set_expiry(std::string_view key, uint64_t expiry_ms) {
  impl& m = *impl_;
  const uint64_t h = hash64(key);
  if (node_id id = m.l1.table_.find(key, h)) {
    if (m.l1.table_.set_expiry_inplace(id, expiry_ms))
      return true;
    entry e = m.l1.table_.to_entry(id);
    e.expiry_ms = expiry_ms;
    (void) m.l1.upsert(e, h, 0);
    return true;
  }
  if (node_id id = m.l2.table_.find(key, h)) {
    if (m.l2.table_.set_expiry_inplace(id, expiry_ms))
      return true;
    entry e = m.l2.table_.to_entry(id);
    e.expiry_ms = expiry_ms;
    (void) m.l2.upsert(std::move(e), h, 0);
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

tier_stats memory_cache::l1_stats() const { return impl_->l1.stats(); }
tier_stats memory_cache::l2_stats() const { return impl_->l2.stats(); }
uint64_t memory_cache::window_capacity() const { return impl_->l1.capacity_; }

} // namespace kura
