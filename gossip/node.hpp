// A cluster node's whole distributed state machine: SWIM membership, the ring
// derived from it, the replica store, replication with hinted handoff,
// near-cache invalidation, anti-entropy, handoff of ranges it no longer owns and
// tombstone collection. Like `membership`, it is driven only by
// `on_message(from, bytes, now)` and `tick(now)` (plus the client calls
// `write`/`read`), and everything it wants sent lands in `out()`. Client answers
// arrive through `take_results()`; they may come in the same call (a local hit)
// or in a later one (after acks or a fetch).
// Thread safety: not thread-safe; owned by one actor.
#pragma once

#include "gossip/hints.hpp"
#include "gossip/hlc.hpp"
#include "gossip/invalidation.hpp"
#include "gossip/membership.hpp"
#include "gossip/replication.hpp"
#include "gossip/ring.hpp"
#include "gossip/store.hpp"
#include "gossip/tombstones.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace kura::gossip {

struct node_config {
  membership_config members;
  ring_config ring;
  uint32_t write_acks = 1;   ///< kura.cluster.write-acks (1 = owner only)
  uint64_t retry_ms = 1'000; ///< resend of replicate/invalidate/fetch
  /// A write's replicate messages are resent retry_ms after the write, then
  /// after 2x, 4x, 8x, 16x that (kura-node: its transport is TCP, where a
  /// message to a live connection is not lost, so a resend that is not needed
  /// only adds load to a replica that is slow because it is loaded). Off:
  /// every retry_ms (kura-sim's seeds, whose network drops messages).
  bool retry_backoff = false;
  uint64_t write_timeout_ms = 5'000;       ///< a client write fails after this
  uint64_t read_timeout_ms = 1'000;        ///< per replica tried by a fetch
  uint64_t near_ttl_ms = 60'000;           ///< lifetime of a near-cache copy
  uint64_t tombstone_grace_ms = 3'600'000; ///< minimum tombstone age before collection
  /// Expired values are collected like tombstones (kura-node): an entry whose
  /// absolute expiry passed more than tombstone_grace_ms ago (every replica
  /// expires it at the same moment: the expiry travels with the entry) is
  /// removed once every other replica confirmed holding its version or a
  /// newer one, as a delete's tombstone is. Without it every key ever
  /// written with a TTL leaves a version floor (an L3 record and an index
  /// entry) for ever. The in-memory floors of keys this node no longer holds
  /// (collected, handed off, invalidated near copies) are dropped after the
  /// same grace. Off: kura-sim's seeds.
  bool collect_expired = false;
  size_t max_hints_per_node = 100'000;
  size_t batch = 64; ///< entries per handoff / hint / repair message
  /// Anti-entropy peers per sync interval (0 = every peer sharing ranges).
  size_t ae_peers_per_sync = 0;
  /// Minimum time between two ring rebuilds (0 = rebuild on every view
  /// change). Large clusters set it so a burst of joins costs one rebuild.
  uint64_t ring_settle_ms = 0;
  /// A replica acknowledges a replicated write only once every near-cache
  /// holder of the key acknowledged its invalidation (or was declared dead),
  /// so no node serves a near copy older than a write that returned (kura-node).
  bool ack_after_invalidation = false;
  /// Dynamo's sloppy quorum (kura-node): a write whose replica is suspect
  /// goes, as a hint for that replica, to a live node outside the key's
  /// replicas (the coordinator itself when it is not one); the hint holder's
  /// acknowledgement counts toward write_acks, and it hands the write off when
  /// the replica is alive again. Off: only replicas count (kura-sim's seeds).
  bool sloppy_quorum = false;
  /// A node that joins through seeds (a restart, or a new node) may hold
  /// older versions than the cluster acknowledged, or nothing yet, for the
  /// ranges it replicates. Until one sync interval after it first sees its
  /// peers (and an anti-entropy round with each of them, started then), a
  /// read it serves as a replica also asks the key's other replicas and
  /// serves the newest version (repairing its own copy); reads that arrive
  /// before the join completed wait for it (at most read_timeout_ms).
  /// The same holds for the slots a ring change gives to a node that did
  /// not replicate them (a member declared dead or leaving): until
  /// anti-entropy found them equal on every other replica of them (a sync
  /// interval or more after the change), its reads of them ask every other
  /// replica and serve the newest; hints it holds for keys it now replicates
  /// are applied to its store.
  bool catch_up_reads = false;
  /// Counts failed syncs (counters::sync_failures_*): anti-entropy rounds the
  /// peer did not answer within read_timeout_ms (or whose peer went away),
  /// replicated writes a target did not acknowledge by the write's deadline
  /// (or that went to a target declared dead meanwhile), hint handoffs not
  /// acknowledged by the next handoff step. A peer answers a round whose
  /// root digests are equal (or that its view cannot place) with an empty
  /// ae_keys message, so an unanswered round is one that failed (kura-node;
  /// off in kura-sim, whose traffic stays as it was).
  bool track_sync_failures = false;
  /// Reads fetched from another node ask live replicas before suspect ones,
  /// and a fetch waiting on a peer whose connection dropped
  /// (peer_unreachable) or that turned suspect goes to the next replica at
  /// once instead of after read_timeout_ms (kura-node; off in kura-sim, whose
  /// seeds stay as they are).
  bool prefer_live_replicas = false;
  /// Hedged reads (kura-node): a read fetched from another node that got no
  /// answer within the asked peer's observed p99 fetch time (bounded by
  /// hedge_min_ms and hedge_max_ms; hedge_max_ms before the peer answered
  /// enough fetches) also asks the next replica, without waiting for the
  /// peer to turn suspect or for read_timeout_ms; the first answer that is
  /// no older than what this node acknowledged is served. 0 = no hedging
  /// (kura-sim, whose seeds stay as they are).
  uint64_t hedge_max_ms = 0;
  uint64_t hedge_min_ms = 10;
  /// Range streaming (kura-node): after a ring change a node pulls the ranges
  /// it now replicates from their old holders (stream_req / stream_batch),
  /// paced by `stream_rate`; on its first join with an empty store (a new
  /// node, a restart with an empty disk) it pulls every range it replicates.
  /// While a range streams in, its reads also ask the source, and
  /// anti-entropy leaves it alone. A graceful leave pushes every key held
  /// to its new replicas (handoff) at the same pace. Off: kura-sim's seeds.
  bool streaming = false;
  uint64_t stream_rate = 0;              ///< bytes/s pulled (and pushed on leave); 0 = unlimited
  size_t stream_batch_bytes = 256 << 10; ///< key + value bytes per stream batch
  size_t stream_parallel = 2;            ///< stream requests in flight
};

