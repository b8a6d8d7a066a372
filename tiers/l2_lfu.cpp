#include "tiers/l2_lfu.hpp"

#include <algorithm>

namespace kura {

using detail::entry_table;
using detail::node_id;

namespace {

constexpr uint32_t hashdos_threshold = 6;

} // namespace

l2_lfu::l2_lfu(uint64_t capacity_bytes, limits lim, bool count_objects, uint64_t seed,
               uint64_t expected_entries)
    : sketch_(expected_entries != 0 ? expected_entries
              : count_objects       ? capacity_bytes
                                    : 16),
      rng_(seed), capacity_(capacity_bytes), lim_(lim), count_objects_(count_objects),
      fixed_sketch_(count_objects || expected_entries != 0) {
  st_.capacity_bytes = capacity_bytes;
}

l2_lfu::~l2_lfu() = default;

uint64_t l2_lfu::bytes() const {
  return count_objects_ ? table_.size() : table_.bytes();
}

size_t l2_lfu::charge_of(const entry& e) const {
  return charge_of(detail::view_of(e));
}

size_t l2_lfu::charge_of(const detail::node_view& v) const {
  if (count_objects_)
    return 1;
  return entry_table::charge_for(table_.node_size(v.key, v.value.size(), v.expiry_ms, v.ver));
}

uint64_t l2_lfu::cost(const entry& e) const {
  return cost(detail::view_of(e));
}

uint64_t l2_lfu::cost(const detail::node_view& v) const {
  return count_objects_ ? 1 : charge_of(v) + entry_table::min_slots * entry_table::index_slot_bytes;
}

uint64_t l2_lfu::used_after_insert(size_t node_charge) const {
  if (count_objects_)
    return table_.size() + 1;
  return table_.node_bytes() + node_charge + table_.index_bytes_after_insert();
}

void l2_lfu::remove_node(node_id id) {
  list_of(id).unlink(table_, id, count_objects_ ? 1 : table_.charge(id));
  table_.remove(id);
}

void l2_lfu::evict(node_id id) {
  entry e = table_.to_entry(id);
  remove_node(id);
  ++st_.evictions;
  notify_evicted(std::move(e));
}

void l2_lfu::grow_sketch() {
  if (!fixed_sketch_ && table_.size() > sketch_.capacity())
    sketch_.ensure_capacity(sketch_.capacity() * 2);
}

node_id l2_lfu::victim() {
  const node_id lru = probation_.tail ? probation_.tail : protected_.tail;
  if (!main_lfu_ || lru == 0)
    return lru;
  // Sampled LFU: 5 draws, each a random index slot then the next occupied
  // one (the index is 53-80% full, so a draw probes ~2 slots).
  const size_t slots = table_.slot_count();
  node_id best = 0;
  uint32_t best_f = UINT32_MAX;
  for (int d = 0; d < 5; ++d) {
    size_t i = static_cast<size_t>(rng_.below(slots));
    node_id id = 0;
    for (size_t probes = 0; probes < slots && (id = table_.slot(i)) == 0; ++probes)
      i = i + 1 == slots ? 0 : i + 1;
    if (id == 0)
      break;
    const uint32_t f = sketch_.frequency(hash64(table_.key(id)));
    if (f < best_f) {
      best_f = f;
      best = id;
    }
  }
  return best ? best : lru;
}

void l2_lfu::rebalance_protected() {
  // Protected holds at most 80% of the capacity; the overflow is demoted to
  // the most recently used end of probation (it gets another chance there).
  const uint64_t max_protected = capacity_ - capacity_ / 5;
  while (protected_.tail && protected_.bytes > max_protected) {
    node_id d = protected_.tail;
    const uint64_t c = count_objects_ ? 1 : table_.charge(d);
    protected_.unlink(table_, d, c);
    table_.set_aux(d, seg_probation);
    probation_.push_front(table_, d, c);
  }
}

void l2_lfu::on_hit(node_id id) {
  if (table_.aux(id) == seg_protected) {
    protected_.move_front(table_, id);
    return;
  }
  const uint64_t c = count_objects_ ? 1 : table_.charge(id);
  probation_.unlink(table_, id, c);
  table_.set_aux(id, seg_protected);
  protected_.push_front(table_, id, c);
  rebalance_protected();
}

bool l2_lfu::admit(uint64_t cand_hash, node_id v) {
  const uint32_t victim_freq = sketch_.frequency(hash64(table_.key(v)));
  const uint32_t cand_freq = sketch_.frequency(cand_hash);
  if (static_cast<int>(cand_freq) > static_cast<int>(victim_freq) + margin_) {
    return true;
  }
  if (cand_freq >= hashdos_threshold)
    return (rng_.next() & 127) == 0;
  return false;
}

node_id l2_lfu::insert_probation(const entry& e, uint64_t h) {
  return insert_probation(detail::view_of(e), h);
}

node_id l2_lfu::insert_probation(const detail::node_view& v, uint64_t h) {
  node_id id = table_.insert(v.key, v.value, v.expiry_ms, v.ver, v.flags, h);
  if (id == 0)
    return 0;
  table_.set_aux(id, seg_probation);
  probation_.push_front(table_, id, count_objects_ ? 1 : table_.charge(id));
  grow_sketch();
  return id;
}

bool l2_lfu::offer_hashed(entry&& e, uint64_t h, uint64_t now_ms, bool reused,
                          bool bypass_admission) {
  if (e.expired(now_ms))
    return false;
  if (cost(e) > capacity_) {
    ++st_.evictions;
    notify_evicted(std::move(e));
    return false;
  }
  const size_t charge = charge_of(e);
  while (table_.size() > 0 && used_after_insert(charge) > capacity_) {
    node_id v = victim();
    if (!bypass_admission && !admit(h, v)) {
      ++st_.evictions;
      notify_evicted(std::move(e));
      return false;
    }
    evict(v);
  }
  if (insert_probation(e, h) == 0) {
    ++st_.evictions;
    notify_evicted(std::move(e));
    return false;
  }
  if (reused && promote_reused_)
    on_hit(table_.find(e.key, h)); // probation -> protected
  return true;
}

bool l2_lfu::offer(entry e, uint64_t now_ms, bool reused, bool bypass_admission) {
  if (!lim_.check(e))
    return false;
  const uint64_t h = hash64(e.key);
  if (node_id old = table_.find(e.key, h))
    remove_node(old);
  return offer_hashed(std::move(e), h, now_ms, reused, bypass_admission);
}

result<std::optional<entry>> l2_lfu::get(std::string_view key, uint64_t now_ms, bool touch) {
  const uint64_t h = hash64(key);
  if (touch)
    sketch_.increment(h);
  node_id id = table_.find(key, h);
  if (id == 0) {
    ++st_.misses;
    return std::optional<entry>{};
  }
  uint64_t exp = table_.expiry(id);
  if (exp != 0 && exp <= now_ms) {
    remove_node(id);
    ++st_.expirations;
    ++st_.misses;
    return std::optional<entry>{};
  }
  ++st_.hits;
  if (touch)
    on_hit(id);
  return std::optional<entry>{table_.to_entry(id)};
}

status l2_lfu::put(entry e, uint64_t now_ms) {
  if (auto st = lim_.check(e); !st)
    return st;
  const uint64_t h = hash64(e.key);
  ++st_.puts;
  sketch_.increment(h);
  return upsert(e, h, now_ms);
}

status l2_lfu::upsert(const entry& e, uint64_t h, uint64_t now_ms) {
  node_id old = table_.find(e.key, h);
  if (e.expired(now_ms)) {
    if (old)
      remove_node(old);
    return {};
  }
  if (cost(e) > capacity_) {
    if (old)
      remove_node(old);
    return status{errc::out_of_space, "entry of " + std::to_string(cost(e)) +
                                          " bytes exceeds l2 capacity of " +
                                          std::to_string(capacity_)};
  }
  if (old == 0) {
    offer_hashed(entry{e}, h, now_ms); // standalone L2: memory_cache overwrites here
    return {};
  }
  // Overwrite: the key is already resident, so no admission; it keeps its
  // segment and becomes that segment's most recently used entry.
  if (table_.overwrite(old, e.value, e.expiry_ms, e.ver, e.flags)) {
    list_of(old).move_front(table_, old);
    return {};
  }
  const uint8_t seg = table_.aux(old);
  remove_node(old);
  const size_t charge = charge_of(e);
  while (table_.size() > 0 && used_after_insert(charge) > capacity_)
    evict(victim());
  node_id id = table_.insert(e.key, e.value, e.expiry_ms, e.ver, e.flags, h);
  if (id == 0)
    return status{errc::out_of_space, "l2: out of node ids"};
  table_.set_aux(id, seg);
  list_of(id).push_front(table_, id, count_objects_ ? 1 : table_.charge(id));
  if (seg == seg_protected)
    rebalance_protected();
  return {};
}

result<bool> l2_lfu::erase(std::string_view key) {
  node_id id = table_.find(key, hash64(key));
  if (id == 0)
    return false;
  remove_node(id);
  ++st_.erases;
  return true;
}

size_t l2_lfu::sweep_expired(uint64_t now_ms, size_t budget) {
  return table_.sweep_expired(sweep_cursor_, now_ms, budget, [this](node_id id) {
    remove_node(id);
    ++st_.expirations;
  });
}

status l2_lfu::clear() {
  table_.clear();
  probation_.reset();
  protected_.reset();
  sweep_cursor_ = 0;
  return {};
}

tier_stats l2_lfu::stats() const {
  tier_stats s = st_;
  s.entries = table_.size();
  s.bytes = bytes();
  s.capacity_bytes = capacity_;
  return s;
}

void l2_lfu::set_capacity(uint64_t capacity) {
  capacity_ = capacity;
  while (table_.size() > 0 && bytes() > capacity_)
    evict(victim());
  rebalance_protected();
}

bool l2_lfu::contains(std::string_view key) const {
  return table_.find(key, hash64(key)) != 0;
}

bool l2_lfu::is_protected(std::string_view key) const {
  node_id id = table_.find(key, hash64(key));
  return id != 0 && table_.aux(id) == seg_protected;
}

std::vector<std::string> l2_lfu::keys_probation() const {
  std::vector<std::string> out;
  for (node_id id = probation_.head; id != 0; id = table_.next(id))
    out.emplace_back(table_.key(id));
  return out;
}

std::vector<std::string> l2_lfu::keys_protected() const {
  std::vector<std::string> out;
  for (node_id id = protected_.head; id != 0; id = table_.next(id))
    out.emplace_back(table_.key(id));
  return out;
}

} // namespace kura
