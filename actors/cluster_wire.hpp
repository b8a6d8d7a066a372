// What the cluster coordinator tells the outside (the `kura members` CLI) and
// the names it gives nodes: a node's configured id is a string ("n1"); the
// gossip core identifies nodes by a 32-bit number derived from it
// (`gossip_id`), and gossips "id@host:port" as the member's address so every
// node learns every other node's name and where to reach it.
// No CAF here: the CLI and tests include it.
// Thread safety: plain value types and free functions.
#pragma once

#include "tiers/envelope.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kura::actors {

/// Envelope type ids of the node-side cluster messages (range 200-299).
enum class cluster_msg_type : uint32_t {
  members = 200,
  exec = 201,     ///< a command forwarded to the node that runs it (the key's owner)
  op_reply = 202, ///< the answer to a ring operation of the CLI (cluster_op_reply)
};

// -- peer batches as one buffer ----------------------------------------------------
//
// The gossip messages a node holds for one peer during one multiplexer turn
// (replicated writes, their acks, SWIM) travel as ONE string in one CAF
// message (gbatch_atom, from, frames) instead of a std::vector<std::string>
// of envelopes: CAF 0.17's deserializer grows such a vector one element at a
// time and allocates every string on its own (bench/RESULTS.md, cluster21 and
// cluster22b). The receiver walks the buffer with string_views.
//   frames = version:u8 (1), then per envelope: length (LEB128, 1..5 bytes,
//            1 .. envelope_max_bytes) and the envelope's bytes
// A node sends this form only to a peer that announced cap_framed_batch in
// the handshake (the hello's and its answer's address field carry
// " caps=<decimal>" after host:port; a node of an older version sends none,
// ignores ours and keeps getting the vector form).

/// Capability bits of the handshake.
constexpr uint32_t cap_framed_batch = 1;
/// What this version announces.
constexpr uint32_t own_caps = cap_framed_batch;
constexpr uint8_t frames_version = 1;

/// `addr` ("host:port") with `caps` announced.
inline std::string addr_with_caps(const std::string& addr, uint32_t caps) {
  return addr + " caps=" + std::to_string(caps);
}

