#include "tiers/entry.hpp"

namespace kura {

status limits::check(std::string_view key, size_t value_size) const {
  if (key.size() > max_key_bytes)
    return status{errc::key_too_large, "key is " + std::to_string(key.size()) +
                                           " bytes, limit is " + std::to_string(max_key_bytes)};
  if (value_size > max_value_bytes)
    return status{errc::value_too_large, "value is " + std::to_string(value_size) +
                                             " bytes, limit is " + std::to_string(max_value_bytes)};
  return {};
}

} // namespace kura
