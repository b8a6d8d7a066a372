// L4, the archive: entries aged out of L3, kept compressed on disk for up to
// `ttl_days` within `max_bytes`.
//
// Contract. An archive is a `tier` named "l4". put() appends the entry to an
// in-memory block; the block is compressed and appended to the active segment
// file when it reaches `block_bytes`, on flush(), or on maybe_flush() once it is
// older than `flush_max_ms`. A flushed entry is *committed*: the block is
// fsynced before the LMDB index (key -> segment, offset, length, expiry,
// version) commits, so after a crash (even in the middle of a compaction)
// every committed entry reads back. get() costs one index lookup, one block
// read and one decompression. A block whose checksum fails makes only its own
// keys fail (errc::corrupt, reported in inspect().corrupt_blocks); all other
// keys stay readable. put() drops the oldest segments itself once the archive
// grows past max_bytes (L4 is the last tier: nothing is handed on, the
// eviction listener is not called). Retention (enforce_retention) drops
// segments whose newest data is older than ttl_days, then the oldest segments while the
// archive is over max_bytes; per-entry expiry is honoured on every read and by
// sweep_expired(). Compaction rewrites segments whose live fraction is below a
// threshold, incrementally (compaction_step) with progress and a throttle hook,
// so an actor can drive it in the background.
//
// Thread safety: safe for concurrent use. One mutex guards the index and the
// segment table; block reads and decompression in get() and the copy work of
// a compaction run outside it, so one compaction thread does not stall
// readers; dictionary training and the reads of a retention drop run outside
// it too. At most one compaction job runs at a time (one caller drives it);
// destroy the archive only after that caller stopped.
// No CAF here: actors/ wraps this class.
//
// Driving it from actors (the intended use):
//   - L4 actor (detached): put() for each entry L3 evicts, flush() after each
//     batch (that is the commit point), maybe_flush(now) on a timer, get() for
//     misses from above, sweep_expired(now, budget) and enforce_retention(now)
//     on a schedule (hourly is plenty: reads already honour ttl and expiry).
//   - compactor actor (detached): begin_compaction(), then compaction_step(n)
//     per message (each returns bytes_done/bytes_total for the progress bar),
//     with set_throttle() installing a token bucket that sleeps to hold the
//     configured rate; abort_compaction() on shutdown.
//   - `kura archive` and the metrics exporter: inspect() (segments, live
//     fraction, raw vs stored bytes, dictionaries, oldest entry, compaction
//     counters) and stats() (hits, misses, entries, bytes).
#pragma once

#include "archive/codec.hpp"
#include "archive/env.hpp"
#include "tiers/clock.hpp"
#include "tiers/entry.hpp"
#include "tiers/seal.hpp"
#include "tiers/tier.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kura::archive {

/// Configuration (kura.archive.* in the node's config).
struct archive_config {
  /// Directory holding segments (seg-*.kseg), dictionaries (dict-*.zdict) and
  /// the index (index/, an LMDB environment).
  std::string path;
  /// Codec for new segments: lz4 (default), zstd, or zstd_dict (zstd with a
  /// dictionary trained from recent small values; plain zstd until the first
  /// dictionary is trained).
  codec_id codec = codec_id::lz4;
  /// zstd level (1..22) for zstd and zstd_dict; for lz4 0 = fast, >0 = lz4hc.
  int level = 3;
  /// Target raw (uncompressed) bytes per block. Bigger compresses better,
  /// smaller reads faster. A larger single entry gets a block of its own.
  size_t block_bytes = 64 * 1024;
  /// A segment is sealed (and a new one started) once it holds this many bytes.
  uint64_t segment_bytes = 64ull << 20;
  /// A segment is also sealed once it is this old, which bounds how coarse
  /// age-based retention (whole segments) can be. 0 = no age limit.
  uint64_t segment_max_age_ms = 24ull * 3600 * 1000;
  /// Retention: size limit of all segments (oldest go first) ...
  uint64_t max_bytes = 10'000'000'000ull;
  /// ... and age limit (data archived longer ago goes). 0 = no age limit.
  uint32_t ttl_days = 365;
  /// Bound of the archive's in-process index memory: the pending block's index,
  /// the segment table, the dictionary sample buffer. (The LMDB index itself is
  /// memory-mapped; the kernel pages it in and out and it is not counted.)
  uint64_t index_memory_bytes = 100'000'000ull;
  /// LMDB map size (address space reserved for the index, not RAM).
  uint64_t index_map_bytes = 64ull << 30;
  /// Dictionaries (codec zstd_dict): maximum dictionary size ...
  size_t dict_bytes = 64 * 1024;
  /// ... values up to this size are sampled for training ...
  size_t dict_sample_max_value = 4096;
  /// ... bytes of recent samples kept for training (capped by index memory) ...
  size_t dict_sample_bytes = 4 << 20;
  /// ... fewest samples for a training run ...
  size_t dict_min_samples = 512;
  /// ... and a new dictionary is trained after this many sealed segments
  /// (rotation). Old dictionaries stay until no segment uses them.
  uint32_t dict_rotate_segments = 16;
  /// Compaction rewrites sealed segments whose live fraction is below this.
  double compact_threshold = 0.5;
  /// Blocks are committed at the latest this long after their first put.
  uint64_t flush_max_ms = 1000;
  /// fsync segments and LMDB commits (off only for benchmarks and tests that
  /// never crash the machine: a killed process still loses nothing).
  bool durable = true;
  /// Entry size limits.
  limits lim;
  /// File system; nullptr = posix_env::instance().
  env* fs = nullptr;
  /// Encryption at rest (kura.security.encryption-key-file): with a keyring,
  /// blocks (after compression) and dictionaries are sealed with AES-256-GCM
  /// under its active key and index keys are keyed hashes. An encrypted
  /// archive refuses to open without a key that sealed it (errc::bad_key); a
  /// non-empty plaintext one refuses to open with a key.
  std::shared_ptr<const crypto::keyring> keys;
};

