#include "tiers/policy_sim.hpp"

#include "tiers/hash.hpp"

#include <algorithm>

namespace kura::detail {

policy_sim::policy_sim(uint32_t capacity, uint32_t window, int margin, bool promote_reused,
                       bool main_lfu, uint64_t seed, const frequency_sketch* shared,
                       bool returning_reused)
    : cap_(std::max<uint32_t>(capacity, 1)),
      wcap_(std::clamp<uint32_t>(window, 1, cap_)), // the newest key is always resident
      mcap_(cap_ - wcap_),
      pcap_(static_cast<uint32_t>(static_cast<uint64_t>(cap_ - wcap_) * 4 / 5)), margin_(margin),
      promote_reused_(promote_reused), main_lfu_(main_lfu), returning_reused_(returning_reused),
      rng_(seed), own_sketch_(shared ? 16 : cap_), shared_(shared) {
  nodes_.reserve(cap_ + 1);
  free_.reserve(cap_ + 1); // fixed memory: memory_bytes() does not change
  uint64_t n = 16;
  while (n < static_cast<uint64_t>(cap_) * 3 / 2 + 2) // at most 2/3 full
    n <<= 1;
  slots_.assign(n, -1);
  mask_ = n - 1;
}

uint64_t policy_sim::memory_bytes() const {
  return nodes_.capacity() * sizeof(node) + free_.capacity() * sizeof(int32_t) +
         slots_.size() * sizeof(int32_t) + own_sketch_.memory_bytes();
}

int32_t policy_sim::find(uint64_t h) const {
  for (uint64_t i = mix64(h) & mask_;; i = (i + 1) & mask_) {
    int32_t s = slots_[i];
    if (s < 0)
      return -1;
    if (nodes_[static_cast<size_t>(s)].key == h)
      return s;
  }
}

void policy_sim::map_insert(uint64_t h, int32_t idx) {
  uint64_t i = mix64(h) & mask_;
  while (slots_[i] >= 0)
    i = (i + 1) & mask_;
  slots_[i] = idx;
}

void policy_sim::map_erase(uint64_t h) {
  uint64_t i = mix64(h) & mask_;
  while (nodes_[static_cast<size_t>(slots_[i])].key != h)
    i = (i + 1) & mask_;
  // Backward-shift deletion (see entry_table.cpp).
  uint64_t hole = i, j = i;
  for (;;) {
    j = (j + 1) & mask_;
    if (slots_[j] < 0)
      break;
    uint64_t k = mix64(nodes_[static_cast<size_t>(slots_[j])].key) & mask_;
    bool in_range = hole <= j ? (hole < k && k <= j) : (hole < k || k <= j);
    if (!in_range) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole] = -1;
}

policy_sim::list& policy_sim::list_of(uint8_t seg) {
  return seg == seg_window ? window_ : seg == seg_probation ? probation_ : protected_;
}

void policy_sim::push_front(list& l, int32_t i, uint8_t seg) {
  node& n = nodes_[static_cast<size_t>(i)];
  n.seg = seg;
  n.prev = -1;
  n.next = l.head;
  if (l.head >= 0)
    nodes_[static_cast<size_t>(l.head)].prev = i;
  else
    l.tail = i;
  l.head = i;
  ++l.count;
}

void policy_sim::unlink(list& l, int32_t i) {
  node& n = nodes_[static_cast<size_t>(i)];
  if (n.prev >= 0)
    nodes_[static_cast<size_t>(n.prev)].next = n.next;
  else
    l.head = n.next;
  if (n.next >= 0)
    nodes_[static_cast<size_t>(n.next)].prev = n.prev;
  else
    l.tail = n.prev;
  --l.count;
}

void policy_sim::promote(int32_t i) {
  unlink(probation_, i);
  push_front(protected_, i, seg_protected);
  while (protected_.count > pcap_) {
    int32_t d = protected_.tail;
    unlink(protected_, d);
    push_front(probation_, d, seg_probation);
  }
}

int32_t policy_sim::alloc(uint64_t h) {
  int32_t i;
  if (!free_.empty()) {
    i = free_.back();
    free_.pop_back();
  } else {
    i = static_cast<int32_t>(nodes_.size());
    nodes_.push_back(node{});
  }
  nodes_[static_cast<size_t>(i)].key = h;
  nodes_[static_cast<size_t>(i)].reused = false;
  map_insert(h, i);
  return i;
}

void policy_sim::release(int32_t i) {
  map_erase(nodes_[static_cast<size_t>(i)].key);
  nodes_[static_cast<size_t>(i)].seg = seg_free;
  free_.push_back(i);
}

int32_t policy_sim::victim() {
  const int32_t lru = probation_.tail >= 0 ? probation_.tail : protected_.tail;
  if (!main_lfu_ || lru < 0)
    return lru;
  // Sampled LFU: the least frequent of 5 random main entries (nodes of the
  // window and free nodes are skipped; a bounded number of draws).
  int32_t best = -1;
  uint32_t best_f = UINT32_MAX;
  for (int sampled = 0, draws = 0; sampled < 5 && draws < 64; ++draws) {
    const auto i = static_cast<int32_t>(rng_.below(nodes_.size()));
    const node& n = nodes_[static_cast<size_t>(i)];
    if (n.seg != seg_probation && n.seg != seg_protected)
      continue;
    ++sampled;
    const uint32_t f = freq(n.key);
    if (f < best_f) {
      best_f = f;
      best = i;
    }
  }
  return best >= 0 ? best : lru;
}

void policy_sim::to_main(int32_t cand) {
  // `cand` is unlinked; it enters probation if main has room or it beats
  // main's victim, else it is dropped.
  if (probation_.count + protected_.count < mcap_) {
    push_front(probation_, cand, seg_probation);
    if (promote_reused_ && nodes_[static_cast<size_t>(cand)].reused)
      promote(cand);
    return;
  }
  int32_t victim = this->victim();
  if (victim < 0) { // main has no room at all (window = capacity)
    release(cand);
    return;
  }
  const auto cf = static_cast<int>(freq(nodes_[static_cast<size_t>(cand)].key));
  const auto vf = static_cast<int>(freq(nodes_[static_cast<size_t>(victim)].key));
  if (cf > vf + margin_) {
    unlink(list_of(nodes_[static_cast<size_t>(victim)].seg), victim);
    release(victim);
    push_front(probation_, cand, seg_probation);
    if (promote_reused_ && nodes_[static_cast<size_t>(cand)].reused)
      promote(cand);
  } else {
    release(cand);
  }
}

bool policy_sim::access(uint64_t h, bool returning) {
  if (!shared_)
    own_sketch_.increment(h);
  int32_t i = find(h);
  if (i >= 0) {
    node& n = nodes_[static_cast<size_t>(i)];
    if (n.seg == seg_window) {
      n.reused = true;
      unlink(window_, i);
      push_front(window_, i, seg_window);
    } else if (n.seg == seg_protected) {
      unlink(protected_, i);
      push_front(protected_, i, seg_protected);
    } else {
      promote(i);
    }
    return true;
  }
  i = alloc(h);
  nodes_[static_cast<size_t>(i)].reused = returning && returning_reused_;
  push_front(window_, i, seg_window);
  if (window_.count > wcap_) {
    int32_t c = window_.tail;
    unlink(window_, c);
    to_main(c);
  }
  return false;
}

} // namespace kura::detail
