// Learns key patterns ("shapes") from the keys it sees: `user:1042:profile`
// and `user:7:profile` share `user:*:profile` at once (a segment holding a
// digit, or a long hex/base64-looking run, is a variable); `user:alice:profile`
// and `user:bob:profile` share it once enough distinct values were seen at
// that position among keys of the same skeleton (same delimiters, same first
// segment). Nothing is configured; the skeleton table is bounded.
//
// Segments are split at `:/.?&=-_,;|#@ ` (the delimiters stay in the pattern).
// A skeleton tracks, per position (first 16), the hashes of up to
// `max_values` distinct values; a position that sees more becomes `*` for
// every key of that skeleton from then on.
// Thread safety: not thread-safe; owned by one predictor.
#pragma once

#include "predictor/codec.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kura::predictor {

class key_patterns {
public:
  /// `max_values`: distinct values at a position before it becomes `*`;
  /// `max_bytes`: bound on the skeleton table.
  explicit key_patterns(uint32_t max_values = 8, uint64_t max_bytes = 1 << 20);

  /// Learns from `key` and returns its pattern.
  std::string learn(std::string_view key);
  /// The pattern of `key` with what is learned so far (no learning).
  std::string pattern_of(std::string_view key) const;

  uint64_t bytes() const { return bytes_; }
  size_t skeletons() const { return table_.size(); }

  void encode(byte_writer& w) const;
  bool decode(byte_reader& r);

private:
  static constexpr size_t max_positions = 16;
  struct skeleton {
    uint32_t wildcards = 0;                    ///< bit i: position i is `*`
    std::vector<std::vector<uint64_t>> values; ///< distinct value hashes per position
  };
  struct split_key {
    std::vector<std::string_view> segments;
    std::string delimiters;
    std::string skeleton_id;
  };
  /// Splits `key` into `s` (cleared first; its buffers are reused).
  static void split(std::string_view key, split_key& s);
  static bool variable_by_shape(std::string_view seg);
  static std::string render(const split_key& s, uint32_t wildcards);
  uint32_t max_values_;
  uint64_t max_bytes_;
  uint64_t bytes_ = 0;
  std::unordered_map<std::string, skeleton> table_;
  split_key scratch_; ///< learn()'s split, reused: no allocation per key
};

} // namespace kura::predictor
