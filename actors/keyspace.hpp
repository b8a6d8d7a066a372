// The keyspace of one node as the RESP front end sees it: the memory shards
// (L1+L2 each, split by key hash), a presence filter for L3, and the overlay
// of L3 answers a waiting command runs against.
//
// Every write lands in its memory shard and is handed to the `l3_port`
// (write-behind: the port batches and ships it to the L3 actor). L3 holds every
// live entry, memory holds the hot ones. A key that memory does not hold may
// still live in L3: the caller asks L3 for it (one request per command, see
// command_table::keys_to_fetch), stages the answers with `set_overlay`, runs
// the command, then `promote`s what L3 returned.
//
// The presence filter is a Bloom filter of every key ever written to L3 (plus
// the keys L3 held at start-up). "Not in the filter" means "not in L3", so a
// miss on a key that was never written needs no round trip to the L3 actor;
// deletes leave false positives, which only cost a round trip.
//
// Promotion guard: an L3 answer can be older than a write made while the
// lookup was in flight. Writes made while lookups are outstanding record a
// sequence number; `promote` skips keys written after the lookup started.
// No CAF in this file: the broker code around it lives in store.hpp.
// Thread safety: not thread-safe. In kura-node it is only touched by the
// middleman's multiplexer thread (the store broker and the RESP broker).
#pragma once

#include "actors/predictor_tap.hpp"
#include "predictor/ttl_rules.hpp"
#include "tiers/clock.hpp"
#include "tiers/entry.hpp"
#include "tiers/l3_lmdb.hpp"
#include "tiers/memory_cache.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kura::actors {

/// Where the keyspace sends its write-behind traffic (the L3 actor's mailbox,
/// through a batching sender). Implementations must keep the order of calls.
class l3_port {
public:
  virtual ~l3_port() = default;
  virtual void write(const entry& e) = 0;
  /// A put whose value is shared instead of copied (`meta.value` is empty):
  /// the port keeps `value` alive as long as it needs it. Returns the
  /// write-behind batch that carries it (see keyspace::release_large). The
  /// default copies it into an entry and calls write().
  virtual uint64_t write_shared(const entry& meta, shared_bytes value) {
    entry e = meta;
    e.value.assign(value.view());
    write(e);
    return 0;
  }
  virtual void erase(std::string_view key) = 0;
  virtual void clear() = 0;
};

struct keyspace_config {
  size_t shards = 4;
  uint64_t memory_bytes = 256ull << 20; ///< all shards together
  limits lim;
  uint32_t node_id = 1;
  uint64_t filter_bits = 1ull << 25; ///< L3 presence filter size
  /// kura.retention.max-age (actors/retention.hpp): every write expires at
  /// most this long after it was written, and an entry older than this is
  /// never served (0 = off).
  uint64_t max_age_ms = 0;
  /// kura.security.sensitive-patterns: keys matching one of these globs
  /// expire at most sensitive_max_ttl_ms after each write (0 = no cap), and
  /// expire_sensitive() reports them when they expire (tracking clients are
  /// invalidated).
  std::vector<std::string> sensitive_patterns;
  uint64_t sensitive_max_ttl_ms = 0;
  /// Lazy expiry reaches L3: a read that finds a key expired (in memory or
  /// in L3's answer) also erases L3's copy, as Redis deletes a key it finds
  /// expired (DBSIZE, SCAN and KEYS stop counting it at once). Off for a
  /// scratch keyspace whose deletes would be replicated (cluster_exec).
  bool lazy_expire_below = true;
  /// kura.memory.max-value-bytes: with L3, a value of this size or more is
  /// not copied into the memory shards (CacheLib's largest-item rule): the
  /// keyspace holds the written buffer by reference, shared with the L3 port
  /// (write_shared), until L3 has applied it, and L3 serves it after that.
  /// 0 = every value goes into memory (also the rule without L3).
  uint64_t memory_max_value_bytes = 0;
  /// What L3 can hold at all (l3_lmdb::fit; spawn_store sets it): with L3, a
  /// write L3 would refuse (larger than its whole budget) is refused at once
  /// instead of being acknowledged and then lost. Budget 0: no check.
  kura::l3_fit l3_sizing;
};

