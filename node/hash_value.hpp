// The value of a hash key: one entry in every tier (memory, L3, L4) whose
// flags carry entry_flags::hash and whose value is this compact encoding
// (docs/formats.md, "Hash values"):
//
//   u8      tag = 0x01 (encoding version)
//   varint  number of fields n (LEB128, 7 bits per byte, low bits first)
//   n times varint field length, field bytes, varint value length, value bytes
//
// Fields keep insertion order (as Redis's listpack does for small hashes). A
// field appears at most once; an empty hash is never stored (the key goes).
// Decoding checks every length against the bytes present, so a damaged value
// is reported (decode returns false), never read past its end.
// Thread safety: stateless functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kura::node::hashval {

constexpr uint8_t tag_v1 = 0x01;

/// One field and its value (views into the encoded bytes or a caller's strings).
using field_view = std::pair<std::string_view, std::string_view>;

inline void put_varint(std::string& s, uint64_t v) {
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
}

inline bool get_varint(std::string_view s, size_t& pos, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= s.size())
      return false;
    auto b = static_cast<uint8_t>(s[pos++]);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80))
      return true;
  }
  return false;
}

inline size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80)
    v >>= 7, ++n;
  return n;
}

/// Calls f(field, value) for each field in order until f returns false.
/// Returns false when `v` is not a valid encoding.
template <class F>
bool for_each(std::string_view v, F&& f) {
  if (v.empty() || static_cast<uint8_t>(v[0]) != tag_v1)
    return false;
  size_t pos = 1;
  uint64_t n = 0;
  if (!get_varint(v, pos, n) || n > v.size())
    return false;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t fl = 0, vl = 0;
    if (!get_varint(v, pos, fl) || fl > v.size() - pos)
      return false;
    auto field = v.substr(pos, fl);
    pos += fl;
    if (!get_varint(v, pos, vl) || vl > v.size() - pos)
      return false;
    auto val = v.substr(pos, vl);
    pos += vl;
    if (!f(field, val))
      return true;
  }
  return pos == v.size();
}

/// Every field of `v`, in order; false when `v` is damaged.
inline bool decode(std::string_view v, std::vector<field_view>& out) {
  out.clear();
  return for_each(v, [&](std::string_view f, std::string_view x) {
    out.emplace_back(f, x);
    return true;
  });
}

/// Number of fields (the header's count); false when `v` is damaged.
inline bool size(std::string_view v, uint64_t& n) {
  size_t pos = 1;
  return !v.empty() && static_cast<uint8_t>(v[0]) == tag_v1 && get_varint(v, pos, n);
}

/// Encodes `fields` (distinct names) in their order.
inline std::string encode(const std::vector<field_view>& fields) {
  size_t bytes = 1 + varint_size(fields.size());
  for (auto& f : fields)
    bytes += varint_size(f.first.size()) + f.first.size() + varint_size(f.second.size()) +
             f.second.size();
  std::string s;
  s.reserve(bytes);
  s.push_back(static_cast<char>(tag_v1));
  put_varint(s, fields.size());
  for (auto& f : fields) {
    put_varint(s, f.first.size());
    s.append(f.first);
    put_varint(s, f.second.size());
    s.append(f.second);
  }
  return s;
}

/// Redis's OBJECT ENCODING for a hash of this shape: "listpack" up to 128
/// fields with names and values of at most 64 bytes, else "hashtable".
inline const char* redis_encoding(std::string_view v) {
  uint64_t n = 0;
  bool small = true;
  for_each(v, [&](std::string_view f, std::string_view x) {
    ++n;
    small = n <= 128 && f.size() <= 64 && x.size() <= 64;
    return small;
  });
  return small ? "listpack" : "hashtable";
}

} // namespace kura::node::hashval