/// Progress of the data this node moves (kura members, kura status, metrics).
struct move_progress {
  bool active = false;   ///< ranges still streaming in, or a leave handing off
  bool leaving = false;  ///< a graceful leave (or a drain) is handing this node's keys off
  bool draining = false; ///< the hand-off is a drain (the node stays a member)
  uint64_t ranges = 0;   ///< ranges of the current operation
  uint64_t ranges_done = 0;
  uint64_t ranges_started = 0;  ///< ranges whose holder answered (and counted its keys)
  uint64_t keys = 0, bytes = 0; ///< moved in the current operation (received, or handed off)
  uint64_t keys_expected = 0;   ///< keys the operation moves (as the holders counted them)
  uint64_t started_ms = 0;      ///< 0: nothing moved yet
  uint64_t finished_ms = 0;     ///< 0: still running
};

/// Why a read could not be answered (client_result::ok false).
enum class read_failure : uint8_t {
  none,
  /// No replica of the key answered within read_timeout_ms (frozen,
  /// overloaded or unreachable): Redis Cluster's CLUSTERDOWN, not nil.
  no_answer,
  /// Replicas answered "not found" but none could vouch for it: the ring is
  /// moving (the asked nodes do not replicate the key in their ring, or its
  /// slot is still coming to them): Redis Cluster's TRYAGAIN, not nil.
  unsettled,
  /// This node gathers (catching up: paused, restarted, a slot it just
  /// gained) and fewer of the key's other replicas answered than a read
  /// quorum (client_result::unconfirmed) while one of them is not known dead:
  /// its copy, or the answers, may be older than an acknowledged write.
  /// TRYAGAIN, not a possibly stale value.
  unconfirmed,
};

