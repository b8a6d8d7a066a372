// `kura rotate-key`: key rotation for encryption at rest (docs/security.md).
// The ops actor re-reads kura.security.encryption-key-file (its newest key
// becomes the active one), L3 rewrites every record sealed with an older key
// in slices between its writes, and the compactor re-seals every L4 segment
// of an older key (a compaction of those segments). The CLI polls the
// progress and draws a bar.
// Thread safety: the handler runs inside the ops actor; the CLI function in
// the kura process.
#pragma once

#include "actors/messages.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include <msgpack.hpp>

#include <cstdint>
#include <string>

namespace kura::node {

/// kv_request::op values of key rotation (continuing archive_ops' numbering).
namespace rotate_ops {
constexpr uint8_t rotate_key = 40;    ///< start (or restart) a rotation; rotate_report
constexpr uint8_t rotate_status = 41; ///< progress of the running or last one; rotate_report
} // namespace rotate_ops

constexpr actors::msg_type msg_rotate_report = static_cast<actors::msg_type>(40);

/// A key rotation as `kura rotate-key` sees it.
struct rotate_report {
  bool running = false; ///< L3 or L4 still re-sealing
  bool ok = true;       ///< false: see error
  std::string error;
  uint32_t active_key = 0;    ///< key id new data is sealed with
  uint64_t l3_done = 0;       ///< L3 records visited
  uint64_t l3_total = 0;      ///< L3 records when the pass started
  uint64_t l3_resealed = 0;   ///< L3 records rewritten under the active key
  uint64_t l4_bytes_done = 0; ///< L4 segment bytes re-sealed
  uint64_t l4_bytes_total = 0;
  uint32_t l4_segments_done = 0;
  uint32_t l4_segments_total = 0;
  bool l4 = false; ///< the node has an archive
  MSGPACK_DEFINE(running, ok, error, active_key, l3_done, l3_total, l3_resealed, l4_bytes_done,
                 l4_bytes_total, l4_segments_done, l4_segments_total, l4);
};

/// Where the ops actor finds what a rotation needs.
struct rotate_targets {
  caf::actor l3;        ///< the L3 actor (invalid: L3 off)
  caf::actor compactor; ///< the archive's compactor (invalid: L4 off)
  std::string key_file; ///< kura.security.encryption-key-file ("" = encryption off)
  std::string salt_file;
  /// A cluster node: its cluster coordinator, which re-seals the cluster
  /// store (node/cluster_rotate.hpp); l3 and compactor are then invalid.
  caf::actor coordinator;
};

/// Serves rotate_ops::rotate_key / rotate_status into `rp`; false for other ops.
bool handle_rotate_op(caf::event_based_actor* self, const rotate_targets& t, uint8_t op,
                      caf::typed_response_promise<std::string> rp);

/// `kura rotate-key [--json]`: starts a rotation, shows a progress bar on
/// stderr until L3 and L4 are re-sealed, prints a summary (or JSON).
int run_rotate_key(caf::actor_system& sys, caf::scoped_actor& self, const caf::actor& ops,
                   bool json, caf::timespan timeout);

} // namespace kura::node
