#include "predictor/ttl_rules.hpp"

#include <algorithm>

namespace kura::predictor {

uint64_t ttl_rules::adjusted(uint64_t ttl_ms, int direction) const {
  if (ttl_ms == 0 || direction == 0)
    return ttl_ms;
  const uint64_t t = direction > 0 ? (ttl_ms > UINT64_MAX / 2 ? UINT64_MAX : ttl_ms * 2)
                                   : std::max<uint64_t>(1, ttl_ms / 2);
  return std::clamp(t, std::min(min_ttl_ms_, ttl_ms), std::max(max_ttl_ms_, ttl_ms));
}

uint64_t ttl_rules::apply(std::string_view key, uint64_t ttl_ms) const {
  if (ttl_ms == 0 || rules_.empty())
    return ttl_ms;
  auto it = rules_.find(shapes_.pattern_of(key));
  return it == rules_.end() ? ttl_ms : adjusted(ttl_ms, it->second);
}

} // namespace kura::predictor
