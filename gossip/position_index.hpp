// A hash index over the nodes of an ordered map keyed by (ring position,
// key): tier_store's index_ (gossip/tier_store.hpp) is ordered by position
// for the digests and range listings, and every read, write and ack looks
// one key up in it. A std::map lookup walks ~log2(n) nodes scattered over
// the heap, a cache miss each: 28.5 % of an owner's serving-thread samples
// during redis-benchmark GET -P 16 (cluster18), 28 % again in session 19.
// This table finds the node in about one probe instead.
//
// Layout: linear probing over two parallel arrays, the map iterator (8
// bytes) and an 8-bit tag (7 bits of the position + an occupied bit), so a
// probe compares tags and dereferences a node only on a tag match. The
// position is already a hash of the key (gossip/ring.hpp: the slot in the
// top 14 bits, 50 hash bits below), so it is not hashed again: the home
// slot is its Fibonacci product's top bits, the tag its low 7 bits. The
// table doubles at 3/4 load (3/8 to 3/4 full: 12 to 24 bytes per key);
// deletion shifts the following run back (no tombstones).
//
// Map iterators stay valid while other nodes come and go, so the table is
// kept beside the map: insert() every node the map gains, erase() every
// node before the map drops it.
// Thread safety: none; owned with its map by one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace kura::gossip {

/// `Map`: an ordered map whose key is a pair (uint64_t position, string-like
/// key) -- std::map<std::pair<uint64_t, std::string>, V, C>.
template <class Map>
class position_index {
public:
  using iterator = typename Map::iterator;

  explicit position_index(Map& map) : map_(map) {}
  position_index(const position_index&) = delete;
  position_index& operator=(const position_index&) = delete;

  /// The map's node of (pos, key), or the map's end().
  iterator find(uint64_t pos, std::string_view key) const {
    if (tags_.empty())
      return map_.end();
    const uint8_t t = tag(pos);
    for (size_t i = home(pos);; i = (i + 1) & mask_) {
      const uint8_t have = tags_[i];
      if (have == 0)
        return map_.end();
      if (have == t) {
        auto it = slots_[i];
        if (it->first.first == pos && std::string_view(it->first.second) == key)
          return it;
      }
    }
  }

  /// Indexes `it`, a node the map just gained (not indexed yet).
  void insert(iterator it) {
    if ((used_ + 1) * 4 > tags_.size() * 3)
      grow();
    place(it);
    ++used_;
  }

  /// Forgets `it` (indexed), before the map erases it.
  void erase(iterator it) {
    if (tags_.empty())
      return;
    const uint64_t pos = it->first.first;
    const uint8_t t = tag(pos);
    size_t i = home(pos);
    for (;; i = (i + 1) & mask_) {
      if (tags_[i] == 0)
        return; // not indexed
      if (tags_[i] == t && slots_[i] == it)
        break;
    }
    // Backward shift: an entry of the run after the hole moves into it
    // unless its home lies cyclically in (hole, its slot].
    for (size_t j = (i + 1) & mask_; tags_[j] != 0; j = (j + 1) & mask_) {
      const size_t h = home(slots_[j]->first.first);
      const bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
      if (stays)
        continue;
      slots_[i] = slots_[j];
      tags_[i] = tags_[j];
      i = j;
    }
    tags_[i] = 0;
    slots_[i] = iterator{};
    --used_;
  }

  /// Indexes every node of the map anew (after the map was filled or
  /// rebuilt without the table).
  void rebuild() {
    tags_.clear();
    slots_.clear();
    used_ = 0;
    size_t cap = 16;
    while (map_.size() * 4 > cap * 3)
      cap *= 2;
    resize(cap);
    for (auto it = map_.begin(); it != map_.end(); ++it)
      place(it), ++used_;
  }

  size_t size() const { return used_; }
  /// Bytes of the two arrays.
  size_t bytes() const { return tags_.size() * (sizeof(iterator) + 1); }

private:
  static uint8_t tag(uint64_t pos) { return static_cast<uint8_t>(0x80 | (pos & 0x7f)); }
  size_t home(uint64_t pos) const {
    return static_cast<size_t>((pos * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void resize(size_t cap) { // cap: a power of two >= 16
    tags_.assign(cap, 0);
    slots_.assign(cap, iterator{});
    mask_ = cap - 1;
    shift_ = 64;
    for (size_t c = cap; c > 1; c >>= 1)
      --shift_;
  }
  void place(iterator it) {
    const uint64_t pos = it->first.first;
    size_t i = home(pos);
    while (tags_[i] != 0)
      i = (i + 1) & mask_;
    tags_[i] = tag(pos);
    slots_[i] = it;
  }
  void grow() {
    std::vector<iterator> old_slots;
    std::vector<uint8_t> old_tags;
    old_slots.swap(slots_);
    old_tags.swap(tags_);
    resize(old_tags.empty() ? 16 : old_tags.size() * 2);
    for (size_t i = 0; i < old_tags.size(); ++i)
      if (old_tags[i] != 0)
        place(old_slots[i]);
  }

  Map& map_;
  std::vector<iterator> slots_;
  std::vector<uint8_t> tags_;
  size_t used_ = 0;
  size_t mask_ = 0;
  unsigned shift_ = 64;
};

} // namespace kura::gossip