/// The answer to a client call.
struct client_result {
  uint64_t req = 0;
  bool write = false;
  /// write: acknowledged by write_acks replicas; read: answered (a value, or
  /// "not found" that a replica of the key vouched for; else `failure`)
  bool ok = false;
  bool found = false; ///< read: a live (non-tombstone) value was found
  entry e;            ///< write: the entry as versioned; read: the value served
  read_failure failure = read_failure::none; ///< read, !ok: why
  /// read, a gathering one (catch-up): fewer of the other replicas answered
  /// by the deadline than a read quorum, min(RF - write_acks + 1, the replicas asked), so what is
  /// served (the newest of this node's own copy and the answers) may be older than the newest
  /// acknowledged version. A read-modify-write must not build on it.
  bool unconfirmed = false;
};

class node {
public:
  /// `store` is what the node replicates into: the real tiers in kura-node
  /// (gossip/tier_store.hpp); nullptr = an in-memory memory_store.
  node(node_config cfg, uint64_t rng_seed, std::unique_ptr<replica_store> store = nullptr);

  /// Starts membership (joining through the seeds) at `now`.
  void start(uint64_t now, uint64_t incarnation = 0);
  /// Joins through `seed` after starting alone (membership::join_via).
  void join_via(node_id seed, uint64_t now) {
    members_.join_via(seed, now);
    if (cfg_.catch_up_reads) {
      catch_up_ = true;
      catch_up_until_ = 0;
    }
  }
  /// Graceful leave: membership gossips `left`, owned data is handed off.
  void leave(uint64_t now);
  /// A graceful leave handed off every key it held (or has no one to give
  /// them to); the process may exit.
  bool leave_done() const { return left_ && leave_done_; }
  /// kura drain (on) / undrain (off): out of placement while alive; a drain
  /// hands every key held off to its replicas like a leave, an undrain pulls
  /// the node's ranges back like a join.
  void drain(bool on, uint64_t now);
  bool drained() const { return draining_; }
  /// kura rebalance: this node's token count in the ring (0 = default),
  /// gossiped (membership::set_tokens); the ring changes as for a join.
  void set_tokens(uint32_t tokens, uint64_t now);
  uint32_t tokens() const { return membership::addr_tokens(members_.config().addr); }
  /// What this node is moving now (or moved last).
  const move_progress& progress() const { return move_; }
  /// The member slot `slot` is still streaming in from (no_node: this node
  /// is not receiving it); the Redis Cluster face answers -ASK from it.
  /// A slot whose stream waits for a live holder (parked) answers no_node:
  /// there is nobody to redirect to.
  node_id streaming_from(uint32_t slot) const {
    node_id n = slot < incoming_.size() ? incoming_[slot] : no_node;
    return n != no_node && members_.is_alive(n) ? n : no_node;
  }

  status on_message(node_id from, std::string_view bytes, uint64_t now);
  void tick(uint64_t now);
  /// The transport lost its connection to `peer`: suspect it at once.
  void peer_unreachable(node_id peer, uint64_t now);

  // -- client calls ----------------------------------------------------------

  /// Coordinates a write (or a delete when `tombstone`) of `key`; the answer
  /// comes through take_results() with the same request id. `flags`: the
  /// value's type bits (entry_flags::hash), 0 for a string.
  uint64_t write(std::string_view key, std::string_view value, uint64_t now, bool tombstone = false,
                 uint64_t expiry_ms = 0, uint8_t flags = 0);
  /// Reads `key`: locally when this node is a replica or holds a fresh near
  /// copy, otherwise from the owner (then the other replicas).
  uint64_t read(const std::string& key, uint64_t now);
  std::vector<client_result> take_results();
  /// take_results() into `into` (cleared first), whose storage the node
  /// keeps for the next results: a caller that hands the same vector back
  /// every time grows none of them again (a batch of acks completes many).
  void take_results(std::vector<client_result>& into) {
    into.clear();
    into.swap(results_);
  }
  /// A read answered from this node's own copy at once: `found` a live value,
  /// `e` a view of what the store holds (valid until the store is next used),
  /// or, when it holds nothing to serve, only the key (a view of read_here's
  /// `key`).
  struct local_answer {
    bool found = false;
    entry_ref e;
  };
  /// read() when it would answer from this node's own copy at once, without
  /// a message, a request id or a copy of the value: this node replicates
  /// `key`, is not catching up, the key's slot is neither streaming in nor
  /// gained and unsynced, no floor stands above its copy and no near copy
  /// competes with it. nullopt in every other case (nothing was read: call
  /// read(), which asks the others). The same answer, counters and notes
  /// as read() (dispatch_read + serve_read); the hot path of GET on a
  /// cluster node (node/cluster_routing.hpp get_here).
  std::optional<local_answer> read_here(std::string_view key, uint64_t now, entry& scratch);

