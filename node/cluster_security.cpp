// Retention and sensitive keys on a cluster node (node/cluster_security.hpp).
#include "node/cluster_security.hpp"

#include "actors/keyspace.hpp"

#include <chrono>

namespace kura::node {

namespace {

uint64_t ms_of(std::chrono::milliseconds d) {
  return d.count() > 0 ? static_cast<uint64_t>(d.count()) : 0;
}

} // namespace

std::function<bool(std::string_view)> sensitive_matcher(const node_config& cfg) {
  auto globs = cfg.sensitive_pattern_list();
  if (globs.empty())
    return {};
  return [globs](std::string_view k) {
    for (auto& g : globs)
      if (actors::glob_match(g, k))
        return true;
    return false;
  };
}

std::function<uint64_t(std::string_view, uint64_t, uint64_t)>
cluster_expiry_cap(const node_config& cfg) {
  uint64_t max_age =
      ms_of(std::chrono::duration_cast<std::chrono::milliseconds>(cfg.retention_max_age));
  uint64_t sensitive_ttl =
      ms_of(std::chrono::duration_cast<std::chrono::milliseconds>(cfg.sensitive_max_ttl));
  auto sensitive = sensitive_matcher(cfg);
  if (max_age == 0 && (!sensitive || sensitive_ttl == 0))
    return {};
  return [max_age, sensitive_ttl, sensitive](std::string_view key, uint64_t expiry, uint64_t now) {
    auto cap = [&](uint64_t ttl) {
      if (ttl != 0 && (expiry == 0 || expiry > now + ttl))
        expiry = now + ttl;
    };
    cap(max_age);
    if (sensitive && sensitive(key))
      cap(sensitive_ttl);
    return expiry;
  };
}

void cluster_retention::step(gossip::replica_store& s, uint64_t now_ms) {
  if (max_age_ms_ == 0 || now_ms < next_ms_)
    return;
  next_ms_ = now_ms + interval_ms_;
  std::vector<std::pair<std::string, version>> aged;
  size_t seen = 0;
  bool end = true;
  uint64_t last = from_;
  s.for_each_key_from(from_, [&](uint64_t pos, const entry& m) {
    if (seen == budget_ && pos != last) { // (keys at one position go together)
      end = false;
      return false;
    }
    ++seen;
    last = pos;
    if (!m.is_tombstone() && m.ver.ms() + max_age_ms_ <= now_ms)
      aged.emplace_back(m.key, m.ver);
    return true;
  });
  if (end) {
    from_ = 0;
    ++passes_;
  } else {
    from_ = last + 1;
  }
  for (auto& [key, ver] : aged) {
    auto held = s.version_of(key);
    if (!held || !(*held == ver))
      continue;
    // the tombstone of the value's own version: nothing newer is lost
    entry t;
    t.key = key;
    t.ver = ver;
    t.flags = entry_flags::tombstone;
    if (s.erase(key) && s.apply(t))
      ++removed_;
  }
}

} // namespace kura::node
