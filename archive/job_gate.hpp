// One archive, two drivers of its jobs: on a cluster node the L4 compactor
// actor (scheduled and `kura compact` compaction, retention, expiry sweeps)
// and the cluster store (gossip/tier_store.hpp: KURA.ERASE's rewrite, the
// re-seal of `kura rotate-key`) work on the same archive from two threads,
// and the archive allows one compaction job at a time with one caller
// driving it (archive.hpp). The gate serialises them:
//   - every compactor step (begin, compaction_step, retention + sweep) runs
//     with `mu` held;
//   - the store takes `mu`, aborts whatever job runs (the compactor is
//     between steps then), bumps `generation` with `reason`, and runs its
//     own job; while that spans several calls (a re-seal) it sets `busy`;
//   - the compactor sees a new generation at its next step and reports its
//     job as aborted for `reason`; it starts no job while `busy`.
// Lock order: mu before the store's own tier lock; never the other way.
// Thread safety: the members are guarded by `mu`.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

namespace kura::archive {

struct job_gate {
  std::mutex mu;
  uint64_t generation = 0; ///< bumped by every job the other driver starts
  std::string reason;      ///< what the last bump was for ("an erasure", ...)
  bool busy = false;       ///< the other driver's job spans calls: start none
};

} // namespace kura::archive
