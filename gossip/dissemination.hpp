// The piggyback queue of SWIM: membership news rides on pings and acks instead
// of being broadcast. Each update is sent at most `limit(n)` times, where the
// limit grows like log(n): with every member forwarding news to a random peer
// each period, news reaches all n members in O(log n) periods with high
// probability (epidemic spread), so retransmitting more is waste and fewer risks
// a member never hearing it. Newest news about a member replaces older news about
// the same member; the least-transmitted updates go first.
// Thread safety: not thread-safe; owned by one membership.
#pragma once

#include "gossip/messages.hpp"

#include <cstddef>
#include <vector>

namespace kura::gossip {

class dissemination_queue {
public:
  /// `mult` scales the log: limit(n) = mult * ceil(log10(n + 1)) (memberlist).
  explicit dissemination_queue(uint32_t mult = 4) : mult_(mult) {}

  /// Queues news, replacing any queued news about the same member.
  void push(member_update u);

  /// Up to `max` updates for one outgoing message; counts a transmission for
  /// each and drops those that reached the limit for a cluster of `n` members.
  std::vector<member_update> take(size_t max, size_t n);

  /// Retransmit limit for a cluster of n members.
  uint32_t limit(size_t n) const;

  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  void clear() { items_.clear(); }

private:
  struct item {
    member_update u;
    uint32_t sent = 0;
    uint64_t order = 0; // insertion order: newer first among equal counts
  };
  uint32_t mult_;
  uint64_t next_order_ = 0;
  std::vector<item> items_;
};

} // namespace kura::gossip
