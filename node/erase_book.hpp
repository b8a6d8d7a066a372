// KURA.ERASE receipts (erase_book.hpp, CAF-free) and coordinator (erase.hpp): erasure that reaches
// every tier of the node, with a receipt (docs/security.md, "Erasure").
//
// A job runs in the erase coordinator (an actor), one job at a time in the
// order they were asked for:
//   1. L3 and the L4 index: the L3 actor removes the matching records
//      (tombstones and expired ones included) and the matching archive index
//      rows (actors/erase_tiers.hpp);
//   2. memory: the store broker erases the matching entries and queues their
//      L3 deletes (which also catch a copy written back meanwhile), then L3
//      syncs;
//   3. L3 again, then data.mdb is rewritten as a rebuilt copy, so that the
//      removed bytes leave the file (tiers/l3_erase.cpp);
//   4. L4: the compactor rewrites every segment that holds dead records and,
//      when an archived key was erased, every segment compressed with a
//      dictionary (dictionaries and their training samples of erased keys go),
//      then the index file is rewritten as a rebuilt copy.
// The receipt (id, matched keys, per-tier counts, start and finish time) is
// kept in `<data-dir>/erase-receipts.log` (JSON lines, fsynced; the last line
// of an id wins), written to the audit log when the job ends, and answered
// by KURA.ERASE STATUS id (also after a restart). Receipts never hold keys:
// the request's arguments appear only as a SHA-256 digest.
// Thread safety: erase_book is safe for concurrent use (the RESP broker reads
// it, the coordinator writes it).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kura::node {

/// What an erasure matches (the values of actors/erase_tiers.hpp's erase_mode).
namespace erase_kind {
constexpr uint8_t keys = 1;    ///< the keys named
constexpr uint8_t prefix = 2;  ///< every key starting with the prefix
constexpr uint8_t subject = 3; ///< every key of a data subject (node/subjects.hpp)
} // namespace erase_kind
/// One node's part of an erasure on a cluster (node/cluster_erase.hpp).
struct erase_node_row {
  std::string node;         ///< the member's node id
  std::string state;        ///< "pending" (not reached yet), "purged", "done"
  uint64_t l3 = 0;          ///< L3 records replaced by the tombstone, then removed
  uint64_t l4 = 0;          ///< L4 copies removed
  uint64_t hints = 0;       ///< hint-queue entries replaced, then dropped
  uint64_t near = 0;        ///< near-cache copies dropped
  uint64_t l4_segments = 0; ///< archive segments rewritten
};

/// One erasure as KURA.ERASE STATUS and `kura erase` show it.
struct erase_receipt {
  std::string id;
  std::string node;
  std::string mode;   ///< "key", "prefix" or "subject"
  std::string digest; ///< SHA-256 (hex) of the request's arguments
  std::string state;  ///< "queued", "memory", "l3", "l4", "done", "failed"
  std::string error;
  uint64_t requested = 0;   ///< keys named (mode key) or 1 (prefix, subject)
  uint64_t matched = 0;     ///< distinct keys found in any tier
  uint64_t memory = 0;      ///< entries removed from memory
  uint64_t l3 = 0;          ///< L3 records removed (tombstones included)
  uint64_t l4 = 0;          ///< L4 index entries removed
  uint64_t l4_segments = 0; ///< archive segments rewritten
  uint64_t started_ms = 0;
  uint64_t finished_ms = 0; ///< 0 while running
  /// Cluster mode: one row per member (empty on a single node).
  std::vector<erase_node_row> nodes;
  std::string to_json() const;
  /// Parses to_json's output; nullopt on anything else.
  static std::optional<erase_receipt> from_json(std::string_view line);
};

/// Receipts by id, persisted as JSON lines.
class erase_book {
public:
  /// `path` "" keeps receipts in memory only.
  erase_book(std::string path, std::string node);
  /// Reads the receipts file; "" or why not (the book stays usable).
  std::string load();
  /// Records a new job (state "queued") and hands it to the coordinator.
  erase_receipt start(uint8_t mode, std::vector<std::string> args);
  /// Stores (and persists) a receipt.
  void put(const erase_receipt& r);
  std::optional<erase_receipt> get(const std::string& id) const;
  /// Hands a job (id, mode, args) to the coordinator (set once, before
  /// clients connect; unset: jobs fail at once).
  using dispatcher = std::function<void(const std::string&, uint8_t, std::vector<std::string>)>;
  void set_dispatcher(dispatcher d) {
    std::lock_guard<std::mutex> g(mu_);
    dispatch_ = std::move(d);
  }

private:
  mutable std::mutex mu_;
  std::string path_;
  std::string node_;
  std::map<std::string, erase_receipt> receipts_;
  uint64_t seq_ = 0;
  dispatcher dispatch_;
};

} // namespace kura::node
