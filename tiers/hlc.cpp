#include "tiers/hlc.hpp"

#include "tiers/hash.hpp"

#include <algorithm>

namespace kura {

namespace {

constexpr uint64_t ms_mask = (uint64_t{1} << 48) - 1;

uint64_t physical(uint64_t wall_ms) {
  return version::make_hlc(wall_ms & ms_mask, 0);
}

} // namespace

version hlc::now(uint64_t wall_ms) {
  // If the wall clock is ahead, restart the counter at its ms; otherwise count
  // on inside the last ms. A counter overflow (65536 events in one ms) simply
  // carries into the ms part, which is still monotonic.
  last_ = std::max(last_ + 1, physical(wall_ms));
  return version{last_, node_};
}

void hlc::observe(const version& v, uint64_t wall_ms) {
  last_ = std::max({last_, v.hlc, physical(wall_ms)});
}

uint32_t node_id_of(std::string_view name) {
  if (!name.empty() && name.size() <= 10 &&
      std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    uint64_t n = 0;
    for (char c : name)
      n = n * 10 + static_cast<uint64_t>(c - '0');
    if (n >= 1 && n <= 0xffffffffull)
      return static_cast<uint32_t>(n);
  }
  uint64_t h = hash64(name, 0x6b7572612d6e6f64ull);
  auto id = static_cast<uint32_t>(h ^ (h >> 32));
  return id == 0 ? 1 : id;
}

} // namespace kura
