#include "tiers/envelope.hpp"

namespace kura {

std::string encode_envelope(const envelope& env) {
  std::string out;
  out.reserve(env.payload.size() + 16); // array + two uints + bin header
  detail::string_sink sink{out};
  msgpack::packer<detail::string_sink> pk(sink);
  pk.pack_array(3);
  pk.pack(env.schema);
  pk.pack(env.type);
  pk.pack_bin(static_cast<uint32_t>(env.payload.size()));
  pk.pack_bin_body(env.payload.data(), static_cast<uint32_t>(env.payload.size()));
  return out;
}

result<envelope> decode_envelope(std::string_view bytes) {
  auto v = decode_envelope_view(bytes);
  if (!v)
    return v.err();
  return envelope{v->schema, v->type, std::string(v->payload)};
}

result<envelope_view> decode_envelope_view(std::string_view bytes) {
  if (bytes.size() > envelope_max_bytes)
    return error{errc::decode_error,
                 "envelope of " + std::to_string(bytes.size()) + " bytes exceeds the limit"};
  try {
    msgpack::unpack_limit lim(4, 0, 0, envelope_max_bytes, 0, 2);
    size_t off = 0;
    // The payload is referenced, not copied into the zone (the zone holds
    // the array's three objects).
    msgpack::zone zone(256);
    msgpack::object o = msgpack::unpack(zone, bytes.data(), bytes.size(), off,
                                        detail::reference_bytes, nullptr, lim);
    if (off != bytes.size())
      return error{errc::decode_error, "trailing bytes after envelope"};
    if (o.type != msgpack::type::ARRAY || o.via.array.size != 3)
      return error{errc::decode_error, "envelope is not a 3-element array"};
    const msgpack::object* f = o.via.array.ptr;
    if (f[0].type != msgpack::type::POSITIVE_INTEGER ||
        f[1].type != msgpack::type::POSITIVE_INTEGER || f[2].type != msgpack::type::BIN)
      return error{errc::decode_error, "envelope fields have the wrong types"};
    envelope_view env;
    if (f[0].via.u64 != envelope_schema_version)
      return error{errc::decode_error,
                   "unsupported schema version " + std::to_string(f[0].via.u64)};
    if (f[1].via.u64 > UINT32_MAX)
      return error{errc::decode_error, "message type out of range"};
    env.schema = static_cast<uint32_t>(f[0].via.u64);
    env.type = static_cast<uint32_t>(f[1].via.u64);
    env.payload = std::string_view(f[2].via.bin.ptr, f[2].via.bin.size);
    return env;
  } catch (const std::exception& e) {
    return error{errc::decode_error, e.what()};
  }
}

} // namespace kura
