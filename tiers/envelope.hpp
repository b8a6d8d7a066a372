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

/// Packs any MSGPACK_DEFINE'd message into payload bytes.
template <class T>
std::string to_msgpack(const T& msg) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, msg);
  return std::string(buf.data(), buf.size());
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
    msgpack::object_handle oh =
        msgpack::unpack(bytes.data(), bytes.size(), off, nullptr, nullptr, lim);
    if (off != bytes.size())
      return error{errc::decode_error, "trailing bytes after message"};
    T out;
    oh.get().convert(out);
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
