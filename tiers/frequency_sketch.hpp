// A count-min sketch of 4-bit counters that estimates how often a key was seen
// recently: the "TinyLFU" frequency filter that decides admission into L2.
//
// Contract: increment(h) counts one access to the key whose 64-bit hash is h;
// frequency(h) returns an estimate in [0, 15] that never under-counts (until a
// halving). After sample_size() increments every counter is halved ("aging"),
// so the sketch forgets the distant past and follows a shifting workload.
// An optional doorkeeper (a one-bit-per-slot Bloom filter) absorbs the first
// access of each key, so one-hit wonders never reach the counters.
// Thread safety: not thread-safe; owned by one memory shard.
#pragma once

#include <cstdint>
#include <vector>

namespace kura {

class frequency_sketch {
public:
  /// Sized for about `capacity` distinct hot keys (at least 16).
  explicit frequency_sketch(uint64_t capacity = 16, bool doorkeeper = false);

  /// Re-sizes for a larger capacity; a re-size forgets all counts. Returns
  /// whether it re-sized (never shrinks).
  bool ensure_capacity(uint64_t capacity);

  /// Counts one access to the key with hash `h`.
  void increment(uint64_t h);

  /// Estimated recent accesses of the key with hash `h`, 0..15 (+1 when the
  /// doorkeeper has seen it).
  uint32_t frequency(uint64_t h) const;

  /// Starts loading the block (one cache line) of the key with hash `h`
  /// (a hint: no observable effect).
  void prefetch(uint64_t h) const { __builtin_prefetch(table_.data() + (h & block_mask_) * 8); }

  /// Halves every counter now (done automatically every sample_size()
  /// increments).
  void halve();

  /// Forgets everything.
  void clear();

  uint64_t capacity() const { return capacity_; }
  uint64_t sample_size() const { return sample_size_; }
  /// Sets the aging period to `factor` x capacity increments (10 by default;
  /// kept across ensure_capacity). Counts are kept.
  void set_sample_factor(uint32_t factor);
  uint32_t sample_factor() const { return factor_; }
  /// Increments since the last halving.
  uint64_t additions() const { return additions_; }
  /// Halvings so far.
  uint64_t halvings() const { return halvings_; }
  /// Heap bytes held by the counters and the doorkeeper.
  uint64_t memory_bytes() const {
    return table_.size() * sizeof(uint64_t) + door_.size() * sizeof(uint64_t);
  }

private:
  static uint64_t rehash(uint64_t h);
  void locate(uint64_t h, uint64_t* words, unsigned* shifts) const;
  std::vector<uint64_t> table_; // 16 counters of 4 bits per word
  std::vector<uint64_t> door_;  // doorkeeper bits (empty when disabled)
  uint64_t block_mask_ = 0;     // number of 8-word blocks - 1
  uint64_t capacity_ = 0;
  uint64_t sample_size_ = 0;
  uint32_t factor_ = 10;
  uint64_t additions_ = 0;
  uint64_t halvings_ = 0;
  bool use_door_;
};

} // namespace kura
