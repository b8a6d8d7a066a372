// Retention and sensitive keys on a cluster node (docs/security.md): the
// expiry cap every write gets before it is versioned and replicated (so each
// replica holds the capped expiry and expires the value at the same moment),
// and the keys the cluster store never archives to L4.
// Thread safety: the returned functions are pure (safe anywhere).
#pragma once

#include "node/config.hpp"

#include <cstdint>
#include <functional>
#include <string_view>

namespace kura::node {

/// (key, expiry ms or 0, now ms) -> expiry capped by kura.retention.max-age
/// and, for keys matching kura.security.sensitive-patterns, by
/// sensitive-max-ttl. Empty when neither is configured.
std::function<uint64_t(std::string_view, uint64_t, uint64_t)>
cluster_expiry_cap(const node_config& cfg);

/// Keys matching kura.security.sensitive-patterns (empty: none configured).
std::function<bool(std::string_view)> sensitive_matcher(const node_config& cfg);

} // namespace kura::node
