// A hybrid logical clock (Kulkarni et al., 2014): versions that follow wall time
// when clocks are sane and still move forward when they are not.
// Thread safety: not thread-safe; one per node.
#pragma once

#include "tiers/entry.hpp"

#include <cstdint>

namespace kura::gossip {

/// Issues `version`s for one node. The 48-bit physical part is the largest
/// wall-clock ms seen (locally or in any observed version); the 16-bit counter
/// orders events inside one ms. A version issued after observing `v` is always
/// greater than `v`, whatever the local wall clock says: that is what keeps
/// last-writer-wins meaningful when an owner with a slow clock takes over a key
/// written by a node with a fast one.
class hlc {
public:
  explicit hlc(uint32_t node_id) : node_(node_id) {}

  /// A new version for a local event at wall time `wall_ms`.
  version now(uint64_t wall_ms);

  /// Merges a remote (or stored) version so that the next `now` exceeds it.
  void observe(const version& v, uint64_t wall_ms);

  /// The last issued or observed timestamp (48-bit ms << 16 | counter).
  uint64_t last() const { return last_; }
  uint32_t node_id() const { return node_; }

private:
  uint32_t node_;
  uint64_t last_ = 0;
};

} // namespace kura::gossip
