// Key -> slot, exactly as Redis Cluster computes it: CRC16 (XMODEM: polynomial
// 0x1021, initial value 0, no reflection, no final xor) of the key modulo
// 16384. When the key holds a `{hash tag}` -- the first `{`, then the first
// `}` after it, with at least one byte between them -- only the tag is hashed,
// so `{user1000}.following` and `{user1000}.followers` share a slot. `foo{}bar`
// (empty tag) hashes the whole key; `foo{{bar}}` hashes `{bar`.
// The slot is the unit of placement (gossip/ring.hpp places slots, not keys)
// and of anti-entropy ranges, and what the Redis Cluster face reports.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string_view>

namespace kura {

/// Number of slots (Redis Cluster's 16384 = 2^14).
constexpr uint32_t slot_count = 16384;

/// CRC16-XMODEM of `data` (the checksum Redis Cluster uses; "123456789" -> 0x31C3).
uint16_t crc16(std::string_view data);

/// The part of `key` that is hashed: its `{hash tag}` if it has a non-empty
/// one, else the whole key.
std::string_view hash_tag(std::string_view key);

/// The slot of `key` in [0, slot_count).
inline uint16_t key_slot(std::string_view key) {
  return static_cast<uint16_t>(crc16(hash_tag(key)) & (slot_count - 1));
}

} // namespace kura
