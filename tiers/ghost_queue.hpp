// ghost_queue: "was this key evicted from the cache recently?" -- S3-FIFO's
// ghost queue (Yang et al., SOSP'23) in 2 bytes per remembered key.
//
// A key is remembered as a 16-bit fingerprint in one of `capacity / 8`
// buckets of 8 fingerprints (the bucket and the fingerprint come from
// independent bits of the key's hash). Each bucket is a small FIFO: insert()
// shifts the bucket by one and writes the new fingerprint at its head, so the
// oldest of the bucket's 8 is forgotten. With the keys spread evenly over the
// buckets this approximates one FIFO of `capacity` keys (a key is remembered
// for about `capacity` later inserts) without an index: a lookup scans one
// 16-byte bucket. take() forgets a key it finds (a ghost hit is used once).
// A false hit (another key with the same bucket and fingerprint) has a
// probability of about 8 / 65535 per lookup.
// Internal header of tiers/. Thread safety: not thread-safe.
#pragma once

#include "tiers/hash.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace kura::detail {

class ghost_queue {
public:
  static constexpr uint32_t bucket_slots = 8;

  /// Remembers about `capacity` keys (0: none; nothing is remembered).
  explicit ghost_queue(uint64_t capacity = 0) { reset(capacity); }

  /// Forgets everything and re-sizes for about `capacity` keys.
  void reset(uint64_t capacity) {
    n_buckets_ =
        capacity == 0 ? 0 : std::max<uint64_t>(1, (capacity + bucket_slots - 1) / bucket_slots);
    std::vector<uint16_t>().swap(fp_);
    fp_.assign(n_buckets_ * bucket_slots, 0);
  }

  /// Remembers the key with hash `h` (the bucket's oldest key is forgotten).
  void insert(uint64_t h) {
    if (n_buckets_ == 0)
      return;
    uint16_t* b = bucket(h);
    std::memmove(b + 1, b, (bucket_slots - 1) * sizeof(uint16_t));
    b[0] = fingerprint(h);
  }

  /// Whether the key with hash `h` is remembered; if so it is forgotten.
  bool take(uint64_t h) {
    if (n_buckets_ == 0)
      return false;
    uint16_t* b = bucket(h);
    const uint16_t f = fingerprint(h);
    for (uint32_t i = 0; i < bucket_slots; ++i)
      if (b[i] == f) {
        // Close the gap so the bucket's order (newest first) is kept.
        std::memmove(b + i, b + i + 1, (bucket_slots - 1 - i) * sizeof(uint16_t));
        b[bucket_slots - 1] = 0;
        return true;
      }
    return false;
  }

  /// Whether the key with hash `h` is remembered (no change).
  bool contains(uint64_t h) const {
    if (n_buckets_ == 0)
      return false;
    const uint16_t* b = fp_.data() + index(h) * bucket_slots;
    const uint16_t f = fingerprint(h);
    for (uint32_t i = 0; i < bucket_slots; ++i)
      if (b[i] == f)
        return true;
    return false;
  }

  uint64_t capacity() const { return n_buckets_ * bucket_slots; }
  uint64_t memory_bytes() const { return fp_.capacity() * sizeof(uint16_t); }

private:
  // Independent bits of the hash for the bucket and the fingerprint (the
  // bucket takes the high bits of a multiply-shift of mix64(h)).
  uint64_t index(uint64_t h) const {
    return static_cast<uint64_t>(
        (static_cast<__uint128_t>(mix64(h ^ 0x9e3779b97f4a7c15ull)) * n_buckets_) >> 64);
  }
  static uint16_t fingerprint(uint64_t h) {
    const auto f = static_cast<uint16_t>(h >> 48);
    return f == 0 ? 1 : f; // 0 marks an empty slot
  }
  uint16_t* bucket(uint64_t h) { return fp_.data() + index(h) * bucket_slots; }

  uint64_t n_buckets_ = 0;
  std::vector<uint16_t> fp_;
};

} // namespace kura::detail
