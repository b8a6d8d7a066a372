#include "tiers/clock.hpp"

#include <chrono>

namespace kura {

uint64_t real_clock::now_ms() const {
  using namespace std::chrono;
  return static_cast<uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

uint64_t real_clock::mono_ns() const {
  using namespace std::chrono;
  return static_cast<uint64_t>(
      duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count());
}

real_clock& real_clock::instance() {
  static real_clock c;
  return c;
}

} // namespace kura