/// The capabilities a hello's address announces (0: none, an older node).
inline uint32_t caps_of_addr(std::string_view addr) {
  auto p = addr.rfind(" caps=");
  if (p == std::string_view::npos)
    return 0;
  uint64_t v = 0;
  auto digits = addr.substr(p + 6);
  if (digits.empty() || digits.size() > 9)
    return 0;
  for (char c : digits) {
    if (c < '0' || c > '9')
      return 0;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return static_cast<uint32_t>(v);
}

/// `addr` without its announced capabilities.
inline std::string_view addr_without_caps(std::string_view addr) {
  return addr.substr(0, addr.rfind(" caps="));
}

/// Appends one envelope to a frames buffer (starting it when empty).
inline void append_frame(std::string& frames, std::string_view env) {
  if (frames.empty())
    frames.push_back(static_cast<char>(frames_version));
  auto n = static_cast<uint64_t>(env.size());
  do {
    auto b = static_cast<uint8_t>(n & 0x7f);
    n >>= 7;
    frames.push_back(static_cast<char>(n != 0 ? b | 0x80 : b));
  } while (n != 0);
  frames.append(env.data(), env.size());
}

/// Calls fn(std::string_view envelope) for every frame of `frames` in order,
/// after checking the whole buffer first: a buffer that is truncated, has a
/// frame of length 0 or over envelope_max_bytes, a bad length or an unknown
/// version calls fn for none and says why (errc::decode_error). Returns the
/// number of frames.
template <class Fn>
result<size_t> for_each_frame(std::string_view frames, Fn&& fn) {
  auto bad = [](std::string why) {
    return result<size_t>(errc::decode_error, "peer batch: " + std::move(why));
  };
  if (frames.empty())
    return bad("empty");
  if (static_cast<uint8_t>(frames[0]) != frames_version)
    return bad("unknown version " + std::to_string(static_cast<uint8_t>(frames[0])));
  // Pass 1 checks, pass 2 hands out: nothing of a corrupt batch is handled.
  for (int pass = 0; pass < 2; ++pass) {
    size_t pos = 1, count = 0;
    while (pos < frames.size()) {
      uint64_t len = 0;
      int shift = 0;
      bool done = false;
      while (pos < frames.size() && shift < 35) {
        auto b = static_cast<uint8_t>(frames[pos++]);
        len |= static_cast<uint64_t>(b & 0x7f) << shift;
        shift += 7;
        if ((b & 0x80) == 0) {
          done = true;
          break;
        }
      }
      if (pass == 0) {
        if (!done)
          return bad("frame " + std::to_string(count) + ": truncated or overlong length at byte " +
                     std::to_string(pos));
        if (len == 0 || len > envelope_max_bytes)
          return bad("frame " + std::to_string(count) + ": length " + std::to_string(len) +
                     " out of range");
        if (len > frames.size() - pos)
          return bad("frame " + std::to_string(count) + ": length " + std::to_string(len) +
                     " exceeds the " + std::to_string(frames.size() - pos) + " bytes left");
      } else {
        fn(frames.substr(pos, static_cast<size_t>(len)));
      }
      pos += static_cast<size_t>(len);
      ++count;
    }
    if (pass == 1)
      return count;
  }
  return size_t{0}; // not reached
}

/// The envelopes of a frames buffer as strings (for a peer of the older
/// version, and for messages held while a link is down); empty when corrupt.
inline std::vector<std::string> split_frames(std::string_view frames) {
  std::vector<std::string> out;
  if (!for_each_frame(frames, [&](std::string_view e) { out.emplace_back(e); }))
    out.clear();
  return out;
}

/// A command a coordinator forwards to the node that must run it: a
/// read-modify-write at its key's owner, or the per-node part of a
/// keyspace-wide command (DBSIZE, KEYS, SCAN, FLUSHALL, RANDOMKEY). The reply
/// is the RESP reply bytes.
struct exec_request {
  std::vector<std::string> args;
  /// The sender's wall-clock ms after which it no longer waits for the
  /// answer: the receiver does not start the command after it (0: none).
  uint64_t deadline_ms = 0;
  /// The sender takes the versions the command wrote in front of the reply
  /// (tag_written, cluster_core::on_exec_reply strips them); false from a
  /// sender that does not, which gets the bare reply.
  bool versions = false;
  MSGPACK_DEFINE(args, deadline_ms, versions);
};

/// One member as `kura members` shows it.
struct member_row {
  std::string id;      ///< the configured node id (kura.cluster.node-id)
  std::string address; ///< host:port of its cluster port
  std::string state;   ///< alive | suspect | dead | left
  uint64_t incarnation = 0;
  double share = 0;       ///< fraction of the ring it owns (as primary), 0..1
  uint32_t gossip_id = 0; ///< the 32-bit id the gossip core uses
  bool self = false;      ///< the node that answered
  bool drained = false;   ///< kura drain: alive but out of placement
  MSGPACK_DEFINE(id, address, state, incarnation, share, gossip_id, self, drained);
};

/// What the answering node moves now (or moved last): ranges streaming in
/// after a ring change, or a graceful leave handing its keys off.
struct move_row {
  bool active = false;
  bool leaving = false;
  uint64_t ranges = 0, ranges_done = 0;
  uint64_t keys = 0, bytes = 0;
  uint64_t keys_expected = 0; ///< as the holders counted them (0: not known yet)
  uint64_t elapsed_ms = 0;    ///< since the operation started (to its end when done)
  uint64_t rate = 0;          ///< bytes/s over the operation
  int64_t eta_ms = -1;        ///< -1: unknown or done
  uint64_t stream_rate = 0;   ///< kura.cluster.stream-rate (0 = unlimited)
  uint64_t keys_held = 0;     ///< keys (tombstones included) this node holds
  bool draining = false;      ///< the hand-off is a drain (kura drain)
  MSGPACK_DEFINE(active, leaving, ranges, ranges_done, keys, bytes, keys_expected, elapsed_ms, rate,
                 eta_ms, stream_rate, keys_held, draining);
};

struct members_reply {
  std::string error; ///< non-empty: the node is not in a cluster (or not ready)
  std::vector<member_row> members;
  move_row move; ///< the answering node's (appended: older CLIs ignore it)
  MSGPACK_DEFINE(error, members, move);
};

/// One ring member as `kura ring` shows it (from the answering node's view).
struct ring_row {
  std::string id;
  std::string address; ///< host:port of its cluster (ops) port
  std::string state;
  uint32_t slots_owned = 0;      ///< slots it is the owner (primary) of
  uint32_t slots_replicated = 0; ///< slots it holds a copy of (owned included)
  std::vector<uint32_t> ranges;  ///< owned slots as first,last pairs
  uint32_t tokens = 0;           ///< its token count in the ring (kura rebalance)
  MSGPACK_DEFINE(id, address, state, slots_owned, slots_replicated, ranges, tokens);
};

/// The answer to (cop_atom, op, args): kura status | ring | join | leave |
/// drain | undrain | slots | tokens.
struct cluster_op_reply {
  std::string error; ///< non-empty: refused
  std::string note;  ///< what the node did (join, leave)
  move_row move;     ///< the answering node's data movement
  std::vector<ring_row> ring;
  /// slots: (slot, live keys, key + value bytes) triples of the slots this
  /// node holds keys of (kura rebalance's load).
  std::vector<uint64_t> slot_stats;
  uint32_t rf = 0;     ///< ring: the replication factor
  uint32_t vnodes = 0; ///< ring: the default token count
  MSGPACK_DEFINE(error, note, move, ring, slot_stats, rf, vnodes);
};

/// move_row of a node's progress at `now_ms`.
template <class Progress>
move_row move_row_of(const Progress& p, uint64_t now_ms) {
  move_row m;
  m.active = p.active;
  m.leaving = p.leaving;
  m.draining = p.draining;
  m.ranges = p.ranges;
  m.ranges_done = p.ranges_done;
  m.keys = p.keys;
  m.bytes = p.bytes;
  m.keys_expected = p.keys_expected;
  if (!p.leaving && p.ranges_started > 0 && p.ranges > p.ranges_started) // extrapolated
    m.keys_expected += p.keys_expected * (p.ranges - p.ranges_started) / p.ranges_started;
  if (p.started_ms != 0) {
    uint64_t end = p.finished_ms != 0 ? p.finished_ms : now_ms;
    m.elapsed_ms = end > p.started_ms ? end - p.started_ms : 0;
  }
  if (m.elapsed_ms > 0)
    m.rate = m.bytes * 1000 / m.elapsed_ms;
  if (m.active && m.keys > 0 && m.keys_expected > m.keys && m.elapsed_ms > 0)
    m.eta_ms = static_cast<int64_t>((m.keys_expected - m.keys) * m.elapsed_ms / m.keys);
  else if (m.active && m.keys_expected > 0 && m.keys >= m.keys_expected)
    m.eta_ms = 0;
  return m;
}

/// The gossip core's 32-bit id of a node id: FNV-1a of the name, never 0.
inline uint32_t gossip_id_of(std::string_view name) {
  uint32_t h = 2166136261u;
  for (unsigned char c : name) {
    h ^= c;
    h *= 16777619u;
  }
  return h == 0 ? 1 : h;
}

/// "id@host:port" as gossiped in member_update::addr; with `resp` (the
/// host:port Redis clients reach the node's RESP port on, for CLUSTER SLOTS
/// and MOVED) "id@host:port/resp-host:resp-port".
inline std::string member_addr(std::string_view name, std::string_view host_port,
                               std::string_view resp = {}) {
  auto a = std::string(name) + "@" + std::string(host_port);
  if (!resp.empty())
    a += "/" + std::string(resp);
  return a;
}

/// Splits "id@host:port[/resp]" into its parts (name empty when there is no
/// '@'); `host_port` is the cluster port's address, without the RESP part.
inline void split_member_addr(std::string_view addr, std::string& name, std::string& host_port) {
  addr = addr.substr(
      0, addr.find('#', addr.rfind('@') == std::string_view::npos ? 0 : addr.rfind('@')));
  auto at = addr.rfind('@');
  if (at == std::string_view::npos) {
    name.clear();
    at = 0;
  } else {
    name = std::string(addr.substr(0, at));
    ++at;
  }
  auto rest = addr.substr(at);
  host_port = std::string(rest.substr(0, rest.find('/')));
}

/// The RESP "host:port" of a gossiped member address ("" when it has none).
inline std::string member_resp_addr(std::string_view addr) {
  addr = addr.substr(
      0, addr.find('#', addr.rfind('@') == std::string_view::npos ? 0 : addr.rfind('@')));
  auto at = addr.rfind('@');
  auto slash = addr.find('/', at == std::string_view::npos ? 0 : at);
  return slash == std::string_view::npos ? std::string() : std::string(addr.substr(slash + 1));
}

/// Splits "host:port"; false when the port is missing or out of range.
inline bool split_host_port(std::string_view hp, std::string& host, uint16_t& port) {
  auto c = hp.rfind(':');
  if (c == std::string_view::npos || c == 0 || c + 1 >= hp.size())
    return false;
  uint32_t p = 0;
  for (char ch : hp.substr(c + 1)) {
    if (ch < '0' || ch > '9')
      return false;
    p = p * 10 + static_cast<uint32_t>(ch - '0');
    if (p > 65535)
      return false;
  }
  if (p == 0)
    return false;
  host = std::string(hp.substr(0, c));
  port = static_cast<uint16_t>(p);
  return true;
}

} // namespace kura::actors
