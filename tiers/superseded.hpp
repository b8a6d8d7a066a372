// Archive copies that newer writes superseded, waiting for L3's commit.
//
// A key lives in one persistent tier: a write (or the promotion of an archive
// hit back into L3) makes the key's archived copy obsolete, and it has to go,
// or it would come back once the new value expires or is erased from L3. But
// not before L3 has committed the new write: the archive's erase commits at
// once while L3's write waits in its batch, and a kill -9 in between lost the
// key entirely (the old value gone from the archive, the new one never
// committed), where the promise is only that the newest write may be lost.
// So the owner records each superseded copy here and drops the list once L3
// has nothing pending (everything recorded before is committed then).
// Meanwhile the old copy is never served: L3's newer record wins every read,
// and readers skip the archive for a key that waits here (`waiting`).
//
// If L3 evicts the new version into the archive before the drop, the
// archive's copy *is* the new version: `archived` forgets the key, so the
// drop cannot remove it (a promotion writes the same version as the copy
// it supersedes, so versions alone cannot tell the two apart).
// Thread safety: not thread-safe; owned by the thread that drives L3.
#pragma once

#include "tiers/entry.hpp"
#include "tiers/tier.hpp"

#include <string>
#include <string_view>
#include <unordered_map>

namespace kura {

class superseded_copies {
public:
  /// Waiting copies beyond which the owner should commit L3 early rather
  /// than wait for its next batch (bounds the memory of the list).
  static constexpr size_t max_waiting = 65536;

  /// A write of `key` at version `newer` (pending in L3) superseded the
  /// archive's copy.
  void add(std::string_view key, const version& newer);
  /// `key`'s archive copy is no longer the superseded one (L3 evicted the
  /// new version into the archive) or is gone (erased): nothing to drop.
  /// So size() counts keys that the archive and L3 both hold.
  void forget(std::string_view key) {
    if (!waiting_.empty())
      waiting_.erase(std::string(key));
  }
  /// True while `key`'s archive copy is superseded but not yet dropped: a
  /// reader that missed in L3 must not read the archive for it.
  bool waiting(std::string_view key) const {
    return !waiting_.empty() && waiting_.count(std::string(key)) != 0;
  }
  size_t size() const noexcept { return waiting_.size(); }
  bool empty() const noexcept { return waiting_.empty(); }
  void clear() { waiting_.clear(); }
  /// Call once L3 has committed every write recorded so far: erases from
  /// `archive` each waiting key's copy that is not newer than the write that
  /// superseded it, and empties the list. Returns the first error (the rest
  /// are still tried; the list is emptied either way: a copy that could not
  /// be erased stays below a newer L3 record, which wins every read).
  status drop(tier& archive);

private:
  std::unordered_map<std::string, version> waiting_;
};

} // namespace kura
