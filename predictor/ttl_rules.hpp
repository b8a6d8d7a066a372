// Applied TTL rules: a snapshot of the predictor's TTL decisions per learned
// key pattern, for a host's write path. The predictor decides on its own
// thread (predictor::ttl_rules()); the host applies the snapshot to writes
// that carry a TTL: a pattern whose keys were re-read after their TTL ran out
// gets twice the asked TTL, one whose keys expired unread gets half, always
// within [min_ttl_ms, max_ttl_ms] (a TTL already outside the bounds is never
// moved further out). Writes without a TTL and keys of other patterns are
// left alone.
// Thread safety: immutable after construction; share it read-only.
#pragma once

#include "predictor/key_pattern.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kura::predictor {

class ttl_rules {
public:
  /// +1: double the TTL, -1: halve it.
  using rule_map = std::unordered_map<std::string, int8_t>;

  ttl_rules() = default;
  ttl_rules(key_patterns shapes, rule_map rules, uint64_t min_ttl_ms, uint64_t max_ttl_ms)
      : shapes_(std::move(shapes)), rules_(std::move(rules)), min_ttl_ms_(min_ttl_ms),
        max_ttl_ms_(max_ttl_ms) {}

  /// The TTL to use for a write of `key` asked with `ttl_ms` (> 0).
  uint64_t apply(std::string_view key, uint64_t ttl_ms) const;
  /// `ttl_ms` moved in `direction` within the bounds.
  uint64_t adjusted(uint64_t ttl_ms, int direction) const;

  bool empty() const noexcept { return rules_.empty(); }
  const rule_map& rules() const noexcept { return rules_; }

private:
  key_patterns shapes_;
  rule_map rules_;
  uint64_t min_ttl_ms_ = 0;
  uint64_t max_ttl_ms_ = UINT64_MAX;
};

} // namespace kura::predictor
