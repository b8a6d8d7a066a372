// kura's own commands (KURA.*): introspection that Redis has no word for.
#include "node/command_registry.hpp"

namespace kura::node {

namespace {

/// KURA.TIER key: the tier that holds the key ("l1", "l2", "l3", "l4", "none").
void cmd_kura_tier(const command_args& a, command_context& c) {
  put_bulk(c.out, c.ks.tier_of(a[1]));
}

} // namespace

void register_kura_commands(command_registry& r) {
  r.add("kura.tier", 2, "readonly fast", cmd_kura_tier)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO")
      .acl("@keyspace @read @fast")
      .doc("Return the tier that holds a key (l1, l2, l3, l4 or none)", "0.1.0", "generic", "O(1)");
}

} // namespace kura::node
