// The cluster family: KURA.OWNERS and WAIT. On a cluster node the RESP front
// end routes both through the coordinator (node/cluster_routing.cpp); what is
// registered here is their COMMAND facts (arity, key positions, used by the
// router to tell key commands from local ones) and the answers of a node
// that is not in a cluster.
#include "node/command_registry.hpp"
#include "node/resp_parser.hpp"

namespace kura::node {

namespace {

/// KURA.OWNERS key on a lone node: Redis's answer to cluster commands there.
void cmd_kura_owners(const command_args&, command_context& c) {
  put_error(c.out, "ERR This instance has cluster support disabled");
}

/// WAIT numreplicas timeout on a lone node: no replica ever acknowledges.
void cmd_wait(const command_args& a, command_context& c) {
  int64_t n = 0, t = 0;
  if (!parse_int64(a[1], n) || !parse_int64(a[2], t)) {
    put_error(c.out, "ERR value is not an integer or out of range");
    return;
  }
  if (t < 0) {
    put_error(c.out, "ERR timeout is negative");
    return;
  }
  put_int(c.out, 0);
}

} // namespace

void register_cluster_commands(command_registry& r) {
  r.add("kura.owners", 2, "readonly fast", cmd_kura_owners)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO")
      .acl("@keyspace @read @fast")
      .doc("Return the nodes that replicate a key, owner first", "0.1.0", "cluster", "O(1)");
  r.add("wait", 3, "noscript", cmd_wait)
      .acl("@slow @connection")
      .tips("request_policy:all_shards response_policy:agg_min")
      .doc("Wait for the synchronous replication of all the write commands sent in the context "
           "of the current connection",
           "3.0.0", "generic", "O(1)");
}

} // namespace kura::node
