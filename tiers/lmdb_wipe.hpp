// Zeroes what an LMDB data file keeps of deleted data inside its live pages
// (KURA.ERASE, tiers/l3_erase.cpp): in every branch and leaf page the gap
// between the node pointers (mp_lower) and the nodes (mp_upper), where
// deleted nodes' bytes stay after LMDB shifts the live ones. Meant for a
// compacted copy (mdb_env_copy2 MDB_CP_COMPACT, which drops free pages but
// copies each page whole), before it is opened by anyone.
// lmdb_rebuild_copy writes a rebuilt copy instead (see there).
// Thread safety: free functions over files nobody else writes.
#pragma once

#include "tiers/status.hpp"

#include <string>

namespace kura {

/// Zeroes the free gap of every branch and leaf page of `file` and fsyncs it.
status wipe_lmdb_page_gaps(const std::string& file);

/// Writes a new environment into the empty directory `dst_dir` holding every
/// named database of the open environment `src` (flags kept) with all its
/// records, inserted in order (MDB_APPEND), then wipes its page gaps and
/// fsyncs it. Unlike mdb_env_copy2, which copies the B-tree pages as they
/// are, this rebuilds the trees: branch pages keep as separators only keys
/// that are still in the leaves (a deleted key can live on as a separator in
/// a branch page of the original). kura's databases have no duplicates.
status lmdb_rebuild_copy(void* src_env, const std::string& dst_dir);

} // namespace kura
