// The cluster core uses the node's one version issuer, kura::hlc
// (tiers/hlc.hpp); this header keeps the gossip spelling.
// Thread safety: see tiers/hlc.hpp.
#pragma once

#include "tiers/hlc.hpp"

namespace kura::gossip {

using kura::hlc;

} // namespace kura::gossip
