// Lifeguard's local health multiplier (LHM). A member that is itself slow (CPU
// starved, GC pause, saturated link) misses acks and wrongly suspects healthy
// peers. So each member keeps a score of evidence that *it* is the problem:
// +1 when a probe it sent failed, when it had to refute a suspicion about
// itself, or when an indirect probe got no nack back; -1 when a probe succeeds.
// Probe interval and probe timeout are multiplied by (score + 1): a sick member
// slows down and gives others more time instead of spreading false suspicion.
// Thread safety: not thread-safe; owned by one membership.
#pragma once

#include <cstdint>

namespace kura::gossip {

class local_health {
public:
  explicit local_health(uint32_t max_score = 8) : max_(max_score) {}

  void failed() {
    if (score_ < max_)
      ++score_;
  }
  void succeeded() {
    if (score_ > 0)
      --score_;
  }
  uint32_t score() const { return score_; }
  /// Scales a period or timeout by the current health.
  uint64_t scale(uint64_t ms) const { return ms * (score_ + 1); }

private:
  uint32_t max_;
  uint32_t score_ = 0;
};

} // namespace kura::gossip
