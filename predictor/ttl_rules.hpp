// Applied write rules: a snapshot of the predictor's TTL and tier decisions
// per learned key pattern, for a host's write path. The predictor decides on its own
// thread (predictor::ttl_rules()); the host applies the snapshot to writes
// that carry a TTL: a pattern whose keys were re-read after their TTL ran out
// gets twice the asked TTL, one whose keys expired unread gets half, always
// within [min_ttl_ms, max_ttl_ms] (a TTL already outside the bounds is never
// moved further out). Writes without a TTL and keys of other patterns are
// left alone. Tier: new writes of a pattern written and never read go to L3
// only, not memory (kura.prewarm.tier-choice).
// Thread safety: immutable after construction; share it read-only.
#pragma once

#include "predictor/key_pattern.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace kura::predictor {

class ttl_rules {
public:
  /// +1: double the TTL, -1: halve it.
  using rule_map = std::unordered_map<std::string, int8_t>;

  using pattern_set = std::unordered_set<std::string>;

  ttl_rules() = default;
  ttl_rules(key_patterns shapes, rule_map rules, uint64_t min_ttl_ms, uint64_t max_ttl_ms,
            pattern_set l3_only = {})
      : shapes_(std::move(shapes)), rules_(std::move(rules)), l3_only_(std::move(l3_only)),
        min_ttl_ms_(min_ttl_ms), max_ttl_ms_(max_ttl_ms) {}

  /// The TTL to use for a write of `key` asked with `ttl_ms` (> 0).
  uint64_t apply(std::string_view key, uint64_t ttl_ms) const;
  /// `ttl_ms` moved in `direction` within the bounds.
  uint64_t adjusted(uint64_t ttl_ms, int direction) const;

  /// Whether a new write of `key` goes to L3 only (its pattern is written and
  /// never read).
  bool l3_only(std::string_view key) const {
    return !l3_only_.empty() && l3_only_.count(shapes_.pattern_of(key)) > 0;
  }
  bool has_tier_rules() const noexcept { return !l3_only_.empty(); }
  /// The same rules without the TTL part (a host that applies only the tier choice).
  ttl_rules tiers_only() const {
    return ttl_rules(shapes_, {}, min_ttl_ms_, max_ttl_ms_, l3_only_);
  }
  /// The same rules without the tier part.
  ttl_rules ttls_only() const { return ttl_rules(shapes_, rules_, min_ttl_ms_, max_ttl_ms_); }

  bool empty() const noexcept { return rules_.empty() && l3_only_.empty(); }
  const rule_map& rules() const noexcept { return rules_; }
  const pattern_set& l3_only_patterns() const noexcept { return l3_only_; }

private:
  key_patterns shapes_;
  rule_map rules_;
  pattern_set l3_only_;
  uint64_t min_ttl_ms_ = 0;
  uint64_t max_ttl_ms_ = UINT64_MAX;
};

} // namespace kura::predictor
