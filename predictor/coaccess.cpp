#include "predictor/coaccess.hpp"

#include "tiers/hash.hpp"

#include <algorithm>
#include <cmath>

namespace kura::predictor {

namespace {
constexpr uint64_t node_overhead = 64;
}

coaccess_table::coaccess_table(coaccess_config cfg, uint64_t seed) : cfg_(cfg), rng_(seed) {}

uint64_t coaccess_table::entry_bytes(std::string_view key, const source& s) {
  uint64_t b = node_overhead + key.size() + sizeof(source);
  for (const auto& f : s.followers)
    b += sizeof(slot) + f.key.size();
  return b;
}

void coaccess_table::credit(const std::string& src, std::string_view key) {
  auto it = table_.find(src);
  if (it == table_.end())
    return;
  source& s = it->second;
  const uint64_t before = entry_bytes(src, s);
  auto f = std::find_if(s.followers.begin(), s.followers.end(),
                        [&](const slot& x) { return x.key == key; });
  if (f != s.followers.end()) {
    f->count += 1;
  } else if (s.followers.size() < cfg_.fanout) {
    s.followers.push_back(slot{std::string(key), 1});
  } else {
    auto weakest = std::min_element(s.followers.begin(), s.followers.end(),
                                    [](const slot& a, const slot& b) { return a.count < b.count; });
    if (weakest->count <= 1)
      *weakest = slot{std::string(key), 1};
    else
      weakest->count /= 2;
  }
  bytes_ += entry_bytes(src, s) - before;
}

void coaccess_table::record(std::string_view key, uint64_t now_ms) {
  while (!recent_.empty() &&
         (recent_.size() >= cfg_.recent || now_ms - recent_.front().at_ms > cfg_.window_ms))
    recent_.pop_front();
  const uint64_t h = hash64(key);
  for (auto& r : recent_) {
    if (r.key == key || std::find(r.credited.begin(), r.credited.end(), h) != r.credited.end())
      continue;
    r.credited.push_back(h);
    credit(r.key, key);
  }
  auto it = table_.find(std::string(key));
  if (it == table_.end()) {
    it = table_.emplace(std::string(key), source{}).first;
    bytes_ += entry_bytes(key, it->second);
  }
  it->second.reads += 1;
  recent_.push_back(recent_read{std::string(key), now_ms, {}});
  trim();
}

void coaccess_table::trim() {
  while (bytes_ > cfg_.max_bytes && !table_.empty()) {
    // Sample a few sources from random buckets; evict the one read least.
    auto victim = table_.end();
    for (int i = 0; i < 8; ++i) {
      const size_t b = rng_.below(table_.bucket_count());
      if (table_.bucket_size(b) == 0)
        continue;
      auto key = table_.begin(b)->first;
      auto it = table_.find(key);
      if (victim == table_.end() || it->second.reads < victim->second.reads)
        victim = it;
    }
    if (victim == table_.end())
      victim = table_.begin();
    bytes_ -= entry_bytes(victim->first, victim->second);
    table_.erase(victim);
  }
}

std::vector<coaccess_table::follower> coaccess_table::followers(std::string_view key,
                                                                double min_confidence) const {
  std::vector<follower> out;
  auto it = table_.find(std::string(key));
  if (it == table_.end())
    return out;
  for (const auto& f : it->second.followers) {
    const double c = std::min(1.0, f.count / (it->second.reads + 1.0));
    if (c >= min_confidence)
      out.push_back(follower{f.key, c});
  }
  std::sort(out.begin(), out.end(),
            [](const follower& a, const follower& b) { return a.confidence > b.confidence; });
  return out;
}

void coaccess_table::encode(byte_writer& w) const {
  w.u32(static_cast<uint32_t>(table_.size()));
  for (const auto& [key, s] : table_) {
    w.str(key);
    w.f32(s.reads);
    w.u32(static_cast<uint32_t>(s.followers.size()));
    for (const auto& f : s.followers) {
      w.str(f.key);
      w.f32(f.count);
    }
  }
}

bool coaccess_table::decode(byte_reader& r) {
  table_.clear();
  recent_.clear();
  bytes_ = 0;
  const uint32_t n = r.u32();
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    std::string key = r.str();
    source s;
    s.reads = r.f32();
    const uint32_t m = r.u32();
    if (m > cfg_.fanout || !std::isfinite(s.reads) || s.reads < 0) {
      r.fail();
      break;
    }
    for (uint32_t j = 0; j < m && r.ok(); ++j) {
      slot f;
      f.key = r.str();
      f.count = r.f32();
      if (!std::isfinite(f.count) || f.count < 0)
        r.fail();
      s.followers.push_back(std::move(f));
    }
    bytes_ += entry_bytes(key, s);
    table_.emplace(std::move(key), std::move(s));
  }
  if (r.ok())
    trim();
  return r.ok();
}

} // namespace kura::predictor