/// Set on staged entries that L4 (the archive) answered; never stored
/// (finish_lookup clears it when it promotes the entry).
constexpr uint8_t from_archive_flag = 1u << 7;
/// A write() flag: the expiry is one the client has just asked for (SET EX/PX,
/// SETEX ...), not one carried over (INCR, APPEND, KEEPTTL): the predictor's
/// TTL rules may adjust it. Never stored.
constexpr uint8_t asked_ttl_flag = 1u << 6;

/// L3 answers for the keys of one waiting command: key -> entry or nullopt.
using staged_entries = std::unordered_map<std::string, std::optional<entry>>;

class keyspace {
public:
  /// `l3` may be null: then memory is all there is (L3 off).
  keyspace(keyspace_config cfg, const kura::clock& clk, l3_port* l3);
  keyspace(const keyspace&) = delete; // the shards call back into this object
  keyspace& operator=(const keyspace&) = delete;

  const keyspace_config& config() const noexcept { return cfg_; }
  const kura::clock& clock() const noexcept { return clk_; }
  /// The wall clock (ms) as the keyspace's operations read it: the reading
  /// pinned by pin_now while a command runs (command_table::run: one reading
  /// for every command of a pipeline within 100 µs, so an expiry is seen at
  /// most that late), else the clock itself.
  uint64_t now_ms() const { return pinned_ms_ != 0 ? pinned_ms_ : clk_.now_ms(); }
  /// Pins now_ms() to `ms` (0: the clock again); returns the previous pin.
  uint64_t pin_now(uint64_t ms) noexcept {
    uint64_t was = pinned_ms_;
    pinned_ms_ = ms;
    return was;
  }
  bool has_l3() const noexcept { return l3_ != nullptr; }
  /// Reports reads and writes to the predictor's tap (nullptr: none).
  void set_tap(predictor_tap* t) noexcept { tap_ = t; }
  /// The predictor's TTL rules (kura.prewarm.adjust-ttl), applied to writes
  /// that carry a TTL (nullptr: none). The tap still sees the asked TTL.
  void set_ttl_rules(std::shared_ptr<const predictor::ttl_rules> r) noexcept {
    ttl_rules_ = std::move(r);
  }
  /// Writes whose TTL the rules lengthened / shortened.
  uint64_t ttl_longer() const noexcept { return ttl_longer_; }
  uint64_t ttl_shorter() const noexcept { return ttl_shorter_; }
  /// New writes the rules' tier choice sent to L3 only (kura.prewarm.tier-choice).
  uint64_t tier_l3_only() const noexcept { return tier_l3_only_; }

  // -- memory shards -------------------------------------------------------------

  size_t shard_count() const noexcept { return shards_.size(); }
  size_t shard_of(std::string_view key) const noexcept;
  memory_cache& shard(size_t i) { return *shards_[i]; }
  memory_cache& shard_for(std::string_view key) { return *shards_[shard_of(key)]; }

  // -- L3 presence filter ------------------------------------------------------------

  /// False when L3 is off or the key was certainly never written to L3.
  bool maybe_in_l3(std::string_view key) const noexcept;
  /// Records that L3 holds (or will hold) `key`.
  void note_in_l3(std::string_view key) noexcept;
  /// A hint that `keys` are about to be read (a pipeline of commands):
  /// starts loading what their lookups will touch in the memory shards
  /// (memory_cache::prefetch) and, for keys memory certainly lacks, the
  /// presence filter's words. No observable effect. Sets resident[i] (when
  /// given) to whether memory certainly holds keys[i]: true stays true while
  /// removals() returns what it returned then.
  void prefetch(const std::string_view* keys, size_t n, bool* resident = nullptr) const;
  /// Nodes the memory shards removed since start (memory_cache::removals).
  uint64_t removals() const noexcept;
  /// Makes every key "maybe in L3" (L4 holds keys the filter cannot list).
  void saturate_filter() noexcept;
  /// While the filter is loaded in the background (L3's keys arrive through
  /// note_in_l3), every key is "maybe in L3"; end_filter_load() ends that.
  void begin_filter_load() noexcept { filter_loading_ = true; }
  void end_filter_load() noexcept { filter_loading_ = false; }
  bool filter_loading() const noexcept { return filter_loading_; }

