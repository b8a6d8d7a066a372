// The cluster family: KURA.OWNERS, WAIT, and Redis Cluster's CLUSTER ...,
// READONLY, READWRITE and ASKING. On a cluster node the RESP front end routes
// them through the coordinator (node/cluster_routing.cpp) and the cluster
// faces (node/cluster_faces.cpp); what is registered here is their COMMAND
// facts (arity, key positions, used by the router to tell key commands from
// local ones) and the answers of a node that is not in a cluster.
#include "node/command_registry.hpp"
#include "node/resp_parser.hpp"

namespace kura::node {

namespace {

/// KURA.OWNERS key on a lone node: Redis's answer to cluster commands there.
void cmd_kura_owners(const command_args&, command_context& c) {
  put_error(c.out, "ERR This instance has cluster support disabled");
}

/// CLUSTER ..., READONLY, READWRITE, ASKING on a lone node (Redis's answer).
void cmd_cluster_disabled(const command_args&, command_context& c) {
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
  r.add("kura.held", 2, "readonly fast", cmd_kura_owners)
      .keys(1, 1, 1)
      .key_spec(1, 0, 1, 0, "RO")
      .acl("@keyspace @read @fast")
      .doc("Return what this node holds and knows of a key (no network; a debugging aid)", "0.1.0",
           "cluster", "O(log N)");
  r.add("wait", 3, "noscript", cmd_wait)
      .acl("@slow @connection")
      .tips("request_policy:all_shards response_policy:agg_min")
      .doc("Wait for the synchronous replication of all the write commands sent in the context "
           "of the current connection",
           "3.0.0", "generic", "O(1)");
  r.add("cluster", -2, "", nullptr)
      .acl("@slow")
      .doc("A container for Redis Cluster commands", "3.0.0", "cluster", "Depends on subcommand.");
  struct sub {
    const char* name;
    int arity;
    const char* summary;
  };
  static const sub subs[] = {
      {"slots", 2, "Get the mapping of cluster slots to nodes"},
      {"shards", 2, "Get the mapping of cluster slots to shards"},
      {"nodes", 2, "Get the cluster config for the node"},
      {"info", 2, "Provides info about the cluster state"},
      {"myid", 2, "Return the node id"},
      {"keyslot", 3, "Returns the hash slot of the specified key"},
      {"countkeysinslot", 3, "Return the number of local keys in the specified hash slot"},
      {"getkeysinslot", 4, "Return local key names in the specified hash slot"},
      {"help", 2, "Show helpful text about the different subcommands"},
  };
  for (auto& s : subs)
    r.add_sub("cluster", s.name, s.arity, "loading stale", cmd_cluster_disabled)
        .acl("@slow")
        .tips("nondeterministic_output")
        .doc(s.summary, "3.0.0", "cluster", "O(N) where N is the number of slots or nodes");
  r.add("readonly", 1, "loading stale fast", cmd_cluster_disabled)
      .acl("@fast @connection")
      .doc("Enables read queries for a connection to a cluster replica node", "3.0.0", "cluster",
           "O(1)");
  r.add("readwrite", 1, "loading stale fast", cmd_cluster_disabled)
      .acl("@fast @connection")
      .doc("Disables read queries for a connection to a cluster replica node", "3.0.0", "cluster",
           "O(1)");
  r.add("asking", 1, "fast", cmd_cluster_disabled)
      .acl("@fast @connection")
      .doc("Sent by cluster clients after an -ASK redirect", "3.0.0", "cluster", "O(1)");
}

} // namespace kura::node
