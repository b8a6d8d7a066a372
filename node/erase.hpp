// KURA.ERASE's coordinator: the actor that runs erasure jobs through the
// tiers (the steps and the receipts are described in node/erase_book.hpp).
// Thread safety: an actor.
#pragma once

#include "node/erase_book.hpp"
#include "node/subjects.hpp"

#include "actors/messages.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/timespan.hpp>
#include <caf/typed_response_promise.hpp>

#include <memory>

namespace kura::node {

/// Sent to the RESP broker when a job ends: (erase_audit_atom, receipt JSON)
/// becomes an "erase" line of the audit log.
using erase_audit_atom = caf::atom_constant<caf::atom("erase_aud")>;

/// Where the coordinator finds the tiers.
struct erase_targets {
  caf::actor store;     ///< the store broker
  caf::actor l3;        ///< invalid: L3 off
  caf::actor compactor; ///< invalid: L4 off
  caf::actor resp;      ///< the RESP broker (audit log); may be invalid
  /// KURA.ERASE SUBJECT: the configured patterns and the explicit tags
  /// (null: no patterns / no tags; erased keys lose their tags).
  std::shared_ptr<const subject_patterns> patterns;
  std::shared_ptr<subject_index> subjects;
};

/// Spawns the coordinator and registers it with `book`.
caf::actor spawn_erase_coordinator(caf::actor_system& sys, std::shared_ptr<erase_book> book,
                                   erase_targets t);

// -- the ops port (`kura erase`) ---------------------------------------------------------

/// kv_request::op values of `kura erase` (continuing rotate_ops' numbering).
/// The answer is a kv_reply whose value is the receipt's JSON (or error).
namespace erase_ops {
constexpr uint8_t erase_keys = 42;    ///< value: the keys, each u32 LE length + bytes
constexpr uint8_t erase_prefix = 43;  ///< key: the prefix
constexpr uint8_t erase_status = 44;  ///< key: the receipt id
constexpr uint8_t erase_subject = 45; ///< key: the subject id
} // namespace erase_ops

/// Packs keys for erase_ops::erase_keys; unpack returns false on bad bytes.
std::string pack_keys(const std::vector<std::string>& keys);
bool unpack_keys(std::string_view bytes, std::vector<std::string>& keys);

/// Serves erase_ops into `rp` (book null: not available); false for other ops.
bool handle_erase_op(erase_book* book, const actors::kv_request& req,
                     caf::typed_response_promise<std::string> rp);

/// `kura erase key K [K...] | prefix P | subject ID | status ID [--json]`: starts an
/// erasure (or reads a receipt), draws a progress line on stderr until it
/// ends, prints the receipt (a summary, or JSON).
int run_erase_command(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
                      const std::vector<std::string>& args, bool json, caf::timespan timeout);

} // namespace kura::node
