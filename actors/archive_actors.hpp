// The L4 actors of one node: the L4 reader and the compactor, around one
// kura::archive::archive (thread-safe), plus the link that lets the L3 actor
// hand its evicted entries, erases and clears down to L4.
//
//   store broker ──l3_lookup──▶ L3 actor ──delegate(l4_lookup)──▶ L4 reader
//        ▲                                                            │
//        └───────────────────── l3_found (one hop back) ◀─────────────┘
//   L3 eviction listener ─▶ archive.put (on the L3 thread; committed by
//                           archive_link::settle after each L3 step)
//   ops actor ─compact_atom / cmp_status_atom / arch_info_atom─▶ compactor
//
// - A memory miss goes to the L3 actor; the keys L3 does not hold are
//   delegated to the L4 reader (detached: archive reads block on disk), which
//   answers the original requester. Entries it found carry
//   `from_archive_flag`; finish_lookup strips it, promotes the entry to memory
//   and writes it back to L3 (write-behind), and the L3 actor then drops the
//   archived copy once L3 committed that write (archive_link::written, then
//   l3_committed): an entry lives in L3 or in L4, never in both for longer
//   than L3's batch, so DBSIZE = L3 entries + L4 entries.
// - The compactor (detached) drives begin_compaction/compaction_step in slices
//   of about 1/10 s of its rate, one slice per message (status requests are
//   answered between slices), with a token bucket installed through
//   set_throttle; it starts a job every `compact_interval_ms` and on
//   compact_atom, and runs maybe_flush (1 s) and enforce_retention
//   (`retention_interval_ms`) on timers.
// Thread safety: the actors are actors; archive_link is called on the L3
// actor's thread only; l4_counters is safe for concurrent use.
#pragma once

#include "actors/messages.hpp"
#include "actors/store.hpp"
#include "archive/archive.hpp"
#include "archive/job_gate.hpp"
#include "tiers/superseded.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kura::actors {

// -- atoms ------------------------------------------------------------------------

using compact_atom = caf::atom_constant<caf::atom("compact")>;
using compact_step_atom = caf::atom_constant<caf::atom("cmp_step")>;
using compact_status_atom = caf::atom_constant<caf::atom("cmp_status")>;
using archive_info_atom = caf::atom_constant<caf::atom("arch_info")>;
using maintain_atom = caf::atom_constant<caf::atom("maintain")>;
/// Key rotation (`kura rotate-key`): (l4_rotate_atom, key_file, salt_file) ->
/// compaction_report of the re-seal job (trigger "rotate"), which re-writes
/// every segment sealed with an older key; a running compaction is aborted.
using l4_rotate_atom = caf::atom_constant<caf::atom("l4_rotate")>;

/// Envelope type ids of the L4 messages (continuing msg_type's numbering; kept
/// here so that actors/messages.hpp stays untouched).
constexpr msg_type msg_compaction_report = static_cast<msg_type>(20);
constexpr msg_type msg_archive_report = static_cast<msg_type>(21);

// -- messages -----------------------------------------------------------------------

/// A compaction job as `kura compact` sees it (progress while running, the
/// summary when done).
struct compaction_report {
  uint64_t run = 0; ///< job number since start (0 = none yet)
  bool running = false;
  bool ok = true; ///< false: the job failed (see error)
  std::string error;
  std::string trigger;      ///< "cli" or "schedule"
  uint64_t bytes_done = 0;  ///< input bytes processed
  uint64_t bytes_total = 0; ///< input bytes planned
  uint64_t bytes_written = 0;
  uint64_t entries_moved = 0;
  uint32_t segments_done = 0;
  uint32_t segments_total = 0;
  uint64_t elapsed_ms = 0;
  uint64_t rate_bytes_per_s = 0; ///< bytes_done / elapsed
  uint64_t rate_limit = 0;       ///< configured limit (0 = none)
  MSGPACK_DEFINE(run, running, ok, error, trigger, bytes_done, bytes_total, bytes_written,
                 entries_moved, segments_done, segments_total, elapsed_ms, rate_bytes_per_s,
                 rate_limit);
};