  // -- L3 overlay and promotion ------------------------------------------------------

  /// Stages L3 answers for the command about to run (nullptr: none).
  void set_overlay(staged_entries* s) noexcept { overlay_ = s; }
  /// True when memory holds `key` or the overlay has an answer for it.
  bool known(std::string_view key) const;
  /// Starts a lookup: returns its sequence number.
  uint64_t begin_lookup();
  /// Ends a lookup started with begin_lookup.
  void end_lookup();
  /// Puts an L3 answer into memory unless memory already holds the key or the
  /// key was written after lookup `seq` started.
  void promote(entry e, uint64_t seq);
  /// True when `key` was written or erased after lookup `seq` started (its
  /// L3 answer may be stale: look it up again).
  bool touched_after(std::string_view key, uint64_t seq) const;
  /// True when a FLUSHALL happened after lookup `seq` started (its answers are stale).
  bool stale(uint64_t seq) const noexcept { return seq < last_clear_seq_; }

  // -- data operations (memory + overlay; writes go through to L3) --------------------

  /// Calls f(std::string_view value, uint64_t expiry_ms) when `key` is live.
  template <class F>
  bool read(std::string_view key, F&& f) {
    auto now = now_ms();
    auto& sh = shard_for(key);
    bool hit = sh.visit(key, now, [&](const memory_cache::entry_view& v) {
      if (tap_) {
        tap_->on_read(key, now, v.l2 ? tap_tier::l2 : tap_tier::l1, v.value.size());
        if (probe_) // (open_read_probe: only with a tap)
          probe_ |= v.l2 ? probe_l2 : probe_l1;
      }
      f(v.value, v.expiry_ms);
    });
    if (hit)
      return true;
    if (auto* b = large_entry(key, now)) {
      if (tap_)
        tap_->on_read(key, now, tap_tier::l3, b->value.size());
      f(b->value.view(), b->expiry_ms);
      return true;
    }
    if (auto* e = overlay_entry(key, now)) {
      if (tap_)
        tap_read_below(key, now, *e);
      f(std::string_view{e->value}, e->expiry_ms);
      return true;
    }
    drop_expired_below(key, now);
    if (tap_)
      tap_->on_read(key, now, tap_tier::miss, 0);
    return false;
  }
  /// What `view` shows of a live key.
  struct key_view {
    std::string_view value;
    uint64_t expiry_ms;
    kura::version ver;
    uint8_t flags; ///< entry_flags (hash: the value is a hash encoding)
  };
  /// Calls f(const key_view&) when `key` is live.
  template <class F>
  bool view(std::string_view key, F&& f) {
    auto now = now_ms();
    auto& sh = shard_for(key);
    bool hit = sh.visit(key, now, [&](const memory_cache::entry_view& v) {
      if (tap_) {
        tap_->on_read(key, now, v.l2 ? tap_tier::l2 : tap_tier::l1, v.value.size());
        if (probe_) // (open_read_probe: only with a tap)
          probe_ |= v.l2 ? probe_l2 : probe_l1;
      }
      f(key_view{v.value, v.expiry_ms, v.ver, v.flags});
    });
    if (hit)
      return true;
    if (auto* b = large_entry(key, now)) {
      if (tap_)
        tap_->on_read(key, now, tap_tier::l3, b->value.size());
      f(key_view{b->value.view(), b->expiry_ms, b->ver, b->flags});
      return true;
    }
    if (auto* e = overlay_entry(key, now)) {
      if (tap_)
        tap_read_below(key, now, *e);
      f(key_view{e->value, e->expiry_ms, e->ver, e->flags});
      return true;
    }
    drop_expired_below(key, now);
    if (tap_)
      tap_->on_read(key, now, tap_tier::miss, 0);
    return false;
  }
  /// Copy of a live entry.
  std::optional<entry> get(std::string_view key);
  bool exists(std::string_view key);
  /// Whether write() takes a value of `value_bytes` for `key`: the limits,
  /// and with L3 its whole budget (keyspace_config::l3_sizing), without L3 the
  /// capacity of the key's memory shard. ok, or the error write() returns.
  /// A command that writes several keys (MSET) checks every one first, so
  /// that a refusal changes nothing.
  status admit(std::string_view key, size_t value_bytes) const;
  /// Inserts or replaces; key and value are checked by admit() first (a
  /// refused write leaves the key's older value as it was).
  /// `flags`: entry_flags::hash for a hash value, 0 for a string.
  status write(std::string_view key, std::string value, uint64_t expiry_ms, uint8_t flags = 0);
  /// write() of a command argument: a large value (memory_max_value_bytes,
  /// with L3) that lies in the request buffer named by set_input takes that
  /// buffer over instead of copying 64 MiB on the serving thread; anything
  /// else is copied as write() does.
  status write_arg(std::string_view key, std::string_view value, uint64_t expiry_ms,
                   uint8_t flags = 0);
  /// The connection's input buffer while its command runs (nullptr: none).
  /// write_arg may move it out (then *in is left empty): take_input() then
  /// returns the buffer, which the caller keeps the rest of its bytes from.
  void set_input(std::string* in) noexcept { input_ = in; }
  /// The input buffer write_arg took over since set_input (null: none).
  std::shared_ptr<const std::string> take_input() noexcept { return std::move(taken_input_); }
  /// Removes a key; returns whether it was live.
  bool erase(std::string_view key);
  /// Changes the expiry of a live key (0 = persist); false when absent.
  bool set_expiry(std::string_view key, uint64_t expiry_ms);
  /// "l1", "l2", "l3", "l4" (only in the overlay) or "none".
  const char* tier_of(std::string_view key);
  /// Drops everything in memory and in L3.
  void clear();
  /// Empties the memory shards only (DEBUG RELOAD / LOADAOF): L3 keeps every
  /// entry (the caller hands it the write-behind queue first), so the next
  /// reads load each key again from L3 or L4. False without L3.
  bool drop_memory();

