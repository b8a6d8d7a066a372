#include "tiers/superseded.hpp"

namespace kura {

void superseded_copies::add(std::string_view key, const version& newer) {
  auto [it, fresh] = waiting_.try_emplace(std::string(key), newer);
  if (!fresh && it->second < newer)
    it->second = newer;
}

status superseded_copies::drop(tier& archive) {
  status first;
  for (auto& [key, newer] : waiting_) {
    auto held = archive.held_version(key);
    if (held && *held && **held <= newer) {
      if (auto r = archive.erase(key); !r && first.ok())
        first = r.to_status();
    } else if (!held && first.ok()) {
      first = held.to_status();
    }
  }
  waiting_.clear();
  return first;
}

} // namespace kura