/// One segment row of `kura archive`.
struct archive_segment_row {
  uint64_t id = 0;
  std::string codec;
  uint32_t dict_id = 0;
  uint64_t stored_bytes = 0;
  uint64_t raw_bytes = 0;
  uint64_t entries = 0;
  uint64_t live_entries = 0;
  double live_fraction = 1.0;
  uint64_t oldest_ms = 0;
  bool active = false;
  MSGPACK_DEFINE(id, codec, dict_id, stored_bytes, raw_bytes, entries, live_entries, live_fraction,
                 oldest_ms, active);
};

/// One dictionary row of `kura archive`.
struct archive_dict_row {
  uint32_t id = 0;
  uint64_t bytes = 0;
  uint32_t segments = 0;
  bool current = false;
  MSGPACK_DEFINE(id, bytes, segments, current);
};

/// kv_request::op values of the archive commands (continuing op_t's numbering).
namespace archive_ops {
constexpr uint8_t archive = 9;         ///< answered with archive_report
constexpr uint8_t compact = 10;        ///< start (or join) a job; compaction_report
constexpr uint8_t compact_status = 11; ///< the running or last job; compaction_report
} // namespace archive_ops

/// What `kura archive` shows.
struct archive_report {
  bool enabled = false;
  std::string codec;
  uint64_t entries = 0;
  uint64_t stored_bytes = 0;
  uint64_t raw_bytes = 0;
  uint64_t live_raw_bytes = 0;
  double ratio = 0;         ///< stored / raw
  double live_fraction = 1; ///< live_raw / raw
  uint64_t oldest_entry_ms = 0;
  uint64_t max_bytes = 0;
  uint32_t ttl_days = 0;
  uint64_t corrupt_blocks = 0;
  uint64_t compaction_runs = 0;
  uint64_t l4_hits = 0;
  uint64_t l4_misses = 0;
  std::vector<archive_segment_row> segments;
  std::vector<archive_dict_row> dictionaries;
  MSGPACK_DEFINE(enabled, codec, entries, stored_bytes, raw_bytes, live_raw_bytes, ratio,
                 live_fraction, oldest_entry_ms, max_bytes, ttl_days, corrupt_blocks,
                 compaction_runs, l4_hits, l4_misses, segments, dictionaries);
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, compaction_report& x) {
  return f(caf::meta::type_name("kura.compaction_report"), x.run, x.running, x.ok, x.error,
           x.trigger, x.bytes_done, x.bytes_total, x.bytes_written, x.entries_moved,
           x.segments_done, x.segments_total, x.elapsed_ms, x.rate_bytes_per_s, x.rate_limit);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, archive_segment_row& x) {
  return f(caf::meta::type_name("kura.archive_segment_row"), x.id, x.codec, x.dict_id,
           x.stored_bytes, x.raw_bytes, x.entries, x.live_entries, x.live_fraction, x.oldest_ms,
           x.active);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, archive_dict_row& x) {
  return f(caf::meta::type_name("kura.archive_dict_row"), x.id, x.bytes, x.segments, x.current);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, archive_report& x) {
  return f(caf::meta::type_name("kura.archive_report"), x.enabled, x.codec, x.entries,
           x.stored_bytes, x.raw_bytes, x.live_raw_bytes, x.ratio, x.live_fraction,
           x.oldest_entry_ms, x.max_bytes, x.ttl_days, x.corrupt_blocks, x.compaction_runs,
           x.l4_hits, x.l4_misses, x.segments, x.dictionaries);
}

// -- configuration and counters --------------------------------------------------------