/// One segment as `kura archive` shows it.
struct segment_info {
  uint64_t id = 0;
  codec_id codec = codec_id::lz4;
  int level = 0;
  uint32_t dict_id = 0;
  uint64_t created_ms = 0;
  uint64_t oldest_ms = 0;
  uint64_t newest_ms = 0;
  uint64_t stored_bytes = 0; ///< file bytes (header + blocks)
  uint64_t raw_bytes = 0;    ///< decompressed block bytes
  uint64_t entries = 0;
  uint64_t live_entries = 0;
  uint64_t live_raw_bytes = 0;
  uint32_t blocks = 0;
  double live_fraction = 1.0; ///< live_raw_bytes / raw_bytes
  bool active = false;        ///< still being appended to
  bool compacting = false;
};

struct dictionary_info {
  uint32_t id = 0;
  uint64_t bytes = 0;
  uint32_t segments = 0; ///< segments using it
  bool current = false;  ///< used for new segments
};

struct corrupt_block {
  uint64_t segment = 0;
  uint64_t offset = 0;
  std::string message;
};

/// Everything `kura archive` and the metrics exporter need.
struct archive_info {
  std::vector<segment_info> segments;
  std::vector<dictionary_info> dictionaries;
  std::vector<corrupt_block> corrupt_blocks;
  uint64_t stored_bytes = 0; ///< all segment files
  uint64_t raw_bytes = 0;    ///< all blocks decompressed
  uint64_t live_raw_bytes = 0;
  uint64_t entries = 0;         ///< live index entries (incl. the pending block)
  uint64_t oldest_entry_ms = 0; ///< archive time of the oldest data (0 = empty)
  uint64_t index_memory_bytes = 0;
  uint64_t pending_entries = 0;
  // counters since open
  uint64_t compaction_runs = 0;
  uint64_t compaction_bytes_in = 0;
  uint64_t compaction_bytes_out = 0;
  uint64_t compaction_ns = 0;
  uint64_t segments_dropped_ttl = 0;
  uint64_t segments_dropped_size = 0;
  uint64_t dictionaries_trained = 0;
  double ratio() const {
    return raw_bytes == 0 ? 0.0
                          : static_cast<double>(stored_bytes) / static_cast<double>(raw_bytes);
  }
};

/// Progress of a compaction job.
struct compaction_progress {
  uint64_t bytes_done = 0;  ///< input segment bytes processed
  uint64_t bytes_total = 0; ///< input segment bytes planned
  uint64_t bytes_written = 0;
  uint64_t entries_moved = 0;
  uint32_t segments_done = 0;
  uint32_t segments_total = 0;
  bool done = false;
};

/// What enforce_retention() removed.
struct retention_report {
  uint64_t segments_dropped = 0;
  uint64_t entries_dropped = 0;
  uint64_t bytes_freed = 0;
};

/// Called by compaction after each block of input with the bytes just read;
/// it may sleep to hold a rate (the compactor actor passes a token bucket).
using throttle_hook = std::function<void(uint64_t bytes)>;

class archive final : public tier {
public:
  /// Opens (creating if needed) the archive at cfg.path. Orphan files of an
  /// interrupted compaction are removed, torn tails truncated.
  static result<std::unique_ptr<archive>> open(archive_config cfg, const clock& clk);
  ~archive() override; // flushes the pending block

  // -- tier interface ---------------------------------------------------------

  const char* name() const override { return "l4"; }
  result<std::optional<entry>> get(std::string_view key, uint64_t now_ms,
                                   bool touch = true) override;
  status put(entry e, uint64_t now_ms) override;
  result<bool> erase(std::string_view key) override;
  size_t sweep_expired(uint64_t now_ms, size_t budget) override;
  status clear() override;
  tier_stats stats() const override;

  // -- last-writer-wins and iteration (replication, anti-entropy, SCAN) -------

  /// Stores `e` only if its version is newer than the version the archive
  /// holds for its key (pending block or index); returns whether it did.
  /// The archive holds no tombstones (L3 keeps them, and leaves a tombstone
  /// "floor" for each entry it demotes in cluster mode, see tiers/l3_lmdb.hpp),
  /// so a tombstone is refused with invalid_argument.
  result<bool> apply(entry e, uint64_t now_ms);
  /// The version held for `key` (expired entries included), from the index
  /// alone: no block is read. nullopt when the key is not archived.
  result<std::optional<version>> held_version(std::string_view key) override;

