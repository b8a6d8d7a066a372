// The wire vocabulary of the cluster core. Every message travels inside the
// shared versioned envelope (tiers/envelope.hpp): [schema, type, payload] where
// payload is the msgpack array of one struct below (MSGPACK_DEFINE order is the
// wire order: append fields, never reorder). `decode_message` turns bytes from
// outside into a message or a decode_error, never a crash.
// Thread safety: plain value types and free functions.
#pragma once

#include "gossip/types.hpp"
#include "tiers/entry.hpp"
#include "tiers/envelope.hpp"
#include "tiers/status.hpp"

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace kura::gossip {

/// Envelope type ids of the gossip messages (range 100-199 is gossip's).
enum class msg_type : uint32_t {
  ping = 100,
  ack = 101,
  ping_req = 102,
  nack = 103,
  push_pull = 104,
  replicate = 110,
  replicate_ack = 111,
  fetch = 112,
  fetch_reply = 113,
  invalidate = 114,
  invalidate_ack = 115,
  hint = 116,
  hold = 117,
  hold_ack = 118,
  ae_digest = 120,
  ae_keys = 121,
  ae_repair = 122,
  handoff = 123,
  handoff_ack = 124,
  tomb_check = 125,
  tomb_confirm = 126,
  stream_req = 127,
  stream_batch = 128,
  ae_tree = 129,
};

/// Membership state of a member as gossiped.
enum class member_state : uint8_t { alive = 0, suspect = 1, dead = 2, left = 3 };

const char* to_string(member_state s);

// -- membership ----------------------------------------------------------------

/// One piece of membership news: "member `id` at incarnation `inc` is `state`".
/// `from` is who declared it (Lifeguard counts independent suspicions).
struct member_update {
  node_id id = no_node;
  std::string addr;
  uint64_t inc = 0;
  uint8_t state = 0; ///< member_state
  node_id from = no_node;
  MSGPACK_DEFINE(id, addr, inc, state, from);
};

struct ping_msg {
  uint64_t seq = 0;
  node_id target = no_node;    ///< who the sender believes it pings
  node_id relay_for = no_node; ///< non-zero: an indirect probe for this requester
  std::vector<member_update> gossip;
  MSGPACK_DEFINE(seq, target, relay_for, gossip);
};

struct ack_msg {
  uint64_t seq = 0;
  node_id target = no_node; ///< the member whose liveness this proves
  std::vector<member_update> gossip;
  MSGPACK_DEFINE(seq, target, gossip);
};

struct ping_req_msg {
  uint64_t seq = 0; ///< the requester's probe sequence number
  node_id target = no_node;
  std::vector<member_update> gossip;
  MSGPACK_DEFINE(seq, target, gossip);
};

/// Lifeguard: an intermediary tells the requester it did not hear from the
/// target in time, so the requester knows its own links still work.
struct nack_msg {
  uint64_t seq = 0;
  node_id target = no_node;
  MSGPACK_DEFINE(seq, target);
};

/// Full state exchange: join (through a seed), periodic sync, reconnect.
struct push_pull_msg {
  bool join = false;
  bool reply = false;
  std::vector<member_update> members;
  MSGPACK_DEFINE(join, reply, members);
};

// -- data ----------------------------------------------------------------------

/// An entry on the wire (tiers' entry + version).
struct wire_entry {
  std::string key;
  std::string value;
  uint64_t expiry_ms = 0;
  uint64_t hlc = 0;
  uint32_t node = 0;
  uint8_t flags = 0;
  MSGPACK_DEFINE(key, value, expiry_ms, hlc, node, flags);

  static wire_entry from(const entry& e) {
    return wire_entry{e.key, e.value, e.expiry_ms, e.ver.hlc, e.ver.node, e.flags};
  }
  entry to_entry() const& { return entry{key, value, expiry_ms, version{hlc, node}, flags}; }
  entry to_entry() && {
    return entry{std::move(key), std::move(value), expiry_ms, version{hlc, node}, flags};
  }
};

/// A key and the version one side holds (anti-entropy listings, confirmations).
struct key_version {
  std::string key;
  uint64_t hlc = 0;
  uint32_t node = 0;
  MSGPACK_DEFINE(key, hlc, node);
  version ver() const { return version{hlc, node}; }
};

/// Coordinator -> replica (also hint delivery). rid 0: no one waits for the ack.
struct replicate_msg {
  uint64_t rid = 0;
  wire_entry e;
  MSGPACK_DEFINE(rid, e);
};

/// Replica -> coordinator: I now hold `held` (>= the replicated version).
struct replicate_ack_msg {
  uint64_t rid = 0;
  key_version held;
  MSGPACK_DEFINE(rid, held);
};

/// Coordinator -> hint holder (sloppy quorum): keep `e` for `target`, which
/// is suspect, and hand it off when the target is alive again. Acknowledged
/// with a replicate_ack_msg; the holder counts as a copy of the write.
struct hint_msg {
  uint64_t rid = 0;
  uint32_t target = 0;
  wire_entry e;
  MSGPACK_DEFINE(rid, target, e);
};

/// Near-cache holder -> a replica that did not serve its copy: "I keep a
/// near copy of `copy.key` at version `copy`; invalidate me on change".
/// Answered with hold_ack_msg; the copy is served only once every replica of
/// the key registered the holder (kura-node, ack_after_invalidation).
struct hold_msg {
  key_version copy;
  MSGPACK_DEFINE(copy);
};

/// Replica -> holder: registered; `held` is the version the replica holds
/// (zero: none), newer than `copy` means the copy is already stale.
struct hold_ack_msg {
  key_version copy;
  key_version held;
  MSGPACK_DEFINE(copy, held);
};

struct fetch_msg {
  uint64_t rid = 0;
  std::string key;
  MSGPACK_DEFINE(rid, key);
};

struct fetch_reply_msg {
  uint64_t rid = 0;
  bool found = false;
  wire_entry e;
  /// Not found, and the answering node cannot vouch for that: in its ring it
  /// is not a replica of the key, or the key's slot is still coming to it (a
  /// slot gained in a ring change and not yet found in sync, or streaming
  /// in). The reader asks the next replica and, if no replica vouches for
  /// the absence, answers an error instead of nil. (Added last: a decoder of
  /// the older three-field form reads it as false.)
  bool unsure = false;
  MSGPACK_DEFINE(rid, found, e, unsure);
};

/// "key changed to version v": drop any older near-cache copy.
struct invalidate_msg {
  key_version kv;
  MSGPACK_DEFINE(kv);
};

struct invalidate_ack_msg {
  key_version kv;
  MSGPACK_DEFINE(kv);
};

/// Anti-entropy, level 1 and 2. `prefix_bits` is 0 (the root: digests of the
/// 256 top-level buckets) or 8 (one message carries, for each listed top-level
/// bucket, the digests of its 256 sub-buckets).
struct ae_digest_msg {
  uint64_t sid = 0;
  uint8_t prefix_bits = 0;
  bool reply = false;
  std::vector<uint16_t> prefixes; ///< the buckets whose children follow
  std::vector<uint64_t> digests;  ///< 256 per prefix
  MSGPACK_DEFINE(sid, prefix_bits, reply, prefixes, digests);
};

/// Anti-entropy, version 2 (type 129; nodes still answer a type-120 round
/// the old way): a walk down a 16-ary digest tree over the 16-bit buckets
/// (gossip/anti_entropy.hpp). `bits` (0, 4, 8 or 12) is the length of the
/// listed prefixes; each is followed by the digests of its 16 children
/// (bits + 4 long). The root message (bits 0) lists no prefix and carries 16
/// digests. A node that does not place the sender in its ring drops the
/// step (and starts a round itself a little later).
struct ae_tree_msg {
  uint64_t sid = 0;
  uint8_t bits = 0;
  std::vector<uint16_t> prefixes;
  std::vector<uint64_t> digests; ///< 16 per prefix (16 for the root)
  MSGPACK_DEFINE(sid, bits, prefixes, digests);
};

/// Anti-entropy, level 3: the sender's keys and versions in differing
/// 16-bit buckets.
struct ae_keys_msg {
  uint64_t sid = 0;
  std::vector<uint16_t> buckets;
  std::vector<key_version> keys;
  MSGPACK_DEFINE(sid, buckets, keys);
};

/// Anti-entropy repair: entries the receiver lacks, keys the sender wants.
struct ae_repair_msg {
  uint64_t sid = 0;
  std::vector<wire_entry> entries;
  std::vector<std::string> want;
  MSGPACK_DEFINE(sid, entries, want);
};

/// Handoff of entries the sender holds but no longer replicates.
struct handoff_msg {
  std::vector<wire_entry> entries;
  MSGPACK_DEFINE(entries);
};

struct handoff_ack_msg {
  std::vector<key_version> held;
  MSGPACK_DEFINE(held);
};

/// "Do you hold these tombstones (at least these versions)?"
struct tomb_check_msg {
  std::vector<key_version> keys;
  MSGPACK_DEFINE(keys);
};

struct tomb_confirm_msg {
  std::vector<key_version> keys;
  MSGPACK_DEFINE(keys);
};

/// Range streaming (join, restart with an empty disk, re-replication): the
/// receiver pulls the range (lo, hi] of ring positions from a holder, one
/// batch per request, so it paces the stream (kura.cluster.stream-rate) and
/// the holder keeps no state. `first` = start of the range; otherwise the
/// holder continues after (after_pos, after_key).
struct stream_req_msg {
  uint64_t sid = 0;
  uint64_t lo = 0;
  uint64_t hi = 0;
  bool first = true;
  uint64_t after_pos = 0;
  std::string after_key;
  uint64_t max_bytes = 0; ///< key + value bytes per batch (at least one entry)
  MSGPACK_DEFINE(sid, lo, hi, first, after_pos, after_key, max_bytes);
};

/// Holder -> receiver: the next entries of the range in (position, key)
/// order; `done` when the range has no more; `total_keys` (first batch
/// only, else 0) the keys the holder held in the range when it started.
struct stream_batch_msg {
  uint64_t sid = 0;
  std::vector<wire_entry> entries;
  bool done = false;
  uint64_t next_pos = 0;
  std::string next_key;
  uint64_t total_keys = 0;
  MSGPACK_DEFINE(sid, entries, done, next_pos, next_key, total_keys);
};

using message =
    std::variant<ping_msg, ack_msg, ping_req_msg, nack_msg, push_pull_msg, replicate_msg,
                 replicate_ack_msg, fetch_msg, fetch_reply_msg, invalidate_msg, invalidate_ack_msg,
                 ae_digest_msg, ae_keys_msg, ae_repair_msg, handoff_msg, handoff_ack_msg,
                 tomb_check_msg, tomb_confirm_msg, hint_msg, hold_msg, hold_ack_msg, stream_req_msg,
                 stream_batch_msg, ae_tree_msg>;

/// The envelope type id of a message.
msg_type type_of(const message& m);

/// Encodes a message into envelope bytes.
std::string encode(const message& m);

/// encode(replicate_msg{rid, wire_entry::from(e)}), the same bytes, without
/// the copy of `e`'s key and value into a wire_entry (a SET's hot path).
std::string encode_replicate(uint64_t rid, const entry& e);

/// Decodes envelope bytes; decode_error for garbage, unknown types, bad shapes
/// and out-of-range enum values.
result<message> decode_message(std::string_view bytes);

} // namespace kura::gossip
