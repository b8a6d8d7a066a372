// recency_filter: "was this key seen in about the last `period` accesses?"
// Two generations of a Bloom filter (2 probes); insert() sets bits in the
// current one, and after `period` inserts the older generation is cleared and
// becomes the current one, so a key is remembered for period..2 x period
// accesses. A cheap ghost history: a key that misses but was accessed
// recently is a returning key, not a new one.
// Internal header of tiers/. Thread safety: not thread-safe.
#pragma once

#include "tiers/hash.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace kura::detail {

class recency_filter {
public:
  /// Remembers about `period` keys per generation with `bits_per_key` bits each.
  explicit recency_filter(uint64_t period = 16, uint32_t bits_per_key = 8) {
    reset(period, bits_per_key);
  }

  void reset(uint64_t period, uint32_t bits_per_key = 8) {
    period_ = std::max<uint64_t>(period, 1);
    uint64_t bits = 64;
    while (bits < period_ * bits_per_key)
      bits <<= 1;
    mask_ = bits - 1;
    for (auto& g : gen_) {
      std::vector<uint64_t>().swap(g); // free the old bits before allocating
      g.assign(bits / 64, 0);
    }
    cur_ = 0;
    added_ = 0;
  }

  bool contains(uint64_t h) const {
    uint64_t word, bits;
    locate(h, word, bits);
    return (gen_[0][word] & bits) == bits || (gen_[1][word] & bits) == bits;
  }

  void insert(uint64_t h) {
    uint64_t word, bits;
    locate(h, word, bits);
    gen_[cur_][word] |= bits;
    if (++added_ >= period_) {
      added_ = 0;
      cur_ ^= 1;
      std::fill(gen_[cur_].begin(), gen_[cur_].end(), 0);
    }
  }

  uint64_t period() const { return period_; }
  uint64_t memory_bytes() const { return (gen_[0].capacity() + gen_[1].capacity()) * 8; }

private:
  // Both probes fall in one 64-bit word (a blocked Bloom filter): one memory
  // access per generation.
  void locate(uint64_t h, uint64_t& word, uint64_t& bits) const {
    const uint64_t a = mix64(h ^ 0x9e3779b97f4a7c15ull);
    word = (a & mask_) >> 6;
    bits = (1ull << ((a >> 52) & 63)) | (1ull << ((a >> 58) & 63));
  }
  std::vector<uint64_t> gen_[2];
  uint64_t mask_ = 0;
  uint64_t period_ = 1;
  uint64_t added_ = 0;
  int cur_ = 0;
};

} // namespace kura::detail