  /// One archived key as the iterator reports it.
  struct key_info {
    std::string key;
    kura::version ver;
    uint64_t expiry_ms = 0;
    uint8_t flags = 0;
    /// The value's bytes as the record stores them (compressed or sealed
    /// values: their stored size), without reading the record.
    uint64_t value_bytes = 0;
  };
  /// The L4 key iterator: up to `max` keys after `after` (empty = from the
  /// start), in index order, to `f`. Index order is byte order of the key for
  /// keys up to 400 bytes, then the longer keys in the order of their hash.
  /// Returns the key to resume after, or nullopt at the end. Bounded work per
  /// call: one read transaction over `max` index rows (a key over 400 bytes
  /// costs one block read to recover it). The pending block is committed
  /// first, so every put before the call is seen. Expired entries are
  /// included (their version still matters to anti-entropy).
  result<std::optional<std::string>> scan_keys(std::string_view after, size_t max,
                                               const std::function<void(const key_info&)>& f);

  // -- durability -------------------------------------------------------------

  /// Commits the pending block now (no-op when empty).
  status flush() override;
  /// Commits the pending block if it is older than flush_max_ms.
  status maybe_flush(uint64_t now_ms) override;

  // -- retention ----------------------------------------------------------------

  /// Drops segments past ttl_days, then oldest segments while over max_bytes.
  result<retention_report> enforce_retention(uint64_t now_ms);

  // -- compaction -----------------------------------------------------------------

  /// Plans a job over sealed segments with live fraction < threshold (negative:
  /// the configured one). Fails if a job is running. progress.done is true when
  /// there is nothing to do.
  result<compaction_progress> begin_compaction(double threshold = -1.0);
  /// Processes about `budget_bytes` of input (at least one block). Call until
  /// done. Each finished input segment is switched over crash-safely.
  result<compaction_progress> compaction_step(uint64_t budget_bytes);
  /// Abandons the job (finished segments stay compacted, the rest untouched).
  void abort_compaction();
  /// begin + steps until done.
  result<compaction_progress> compact(double threshold = -1.0);
  /// Installs the throttle called during compaction (empty = none).
  void set_throttle(throttle_hook hook);

  // -- introspection ---------------------------------------------------------------

  archive_info inspect() const;
  const archive_config& config() const;

  // -- encryption at rest ----------------------------------------------------------------

  /// Whether blocks are sealed (a keyring was configured at open).
  bool encrypted() const;
  /// Key rotation: segments started from now on (and compaction output) are
  /// sealed with `keys`' active key; the active segment is sealed (closed) so
  /// the next block starts a new segment. `keys` must open this archive
  /// (errc::bad_key otherwise, nothing changes).
  status rotate_keys(std::shared_ptr<const crypto::keyring> keys);
  /// Plans a compaction of every sealed segment whose key id is not the
  /// active one (re-encryption); drive it with compaction_step() as any job.
  /// When it finishes, drop_old_secrets() releases the old keys.
  result<compaction_progress> begin_reseal();
  /// After a re-seal: drops the store secret's copies under keys no segment
  /// uses any more; returns the key ids still needed.
  result<std::vector<uint32_t>> drop_old_secrets();

  // -- erasure (KURA.ERASE, node/erase.hpp) ------------------------------------------

  /// Plans the compaction an erasure needs, after the erased keys were
  /// erase()d from the index: every sealed segment that holds dead records
  /// (the erased ones among them), the active segment too when it does. The
  /// dictionary training samples of erased keys (`erased` says which) are
  /// dropped; with `retire_dictionaries` (or when a sample was dropped) no
  /// dictionary is current any more and every segment compressed with one is
  /// rewritten too, so that no dictionary trained from an erased value
  /// survives (their files go once no segment uses them; new dictionaries are
  /// trained from the remaining samples later). Drive it with
  /// compaction_step(); then call compact_index(). Fails while a job runs or
  /// a dictionary is being trained.
  result<compaction_progress>
  begin_erase_rewrite(const std::function<bool(std::string_view)>& erased,
                      bool retire_dictionaries);
  /// Rewrites the index (index/data.mdb) as a rebuilt LMDB copy, so that
  /// the keys of erased index rows leave the file (LMDB keeps deleted bytes
  /// in free pages, page gaps and branch separators). Fails while a job runs.
  status compact_index();

  // -- dictionaries -------------------------------------------------------------------

  /// Trains a dictionary from the sampled recent values now and makes it current
  /// (used by segments started from now on). Returns its id.
  result<uint32_t> train_dictionary_now();

private:
  struct impl;
  explicit archive(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// The factory the shared tier conformance suite calls.
inline result<std::unique_ptr<archive>> open(archive_config cfg, const clock& clk) {
  return archive::open(std::move(cfg), clk);
}

} // namespace kura::archive
