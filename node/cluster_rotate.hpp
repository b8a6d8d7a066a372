// `kura rotate-key` on a cluster node (docs/security.md, "Key rotation on a
// cluster node"). A cluster node's data lives in the cluster store
// (gossip::tier_store: L3 with its tombstones and version floors, and the
// archive under it), which the gossip core owns on the multiplexer thread. The
// ops actor asks the cluster coordinator (cop_atom "rotate-key" /
// "rotate-status"); the coordinator runs them here on the multiplexer thread:
//   - rotate-key re-reads kura.security.encryption-key-file, switches both
//     tiers to its newest key (new writes are sealed with it at once) and
//     starts the re-seal; slices of it (tier_store::reseal_step) then run from
//     the cluster core's timers, at most ~20 ms at a time, so the node keeps
//     serving clients and gossip between slices;
//   - rotate-status reports the progress (node/rotate_key.hpp's rotate_report,
//     encoded, in the reply's note) for the CLI's progress bar.
// The start, the end and a failure each write an audit line (event
// "rotate-key"). The re-seal keeps every keyed hash (LMDB key, archive index
// key): the stores' secrets do not change, only the master key that seals
// records, blocks, dictionaries and the secrets' copies.
// Thread safety: everything here runs on the multiplexer thread.
#pragma once

#include "actors/cluster.hpp"

#include <functional>
#include <memory>
#include <string>

namespace kura::node {

class audit_forwarder;

/// The cluster_settings::local_op serving "rotate-key" and "rotate-status"
/// with the node's key file and salt file (encryption at rest off: an empty
/// `key_file`, and both ops answer so). `audit` gets the audit lines (may be
/// null).
std::function<bool(actors::cluster_core&, const std::string&, const std::vector<std::string>&,
                   actors::cluster_op_reply&)>
cluster_rotate_op(std::string key_file, std::string salt_file,
                  std::shared_ptr<audit_forwarder> audit);

} // namespace kura::node
