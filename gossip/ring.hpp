// Contract: a consistent-hash ring with virtual nodes that places *slots*.
// `ring(members, cfg)` is a pure function of the member set and the config:
// every node that holds the same membership view computes the same ring (same
// tokens, same replicas, same fingerprint), whatever order it learned the
// members in. A key belongs to a slot (tiers/slot.hpp: CRC16 of the key or its
// {hash tag}, as Redis Cluster); a slot's replicas are its owner (the first
// token clockwise from the slot) followed by the next RF-1 *distinct* nodes
// clockwise, so placement is computable from the slot number alone
// (replicas_of_slot), which is what a CLUSTER SLOTS face reports.
//
// Positions. The 64-bit ring is cut into 16384 equal arcs, one per slot: slot
// s covers positions [s << 50, (s + 1) << 50). A key's position is its slot's
// base plus 50 bits of a seeded hash of the key, which spreads the keys of one
// slot over its arc (anti-entropy buckets are finer than a slot). Tokens are
// snapped to the last position of a slot (and deduplicated, lowest node id
// first), so a token never cuts a slot: every position of a slot has the same
// replicas, and every key_range between tokens holds whole slots. `transfer_plan(before, after)`
// says which ranges each node must receive, and from whom, when the ring changes. Thread safety:
// immutable after construction; safe for concurrent reads.
#pragma once

#include "gossip/types.hpp"

#include <cstdint>
#include <map>
#include <string_view>
#include <vector>

namespace kura::gossip {

struct ring_config {
  /// Virtual nodes (tokens) per member. With random tokens a member's share
  /// has a relative spread of about 1/sqrt(vnodes): 256 gives max/mean of keys
  /// per node ~1.10 at 10 nodes, 512 ~1.07 (see bench/RESULTS.md), so 512.
  uint32_t vnodes = 512;
  /// Replication factor: owner plus rf-1 distinct successors.
  uint32_t rf = 2;
  /// Seed of token and key positions. Changing it moves every key.
  uint64_t seed = 0x6b7572612d72696eull;
};

/// The arc of positions (lo, hi] on the 64-bit ring, clockwise; it wraps past
/// zero when lo >= hi (lo == hi is the whole ring).
struct key_range {
  uint64_t lo = 0;
  uint64_t hi = 0;
  bool contains(uint64_t pos) const {
    if (lo < hi)
      return pos > lo && pos <= hi;
    return pos > lo || pos <= hi;
  }
  friend bool operator==(const key_range& a, const key_range& b) {
    return a.lo == b.lo && a.hi == b.hi;
  }
};

class ring {
public:
  ring() = default;
  ring(std::vector<node_id> members, ring_config cfg) : ring(std::move(members), cfg, {}) {}
  /// A weighted ring (kura rebalance): member n gets tokens.at(n) tokens
  /// instead of cfg.vnodes (members not in `tokens` get cfg.vnodes). A
  /// member's tokens are its first N of the same sequence, so changing N
  /// moves only the arcs next to the tokens added or removed.
  ring(std::vector<node_id> members, ring_config cfg, const std::map<node_id, uint32_t>& tokens);

  /// Bits of a position below the slot number.
  static constexpr int slot_shift = 50;
  /// First position of a slot's arc.
  static constexpr uint64_t slot_base(uint32_t slot) { return uint64_t{slot} << slot_shift; }
  /// The slot of a position.
  static constexpr uint16_t slot_of(uint64_t pos) {
    return static_cast<uint16_t>(pos >> slot_shift);
  }

  /// Position of a key on the ring: its slot's base + a seeded hash inside it.
  static uint64_t position(std::string_view key, const ring_config& cfg) {
    return hash_position(key, cfg.seed);
  }
  uint64_t position(std::string_view key) const { return hash_position(key, cfg_.seed); }

  /// Replicas of a slot (owner first); the same for every key of the slot.
  std::vector<node_id> replicas_of_slot(uint32_t slot) const {
    return replicas_at(slot_base(slot));
  }
  /// Share of the 16384 slots each member owns (as owner), by member id order.
  std::vector<uint32_t> owned_slots() const;
  /// 16384 flags: the slots that both `a` and `b` replicate (anti-entropy
  /// between them covers exactly these). One walk over slots and tokens.
  std::vector<bool> shared_slots(node_id a, node_id b) const;

  /// Owner first, then the next distinct nodes clockwise; min(rf, members) ids.
  std::vector<node_id> replicas_at(uint64_t pos) const;
  std::vector<node_id> replicas(std::string_view key) const { return replicas_at(position(key)); }
  /// The owner of a key, or no_node on an empty ring.
  node_id owner(std::string_view key) const;
  bool is_replica_at(node_id n, uint64_t pos) const;
  bool is_replica(node_id n, std::string_view key) const { return is_replica_at(n, position(key)); }

  /// Sorted member ids.
  const std::vector<node_id>& members() const { return members_; }
  bool contains(node_id n) const;
  bool empty() const { return members_.empty(); }
  const ring_config& config() const { return cfg_; }

  /// The sorted tokens; the arc ending at tokens()[i] belongs to token_replicas(i).
  const std::vector<uint64_t>& tokens() const { return tokens_; }
  /// Replicas (width() ids, owner first) of the arc ending at token i; no allocation.
  const node_id* token_replicas(size_t i) const { return replicas_.data() + i * width_; }
  /// Replicas of a position without allocating (width() ids; nullptr if empty).
  const node_id* replicas_ptr(uint64_t pos) const {
    return tokens_.empty() ? nullptr : token_replicas(token_index(pos));
  }
  /// Replicas per key: min(rf, members).
  size_t width() const { return width_; }

  /// Every arc between two consecutive tokens with the replicas that own it.
  struct arc {
    key_range range;
    std::vector<node_id> replicas;
  };
  std::vector<arc> arcs() const;

  /// Same members, token counts and config <=> same fingerprint (used to check agreement).
  uint64_t fingerprint() const { return fingerprint_; }
  /// Tokens of member n (its weight in placement).
  uint32_t tokens_of(node_id n) const;

private:
  static uint64_t hash_position(std::string_view key, uint64_t seed);
  size_t token_index(uint64_t pos) const; // first token >= pos, wrapping

  ring_config cfg_;
  std::vector<node_id> members_;
  std::vector<uint32_t> member_tokens_; // per members_ entry
  std::vector<uint64_t> tokens_;        // sorted
  std::vector<node_id> token_node_;     // owner of each token
  uint32_t width_ = 0;                  // replicas per token: min(rf, members)
  std::vector<node_id> replicas_;       // width_ entries per token, precomputed
  uint64_t fingerprint_ = 0;
};

/// One range a node must receive after a ring change.
struct transfer {
  key_range range;
  node_id from = no_node; ///< an old replica still in the new ring (or no_node: none left)
  node_id to = no_node;   ///< a new replica that did not hold the range before
};

/// The ranges to stream after the ring changes from `before` to `after` (a join,
/// a leave, a failure). For every arc of the union of both rings' tokens, each
/// new replica that was not an old replica gets the arc from the first old
/// replica that is still a member of `after` (or, when none is, from the first
/// old replica at all: a leaving node streams its own ranges out). Adjacent
/// arcs with the same (from, to) are merged.
std::vector<transfer> transfer_plan(const ring& before, const ring& after);

} // namespace kura::gossip