  // -- inspection --------------------------------------------------------------

  node_id id() const { return cfg_.members.self; }
  outbox& out() { return out_; }
  const membership& members() const { return members_; }
  const ring& current_ring() const { return ring_; }
  const replica_store& store() const { return *store_; }
  /// Direct store access for tests and divergence injection in the simulator.
  replica_store& store_for_test() { return *store_; }
  /// Settings read at each use (not those applied at start: membership, ring).
  node_config& config_for_test() { return cfg_; }
  /// The store, for its owner's timers (group commit, sweeps, flush).
  replica_store& store_for_maintenance() { return *store_; }
  hlc& clock() { return hlc_; }
  const hint_store& hints() const { return hints_; }
  /// The ranges the last ring change asked to stream (for progress reporting).
  const std::vector<transfer>& last_plan() const { return last_plan_; }
  /// True while a read of `key` served here asks the key's other replicas
  /// first (catch-up after a restart or pause, a slot gained in a ring
  /// change or still streaming in): what this node's own copy says may be
  /// older than what the cluster acknowledged. Notes the
  /// time as a read does, so the first command after a pause (SIGSTOP)
  /// already sees it.
  bool reads_catch_up(const std::string& key, uint64_t now);
  /// The lowest version this node may still serve for `key`: what its store
  /// holds, or the newest version it acknowledged in an invalidation or held
  /// before the key left its store (handoff, tombstone collection).
  version floor(const std::string& key) const;
  /// A command this node forwarded to `key`'s owner wrote version `v` there
  /// (the owner's reply said so): reads here never serve an older version
  /// from now on (read-your-writes through a forwarding node). The floor is
  /// raised, an older near copy dropped, and a replica whose own copy is
  /// older asks the other replicas instead of serving it.
  void written_elsewhere(const std::string& key, const version& v);
  /// What this node knows of `key`, no network (KURA.HELD, test diagnostics).
  struct key_state {
    std::optional<entry> held;              ///< the store's record (tombstones included)
    std::optional<version> indexed;         ///< the store's index version (no disk read)
    version floor;                          ///< floor(key)
    bool replica = false;                   ///< this node replicates it in its ring
    bool catching_up = false;               ///< reads of it gather (reads_catch_up)
    bool gained = false, streaming = false; ///< its slot is gained / streaming in
    size_t hints = 0;                       ///< hint-queue copies of it held here
    bool near = false;                      ///< a near copy is kept
    std::string where;                      ///< replica_store::where
  };
  key_state inspect(const std::string& key, uint64_t now);

  // -- erasure (KURA.ERASE on a cluster; node/cluster_erase.hpp drives it) -----

  /// What one erasure step changed on this node.
  struct erase_counts {
    uint64_t store = 0; ///< store records replaced (purge) or removed (collect)
    uint64_t hints = 0; ///< hint-queue entries replaced (purge) or dropped (collect)
    uint64_t near = 0;  ///< near-cache copies dropped
  };
  /// Purge: every copy of `key` older than `v` held here (store, the hint
  /// queues of every target, the near copy) is replaced by the tombstone of
  /// version `v`, the erasure's own version (a replica of the key that holds
  /// nothing stores the tombstone too). Last-writer-wins then refuses any
  /// older copy that arrives later (a hint, a stream batch, a repair).
  erase_counts erase_purge(const std::string& key, const version& v, uint64_t now);
  /// Collect, once every member purged: whatever the store and the hint
  /// queues hold of `key` at `v` or older (the tombstone, or an older copy
  /// that arrived after the purge) leaves them; for tombstone_grace_ms
  /// copies of `key` at `v` or older are refused (in memory only: nothing of
  /// the key stays in a file).
  erase_counts erase_collect(const std::string& key, const version& v, uint64_t now);
  /// Keys held here (store, hint queues, near copies) that `match` accepts.
  std::vector<std::string>
  erase_candidates(const std::function<bool(std::string_view)>& match) const;

