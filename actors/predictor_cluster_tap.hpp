// The predictor's tap in the cluster store: the store's access_tap hooks
// (gossip/tier_store.hpp) feed a predictor_tap, the same sampling,
// prewarm-hit marks and bounded batch as on a single node's memory shards
// (actors/predictor_tap.hpp). The store calls it through one virtual call
// per read or write; the tap then costs what it costs on a single node (a
// countdown, and a hash lookup while prewarm marks are open).
// No CAF in this file.
// Thread safety: not thread-safe; owned by the multiplexer thread (the
// store's owner thread).
#pragma once

#include "actors/predictor_tap.hpp"
#include "gossip/tier_store.hpp"

namespace kura::actors {

class cluster_tap final : public gossip::access_tap {
public:
  explicit cluster_tap(tap_config cfg) : tap_(cfg) {}

  void on_read(std::string_view key, uint64_t now_ms, uint8_t tier, size_t size) override {
    tap_.on_read(key, now_ms, static_cast<tap_tier>(tier), size);
  }
  void on_write(std::string_view key, uint64_t now_ms, uint64_t ttl_ms, size_t size) override {
    tap_.on_write(key, now_ms, ttl_ms, size);
  }

  predictor_tap& tap() noexcept { return tap_; }

private:
  predictor_tap tap_;
};

} // namespace kura::actors
