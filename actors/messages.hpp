// The messages of kura's actor graph. Each is a plain struct with
//  - MSGPACK_DEFINE: its encoding whenever it crosses nodes (inside the
//    versioned envelope of tiers/envelope.hpp, type ids below), and
//  - a CAF 0.17 `inspect` overload, so CAF can carry it between actors of one
//    node as a plain struct (and print it).
// docs/protocol.md lists every message with its fields; the golden-byte tests
// in tests/actors pin the encoding. Decoding bytes from outside goes through
// `decode_message<T>`, which returns an error and never throws.
// Thread safety: plain value types.
#pragma once

#include "tiers/entry.hpp"
#include "tiers/envelope.hpp"

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <msgpack.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace kura::actors {

// -- atoms ---------------------------------------------------------------------

using kv_get_atom = caf::atom_constant<caf::atom("kv_get")>;
using kv_set_atom = caf::atom_constant<caf::atom("kv_set")>;
using kv_del_atom = caf::atom_constant<caf::atom("kv_del")>;
using kv_expire_atom = caf::atom_constant<caf::atom("kv_expire")>;
using kv_tier_atom = caf::atom_constant<caf::atom("kv_tier")>;
using kv_flush_atom = caf::atom_constant<caf::atom("kv_flush")>;
using kv_stats_atom = caf::atom_constant<caf::atom("kv_stats")>;
using l3_ack_atom = caf::atom_constant<caf::atom("l3_ack")>;
using l3_sync_atom = caf::atom_constant<caf::atom("l3_sync")>;
using tick_timer_atom = caf::atom_constant<caf::atom("tick_tmr")>;
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
using wake_atom = caf::atom_constant<caf::atom("wake")>;
using ops_status_atom = caf::atom_constant<caf::atom("ops_stat")>;
using ops_config_atom = caf::atom_constant<caf::atom("ops_conf")>;

// -- envelope type ids (stable: part of the wire format) -------------------------

enum class msg_type : uint32_t {
  l3_batch = 1,
  l3_lookup = 2,
  l3_found = 3,
  l3_list = 4,
  l3_listing = 5,
  kv_request = 6,
  kv_reply = 7,
  node_status = 8,
};

// -- entries on the wire ---------------------------------------------------------

/// An entry as it travels: key, value, absolute expiry (ms), version, flags.
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
  static wire_entry from(entry&& e) {
    return wire_entry{std::move(e.key), std::move(e.value), e.expiry_ms,
                      e.ver.hlc,        e.ver.node,         e.flags};
  }
  entry to_entry() && {
    entry e;
    e.key = std::move(key);
    e.value = std::move(value);
    e.expiry_ms = expiry_ms;
    e.ver = kura::version{hlc, node};
    e.flags = flags;
    return e;
  }
  friend bool operator==(const wire_entry& a, const wire_entry& b) {
    return a.key == b.key && a.value == b.value && a.expiry_ms == b.expiry_ms && a.hlc == b.hlc &&
           a.node == b.node && a.flags == b.flags;
  }
};

// -- L3 write-behind and lookups ---------------------------------------------------

/// One write-behind operation.
struct l3_op {
  enum kind_t : uint8_t { put = 0, erase = 1, clear = 2 };
  l3_op() = default;
  l3_op(uint8_t k, wire_entry w) : kind(k), e(std::move(w)) {}
  uint8_t kind = put;
  wire_entry e; ///< put: the entry; erase: only e.key
  /// put of a large value inside one node: the value, shared with the
  /// write-ahead log and the keyspace instead of copied into e.value (the
  /// serving thread copies a 64 MiB SET once). Not part of the encoding: an
  /// op that leaves the node carries its value in e.value.
  shared_bytes shared_value;
  /// A put inside one node with `packed` set: e.key and e.value are empty;
  /// the key is the packed_key bytes at packed_off of the batch's chunk
  /// packed_chunk (l3_batch::chunks) and the value the packed_value bytes
  /// after it. The serving thread copies them there (no allocation per
  /// write); the L3 thread's LMDB batch reads them there (l3_lmdb::put_view,
  /// which keeps the chunks until it commits). Not part of the encoding:
  /// local batches only.
  bool packed = false;
  uint32_t packed_chunk = 0;
  uint32_t packed_off = 0;
  uint32_t packed_key = 0;
  uint32_t packed_value = 0;
  MSGPACK_DEFINE(kind, e);
};

/// A batch of write-behind operations, applied in order; answered by
/// (l3_ack_atom, ops applied) to the sender named in the batch's owner.
struct l3_batch {
  uint64_t seq = 0;
  std::vector<l3_op> ops;
  /// The bytes of the packed ops (l3_op::packed), in chunks that never move
  /// once written. Local only, like l3_op::packed.
  std::vector<std::string> chunks = {};
  MSGPACK_DEFINE(seq, ops);
};

/// Look these keys up (a memory miss); answered with l3_found.
struct l3_lookup {
  uint64_t seq = 0;
  std::vector<std::string> keys;
  MSGPACK_DEFINE(seq, keys);
};

