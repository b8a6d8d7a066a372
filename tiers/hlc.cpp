#include "tiers/hlc.hpp"

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
  uint32_t h = 2166136261u; // FNV-1a, 32 bits
  for (unsigned char c : name) {
    h ^= c;
    h *= 16777619u;
  }
  return h == 0 ? 1 : h;
}

} // namespace kura