  struct counters {
    uint64_t writes = 0, reads = 0, local_reads = 0, fetches = 0;
    uint64_t replicated = 0, hints_stored = 0, hints_delivered = 0;
    /// replicate (or hint) messages sent again because no ack came in time.
    uint64_t write_resends = 0;
    uint64_t invalidations_sent = 0, ae_rounds = 0, ae_repaired = 0, handed_off = 0;
    uint64_t tombstones_collected = 0, decode_errors = 0;
    uint64_t invalidations_acked = 0; ///< holders that confirmed dropping a near copy
    /// Entries (and their key + value bytes) shipped to peers by anti-entropy
    /// repairs and handoff (streaming of ranges on join, leave and repair).
    uint64_t streamed_entries = 0, streamed_bytes = 0;
    /// Entries (key + value bytes) received by range streaming.
    uint64_t stream_received_entries = 0, stream_received_bytes = 0;
    /// Envelope bytes of the anti-entropy messages this node sent (digests,
    /// key lists, repairs): what a sync costs on the wire.
    uint64_t ae_bytes = 0;
    /// Catch-ups after a pause or a refuted suspicion (reads ask every
    /// replica for a sync interval; near copies dropped; anti-entropy).
    uint64_t catch_ups = 0;
    /// Anti-entropy steps dropped because the sender is not in our ring.
    uint64_t ae_view_mismatches = 0;
    /// Reads that also asked the next replica because the one asked had
    /// not answered within its hedge delay (node_config::hedge_max_ms).
    uint64_t hedged_reads = 0;
    /// Streams that went on from another holder (their source died, left
    /// or stopped answering), and streams given up to anti-entropy (no live
    /// holder for stream_give_up_ms).
    uint64_t streams_resourced = 0, streams_given_up = 0;
    /// Streams ended by a ring change that gives this node no slot of their
    /// range any more (drop_foreign_streams: planned during a view flap).
    uint64_t streams_dropped = 0;
    /// Reads answered with an error instead of nil: no replica answered in
    /// time, or none could vouch that the key is absent (client_result::failure).
    uint64_t reads_failed_no_answer = 0, reads_failed_unsettled = 0;
    /// ... or, catching up, too few replicas answered to confirm the newest
    /// version (read_failure::unconfirmed).
    uint64_t reads_failed_unconfirmed = 0;
    /// Failed syncs (node_config::track_sync_failures): anti-entropy rounds,
    /// replicated-write deliveries and hint handoffs.
    uint64_t sync_failures_ae = 0, sync_failures_replication = 0, sync_failures_hint = 0;
  };
  const counters& stats() const { return stats_; }

private:
  void on_view_change(uint64_t now, bool from_tick);
  void handle(node_id from, message& m, uint64_t now); ///< (a replicated entry moves out of m)
  bool apply_entry(const entry& e, uint64_t now);      // LWW + invalidation + hlc
  void note_time(uint64_t now);      // detects a pause (SIGSTOP) since we last ran
  void catch_up_again(uint64_t now); // catch-up reads + anti-entropy, near copies dropped
  void send(node_id to, const message& m);
  void count_streamed(const std::vector<wire_entry>& es);
  void raise_floor(const std::string& key, const version& v);
  void serve_read(uint64_t req, const std::string& key, const entry* fetched, uint64_t now);
  /// False when this node's "not found" for `key` proves nothing: in its
  /// ring it does not replicate the key, or the key's slot is still coming
  /// to it (gained in a ring change and not yet in sync, or streaming in).
  bool vouches_for(const std::string& key) const;
  /// A read that got no value: "not found" when a replica vouched for it
  /// (or `vouched`), else a failed read (never nil for a key that may exist).
  void serve_unfound(uint64_t req, const std::string& key, bool vouched, bool unsettled,
                     uint64_t now);
  void finish_write(pending_writes::write& w, bool ok);
  void start_anti_entropy(node_id peer);
  void sync_step(uint64_t now);
  void handoff_step(uint64_t now);
  void tombstone_step(uint64_t now);
  bool shared(node_id peer, uint64_t pos) const;
  /// The slots this node and `peer` both replicate (cached per ring).
  const std::vector<bool>& shared_mask(node_id peer);
  void send_fetch(uint64_t req, uint64_t now);
  void dispatch_read(uint64_t rid, const std::string& key, uint64_t now);
  bool catching_up(uint64_t now) const;
  // -- slots gained in a ring change (read repair until they are in sync) ------
  /// Marks the slots this node replicates in the new ring and did not in
  /// `before`, and applies the hints it holds for keys it now replicates.
  void note_gained(const ring& before, uint64_t now);
  /// Ends a gained slot's catch-up once every other replica of it was seen
  /// in sync with this node (anti-entropy) a sync interval after the gain;
  /// never while it streams in or one of them is not alive.
  void gained_step(uint64_t now);
  bool gained(uint64_t pos, uint64_t now) const {
    (void)now;
    return !gained_since_.empty() && gained_since_[ring::slot_of(pos)] != 0;
  }

public:
  /// Slots this node replicates whose reads here ask the other replicas
  /// (reads_catch_up): all of them while it catches up (a sync interval
  /// after it joined, stopped standing alone, or resumed from a pause), else
  /// those gained in a ring change and not yet found in sync, or streaming
  /// in. INFO cluster's cluster_slots_gathering, kura_cluster_slots_gathering;
  /// 0: settled.
  size_t gathering_slots(uint64_t now) const;

private:
  /// Anti-entropy step from `from` at `bits`: the children whose digests
  /// equal ours (not in `diff`) are in sync with it now.
  void note_in_sync(node_id from, uint8_t bits, const std::vector<uint16_t>& prefixes,
                    size_t children, const std::vector<size_t>& diff, uint64_t now);
  void finish_gather(uint64_t rid, uint64_t now);
  // -- range streaming -----------------------------------------------------------
  struct stream_in {
    key_range range;
    node_id from = no_node;
    bool first = true;
    uint64_t after_pos = 0;
    std::string after_key;
    bool in_flight = false;
    uint64_t deadline = 0;
    int failures = 0;
    int resourced = 0;        ///< times the source was replaced by another holder
    uint64_t progress_ms = 0; ///< when it started or last received a batch
  };
  /// A stream with no live holder to pull from waits (parked, its slots
  /// still marked incoming) this long without progress before it is given
  /// up to anti-entropy.
  static constexpr uint64_t stream_give_up_ms = 60'000;
  void add_stream(const key_range& r, node_id from, uint64_t now);
  void stream_step(uint64_t now);
  void stream_finished(uint64_t sid, uint64_t now);
  /// On every ring change: ends the streams of ranges of which the new ring
  /// gives this node no slot (a flap made it plan them; once the view
  /// recovers it would receive keys it does not replicate). A range with at
  /// least one slot of ours keeps streaming.
  void drop_foreign_streams(uint64_t now);
  void refresh_incoming();
  void refill_budget(uint64_t now);
  void serve_stream(node_id from, const stream_req_msg& rq);
  void leave_step(uint64_t now);
  void begin_drain(uint64_t now); ///< the drain's hand-off state
  /// The node a slot is streaming in from (no_node: not streaming).
  node_id incoming_from(uint64_t pos) const {
    return incoming_.empty() ? no_node : incoming_[ring::slot_of(pos)];
  }
  std::map<uint64_t, stream_in> streams_;
  std::vector<node_id> incoming_; ///< per slot; empty when nothing streams in
  double budget_ = 0;
  uint64_t budget_ms_ = 0;
  move_progress move_;
  bool first_join_done_ = false;
  bool started_empty_ = false; ///< the store held nothing at start (a new node)
  // graceful leave: a cursor over the store, then handoff_step's retries
  bool leave_done_ = false, leave_pass_done_ = false, draining_ = false;
  uint64_t leave_pos_ = 0;
  std::string leave_key_;
  bool leave_first_ = true;
  uint64_t leave_inflight_ = 0, next_leave_retry_ = 0;
  /// Sloppy quorum: finds a holder for `w`'s copy meant for suspect `target`.
  void recruit_holder(pending_writes::write& w, node_id target, uint64_t now);

