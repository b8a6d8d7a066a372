// The vocabulary every core shares: an entry (key, value, absolute expiry,
// version, flags), the version ordering (hybrid logical clock + node id), the
// size limits, and how a tier checks an entry against them.
// Thread safety: plain value types.
#pragma once

#include "tiers/status.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>

namespace kura {

// -- versions -----------------------------------------------------------------

/// A write's version: hybrid logical clock (upper 48 bits: wall ms, lower 16
/// bits: logical counter) plus the writer's node id to break ties. Ordering is
/// last-writer-wins: higher hlc wins, equal hlc -> higher node id wins.
struct version {
  uint64_t hlc = 0;
  uint32_t node = 0;

  static constexpr uint64_t make_hlc(uint64_t ms, uint16_t counter) { return (ms << 16) | counter; }
  constexpr uint64_t ms() const { return hlc >> 16; }
  constexpr uint16_t counter() const { return static_cast<uint16_t>(hlc & 0xffff); }
  constexpr bool is_zero() const { return hlc == 0 && node == 0; }

  friend constexpr bool operator==(const version& a, const version& b) {
    return a.hlc == b.hlc && a.node == b.node;
  }
  friend constexpr bool operator!=(const version& a, const version& b) { return !(a == b); }
  friend constexpr bool operator<(const version& a, const version& b) {
    return a.hlc < b.hlc || (a.hlc == b.hlc && a.node < b.node);
  }
  friend constexpr bool operator>(const version& a, const version& b) { return b < a; }
  friend constexpr bool operator<=(const version& a, const version& b) { return !(b < a); }
  friend constexpr bool operator>=(const version& a, const version& b) { return !(a < b); }
};

// -- entries ------------------------------------------------------------------

/// Entry flags (bit set).
namespace entry_flags {
constexpr uint8_t tombstone = 1u << 0;  ///< a delete marker (value empty)
constexpr uint8_t compressed = 1u << 1; ///< value bytes are compressed
constexpr uint8_t encrypted = 1u << 2;  ///< value bytes are encrypted
constexpr uint8_t hash = 1u << 3;       ///< value is a hash (docs/formats.md, "Hash values")
} // namespace entry_flags

/// One cached item as it travels between tiers and layers.
struct entry {
  std::string key;
  std::string value;
  uint64_t expiry_ms = 0; ///< absolute wall-clock ms; 0 = never expires
  kura::version ver;
  uint8_t flags = 0;

  bool expired(uint64_t now_ms) const { return expiry_ms != 0 && expiry_ms <= now_ms; }
  bool is_tombstone() const { return (flags & entry_flags::tombstone) != 0; }
  /// Payload bytes (key + value), no overhead.
  size_t payload_bytes() const { return key.size() + value.size(); }

  friend bool operator==(const entry& a, const entry& b) {
    return std::tie(a.key, a.value, a.expiry_ms, a.flags) ==
               std::tie(b.key, b.value, b.expiry_ms, b.flags) &&
           a.ver == b.ver;
  }
};

/// A large value shared instead of copied (the keyspace, the write-ahead
/// log's thread and the L3 thread read one buffer): `len` bytes from `off` of
/// an immutable buffer, which may hold more (the request it arrived in).
struct shared_bytes {
  std::shared_ptr<const std::string> buf;
  size_t off = 0;
  size_t len = 0;
  shared_bytes() = default;
  /// The whole of `b`.
  shared_bytes(std::shared_ptr<const std::string> b) // NOLINT: implicit on purpose
      : buf(std::move(b)), len(buf ? buf->size() : 0) {}
  shared_bytes(std::shared_ptr<const std::string> b, size_t o, size_t n)
      : buf(std::move(b)), off(o), len(n) {}
  std::string_view view() const noexcept {
    return buf ? std::string_view(buf->data() + off, len) : std::string_view{};
  }
  size_t size() const noexcept { return len; }
  explicit operator bool() const noexcept { return buf != nullptr; }
  void reset() noexcept {
    buf.reset();
    off = len = 0;
  }
};

// -- limits -------------------------------------------------------------------

/// Size limits (kura.limits.*). Violations are error values, never exceptions.
struct limits {
  size_t max_key_bytes = 64 * 1024;          ///< 64 KiB
  size_t max_value_bytes = 64 * 1024 * 1024; ///< 64 MiB

  /// ok, or key_too_large / value_too_large with the sizes in the message.
  status check(std::string_view key, size_t value_size) const;
  status check(const entry& e) const { return check(e.key, e.value.size()); }
};

} // namespace kura