/// The live entries L3 holds among the looked-up keys (absent = miss).
struct l3_found {
  uint64_t seq = 0;
  std::vector<wire_entry> entries;
  MSGPACK_DEFINE(seq, entries);
};

/// List keys (KEYS, SCAN, DBSIZE, RANDOMKEY) of L3 and L4; answered with
/// l3_listing. Keys come in two phases: 0 = every key of L3 and every L4 key
/// up to 400 bytes, merged in L3's key order; 1 = L4's longer keys, in L4's
/// index order (see actors/store.cpp).
struct l3_list {
  enum mode_t : uint8_t { keys = 0, count = 1, random = 2 };
  uint8_t mode = keys;
  std::string pattern; ///< glob, empty = all
  std::string after;   ///< only keys > after (in `phase`'s order)
  uint64_t limit = 0;  ///< examine at most about this many keys (0 = all)
  uint8_t phase = 0;   ///< where `after` is
  MSGPACK_DEFINE(mode, pattern, after, limit, phase);
};

struct l3_listing {
  std::vector<std::string> keys;
  uint64_t count = 0;
  std::string last;           ///< resume after this key (in `phase`'s order)
  bool done = true;           ///< no keys after `last` in any phase
  std::vector<uint8_t> flags; ///< entry flags of each of `keys` (TYPE)
  uint8_t phase = 0;          ///< the phase of `last`
  MSGPACK_DEFINE(keys, count, last, done, flags, phase);
};

// -- key/value API (embedding, ops) ----------------------------------------------

/// A request of the key/value API when it crosses nodes (the ops CLI).
struct kv_request {
  enum op_t : uint8_t {
    get = 0,
    set = 1,
    del = 2,
    expire = 3,
    tier = 4,
    flush = 5,
    status = 6,
    stats = 7,
    config = 8
  };
  uint8_t op = get;
  std::string key;
  std::string value;
  uint64_t ttl_ms = 0; ///< set/expire: relative TTL, 0 = none
  MSGPACK_DEFINE(op, key, value, ttl_ms);
};

/// The answer to a get (and to every kv_request on the wire).
struct kv_reply {
  bool found = false; ///< get: hit; del/expire: key existed; set: ok
  std::string value;  ///< get: the value; tier: "l1" | "l2" | "l3" | "none"
  uint64_t expiry_ms = 0;
  std::string error; ///< non-empty: what went wrong
  MSGPACK_DEFINE(found, value, expiry_ms, error);
  friend bool operator==(const kv_reply& a, const kv_reply& b) {
    return a.found == b.found && a.value == b.value && a.expiry_ms == b.expiry_ms &&
           a.error == b.error;
  }
};

/// What `kura status` / `kura stats` show: name/value rows, in order.
struct node_status {
  std::vector<std::string> names;
  std::vector<std::string> values;
  MSGPACK_DEFINE(names, values);
};

// -- CAF inspection -------------------------------------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, wire_entry& x) {
  return f(caf::meta::type_name("kura.wire_entry"), x.key, x.value, x.expiry_ms, x.hlc, x.node,
           x.flags);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, l3_op& x) {
  return f(caf::meta::type_name("kura.l3_op"), x.kind, x.e);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, l3_batch& x) {
  return f(caf::meta::type_name("kura.l3_batch"), x.seq, x.ops);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, l3_lookup& x) {
  return f(caf::meta::type_name("kura.l3_lookup"), x.seq, x.keys);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, l3_found& x) {
  return f(caf::meta::type_name("kura.l3_found"), x.seq, x.entries);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, l3_list& x) {
  return f(caf::meta::type_name("kura.l3_list"), x.mode, x.pattern, x.after, x.limit, x.phase);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, l3_listing& x) {
  return f(caf::meta::type_name("kura.l3_listing"), x.keys, x.count, x.last, x.done, x.flags,
           x.phase);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kv_request& x) {
  return f(caf::meta::type_name("kura.kv_request"), x.op, x.key, x.value, x.ttl_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kv_reply& x) {
  return f(caf::meta::type_name("kura.kv_reply"), x.found, x.value, x.expiry_ms, x.error);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_status& x) {
  return f(caf::meta::type_name("kura.node_status"), x.names, x.values);
}

// -- envelope helpers -------------------------------------------------------------

/// Encodes a message into a versioned envelope.
template <class T>
std::string encode_message(msg_type type, const T& msg) {
  return seal(static_cast<uint32_t>(type), msg);
}

/// Decodes an envelope expected to carry a message of type `type`; every
/// failure (garbage, truncation, wrong schema, wrong type, wrong shape) is an
/// errc::decode_error.
template <class T>
result<T> decode_message(msg_type type, std::string_view bytes) {
  auto env = decode_envelope(bytes);
  if (!env)
    return env.err();
  if (env->type != static_cast<uint32_t>(type))
    return error{errc::decode_error, "envelope carries message type " + std::to_string(env->type) +
                                         ", expected " +
                                         std::to_string(static_cast<uint32_t>(type))};
  return from_msgpack<T>(env->payload);
}

} // namespace kura::actors
