// The tiers' side of KURA.ERASE (node/erase.hpp drives it): the messages the
// erase coordinator sends to the store broker (memory), the L3 actor (L3 and,
// through l3_below, the L4 index) and the compactor (L4 segments,
// dictionaries, index file), and the functions their handlers call.
//
//   coordinator ─(l3_erase_atom)───▶ L3 actor: L3 records + L4 index rows
//               ─(mem_erase_atom)──▶ store broker: memory, then L3 sync
//               ─(l3_erase_fin_atom)▶ L3 actor: again + compacting rewrite
//               ─(l4_erase_atom)───▶ compactor: segment rewrite + index copy
// Thread safety: each function runs inside the actor that owns its tier.
#pragma once

#include "actors/store.hpp"
#include "tiers/l3_lmdb.hpp"

#include <caf/atom.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace kura::actors {

/// What an erasure matches.
namespace erase_mode {
constexpr uint8_t keys = 1;   ///< the keys in args
constexpr uint8_t prefix = 2; ///< every key starting with args[0]
/// A data subject's keys (node/subjects.hpp): each arg is "g" + a glob or
/// "k" + a key; a key matches when it matches a glob or is named.
constexpr uint8_t subject = 3;
} // namespace erase_mode

/// (mem_erase_atom, mode, args) -> (erased count, erased keys): memory
/// entries, with their L3 deletes queued and applied (an L3 sync follows).
using mem_erase_atom = caf::atom_constant<caf::atom("mem_erase")>;
/// (l3_erase_atom, mode, args) -> (L3 records removed, L4 keys removed, keys
/// removed, error): tombstones included, committed.
using l3_erase_atom = caf::atom_constant<caf::atom("l3_erase")>;
/// (l3_erase_fin_atom, keys) -> error: removes `keys` from L3 and the L4
/// index again, then rewrites data.mdb as a rebuilt copy.
using l3_erase_fin_atom = caf::atom_constant<caf::atom("l3_erasef")>;
/// (l4_erase_atom, mode, args, keys, retire_dictionaries) -> compaction_report
/// of the erase job (trigger "erase"); poll compact_status_atom until it ends.
using l4_erase_atom = caf::atom_constant<caf::atom("l4_erase")>;

/// The predicate of an erasure: a key in `keys`, or (prefix) one starting
/// with args[0], or (subject) one the args name or whose glob it matches.
std::function<bool(std::string_view)> erase_matcher(uint8_t mode,
                                                    const std::vector<std::string>& args,
                                                    const std::vector<std::string>& keys = {});

/// L3 and L4 index part (l3_erase_atom). `below` may be null.
std::tuple<uint64_t, uint64_t, std::vector<std::string>, std::string>
erase_in_l3(l3_lmdb& db, l3_below* below, uint8_t mode, const std::vector<std::string>& args);

/// l3_erase_fin_atom: removes `keys` again (what raced with the first pass),
/// then the compacting rewrite. "" or the error.
std::string finish_erase_in_l3(l3_lmdb& db, l3_below* below, const std::vector<std::string>& keys);

/// Memory part (mem_erase_atom), on the multiplexer thread.
std::vector<std::string> erase_in_memory(store_core& core, uint8_t mode,
                                         const std::vector<std::string>& args);

} // namespace kura::actors