  node_config cfg_;
  outbox out_;
  membership members_;
  rng rng_;
  hlc hlc_;
  ring ring_;
  uint64_t ring_view_ = 0;
  uint64_t next_ring_ms_ = 0;
  std::unique_ptr<replica_store> store_;
  std::map<node_id, std::vector<bool>> masks_; // shared_mask cache, cleared per ring
  uint64_t last_seen_ms_ = 0;                  // latest `now` seen (pause detection)
  std::map<node_id, uint64_t> ae_retry_;       // peer -> when to start the round it dropped
  /// Anti-entropy rounds started and not answered yet (track_sync_failures):
  /// peer -> (sid, deadline). One per peer: a round started while one is
  /// open is not tracked.
  std::map<node_id, std::pair<uint64_t, uint64_t>> ae_open_;
  /// A message of round `sid` came from `peer`: its open round is answered.
  void ae_answered(node_id peer, uint64_t sid);
  /// Per hint target, the hints sent at the last handoff step (key, version):
  /// those still held at the next one were not acknowledged in time.
  std::map<node_id, std::set<std::pair<std::string, version>>> hints_sent_;
  pending_writes writes_;
  hint_store hints_;
  invalidation_tracker invalidations_;
  tombstone_tracker tombstones_;
  std::vector<transfer> last_plan_;
  std::vector<client_result> results_;
  uint64_t next_rid_ = 1;
  uint64_t next_sync_ms_ = 0;
  uint64_t next_hint_ms_ = 0;
  size_t ae_cursor_ = 0;
  bool left_ = false;

