// An hour-of-week access profile with exponential decay, and the probability
// that its key (or key pattern) is read in a given future hour, with a
// confidence that comes from the evidence.
//
// What is counted: for each absolute hour (UTC), whether the subject was read
// at least once in it ("success"), so a key read 500 times in one hour counts
// once, like a key read once. Successes are kept in three views: all hours, 24
// hour-of-day bins and 168 hour-of-week bins; each success is weighted by
// 2^(-age / half_life), so the profile follows a workload that shifts.
//
// Trials: every hour of the matching bin that has passed since the subject was
// first seen is a trial, weighted the same way; their decayed count is a
// geometric series, computed in closed form (nothing stored per trial).
//
// The estimate is hierarchical Bayesian shrinkage, so few observations give
// low confidence and each view needs evidence of its own:
//   p_all  = (s_all + a) / (n_all + a + b)          Beta(a, b) prior
//   p_other = (s_other + m_d p_all) / (n_other + m_d)   the same hour of day on
//             the days of the other day type, shrunk to p_all
//   p_type = (s_type + m_t p_other) / (n_type + m_t)     the same hour of day on
//             the days of the hour's type, shrunk to p_other
//   p_week = (s_week[h%168] + m_w p_type) / (n_week + m_w) weekly, shrunk to p_type
// Day types: weekdays (Monday..Friday) and the weekend (Saturday, Sunday),
// UTC. The type views sum the weekly bins of the same hour of day, and the
// daily bins hold the sum over all seven days, so they cost no storage.
// A day type with no trial yet at that hour (the first Saturday of a key seen
// only on weekdays) is not assumed to follow the other type: p_type = p_all
// there. Habits seen on weekdays are not carried over to a weekend before one
// weekend has shown them, so a model's first week does not load the
// weekday-morning keys on Saturday (bench/RESULTS.md, lead12).
// "read every weekday at 08:00" ends up with p_week high on Monday..Friday 08
// and low at the weekend; "read on Mondays" is learned by the weekly bins; a
// key read every hour is learned by p_all within hours.
// Thread safety: plain value type.
#pragma once

#include "predictor/codec.hpp"

#include <cstdint>

namespace kura::predictor {

constexpr uint64_t minute_ms = 60'000;
constexpr uint64_t hour_ms = 60 * minute_ms;
constexpr uint64_t day_ms = 24 * hour_ms;
constexpr uint64_t week_ms = 7 * day_ms;

/// Hour of week for display, 0 = Monday 00:00-01:00 UTC.
inline unsigned hour_of_week(uint64_t ms) {
  // 1970-01-01 was a Thursday: Monday 00:00 is 3 days after it.
  return static_cast<unsigned>((ms / hour_ms + 72) % 168);
}

/// Whether the absolute hour `hour` (ms / hour_ms) falls on a Saturday or a
/// Sunday (UTC).
inline bool weekend_hour(uint64_t hour) {
  return hour_of_week(hour * hour_ms) >= 120;
}

/// The model's constants (see the file comment).
struct profile_params {
  double half_life_hours = 28 * 24; ///< decay: a success counts half after 4 weeks
  double prior_hits = 0.1;          ///< a: prior pseudo-successes (most keys are idle)
  double prior_misses = 1.0;        ///< b: prior pseudo-failures
  double daily_weight = 2.0;        ///< m_d: pseudo-trials of p_all in the other type's bin
  double type_weight = 2.0;         ///< m_t: pseudo-trials of p_other in a day-type bin
  double weekly_weight = 1.0;       ///< m_w: pseudo-trials of p_type in a weekly bin
};

class time_profile {
public:
  static constexpr unsigned week_bins = 168;
  static constexpr unsigned day_bins = 24;

  time_profile() = default;
  /// A profile whose first trial is the hour holding `now_ms`.
  explicit time_profile(uint64_t now_ms);

  /// Records a read at `t_ms` (counted once per absolute hour; reads older than
  /// the last counted hour are ignored).
  void record(uint64_t t_ms, const profile_params& p);

  /// Probability of at least one read in the absolute hour `hour` (ms / hour_ms)
  /// given what is known at `now_ms`. An hour already counted is 0 (the event
  /// "read at least once" happened).
  double hour_probability(uint64_t hour, uint64_t now_ms, const profile_params& p) const;

  /// Probability of at least one read in [from_ms, to_ms), hours weighted by
  /// how much of them the interval covers.
  double window_probability(uint64_t from_ms, uint64_t to_ms, uint64_t now_ms,
                            const profile_params& p) const;

  /// Expected number of hours with reads in [from_ms, to_ms).
  double expected_hours(uint64_t from_ms, uint64_t to_ms, uint64_t now_ms,
                        const profile_params& p) const;

  /// Decayed number of hours with reads, as of now (a ranking weight).
  double weight(uint64_t now_ms, const profile_params& p) const;

  /// Hours with reads counted so far (undecayed).
  uint32_t hours_seen() const { return hours_seen_; }
  uint64_t first_hour() const { return first_hour_; }
  uint64_t last_hour() const { return last_hour_; }

  void encode(byte_writer& w) const;
  /// False (and the reader failed) on impossible values.
  bool decode(byte_reader& r);

private:
  double decay_to(uint64_t from_hour, uint64_t to_hour, const profile_params& p) const;
  /// Decayed trials of the bin `c` of period `period` (1, 24 or 168) up to hour `hi`.
  double trials(uint64_t c, uint64_t period, uint64_t hi, uint64_t now_hour,
                const profile_params& p) const;
  void rebase(uint64_t hour, const profile_params& p);

  // The fields a read or a ranking touches first, then the bins: a tracked
  // key's node in the predictor's table is one cache line for those.
  float all_ = 0;
  uint32_t hours_seen_ = 0;
  uint64_t first_hour_ = 0;
  uint64_t last_hour_ = UINT64_MAX; ///< last counted hour, UINT64_MAX = none
  uint64_t base_hour_ = 0;          ///< successes are stored relative to this hour
  float week_[week_bins] = {};
  float day_[day_bins] = {};
};

} // namespace kura::predictor