struct l4_config {
  uint64_t compact_interval_ms = 600'000;  ///< scheduled compaction (0 = only on demand)
  double compact_threshold = 0.5;          ///< live fraction below which a segment is rewritten
  uint64_t compact_rate = 32ull << 20;     ///< bytes/s read by compaction (0 = unlimited)
  uint64_t retention_interval_ms = 60'000; ///< enforce_retention + expiry sweep period
  uint64_t flush_interval_ms = 1000;       ///< maybe_flush period
};

/// Counters of the L4 actors, read by metrics and `kura archive`.
class l4_counters {
public:
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> compaction_runs{0};
  std::atomic<uint64_t> compaction_bytes{0};
  std::atomic<uint64_t> compaction_ns{0};
  void record_read(uint64_t ns) {
    std::lock_guard<std::mutex> g(mtx_);
    read_latency_.record(ns);
  }
  latency_histogram read_latency() const {
    std::lock_guard<std::mutex> g(mtx_);
    return read_latency_;
  }

private:
  mutable std::mutex mtx_;
  latency_histogram read_latency_;
};

/// The L3 actor's view of L4 (see store.hpp, l3_below).
class archive_link final : public l3_below {
public:
  archive_link(std::shared_ptr<archive::archive> ar, caf::actor reader,
               std::shared_ptr<l4_counters> counters);
  /// Installs the L3 eviction listener: evicted entries are put into L4,
  /// except those `never_archive` (if set) names: they are dropped
  /// (kura.security.sensitive-patterns, docs/security.md).
  void attach(l3_lmdb& l3, const kura::clock& clk,
              std::function<bool(std::string_view)> never_archive = {});

  caf::actor reader() const override { return reader_; }
  void settle() override;
  void written(std::string_view key, const kura::version& ver) override;
  void l3_committed() override;
  size_t superseded_waiting() const override { return superseded_->size(); }
  bool superseded(std::string_view key) const override { return superseded_->waiting(key); }
  void erase(std::string_view key) override;
  void clear() override;
  uint64_t entries() const override;
  result<std::optional<std::string>>
  scan_keys(std::string_view after, size_t max,
            const std::function<void(const key_info&)>& f) override;

private:
  std::shared_ptr<archive::archive> ar_;
  caf::actor reader_;
  std::shared_ptr<l4_counters> counters_;
  /// Evicted entries not yet flushed (shared with the eviction listener).
  std::shared_ptr<bool> dirty_ = std::make_shared<bool>(false);
  bool nonempty_ = false; ///< the archive may hold entries
  /// Archived copies superseded by writes L3 has not committed (shared with
  /// the eviction listener: an evicted new version is not dropped).
  std::shared_ptr<superseded_copies> superseded_ = std::make_shared<superseded_copies>();
};

/// What spawn_l4 started.
struct l4_handles {
  std::shared_ptr<archive::archive> ar;
  std::shared_ptr<l4_counters> counters;
  std::shared_ptr<archive_link> link;
  caf::actor reader;
  caf::actor compactor;
};

/// Callback for metrics, run on the compactor's thread once per flush interval.
using l4_tick_hook = std::function<void(archive::archive&, const l4_counters&)>;

/// Spawns the L4 reader and the compactor (both detached). `on_tick` may be empty.
/// `gate`: shared with another driver of the archive's jobs (a cluster node's
/// store, archive/job_gate.hpp); null when the compactor is the only one.
l4_handles spawn_l4(caf::actor_system& sys, std::shared_ptr<archive::archive> ar, l4_config cfg,
                    const kura::clock& clk, l4_tick_hook on_tick = {},
                    std::shared_ptr<archive::job_gate> gate = nullptr);

/// Aborts a running compaction, stops both actors and flushes the archive.
/// Call after stop_store (L3's last evictions are in by then).
void stop_l4(caf::actor_system& sys, const l4_handles& h);

/// Builds the report `kura archive` prints.
archive_report make_archive_report(archive::archive& ar, const l4_counters& c);

} // namespace kura::actors
