// Anti-entropy digests: how two replicas find what differs between the keys
// they both replicate without shipping the keys themselves.
//
// The 64-bit ring position of each key picks its bucket: the top 8 bits give
// one of 256 level-1 buckets, the next 8 bits one of 256 level-2 buckets inside
// it. A bucket's digest is the XOR of `item_digest(key, version)` over its keys,
// so it does not depend on insertion order and two replicas agree on it exactly
// when they hold the same versions of the same keys. A round is:
//   A -> B  256 level-1 digests                      (fixed ~2.3 KB)
//   B -> A  level-2 digests of each differing level-1 bucket
//   A -> B  A's (key, version) list of each differing level-2 bucket
//   B -> A  entries where B is newer + the keys where A is newer
//   A -> B  those entries
// Both sides end up with the newer version of every key (repair in both
// directions) and the bytes sent grow with the number of differing buckets, not
// with the data: equal replicas exchange one digest message per round.
//
// That version-1 exchange (ae_digest_msg) costs 256 x 256 level-2 digests
// (~0.6 MB) as soon as the differences touch every level-1 bucket, which 1 %
// of 100,000 keys already does. Version 2 (ae_tree_msg, what nodes start now)
// walks a 16-ary tree over the same 16-bit buckets instead, 4 bits per step:
//   A -> B  the 16 digests of the 4-bit prefixes
//   B -> A  for each differing 4-bit prefix, its 16 8-bit children
//   A -> B  for each differing 8-bit prefix, its 16 12-bit children
//   B -> A  for each differing 12-bit prefix, its 16 buckets
//   A -> B  A's (key, version) list of each differing bucket, then as above.
// A step sends 16 digests per node that differed one level up, so d
// differences cost about 16 x d digests per level below the one where they
// stop sharing a node (d = 1,000 over 65,536 buckets: ~18,000 digests, a
// quarter of version 1's), and nothing is listed for equal subtrees.
// Each step is recomputed from the current store, so no session state is kept
// and a lost message only costs the rest of that round.
// The digests are not computed from the keys: the store keeps one digest per
// 16-bit bucket, updated as writes apply (gossip/store.hpp), and which keys
// take part is decided per slot (placement is a function of the slot), so a
// round costs 16,384 slot digests plus the listing of differing buckets.
// Thread safety: free functions over a store; no shared state.
#pragma once

#include "gossip/messages.hpp"
#include "gossip/store.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kura::gossip::anti_entropy {

/// Which keys take part, per slot (16384 flags): the slots both sides
/// replicate (ring::shared_slots). An empty mask means every slot.
using slot_mask = std::vector<bool>;

constexpr size_t fanout = 256;

/// The 256 level-1 digests.
std::vector<uint64_t> level1(const replica_store& s, const slot_mask& f);

/// For each level-1 prefix, its 256 level-2 digests (concatenated).
std::vector<uint64_t> level2(const replica_store& s, const slot_mask& f,
                             const std::vector<uint16_t>& prefixes);

// -- version 2: the 16-ary tree ----------------------------------------------------

constexpr unsigned tree_bits = 4;  ///< prefix bits added per step
constexpr size_t tree_fanout = 16; ///< children per node

/// For each `bits`-long prefix (bits 0, 4, 8 or 12; bits 0: the root, and
/// `prefixes` is ignored), the digests of its 16 children, concatenated.
std::vector<uint64_t> children(const replica_store& s, const slot_mask& f, unsigned bits,
                               const std::vector<uint16_t>& prefixes);

/// Indices where two equally long digest vectors differ.
std::vector<size_t> differing(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b);

/// The (key, version) pairs in the given 16-bit buckets.
std::vector<key_version> list_keys(const replica_store& s, const slot_mask& f,
                                   const std::vector<uint16_t>& buckets);

/// What to do with a peer's listing of some buckets against our own:
/// `push` are our entries the peer lacks or has older; `want` the keys where
/// the peer is newer or that we lack.
struct repair_plan {
  std::vector<entry> push;
  std::vector<std::string> want;
};
repair_plan compare(const replica_store& s, const slot_mask& f,
                    const std::vector<uint16_t>& buckets, const std::vector<key_version>& theirs);

} // namespace kura::gossip::anti_entropy
