// Private to l3_lmdb.cpp (and its tests): checks an LMDB data file's structure
// with plain pread() before LMDB maps it.
//
// Why: LMDB trusts its file. A page number, node offset or size that a disk
// error, a bad copy or a stray write has changed makes LMDB read outside its
// map (SIGSEGV/SIGBUS) or trip an assertion (abort) -- measured: about one in
// eight random byte flips in the data pages of a small environment crashed
// the process. kura's contract is "a corrupt file gives errc::corrupt, never a
// crash", so before the first transaction we walk every B-tree the current
// meta page reaches (the free list, the main DB and every named DB) and check
// what LMDB relies on: page numbers inside the file, each page reached once,
// page headers (number, kind, lower/upper bounds), node offsets and sizes
// inside their page, overflow runs inside the file, tree depths, and free-list
// page numbers that are inside the file and not in use by a tree. Values are
// not checked here (records carry their own checksum, see l3_format.hpp).
//
// The layout is LMDB 0.9's on 64-bit hosts (the only one liblmdb0 0.9.x
// writes there): 16-byte page headers, 8-byte node headers, unaligned keys.
// Cost: one pread per tree page (not per overflow page), about 0.1 s per
// 100 MB of tree pages when they are in the page cache.
// Thread safety: a pure function of the file.
#pragma once

#include "tiers/status.hpp"

#include <cstdint>
#include <string>

namespace kura::l3_verify {

/// What the two meta pages say (the newer one, as LMDB picks it).
struct meta_info {
  uint32_t psize = 0;
  uint64_t last_pg = 0;
  uint64_t txnid = 0;
  uint64_t free_root = 0, main_root = 0;
  uint16_t free_depth = 0, main_depth = 0;
  uint16_t free_flags = 0, main_flags = 0;
};

/// Reads and checks the meta pages of `file` (size > 0). errc::foreign_file
/// when the file is no LMDB file, errc::corrupt when it is a damaged one.
result<meta_info> read_meta(const std::string& file);

/// Walks every tree of `file` (see above). ok, or errc::corrupt naming the
/// page and what is wrong with it.
status verify_trees(const std::string& file, const meta_info& m);

} // namespace kura::l3_verify