  struct near_copy {
    entry e;
    uint64_t until = 0;
    /// ack_after_invalidation: replicas that have not registered us as a
    /// holder yet (hold_msg); the copy is served only once this is empty, so
    /// every replica that may acknowledge a write invalidates it first.
    std::vector<node_id> unconfirmed;
    uint64_t hold_sent = 0;
  };
  bool near_usable(const near_copy& c, uint64_t now) const {
    return c.until > now && c.unconfirmed.empty();
  }
  void keep_near(node_id server, const entry& e, uint64_t now);
  std::map<std::string, near_copy, std::less<>> near_; // (by string_view too: read_here)
  std::map<std::string, version, std::less<>> floor_;
  struct pending_read {
    std::string key;
    std::vector<node_id> candidates;
    size_t next = 0;
    uint64_t deadline = 0;
    bool wait_join = false; ///< catch-up: dispatched once membership joined
    /// A catch-up read (this node is a replica): every candidate is asked at
    /// once, each answer repairs our copy, and the newest is served once all
    /// answered (or at the deadline): an acknowledged write is on write_acks
    /// nodes, not necessarily on the first replica that answers.
    bool gather = false;
    std::vector<node_id> answered;
    std::optional<entry> best; ///< the newest version an answer carried
    /// Not gather: the peers asked so far and when (hedged reads ask more
    /// than one); `unusable`: answers without a usable value, plus the asks
    /// given up on (a timeout moved on: only a hedge's asks are waited for,
    /// so without hedging a read behaves as before); when the next replica
    /// is asked if none answered (0: not hedged).
    std::vector<std::pair<node_id, uint64_t>> asked;
    size_t unusable = 0;
    uint64_t hedge_at = 0;
    /// A replica answered "not found" and vouched for it (fetch_reply_msg::
    /// unsure false); `unsettled`: one answered it without vouching.
    bool vouched = false, unsettled = false;
  };
  /// Observed fetch round trips per peer (hedged reads): the last 64.
  struct fetch_times {
    std::array<uint32_t, 64> ms{};
    size_t n = 0;     ///< samples taken (ring position: n % 64)
    uint64_t p99 = 0; ///< of the window, recomputed every 16 samples
  };
  std::unordered_map<node_id, fetch_times> fetch_times_;
  /// When the next replica is asked for a read sent to `peer` now.
  uint64_t hedge_delay(node_id peer) const;
  void note_fetch_time(node_id peer, uint64_t ms);
  /// A non-gather read waits for another answer (an ask is still out).
  bool awaits_more(const pending_read& pr) const;
  /// catch_up_reads: 0 = not joined yet; else reads catch up until then.
  uint64_t catch_up_until_ = 0;
  bool catch_up_ = false;
  /// Per slot: when a ring change gave it to us (0: not gained, or in sync
  /// since); empty when none.
  std::vector<uint64_t> gained_since_;
  /// Per peer, per slot: when anti-entropy last found the slot equal on
  /// both sides (kept only while some slot is gained).
  std::map<node_id, std::vector<uint64_t>> in_sync_;
  uint64_t next_gained_ms_ = 0;
  std::map<uint64_t, pending_read> reads_;
  // replicate acks held back until the key's near holders are invalidated:
  // key -> (coordinator, rid)
  std::map<std::string, std::vector<std::pair<node_id, uint64_t>>> deferred_acks_;
  void release_acks(const std::string& key);
  // handoff: key -> replicas that confirmed holding our version
  std::map<std::string, std::map<node_id, version>> handoff_acks_;
  counters stats_;
  /// erase_collect's floors: key -> (version refused up to, until ms).
  std::map<std::string, std::pair<version, uint64_t>> erased_;
  bool erased_floor(const entry& e, uint64_t now);
};

} // namespace kura::gossip
