// KURA.ERASE on a cluster node: an erasure that reaches every replica, every
// hint queue and every near copy of the cluster, with a receipt that lists
// each node (docs/security.md, "Erasure on a cluster").
//
// The node that gets KURA.ERASE (the issuer) runs the job in a broker of its
// own (on the multiplexer thread, beside the cluster coordinator):
//   1. match: KEY names its keys; PREFIX and SUBJECT ask every ring member
//      for the matching keys it holds (store, hint queues, near copies);
//   2. tombstones: each key is deleted through the cluster's write path, so
//      its tombstone carries a new version to the key's replicas (and, as a
//      hint, to a replica that is down);
//   3. purge, on every member that has not left (down ones included): every
//      copy older than the tombstone (store, L4, hint queues of every target,
//      near copy) is replaced by the tombstone, then L3's data.mdb, the
//      archive's segments and its index are rewritten (gossip::tier_store::
//      rewrite_for_erase). A member that does not answer is retried every
//      second: the receipt shows it `pending` until it is back;
//   4. collect, once every member purged: the tombstones leave the stores and
//      hint queues (later copies of the erased versions are refused for the
//      tombstone grace, in memory), and the files are rewritten again, so
//      that not even the key's name stays on any disk.
// Each member runs its steps when the issuer forwards them (cluster_core::
// forward, `kura.erase.node`, authenticated peers only); a step is idempotent
// and remembered per erasure id, so retries are cheap.
// Thread safety: everything here runs on the multiplexer thread.
#pragma once

#include "actors/cluster.hpp"
#include "node/erase_book.hpp"
#include "node/subjects.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kura::node {

/// What a member remembers of the steps it ran: (id + step) -> reply; and
/// the node's explicit subject tags (KURA.SUBJECT; null: none kept; synced
/// between members by node/subjects_sync.hpp).
struct cluster_erase_memory {
  std::map<std::string, std::string> done;
  /// Erasures whose purge ran here and whose collect has not: id -> when.
  std::map<std::string, uint64_t> purged;
  std::shared_ptr<subject_index> subjects;
};

/// Wraps the cluster's exec function: forwarded `kura.erase.node` steps run
/// here (against this node's gossip core and store), everything else goes to
/// `inner`.
actors::exec_fn cluster_erase_exec(std::shared_ptr<cluster_erase_memory> mem,
                                   actors::exec_fn inner);

/// Spawns the issuer's broker and makes it `book`'s dispatcher.
caf::actor spawn_cluster_eraser(caf::actor_system& sys, std::shared_ptr<erase_book> book,
                                std::shared_ptr<actors::cluster_core> core, caf::actor resp,
                                std::shared_ptr<const subject_patterns> patterns,
                                std::shared_ptr<subject_index> subjects);

} // namespace kura::node
