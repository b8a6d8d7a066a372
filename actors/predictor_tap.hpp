// The predictor's tap on the memory shards: sampled access events and
// prewarm-hit tracking on the hot path, shipped to the predictor actor in
// batches.
//
// The shards are served on the middleman's multiplexer thread (store.hpp), so
// the tap is a plain object on that thread: no lock, no atomic. A read costs
// a countdown decrement (1-in-N sampling with jitter) and, while prewarmed
// keys are open, one hash and one lookup in a small table of key hashes; a
// sampled read copies its key into the pending batch. The store broker's tick
// (kura.expiry.sweep-interval) moves the batch into one message to the
// predictor actor, so the predictor costs the hot path no hop and no
// allocation per request. The batch is bounded: when the predictor falls
// behind, events are dropped and counted, never queued without bound.
//
// Prewarm hits: the store marks every key a prewarm loaded (`prewarmed`);
// the first read of such a key reports whether memory served it (a hit the
// prewarm bought) or not (evicted before its read), with the lead time. A
// write to a marked key ends its mark (later reads are not the prewarm's).
// Marks older than `mark_ttl_ms` are dropped at ship time.
// No CAF in this file.
// Thread safety: not thread-safe; owned by the multiplexer thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kura::actors {

/// Which tier served a read (the values of predictor::access_tier).
enum class tap_tier : uint8_t { l1 = 0, l2 = 1, l3 = 2, l4 = 3, miss = 4 };

/// One sampled event as it travels to the predictor actor.
struct tap_event {
  /// write_read: the next read of a sampled write's key (followed unsampled,
  /// tap_config::follow_writes), for the write's outcome only.
  enum kind_t : uint8_t { read = 0, write = 1, prewarm_read = 2, write_read = 3 };
  std::string key;
  uint64_t time_ms = 0;
  uint64_t arg = 0; ///< write: TTL in ms (0 = none); prewarm_read: lead time in ms
  uint32_t size = 0;
  uint32_t weight = 1; ///< read, write: accesses it stands for (the sampling's 1-in-N then)
  uint8_t kind = read;
  uint8_t tier = 0; ///< read: tap_tier; prewarm_read: 1 = served from memory
};

struct tap_config {
  uint32_t sample_one_in = 8;
  /// Sampled events per second at most (0 = no cap): above it the tap samples
  /// more sparsely (1 in sample_one_in x 2^k), below half of it it returns
  /// towards sample_one_in; each event carries the 1-in-N it was taken at.
  /// Learning costs the predictor's thread about 1 us per event since the
  /// flat key tables (session 16, bench/predictor/learn-cost: 1.64 -> 1.08 us
  /// for a uniform key space larger than its table, growth of a fresh model
  /// included): at 700 000 GET/s, 1 in 8 would be 90 000 events/s, a tenth
  /// of a core on a small box. kura-node's default cap is 2500 events/s
  /// (actors/predictor.hpp, predictor_settings), ~0.3 % of a core.
  uint32_t max_events_per_second = 0;
  size_t max_batch = 1 << 16;             ///< events held between shipments
  uint64_t mark_ttl_ms = 3 * 3600 * 1000; ///< prewarm marks older than this are dropped
  uint64_t seed = 0x746170;
  /// Follow every sampled write to its next read (and, for a write with a
  /// TTL read before it ran out, to the first read after it), unsampled:
  /// the tier choice and the TTL rules judge a write by whether it was read,
  /// which 1-in-N sampled reads alone would miss N-1 times in N. Costs a hash
  /// and a lookup per read while followed writes are open; only with
  /// kura.prewarm.tier-choice or kura.prewarm.adjust-ttl.
  bool follow_writes = false;
  uint64_t follow_ms = 3600 * 1000; ///< a write is followed this long (past its TTL)
  size_t max_followed = 1 << 16;    ///< followed writes at most (more are not followed)
};

class predictor_tap {
public:
  explicit predictor_tap(tap_config cfg = {});

  /// A read of `key`: served by `tier` (memory hit: l1) with `size` bytes.
  void on_read(std::string_view key, uint64_t now_ms, tap_tier tier, size_t size) {
    if (!marks_.empty())
      check_mark(key, now_ms, tier != tap_tier::l1 && tier != tap_tier::l2 ? 0 : 1);
    if (!followed_.empty())
      check_followed(key, now_ms);
    if (--left_ != 0)
      return;
    sample(key, now_ms, tier, size);
  }
  /// A write of `key` (`ttl_ms` 0 = none).
  void on_write(std::string_view key, uint64_t now_ms, uint64_t ttl_ms, size_t size) {
    if (!marks_.empty())
      unmark(key);
    if (!followed_.empty())
      unfollow(key); // superseded (the predictor closes the old write)
    if (--left_ != 0)
      return;
    sample_write(key, now_ms, ttl_ms, size);
  }
  /// A prewarm loaded `key` into memory.
  void prewarmed(std::string_view key, uint64_t now_ms);

  /// Takes the pending batch (the store's tick ships it).
  std::vector<tap_event> take();
  bool empty() const noexcept { return batch_.empty(); }
  uint64_t dropped() const noexcept { return dropped_; }
  /// Batches shipped that the predictor has not learned from yet: the store
  /// ships a batch only while fewer than `max_in_flight` are (else the events
  /// wait in the tap, which drops beyond max_batch), so a predictor that falls
  /// behind (its thread runs at low priority) never piles batches up in its
  /// mailbox. The store increments it, the predictor decrements it.
  using counter = std::shared_ptr<std::atomic<uint32_t>>;
  const counter& in_flight() const noexcept { return in_flight_; }
  static constexpr uint32_t max_in_flight = 2;
  uint64_t sampled() const noexcept { return sampled_; }
  /// The sampling in force: 1 in this many reads and writes.
  uint64_t one_in() const noexcept { return static_cast<uint64_t>(cfg_.sample_one_in) * stride_; }
  size_t open_marks() const noexcept { return marks_.size(); }
  size_t followed_writes() const noexcept { return followed_.size(); }
  const tap_config& config() const noexcept { return cfg_; }

private:
  void check_mark(std::string_view key, uint64_t now_ms, uint8_t served);
  void unmark(std::string_view key);
  void check_followed(std::string_view key, uint64_t now_ms);
  void unfollow(std::string_view key);
  void sample(std::string_view key, uint64_t now_ms, tap_tier tier, size_t size);
  void sample_write(std::string_view key, uint64_t now_ms, uint64_t ttl_ms, size_t size);
  bool push(tap_event e);
  uint32_t next_gap();
  /// Counts a sampled event against max_events_per_second; adjusts stride_.
  void pace(uint64_t now_ms);

  tap_config cfg_;
  uint64_t rng_;
  uint32_t left_ = 1;
  uint32_t stride_ = 1; ///< pacing: sample 1 in sample_one_in x stride_
  uint64_t window_start_ms_ = 0;
  uint64_t window_events_ = 0;
  std::vector<tap_event> batch_;
  std::unordered_map<uint64_t, uint64_t> marks_; ///< key hash -> load time
  struct followed_write {
    uint64_t at_ms = 0;
    uint64_t expiry_ms = 0;   ///< 0 = no TTL
    bool read_before = false; ///< read before its TTL ran out (reported)
  };
  std::unordered_map<uint64_t, followed_write> followed_; ///< key hash -> sampled write
  uint64_t dropped_ = 0;
  uint64_t sampled_ = 0;
  counter in_flight_ = std::make_shared<std::atomic<uint32_t>>(0);
  uint64_t last_trim_ms_ = 0;
  uint64_t last_follow_trim_ms_ = 0;
};

} // namespace kura::actors