  /// Every live key in memory (for KEYS/SCAN when L3 is off).
  void memory_keys(const std::function<void(std::string_view)>& f);

  /// Active expiry: removes up to `budget` expired entries over all shards.
  size_t sweep(size_t budget);
  /// True when `key` matches kura.security.sensitive-patterns.
  bool sensitive(std::string_view key) const;
  /// Sensitive keys whose expiry (as written) is due: calls f(key) for each
  /// and forgets them (a key written again is reported for each write's
  /// expiry).
  void expire_sensitive(const std::function<void(const std::string&)>& f);

  /// L3 applied every write-behind batch up to `batch`: the large values
  /// (memory_max_value_bytes) those batches carried are L3's to serve now.
  void release_large(uint64_t batch);
  /// Large values held until L3 has them, and their bytes.
  size_t large_count() const noexcept { return large_.size(); }
  uint64_t large_bytes() const noexcept { return large_bytes_; }

  /// Memory stats, all shards summed (l1 and l2 separately).
  tier_stats l1_stats() const;
  tier_stats l2_stats() const;

  // -- read latency by memory tier (the anomaly detector's L1/L2 latency) ------------

  /// Starts noting which memory tier answers the reads of one command. Only
  /// with a tap (the predictor on); otherwise the reads pay nothing.
  void open_read_probe() noexcept { probe_ = tap_ ? probe_open : 0; }
  /// Ends the probe: a command whose reads memory answered has its latency
  /// `ns` recorded under the slower tier that answered (L2 when any read hit
  /// L2, else L1); a command no memory hit answered records nothing.
  void close_read_probe(uint64_t ns) noexcept {
    if (probe_ & probe_l2)
      read_latency_[1].record(ns);
    else if (probe_ & probe_l1)
      read_latency_[0].record(ns);
    probe_ = 0;
  }
  /// Latency of commands answered from L1 (`l2` false) or L2, cumulative.
  const latency_histogram& read_latency(bool l2) const noexcept { return read_latency_[l2]; }

private:
  /// A large value written but not yet applied by L3 (memory_max_value_bytes).
  struct large_value {
    shared_bytes value;
    uint64_t expiry_ms = 0;
    kura::version ver;
    uint8_t flags = 0;
    uint64_t batch = 0; ///< the write-behind batch carrying it
  };
  const large_value* large_entry(std::string_view key, uint64_t now) const {
    if (large_.empty())
      return nullptr;
    auto i = large_.find(std::string{key});
    if (i == large_.end() || (i->second.expiry_ms != 0 && i->second.expiry_ms <= now))
      return nullptr; // expired: L3 drops it (its own expiry)
    return &i->second;
  }
  void forget_large(std::string_view key);
  /// A value of this size goes by reference (write_large), not into memory.
  bool large(size_t value_bytes) const noexcept;
  /// write's and write_arg's work: the value `small` (moved from `owned`
  /// when not null, which then holds it) goes into memory, or else (`big`
  /// set) the large value `big` is held by reference.
  status write_entry(std::string_view key, std::string_view small, std::string* owned,
                     shared_bytes big, uint64_t expiry_ms, uint8_t flags);
  /// write_entry's entry, reused (its strings keep their buffers); a value
  /// buffer above scratch_max_bytes is let go after the write.
  entry scratch_;
  static constexpr size_t scratch_max_bytes = 64 * 1024;
  std::string* input_ = nullptr;
  std::shared_ptr<const std::string> taken_input_;
  const entry* overlay_entry(std::string_view key, uint64_t now) const;
  /// Lazy expiry of L3's copy: erases it when the overlay holds it expired.
  void drop_expired_below(std::string_view key, uint64_t now);
  /// Lazy expiry of a memory entry reaches L3 (memory_cache::on_lazy_expire).
  void expired_in_memory(std::string_view key);
  void tap_read_below(std::string_view key, uint64_t now, const entry& e);
  static constexpr uint8_t probe_open = 1, probe_l1 = 2, probe_l2 = 4;
  uint8_t probe_ = 0;
  latency_histogram read_latency_[2];
  void touch(std::string_view key);
  kura::version next_version(uint64_t now);
  /// `expiry_ms` capped by max_age_ms after `written_ms` (retention).
  uint64_t retention_cap(uint64_t expiry_ms, uint64_t written_ms) const noexcept {
    if (cfg_.max_age_ms == 0)
      return expiry_ms;
    uint64_t cap = written_ms + cfg_.max_age_ms;
    return expiry_ms == 0 || expiry_ms > cap ? cap : expiry_ms;
  }

