// A cluster node's own placement marks, persisted in its data dir so that
// they survive a restart: `kura drain`'s mark (out of placement until `kura
// undrain`) and `kura rebalance`'s token count (the node's weight in the
// ring). File `<data-dir>/cluster.ring`, text lines `drained=0|1` and
// `tokens=N` (0 = the ring's default); written to a temporary file, fsynced,
// renamed, directory fsynced. No CAF here.
// Thread safety: free functions; one writer per data dir (the node).
#pragma once

#include <cstdint>
#include <string>

namespace kura::actors {

struct ring_marks {
  bool drained = false;
  uint32_t tokens = 0; ///< 0: the ring's default (vnodes)
};

/// Reads `<dir>/cluster.ring` into `out` (a missing file is no marks, not an
/// error); returns a message for a file that cannot be read or parsed.
std::string load_ring_marks(const std::string& dir, ring_marks& out);
/// Writes `<dir>/cluster.ring` durably; returns a message on failure.
std::string save_ring_marks(const std::string& dir, const ring_marks& m);

} // namespace kura::actors
