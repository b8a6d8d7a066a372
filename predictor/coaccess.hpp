// Co-access: "B tends to be read within Δt after A", for prefetching B when A is
// read. A bounded table of sources; each source keeps its `fanout` strongest
// followers (replace-the-weakest: a newcomer takes the slot of a follower seen
// at most once, otherwise the weakest slot is halved), so memory is
// O(sources x fanout) whatever the key count, and sources beyond the byte
// budget are evicted by sampling (fewest reads first).
//
// Confidence of B after A = count(A then B within Δt) / (reads of A + 1): three
// out of three is 0.75, two out of two only 0.67.
// Thread safety: not thread-safe; owned by one predictor.
#pragma once

#include "predictor/codec.hpp"
#include "tiers/random.hpp"

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kura::predictor {

struct coaccess_config {
  uint64_t window_ms = 10'000; ///< Δt
  size_t recent = 8;           ///< reads remembered as possible sources
  size_t fanout = 4;           ///< followers kept per source
  uint64_t max_bytes = 4 << 20;
};

class coaccess_table {
public:
  explicit coaccess_table(coaccess_config cfg = {}, uint64_t seed = 1);

  /// Records a read of `key` at `now_ms`: credits it as a follower of the
  /// recent reads within Δt, and counts it as a source.
  void record(std::string_view key, uint64_t now_ms);

  struct follower {
    std::string key;
    double confidence;
  };
  /// Followers of `key` with confidence >= min_confidence, strongest first.
  std::vector<follower> followers(std::string_view key, double min_confidence) const;

  uint64_t bytes() const { return bytes_; }
  size_t sources() const { return table_.size(); }

  void encode(byte_writer& w) const;
  bool decode(byte_reader& r);

private:
  struct slot {
    std::string key;
    float count = 0;
  };
  struct source {
    float reads = 0;
    std::vector<slot> followers;
  };
  struct recent_read {
    std::string key;
    uint64_t at_ms;
    std::vector<uint64_t> credited; ///< hashes of followers already counted
  };
  static uint64_t entry_bytes(std::string_view key, const source& s);
  void credit(const std::string& src, std::string_view key);
  void trim();

  coaccess_config cfg_;
  rng rng_;
  uint64_t bytes_ = 0;
  std::unordered_map<std::string, source> table_;
  std::deque<recent_read> recent_;
};

} // namespace kura::predictor