  keyspace_config cfg_;
  const kura::clock& clk_;
  uint64_t pinned_ms_ = 0; ///< pin_now (0: none)
  l3_port* l3_;
  predictor_tap* tap_ = nullptr;
  /// The expiry of a write asked to expire at `expiry_ms` (> now) under the TTL rules.
  uint64_t adjust_ttl(std::string_view key, uint64_t now, uint64_t expiry_ms);
  std::shared_ptr<const predictor::ttl_rules> ttl_rules_;
  uint64_t ttl_longer_ = 0, ttl_shorter_ = 0, tier_l3_only_ = 0;
  std::vector<std::unique_ptr<memory_cache>> shards_;
  std::vector<uint64_t> filter_;
  bool filter_loading_ = false;
  staged_entries* overlay_ = nullptr;
  uint64_t seq_ = 0;
  size_t lookups_in_flight_ = 0;
  std::unordered_map<std::string, uint64_t> touched_;
  uint64_t last_clear_seq_ = 0;
  uint64_t last_hlc_ = 0;
  std::unordered_map<std::string, large_value> large_;
  uint64_t large_bytes_ = 0;
  size_t sweep_next_ = 0;
  /// (expiry, key) of sensitive writes, earliest first (expire_sensitive).
  std::priority_queue<std::pair<uint64_t, std::string>,
                      std::vector<std::pair<uint64_t, std::string>>, std::greater<>>
      sensitive_due_;
};

/// Glob match with Redis's rules (* ? [a-z] [^x] \x), binary-safe.
bool glob_match(std::string_view pattern, std::string_view s, bool nocase = false);

} // namespace kura::actors
