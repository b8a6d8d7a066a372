// The versioned envelope every message that crosses nodes travels in:
//   msgpack array [ schema_version:uint, type:uint, payload:bin ]
// The payload is the message's own msgpack encoding (MSGPACK_DEFINE). Decoding
// bytes from outside never throws and never crashes: garbage, truncation, a
// wrong schema version or a payload of the wrong shape is an errc::decode_error.
// Used by gossip/ (cluster core) and actors/ (node messages).
// Thread safety: free functions, no shared state.
#pragma once

#include "tiers/status.hpp"

#include <msgpack.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kura {

/// Current schema version of the envelope.
constexpr uint32_t envelope_schema_version = 1;
/// Upper bound of an envelope's size accepted by decode (64 MiB value + slack).
constexpr size_t envelope_max_bytes = (64u << 20) + (1u << 20);

struct envelope {
  uint32_t schema = envelope_schema_version;
  uint32_t type = 0;
  std::string payload; ///< msgpack bytes of the message
};

/// Serialises an envelope.
std::string encode_envelope(const envelope& env);

/// Parses an envelope; checks structure, size and schema version.
result<envelope> decode_envelope(std::string_view bytes);

/// An envelope whose payload points into the bytes it was decoded from.
struct envelope_view {
  uint32_t schema = envelope_schema_version;
  uint32_t type = 0;
  std::string_view payload;
};

/// decode_envelope without the copy of the payload (valid while `bytes` is).
result<envelope_view> decode_envelope_view(std::string_view bytes);

namespace detail {
/// A msgpack output stream that appends to a std::string: a message is packed
/// straight into the bytes that travel, without msgpack::sbuffer's 8 KiB
/// first block and the copy out of it (two large allocations per message on
/// the cluster's write path: bench/RESULTS.md, cluster15).
struct string_sink {
  std::string& out;
  void write(const char* p, size_t n) { out.append(p, n); }
};
/// Strings and bins of a message decoded from `bytes` point into `bytes`
/// instead of being copied into the zone first (the caller converts before
/// `bytes` goes away); the zone then holds only the objects.
inline bool reference_bytes(msgpack::type::object_type, size_t, void*) {
  return true;
}
/// A zone sized for a message of `n` bytes: msgpack's default first chunk is
/// 8 KiB, which costs a large allocation for every small message.
inline size_t zone_chunk_for(size_t n) {
  return std::clamp<size_t>(n, 256, 8192);
}
} // namespace detail

/// Packs any MSGPACK_DEFINE'd message into payload bytes.
template <class T>
std::string to_msgpack(const T& msg) {
  std::string out;
  out.reserve(64);
  detail::string_sink sink{out};
  msgpack::pack(sink, msg);
  return out;
}

/// Unpacks payload bytes into T; decode_error on anything unexpected.
template <class T>
result<T> from_msgpack(std::string_view bytes) {
  try {
    // Bound nesting and container sizes so hostile input cannot blow up memory.
    // msgpack allocates an array's elements when it reads the header, but
    // every element takes at least one byte (a map pair two): a few bytes
    // claiming 1M elements would cost 16 MB each time (found by fuzzing).
    size_t n = std::min<size_t>(1u << 20, bytes.size());
    msgpack::unpack_limit lim(/*array*/ n, /*map*/ n / 2, /*str*/ envelope_max_bytes,
                              /*bin*/ envelope_max_bytes, /*ext*/ 1u << 20, /*depth*/ 32);
    size_t off = 0;
    msgpack::zone zone(detail::zone_chunk_for(bytes.size()));
    msgpack::object o = msgpack::unpack(zone, bytes.data(), bytes.size(), off,
                                        detail::reference_bytes, nullptr, lim);
    if (off != bytes.size())
      return error{errc::decode_error, "trailing bytes after message"};
    T out;
    o.convert(out);
    return out;
  } catch (const std::exception& e) {
    return error{errc::decode_error, e.what()};
  }
}

/// Convenience: wraps a message into an encoded envelope of the given type.
template <class T>
std::string seal(uint32_t type, const T& msg) {
  return encode_envelope(envelope{envelope_schema_version, type, to_msgpack(msg)});
}

} // namespace kura
