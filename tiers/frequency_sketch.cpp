// Layout (as Caffeine's blocked sketch): the table is split into 64-byte
// blocks of 8 words; a key's hash picks one block, so an increment or a lookup
// touches a single cache line. Inside the block, row i (i = 0..3) owns words
// 2i and 2i+1; a second hash picks one of the two words and one of its sixteen
// 4-bit counters per row. The estimate is the minimum of the four counters
// (count-min); an increment raises every one of the four that is below 15.
//
// Size: one word (16 counters) per expected key, rounded up to a power of two
// -- 8 bytes per cached key, as Caffeine. Half that was measured (bench/
// hitratio) to cost 0.3-0.5 points of miss ratio on multi2 and web07, and the
// sketch is the only per-entry cost besides node and index.
//
// Aging: after sample_size = 10 x capacity increments every counter is halved
// (a shift and mask per word), so old popularity decays geometrically.
#include "tiers/frequency_sketch.hpp"

#include "tiers/hash.hpp"

#include <algorithm>

namespace kura {

namespace {

uint64_t ceil_pow2(uint64_t x) {
  uint64_t p = 1;
  while (p < x)
    p <<= 1;
  return p;
}

} // namespace

frequency_sketch::frequency_sketch(uint64_t capacity, bool doorkeeper) : use_door_(doorkeeper) {
  ensure_capacity(capacity);
}

bool frequency_sketch::ensure_capacity(uint64_t capacity) {
  capacity = std::max<uint64_t>(capacity, 16);
  if (!table_.empty() && capacity <= capacity_)
    return false;
  capacity_ = capacity;
  // One word per key, at least one 8-word block.
  uint64_t words = std::max<uint64_t>(8, ceil_pow2(capacity));
  table_.assign(words, 0);
  block_mask_ = words / 8 - 1;
  if (use_door_)
    door_.assign(std::max<uint64_t>(1, ceil_pow2(capacity) / 64 * 2), 0);
  sample_size_ = factor_ * capacity;
  additions_ = 0;
  return true;
}

uint64_t frequency_sketch::rehash(uint64_t h) {
  return mix64(h ^ 0x9e3779b97f4a7c15ull);
}

void frequency_sketch::locate(uint64_t h, uint64_t* words, unsigned* shifts) const {
  const uint64_t block = (h & block_mask_) * 8;
  const uint64_t ch = rehash(h);
  for (unsigned i = 0; i < 4; ++i) {
    const uint64_t x = ch >> (i * 8);
    words[i] = block + (i << 1) + (x & 1);
    shifts[i] = static_cast<unsigned>((x >> 1) & 15) * 4;
  }
}

void frequency_sketch::increment(uint64_t h) {
  if (use_door_) {
    uint64_t bits = door_.size() * 64;
    uint64_t b1 = (h >> 32) % bits, b2 = rehash(h) % bits;
    bool seen1 = (door_[b1 / 64] >> (b1 % 64)) & 1, seen2 = (door_[b2 / 64] >> (b2 % 64)) & 1;
    if (!seen1 || !seen2) {
      door_[b1 / 64] |= 1ull << (b1 % 64);
      door_[b2 / 64] |= 1ull << (b2 % 64);
      if (++additions_ >= sample_size_)
        halve();
      return;
    }
  }
  bool added = false;
  uint64_t words[4];
  unsigned shifts[4];
  locate(h, words, shifts);
  // Every counter below 15 is raised. ("Conservative update", raising only
  // the minimal ones, estimates more exactly but was measured worse: exact
  // counts make the halving's phase decide admissions on loops.)
  for (unsigned i = 0; i < 4; ++i) {
    const uint32_t v = static_cast<uint32_t>((table_[words[i]] >> shifts[i]) & 15);
    if (v < 15) {
      table_[words[i]] += 1ull << shifts[i];
      added = true;
    }
  }
  if (added && ++additions_ >= sample_size_)
    halve();
}

uint32_t frequency_sketch::frequency(uint64_t h) const {
  uint64_t words[4];
  unsigned shifts[4];
  locate(h, words, shifts);
  uint32_t f = 15;
  for (unsigned i = 0; i < 4; ++i)
    f = std::min<uint32_t>(f, static_cast<uint32_t>((table_[words[i]] >> shifts[i]) & 15));
  if (use_door_) {
    uint64_t bits = door_.size() * 64;
    uint64_t b1 = (h >> 32) % bits, b2 = rehash(h) % bits;
    if (((door_[b1 / 64] >> (b1 % 64)) & 1) && ((door_[b2 / 64] >> (b2 % 64)) & 1))
      ++f;
  }
  return f;
}

void frequency_sketch::set_sample_factor(uint32_t factor) {
  factor_ = std::max<uint32_t>(factor, 1);
  sample_size_ = factor_ * capacity_;
}

void frequency_sketch::halve() {
  for (auto& w : table_)
    w = (w >> 1) & 0x7777777777777777ull;
  std::fill(door_.begin(), door_.end(), 0);
  additions_ = additions_ / 2;
  ++halvings_;
}

void frequency_sketch::clear() {
  std::fill(table_.begin(), table_.end(), 0);
  std::fill(door_.begin(), door_.end(), 0);
  additions_ = 0;
}

} // namespace kura
