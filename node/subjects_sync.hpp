// Subject tags on a cluster (docs/security.md, "Data subjects", cluster mode):
// every member's tag file holds every tag, so that KURA.SUBJECT key answers on
// any node and KURA.ERASE SUBJECT finds a key through any member.
//
// Two ways carry a tag:
//   - announce: KURA.SUBJECT key id sends the new tag to every other member
//     that has not left (`kura.subject.node key id`), retrying a member that
//     does not answer every second for kura.security.subject-tag-retry;
//   - sync: a member pulls the tags it lacks from each alive member when it
//     starts, whenever a member becomes alive again (a restart after any
//     outage, a member that joined), and every kura.security.
//     subject-sync-interval: it sends its tag digest (`kura.subject.pull
//     digest after`); the peer answers +SAME when its digest is equal, else
//     a page of its tags (in key order, about 64 KiB), and the puller merges
//     the ones it lacks (one append and fsync per page) and asks for the
//     next page. Pulls run both ways (each member pulls from the others), so
//     a tag only the returning member holds reaches the others too.
// Tags only grow, except through an erasure's collect step, which drops them
// on every member: a member that ran the purge of an erasure but not its
// collect answers pulls with -TRYAGAIN (it would hand back tags the others
// dropped), and a member that dropped tags refuses them from pulls for an
// hour (subject_index::set_fence_ms), so a peer that is slower to collect
// cannot bring them back.
// Thread safety: everything here runs on the multiplexer thread (the
// cluster core's tick and forwarded commands).
#pragma once

#include "actors/cluster.hpp"
#include "node/subjects.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kura::node {

struct subject_sync_settings {
  /// kura.security.subject-tag-retry: how long a new tag is resent to a
  /// member that does not answer (every second).
  uint64_t retry_ms = 60'000;
  /// kura.security.subject-sync-interval: digests are compared with every
  /// alive member this often, besides at start and at a member's return.
  uint64_t resync_ms = 30'000;
};

/// KURA.SUBJECT on a cluster node: every tag `subjects` keeps is sent to
/// every other member that has not left (`kura.subject.node key id`, retried
/// every second for s.retry_ms while a member does not answer). Sets
/// subjects->on_tag; `core` must outlive it.
void announce_subject_tags(std::shared_ptr<subject_index> subjects,
                           std::shared_ptr<actors::cluster_core> core, subject_sync_settings s);

/// A cluster_settings::maintain that runs the tag sync, then `inner` (if set).
std::function<void(actors::cluster_core&, uint64_t)>
subject_sync_hook(std::shared_ptr<subject_index> subjects, subject_sync_settings s,
                  std::function<void(actors::cluster_core&, uint64_t)> inner);

/// Serves the forwarded tag commands (`kura.subject.node`, `kura.subject.pull`)
/// against `subjects` (null: this node keeps none); `holding_back`: this
/// member ran an erasure's purge but not its collect (pulls get -TRYAGAIN).
/// False when `args` is not one of them.
bool serve_subject_command(subject_index* subjects, bool holding_back,
                           const std::vector<std::string>& args,
                           const std::function<void(std::string)>& reply);

} // namespace kura::node
