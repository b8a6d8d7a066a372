#include "actors/predictor_tap.hpp"

#include "tiers/hash.hpp"

#include <algorithm>

namespace kura::actors {

namespace {
constexpr uint64_t mark_seed = 0x7072657761726dull;
}

predictor_tap::predictor_tap(tap_config cfg) : cfg_(cfg), rng_(cfg.seed | 1) {
  cfg_.sample_one_in = std::max<uint32_t>(1, cfg_.sample_one_in);
  left_ = next_gap();
}

uint32_t predictor_tap::next_gap() {
  const uint64_t n = one_in();
  if (n == 1)
    return 1;
  // xorshift64*: a gap uniform in [1, 2n - 1], mean n
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  const uint64_t r = rng_ * 0x2545F4914F6CDD1Dull;
  return 1 + static_cast<uint32_t>((r >> 32) % (2ull * n - 1));
}

void predictor_tap::pace(uint64_t now_ms) {
  const uint64_t cap = cfg_.max_events_per_second;
  if (cap == 0)
    return;
  constexpr uint32_t max_stride = 1u << 16;
  ++window_events_;
  const uint64_t elapsed = now_ms - std::min(now_ms, window_start_ms_);
  if (elapsed < 1000) {
    // over the cap within the second: sample half as often from now on
    if (window_events_ > cap && stride_ < max_stride) {
      stride_ *= 2;
      window_start_ms_ = now_ms;
      window_events_ = 0;
    }
    return;
  }
  // a second or more has passed: back towards sample_one_in while the rate
  // (events per second over the window) would stay below the cap
  uint64_t rate = window_events_ * 1000 / elapsed;
  while (stride_ > 1 && rate * 2 < cap) {
    stride_ /= 2;
    rate *= 2;
  }
  window_start_ms_ = now_ms;
  window_events_ = 0;
}

bool predictor_tap::push(tap_event e) {
  if (batch_.size() >= cfg_.max_batch) {
    ++dropped_;
    return false;
  }
  ++sampled_;
  batch_.push_back(std::move(e));
  return true;
}

void predictor_tap::sample(std::string_view key, uint64_t now_ms, tap_tier tier, size_t size) {
  tap_event e;
  e.weight = static_cast<uint32_t>(std::min<uint64_t>(one_in(), UINT32_MAX));
  pace(now_ms);
  left_ = next_gap();
  e.key.assign(key.data(), key.size());
  e.time_ms = now_ms;
  e.size = static_cast<uint32_t>(std::min<size_t>(size + key.size(), UINT32_MAX));
  e.kind = tap_event::read;
  e.tier = static_cast<uint8_t>(tier);
  push(std::move(e));
}

void predictor_tap::sample_write(std::string_view key, uint64_t now_ms, uint64_t ttl_ms,
                                 size_t size) {
  tap_event e;
  e.weight = static_cast<uint32_t>(std::min<uint64_t>(one_in(), UINT32_MAX));
  pace(now_ms);
  left_ = next_gap();
  if (cfg_.follow_writes && followed_.size() < cfg_.max_followed)
    followed_[hash64(key, mark_seed)] = followed_write{now_ms, ttl_ms ? now_ms + ttl_ms : 0, false};
  e.key.assign(key.data(), key.size());
  e.time_ms = now_ms;
  e.arg = ttl_ms;
  e.size = static_cast<uint32_t>(std::min<size_t>(size + key.size(), UINT32_MAX));
  e.kind = tap_event::write;
  push(std::move(e));
}

void predictor_tap::check_mark(std::string_view key, uint64_t now_ms, uint8_t served) {
  auto it = marks_.find(hash64(key, mark_seed));
  if (it == marks_.end())
    return;
  tap_event e;
  e.key.assign(key.data(), key.size());
  e.time_ms = now_ms;
  e.arg = now_ms > it->second ? now_ms - it->second : 0;
  e.kind = tap_event::prewarm_read;
  e.tier = served;
  marks_.erase(it);
  // outcomes are never sampled away: precision counts every one (a full batch
  // still drops them, counted)
  if (batch_.size() >= cfg_.max_batch) {
    ++dropped_;
    return;
  }
  batch_.push_back(std::move(e));
}

void predictor_tap::unmark(std::string_view key) {
  marks_.erase(hash64(key, mark_seed));
}

void predictor_tap::unfollow(std::string_view key) {
  followed_.erase(hash64(key, mark_seed));
}

void predictor_tap::check_followed(std::string_view key, uint64_t now_ms) {
  auto it = followed_.find(hash64(key, mark_seed));
  if (it == followed_.end())
    return;
  followed_write& f = it->second;
  const bool expired = f.expiry_ms != 0 && now_ms >= f.expiry_ms;
  if (!expired && f.read_before)
    return; // reported; still followed for a read after its TTL
  if (expired || f.expiry_ms == 0)
    followed_.erase(it);
  else
    f.read_before = true;
  if (batch_.size() >= cfg_.max_batch) {
    ++dropped_;
    return;
  }
  tap_event e;
  e.key.assign(key.data(), key.size());
  e.time_ms = now_ms;
  e.kind = tap_event::write_read;
  batch_.push_back(std::move(e));
}

void predictor_tap::prewarmed(std::string_view key, uint64_t now_ms) {
  marks_[hash64(key, mark_seed)] = now_ms;
}

std::vector<tap_event> predictor_tap::take() {
  std::vector<tap_event> out;
  out.swap(batch_);
  if (!followed_.empty() && !out.empty()) {
    const uint64_t now = out.back().time_ms;
    if (now >= last_follow_trim_ms_ + 60'000) { // followed writes past their time
      last_follow_trim_ms_ = now;
      for (auto it = followed_.begin(); it != followed_.end();)
        it = std::max(it->second.at_ms, it->second.expiry_ms) + cfg_.follow_ms < now
                 ? followed_.erase(it)
                 : std::next(it);
    }
  }
  if (!marks_.empty() && !out.empty()) {
    const uint64_t now = out.back().time_ms;
    if (now < last_trim_ms_ + 60'000)
      return out; // a scan a minute is plenty
    last_trim_ms_ = now;
    if (now > cfg_.mark_ttl_ms)
      for (auto it = marks_.begin(); it != marks_.end();)
        it = it->second + cfg_.mark_ttl_ms < now ? marks_.erase(it) : std::next(it);
  }
  return out;
}

} // namespace kura::actors
