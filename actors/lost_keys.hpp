// Keys a tier below memory lost for good, for client tracking (CLIENT
// TRACKING): L3's capacity evictions when no L4 is below it (the entry is
// gone from disk), and L4's dropped segments (retention by age or size; the
// archive does not list their keys, which may be keyed hashes, so that
// counts as "every key"). The L3 and L4 threads add; the RESP broker takes
// them on its housekeeping tick and invalidates (node/resp_server.cpp).
// Memory's own evictions are not here: L3 still holds the key.
// Thread safety: safe for concurrent use.
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace kura::actors {

class lost_keys {
public:
  /// Above this many keys untaken, the losses count as "every key".
  static constexpr size_t max_keys = 100'000;

  void add(std::string key) {
    std::lock_guard<std::mutex> g(mu_);
    if (keys_.size() < max_keys)
      keys_.push_back(std::move(key));
    else
      all_.store(true);
  }
  /// Keys were lost that cannot be named.
  void add_all() { all_.store(true); }
  /// Moves the named losses into `keys`; true when every key must count as lost.
  bool take(std::vector<std::string>& keys) {
    std::lock_guard<std::mutex> g(mu_);
    keys.swap(keys_);
    keys_.clear();
    return all_.exchange(false);
  }

private:
  std::mutex mu_;
  std::vector<std::string> keys_;
  std::atomic<bool> all_{false};
};

} // namespace kura::actors
