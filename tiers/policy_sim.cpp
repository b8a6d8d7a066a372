#include "tiers/policy_sim.hpp"

#include "tiers/hash.hpp"

#include <algorithm>

namespace kura::detail {

policy_sim::policy_sim(uint32_t capacity, uint32_t window, int margin, bool promote_reused,
                       bool main_lfu, uint64_t seed, const frequency_sketch* shared,
                       bool returning_reused, uint32_t ghost_capacity)
    : cap_(std::clamp<uint32_t>(capacity, 1, UINT32_MAX / 2)),
      wcap_(std::clamp<uint32_t>(window, 1, cap_)), // the newest key is always resident
      mcap_(cap_ - wcap_),
      pcap_(static_cast<uint32_t>(static_cast<uint64_t>(cap_ - wcap_) * 4 / 5)), margin_(margin),
      promote_reused_(promote_reused), main_lfu_(main_lfu), returning_reused_(returning_reused),
      ghost_(ghost_capacity), rng_(seed), narrow_(cap_ < UINT16_MAX - 1),
      empty_(narrow_ ? UINT16_MAX : UINT32_MAX), own_sketch_(shared ? 16 : cap_), shared_(shared) {
  nodes_.reserve(cap_ + 1); // fixed memory: memory_bytes() does not change
  meta_.reserve(cap_ + 1);
  n_slots_ = std::max<uint64_t>(16, static_cast<uint64_t>(cap_) * 3 / 2 + 2); // at most 2/3 full
  if (narrow_)
    slots16_.assign(n_slots_, UINT16_MAX);
  else
    slots32_.assign(n_slots_, UINT32_MAX);
}

uint64_t policy_sim::memory_bytes() const {
  return nodes_.capacity() * sizeof(node) + meta_.capacity() +
         slots16_.capacity() * sizeof(uint16_t) + slots32_.capacity() * sizeof(uint32_t) +
         own_sketch_.memory_bytes() + ghost_.memory_bytes();
}

void policy_sim::set_slot(uint64_t i, uint32_t v) {
  if (narrow_)
    slots16_[i] = static_cast<uint16_t>(v);
  else
    slots32_[i] = v;
}

uint64_t policy_sim::home(uint64_t h) const {
  return static_cast<uint64_t>((static_cast<__uint128_t>(mix64(h)) * n_slots_) >> 64);
}

uint32_t policy_sim::find(uint64_t h) const {
  for (uint64_t i = home(h);; i = next_slot(i)) {
    const uint32_t s = slot(i);
    if (s == empty_)
      return none;
    if (nodes_[s].key == h)
      return s;
  }
}

void policy_sim::map_insert(uint64_t h, uint32_t idx) {
  uint64_t i = home(h);
  while (slot(i) != empty_)
    i = next_slot(i);
  set_slot(i, idx);
}

void policy_sim::map_erase(uint64_t h) {
  uint64_t i = home(h);
  while (nodes_[slot(i)].key != h)
    i = next_slot(i);
  // Backward-shift deletion (see entry_table.cpp).
  uint64_t hole = i, j = i;
  for (;;) {
    j = next_slot(j);
    const uint32_t s = slot(j);
    if (s == empty_)
      break;
    const uint64_t k = home(nodes_[s].key);
    const bool in_range = hole <= j ? (hole < k && k <= j) : (hole < k || k <= j);
    if (!in_range) {
      set_slot(hole, s);
      hole = j;
    }
  }
  set_slot(hole, empty_);
}

policy_sim::list& policy_sim::list_of(uint8_t seg) {
  return seg == seg_window ? window_ : seg == seg_probation ? probation_ : protected_;
}

void policy_sim::push_front(list& l, uint32_t i, uint8_t sg) {
  node& n = nodes_[i];
  meta_[i] = static_cast<uint8_t>((meta_[i] & ~3u) | sg);
  n.prev = none;
  n.next = l.head;
  if (l.head != none)
    nodes_[l.head].prev = i;
  else
    l.tail = i;
  l.head = i;
  ++l.count;
}

void policy_sim::unlink(list& l, uint32_t i) {
  node& n = nodes_[i];
  if (n.prev != none)
    nodes_[n.prev].next = n.next;
  else
    l.head = n.next;
  if (n.next != none)
    nodes_[n.next].prev = n.prev;
  else
    l.tail = n.prev;
  --l.count;
}

void policy_sim::promote(uint32_t i) {
  unlink(probation_, i);
  push_front(protected_, i, seg_protected);
  while (protected_.count > pcap_) {
    const uint32_t d = protected_.tail;
    unlink(protected_, d);
    push_front(probation_, d, seg_probation);
  }
}

uint32_t policy_sim::alloc(uint64_t h) {
  uint32_t i;
  if (free_head_ != none) {
    i = free_head_;
    free_head_ = nodes_[i].next;
  } else {
    i = static_cast<uint32_t>(nodes_.size());
    nodes_.push_back(node{});
    meta_.push_back(seg_free);
  }
  nodes_[i].key = h;
  meta_[i] = seg_free; // not reused
  map_insert(h, i);
  return i;
}

void policy_sim::release(uint32_t i) {
  map_erase(nodes_[i].key);
  meta_[i] = seg_free;
  nodes_[i].next = free_head_;
  free_head_ = i;
}

uint32_t policy_sim::victim() {
  const uint32_t lru = probation_.tail != none ? probation_.tail : protected_.tail;
  if (!main_lfu_ || lru == none)
    return lru;
  // Sampled LFU: the least frequent of 5 random main entries (nodes of the
  // window and free nodes are skipped; a bounded number of draws).
  uint32_t best = none;
  uint32_t best_f = UINT32_MAX;
  for (int sampled = 0, draws = 0; sampled < 5 && draws < 64; ++draws) {
    const auto i = static_cast<uint32_t>(rng_.below(nodes_.size()));
    if (seg(i) != seg_probation && seg(i) != seg_protected)
      continue;
    ++sampled;
    const uint32_t f = freq(nodes_[i].key);
    if (f < best_f) {
      best_f = f;
      best = i;
    }
  }
  return best != none ? best : lru;
}

void policy_sim::to_main(uint32_t cand) {
  // `cand` is unlinked; it enters probation if main has room, if the ghost
  // remembers it (it was rejected recently: admitted without the frequency
  // test, as S3-FIFO admits a ghost hit) or if it beats main's victim; else
  // it is dropped, and remembered by the ghost. As in memory_cache, a ghost
  // entry is used once.
  const uint64_t ck = nodes_[cand].key;
  const bool returned = ghost_.take(ck);
  if (probation_.count + protected_.count < mcap_) {
    push_front(probation_, cand, seg_probation);
    if (promote_reused_ && reused(cand))
      promote(cand);
    return;
  }
  const uint32_t victim = this->victim();
  if (victim == none) { // main has no room at all (window = capacity)
    release(cand);
    return;
  }
  if (returned ||
      static_cast<int>(freq(ck)) > static_cast<int>(freq(nodes_[victim].key)) + margin_) {
    unlink(list_of(seg(victim)), victim);
    release(victim);
    push_front(probation_, cand, seg_probation);
    if (promote_reused_ && reused(cand))
      promote(cand);
  } else {
    ghost_.insert(ck);
    release(cand);
  }
}

bool policy_sim::access(uint64_t h, bool returning) {
  if (!shared_)
    own_sketch_.increment(h);
  uint32_t i = find(h);
  if (i != none) {
    if (seg(i) == seg_window) {
      meta_[i] |= reused_bit;
      unlink(window_, i);
      push_front(window_, i, seg_window);
    } else if (seg(i) == seg_protected) {
      unlink(protected_, i);
      push_front(protected_, i, seg_protected);
    } else {
      promote(i);
    }
    return true;
  }
  i = alloc(h);
  if (returning && returning_reused_)
    meta_[i] |= reused_bit;
  push_front(window_, i, seg_window);
  if (window_.count > wcap_) {
    const uint32_t c = window_.tail;
    unlink(window_, c);
    to_main(c);
  }
  return false;
}

} // namespace kura::detail
