// Client tracking (CLIENT TRACKING, client-side caching) on a cluster node.
//
// On a lone node every change goes through the command table, which calls
// client_hub::key_changed. On a cluster node keyed commands are routed
// (node/cluster_routing.hpp) and the changes that matter happen on other
// nodes, so this object connects the two:
//
//   - Local changes: every version this node's replica store takes (a write
//     it coordinated, replication from another node's write, hinted handoff,
//     anti-entropy repair, range streaming, erasure) reaches the hub
//     (actors::cluster_core::on_store_change). That covers every key this
//     node replicates.
//   - Remote interest, default mode: when a tracking client here reads a key
//     this node does not replicate, this node first registers at each of the
//     key's replicas (`kura.node.track`, answered with the key's expiry), then
//     runs the read; the client's reply leaves only once the replicas hold
//     the registration, so a write acknowledged after that reply is
//     invalidated. A change arriving while the read is in flight invalidates
//     the key again right after the reply.
//   - Remote interest, BCAST: the node's BCAST prefixes are announced to
//     every member (`kura.node.track-prefixes`, refreshed every 2 s, kept 6 s
//     by the receiver) as soon as they change.
//   - A replica that takes a new version of a key somebody registered for,
//     and is the key's first live replica (exec_candidates), sends
//     `kura.node.invalidate key expiry` to each such node that is not itself
//     a replica (those hear it from their own store), then forgets the
//     default-mode registrations (the client reads again to track again); the
//     other replicas forget theirs too. The receiver calls key_changed.
//   - NOLOOP: a routed write of a client here marks its keys for a while
//     (2 x request timeout); the first change of such a key that arrives is
//     attributed to that client.
//   - Expiry: a tracked key's expiry (from the registration's answer or this
//     node's copy) goes to the hub, which invalidates it then.
// docs/protocol.md ("Client tracking on a cluster").
// Thread safety: the multiplexer thread only (RESP broker and coordinator).
#pragma once

#include "actors/cluster.hpp"
#include "node/client_hub.hpp"
#include "node/command_registry.hpp"
#include "node/resp_writer.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kura::node {

class cluster_tracking : public std::enable_shared_from_this<cluster_tracking> {
public:
  using done_fn = std::function<void(out_buffer&&)>;

  /// Makes the tracker of `c` (hooked into its store changes and its
  /// kura.node.* commands) for the connections of `hub`; both must outlive
  /// the result (the RESP broker owns all three).
  static std::shared_ptr<cluster_tracking> attach(actors::cluster_core& c, client_hub& hub);
  ~cluster_tracking();
  cluster_tracking(const cluster_tracking&) = delete;
  cluster_tracking& operator=(const cluster_tracking&) = delete;

  /// A routed command (route::cluster) of `s` is about to run. Returns true
  /// when it took the command over (a tracked read that registers at remote
  /// replicas first: it calls run_clustered and `done` itself); otherwise it
  /// may have wrapped `done`, and the caller runs the command.
  bool routed(const command_registry& reg, const std::vector<std::string_view>& a, session& s,
              done_fn& done);
  /// EXEC (route::transaction) of `s`: the keys its queued read-only
  /// commands read are registered at their remote replicas first, as for a
  /// routed read; then the transaction runs (run_transaction, on the queue
  /// taken from `s` now) and its reply tracks them. Its queued writes mark
  /// their keys for NOLOOP. Returns true when it took the command over; false:
  /// the caller runs it.
  bool transaction(const command_registry& reg, const std::vector<std::string_view>& a, session& s,
                   done_fn& done);

  // -- what it holds (tests, INFO) -----------------------------------------------
  size_t peer_keys() const noexcept { return peer_keys_.size(); }
  size_t peer_prefix_nodes() const noexcept { return peer_prefixes_.size(); }

private:
  cluster_tracking(actors::cluster_core& c, client_hub& hub) : c_(c), hub_(hub) {}
  struct read_job;
  void on_store(const entry& e);
  bool exec(const std::vector<std::string>& a, const std::function<void(std::string)>& reply);
  /// `key` changed (a local store or a replica told us): the hub hears it.
  void changed_here(const std::string& key, uint64_t expiry_ms);
  void read_done(read_job& job, const out_buffer& reply);
  void after_reply(read_job& job);
  void tick();
  /// Membership news since the last call: a member that comes back alive
  /// (a restart with a new incarnation, a rejoin after death, a refuted
  /// suspicion, a drain or token change) holds none of the registrations
  /// made with it, or may now own keys registered elsewhere. Called by the
  /// tick and when a tracked read starts and ends, so that news older than
  /// a read never flushes the keys that read tracks (it concerns the keys
  /// tracked before), and news that arrives while a read is in flight
  /// invalidates that read's keys right after its reply.
  void watch_members(uint64_t now);
  /// Registers the tracked reads `keys` of `s` where needed, then calls
  /// `run(reply)`; the reply tracks the keys, then reaches `done`.
  void track_reads(session& s, const std::vector<std::string_view>& keys,
                   std::function<void(done_fn)> run, done_fn done);
  void mark_self_writes(uint64_t client, const std::vector<std::string_view>& keys, uint64_t now);
  void announce(const std::vector<std::string>& prefixes);
  bool replicates(std::string_view key) const;

  actors::cluster_core& c_;
  client_hub& hub_;
  // this node as a client of the others
  std::unordered_map<std::string, uint64_t> registered_; ///< key -> when registered (ms)
  std::unordered_map<std::string, int> inflight_;        ///< tracked reads in flight
  std::set<std::string> dirty_;                          ///< changed while read in flight
  std::unordered_map<std::string, std::pair<uint64_t, uint64_t>> self_writes_; ///< client, until
  std::vector<std::string> announced_;
  uint64_t next_announce_ms_ = 0;
  size_t events_seen_ = 0;    ///< of the membership's event log (watch_members)
  uint64_t member_epoch_ = 0; ///< watch_members' news so far (a member came back)
  // this node as a replica: who wants to hear of changes
  std::unordered_map<std::string, std::set<gossip::node_id>> peer_keys_;
  struct peer_prefixes {
    std::vector<std::string> prefixes;
    uint64_t until = 0;
  };
  std::map<gossip::node_id, peer_prefixes> peer_prefixes_;
};

} // namespace kura::node
