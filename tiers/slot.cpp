#include "tiers/slot.hpp"

#include <array>

namespace kura {

namespace {

constexpr std::array<uint16_t, 256> make_table() {
  std::array<uint16_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i << 8;
    for (int b = 0; b < 8; ++b)
      c = (c & 0x8000) ? (c << 1) ^ 0x1021 : c << 1;
    t[i] = static_cast<uint16_t>(c & 0xffff);
  }
  return t;
}

constexpr std::array<uint16_t, 256> table = make_table();

} // namespace

uint16_t crc16(std::string_view data) {
  uint16_t crc = 0;
  for (char ch : data)
    crc = static_cast<uint16_t>((crc << 8) ^ table[((crc >> 8) ^ static_cast<uint8_t>(ch)) & 0xff]);
  return crc;
}

std::string_view hash_tag(std::string_view key) {
  size_t open = key.find('{');
  if (open == std::string_view::npos)
    return key;
  size_t close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1)
    return key;
  return key.substr(open + 1, close - open - 1);
}

} // namespace kura
