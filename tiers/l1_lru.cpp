#include "tiers/l1_lru.hpp"

#include <algorithm>

namespace kura {

using detail::node_id;

l1_lru::l1_lru(uint64_t capacity_bytes, limits lim, bool count_objects)
    : capacity_(capacity_bytes), lim_(lim), count_objects_(count_objects) {
  st_.capacity_bytes = capacity_bytes;
}

l1_lru::~l1_lru() = default;

uint64_t l1_lru::bytes() const {
  return count_objects_ ? table_.size() : table_.bytes();
}

uint64_t l1_lru::cost(std::string_view key, size_t value_size, uint64_t expiry_ms,
                      const version& ver) const {
  if (count_objects_)
    return 1;
  return detail::entry_table::charge_for(table_.node_size(key, value_size, expiry_ms, ver)) +
         detail::entry_table::min_slots * detail::entry_table::index_slot_bytes;
}

uint64_t l1_lru::used_after_insert(size_t node_charge) const {
  if (count_objects_)
    return table_.size() + 1;
  return table_.node_bytes() + node_charge + table_.index_bytes_after_insert();
}

void l1_lru::remove_node(node_id id) {
  lru_.unlink(table_, id, table_.charge(id));
  table_.remove(id);
}

void l1_lru::evict_one() {
  node_id victim = lru_.tail;
  last_evicted_reused_ = table_.aux(victim) != 0;
  entry e = table_.to_entry(victim);
  remove_node(victim);
  ++st_.evictions;
  notify_evicted(std::move(e));
}

node_id l1_lru::insert_front(const entry& e, uint64_t h) {
  return insert_front(detail::view_of(e), h);
}

node_id l1_lru::insert_front(const detail::node_view& v, uint64_t h) {
  node_id id = table_.insert(v.key, v.value, v.expiry_ms, v.ver, v.flags, h);
  if (id != 0)
    lru_.push_front(table_, id, table_.charge(id));
  return id;
}

result<std::optional<entry>> l1_lru::get(std::string_view key, uint64_t now_ms, bool touch) {
  node_id id = table_.find(key, hash64(key));
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
    lru_.move_front(table_, id);
  return std::optional<entry>{table_.to_entry(id)};
}

status l1_lru::put(entry e, uint64_t now_ms) {
  if (auto st = lim_.check(e); !st)
    return st;
  ++st_.puts;
  return upsert(e, hash64(e.key), now_ms);
}

status l1_lru::upsert(const entry& e, uint64_t h, uint64_t now_ms) {
  if (node_id old = table_.find(e.key, h)) {
    // Same slot size: rewrite in place (no index or allocator work).
    if (!e.expired(now_ms) && table_.overwrite(old, e.value, e.expiry_ms, e.ver, e.flags)) {
      lru_.move_front(table_, old);
      return {};
    }
    remove_node(old);
  }
  if (e.expired(now_ms))
    return {}; // already expired: nothing to keep (and the old value is gone)
  if (cost(e) > capacity_)
    return status{errc::out_of_space, "entry of " + std::to_string(cost(e)) +
                                          " bytes exceeds l1 capacity of " +
                                          std::to_string(capacity_)};
  const size_t charge = count_objects_ ? 1
                                       : detail::entry_table::charge_for(table_.node_size(
                                             e.key, e.value.size(), e.expiry_ms, e.ver));
  while (lru_.count > 0 && used_after_insert(charge) > capacity_)
    evict_one();
  if (insert_front(e, h) == 0)
    return status{errc::out_of_space, "l1: out of node ids"};
  return {};
}

result<bool> l1_lru::erase(std::string_view key) {
  node_id id = table_.find(key, hash64(key));
  if (id == 0)
    return false;
  remove_node(id);
  ++st_.erases;
  return true;
}

size_t l1_lru::sweep_expired(uint64_t now_ms, size_t budget) {
  return table_.sweep_expired(sweep_cursor_, now_ms, budget, [this](node_id id) {
    remove_node(id);
    ++st_.expirations;
  });
}

status l1_lru::clear() {
  table_.clear();
  lru_.reset();
  sweep_cursor_ = 0;
  return {};
}

tier_stats l1_lru::stats() const {
  tier_stats s = st_;
  s.entries = table_.size();
  s.bytes = bytes();
  s.capacity_bytes = capacity_;
  return s;
}

void l1_lru::set_capacity(uint64_t capacity) {
  capacity_ = capacity;
  while (lru_.count > 0 && bytes() > capacity_)
    evict_one();
}

bool l1_lru::contains(std::string_view key) const {
  return table_.find(key, hash64(key)) != 0;
}

std::vector<std::string> l1_lru::keys_mru() const {
  std::vector<std::string> out;
  for (node_id id = lru_.head; id != 0; id = table_.next(id))
    out.emplace_back(table_.key(id));
  return out;
}

} // namespace kura
