#include "predictor/time_profile.hpp"

#include <algorithm>
#include <cmath>

namespace kura::predictor {

time_profile::time_profile(uint64_t now_ms)
    : first_hour_(now_ms / hour_ms), base_hour_(now_ms / hour_ms) {}

double time_profile::decay_to(uint64_t from_hour, uint64_t to_hour, const profile_params& p) const {
  // Weight at `to_hour` of something recorded at `from_hour` (both directions).
  const double d = static_cast<double>(to_hour) - static_cast<double>(from_hour);
  return std::exp2(-d / p.half_life_hours);
}

void time_profile::rebase(uint64_t hour, const profile_params& p) {
  const float f = static_cast<float>(decay_to(base_hour_, hour, p));
  for (auto& x : week_)
    x *= f;
  for (auto& x : day_)
    x *= f;
  all_ *= f;
  base_hour_ = hour;
}

void time_profile::record(uint64_t t_ms, const profile_params& p) {
  const uint64_t h = t_ms / hour_ms;
  if (last_hour_ != UINT64_MAX && h <= last_hour_)
    return;
  if (h < first_hour_)
    first_hour_ = h;
  // Weights grow as 2^((h - base) / half_life); rebase before floats lose
  // precision (every 8 half-lives).
  if (h > base_hour_ + static_cast<uint64_t>(8 * p.half_life_hours))
    rebase(h, p);
  const float w = static_cast<float>(decay_to(h, base_hour_, p));
  week_[h % week_bins] += w;
  day_[h % day_bins] += w;
  all_ += w;
  last_hour_ = h;
  ++hours_seen_;
}

double time_profile::trials(uint64_t c, uint64_t period, uint64_t hi, uint64_t now_hour,
                            const profile_params& p) const {
  if (hi < first_hour_ || hi == UINT64_MAX)
    return 0;
  const uint64_t d = (hi % period + period - c % period) % period;
  if (hi < first_hour_ + d)
    return 0;
  const uint64_t last = hi - d;
  const uint64_t n = (last - first_hour_) / period + 1;
  const double r = std::exp2(-static_cast<double>(period) / p.half_life_hours);
  return decay_to(last, now_hour, p) * (1 - std::pow(r, static_cast<double>(n))) / (1 - r);
}

double time_profile::hour_probability(uint64_t hour, uint64_t now_ms,
                                      const profile_params& p) const {
  const uint64_t now_hour = now_ms / hour_ms;
  if (last_hour_ != UINT64_MAX && hour <= last_hour_ && hour >= now_hour)
    return 0; // already read in that hour
  // Trials: completed hours, plus the current one when it already counted.
  const uint64_t hi = (last_hour_ == now_hour) ? now_hour : now_hour - 1;
  const double to_now = decay_to(base_hour_, now_hour, p);
  const double s_all = all_ * to_now;
  const double s_day = day_[hour % day_bins] * to_now;
  const double s_week = week_[hour % week_bins] * to_now;
  const double n_all = trials(0, 1, hi, now_hour, p);
  const double n_day = trials(hour % day_bins, day_bins, hi, now_hour, p);
  const double n_week = trials(hour % week_bins, week_bins, hi, now_hour, p);
  const double p_all = (s_all + p.prior_hits) / (n_all + p.prior_hits + p.prior_misses);
  // The day-type view: the same hour of day on the days of `hour`'s type
  // (the weekly bins hour + 24 j mod 168 whose day has the type), shrunk to
  // the same hour on the days of the other type (the daily view without the
  // type's own evidence, which it would count twice), itself shrunk to p_all.
  const bool weekend = weekend_hour(hour);
  double s_type = 0, n_type = 0;
  for (uint64_t j = 0; j < 7; ++j) {
    const uint64_t h = hour + 24 * j;
    if (weekend_hour(h) != weekend)
      continue;
    s_type += week_[h % week_bins];
    n_type += trials(h % week_bins, week_bins, hi, now_hour, p);
  }
  s_type *= to_now;
  const double s_other = std::max(0.0, s_day - s_type), n_other = std::max(0.0, n_day - n_type);
  const double p_other = (s_other + p.daily_weight * p_all) / (n_other + p.daily_weight);
  // A type with no trial yet at this hour is not assumed to follow the other:
  // the first Saturday of a weekday habit gets p_all.
  const double p_type =
      n_type > 0 ? (s_type + p.type_weight * p_other) / (n_type + p.type_weight) : p_all;
  const double p_week = (s_week + p.weekly_weight * p_type) / (n_week + p.weekly_weight);
  return std::clamp(p_week, 0.0, 1.0);
}

double time_profile::window_probability(uint64_t from_ms, uint64_t to_ms, uint64_t now_ms,
                                        const profile_params& p) const {
  double none = 1;
  for (uint64_t h = from_ms / hour_ms; h * hour_ms < to_ms; ++h) {
    const uint64_t a = std::max(from_ms, h * hour_ms), b = std::min(to_ms, (h + 1) * hour_ms);
    const double cover = static_cast<double>(b - a) / hour_ms;
    none *= 1 - cover * hour_probability(h, now_ms, p);
  }
  return 1 - none;
}

double time_profile::expected_hours(uint64_t from_ms, uint64_t to_ms, uint64_t now_ms,
                                    const profile_params& p) const {
  double sum = 0;
  for (uint64_t h = from_ms / hour_ms; h * hour_ms < to_ms; ++h) {
    const uint64_t a = std::max(from_ms, h * hour_ms), b = std::min(to_ms, (h + 1) * hour_ms);
    sum += static_cast<double>(b - a) / hour_ms * hour_probability(h, now_ms, p);
  }
  return sum;
}

double time_profile::weight(uint64_t now_ms, const profile_params& p) const {
  return all_ * decay_to(base_hour_, now_ms / hour_ms, p);
}

void time_profile::encode(byte_writer& w) const {
  for (float x : week_)
    w.f32(x);
  for (float x : day_)
    w.f32(x);
  w.f32(all_);
  w.u32(hours_seen_);
  w.u64(first_hour_);
  w.u64(last_hour_);
  w.u64(base_hour_);
}

bool time_profile::decode(byte_reader& r) {
  auto good = [](float x) { return std::isfinite(x) && x >= 0; };
  bool ok = true;
  for (float& x : week_)
    ok &= good(x = r.f32());
  for (float& x : day_)
    ok &= good(x = r.f32());
  ok &= good(all_ = r.f32());
  hours_seen_ = r.u32();
  first_hour_ = r.u64();
  last_hour_ = r.u64();
  base_hour_ = r.u64();
  if (last_hour_ != UINT64_MAX && last_hour_ < first_hour_)
    ok = false;
  if (!ok)
    r.fail();
  return r.ok();
}

} // namespace kura::predictor
