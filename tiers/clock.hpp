// Time reaches the cores only through `clock`, so tests can live through a year
// in a second. Two readings: wall time in ms (absolute expiry, HLC versions,
// retention) and a monotonic ns counter (latency, periods).
// Thread safety: real_clock is safe for concurrent use; fake_clock is not.
#pragma once

#include <cstdint>

namespace kura {

class clock {
public:
  virtual ~clock() = default;
  /// Milliseconds since the Unix epoch (wall clock; may jump).
  virtual uint64_t now_ms() const = 0;
  /// Monotonic nanoseconds from an arbitrary origin.
  virtual uint64_t mono_ns() const = 0;
};

/// The system clocks.
class real_clock final : public clock {
public:
  uint64_t now_ms() const override;
  uint64_t mono_ns() const override;
  /// A process-wide instance.
  static real_clock& instance();
};

/// A clock that moves only when told to.
class fake_clock final : public clock {
public:
  explicit fake_clock(uint64_t start_ms = 1'700'000'000'000ull) : ms_(start_ms) {}
  uint64_t now_ms() const override { return ms_; }
  uint64_t mono_ns() const override { return ns_ + ms_ * 1'000'000ull; }
  void advance_ms(uint64_t d) { ms_ += d; }
  void advance_ns(uint64_t d) { ns_ += d; }
  void set_ms(uint64_t ms) { ms_ = ms; }

private:
  uint64_t ms_;
  uint64_t ns_ = 0;
};

} // namespace kura
