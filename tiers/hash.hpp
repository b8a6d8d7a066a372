// One 64-bit key hash for the whole house: shard routing, sketches, hash tables
// and (with a seed) the ring. Stable across processes and versions: it is part of
// placement, so changing it moves data. Based on the wyhash mixing idea
// (multiply-fold of 8-byte words); written here, no dependency.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace kura {

namespace detail {

inline uint64_t mum(uint64_t a, uint64_t b) {
  __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

inline uint64_t rd64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline uint64_t rd32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

} // namespace detail

/// Hashes `s` with `seed`. Fast for short keys, good avalanche.
inline uint64_t hash64(std::string_view s, uint64_t seed = 0) {
  constexpr uint64_t p0 = 0xa0761d6478bd642full, p1 = 0xe7037ed1a0b428dbull,
                     p2 = 0x8ebc6af09c88c6e3ull, p3 = 0x589965cc75374cc3ull;
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = seed ^ p0 ^ (n * p3);
  while (n >= 16) {
    h = detail::mum(detail::rd64(p) ^ p1, detail::rd64(p + 8) ^ h);
    p += 16;
    n -= 16;
  }
  uint64_t a = 0, b = 0;
  if (n >= 8) {
    a = detail::rd64(p);
    b = detail::rd64(p + n - 8);
  } else if (n >= 4) {
    a = detail::rd32(p);
    b = detail::rd32(p + n - 4);
  } else if (n > 0) {
    a = (static_cast<uint64_t>(static_cast<uint8_t>(p[0])) << 16) |
        (static_cast<uint64_t>(static_cast<uint8_t>(p[n >> 1])) << 8) |
        static_cast<uint8_t>(p[n - 1]);
  }
  return detail::mum(p1 ^ n, detail::mum(a ^ p2, b ^ h));
}

/// Mixes a 64-bit integer (splitmix64 finaliser).
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

} // namespace kura
