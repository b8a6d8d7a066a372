// The cluster coordinator of one kura-node: it runs the gossip core
// (gossip/node.hpp: SWIM, ring, replication with hints, invalidation,
// anti-entropy) on real time and carries its msgpack envelopes between nodes
// as CAF remote messages.
//
//   RESP broker ──direct calls──▶ cluster_core { gossip::node } ◀── coordinator broker
//                                   (same multiplexer thread)          │ (gossip_atom, from, bytes)
//                                                                      ▼ CAF middleman (BASP)
//                                                        other nodes' coordinator brokers
//
// Why a broker: brokers run on the middleman's one multiplexer thread, like
// the RESP broker, so the RESP front end asks the core for placement and
// starts reads and writes with plain calls (no actor hop per command, see
// actors/store.hpp); answers come back through callbacks on the same thread.
//
// Transport. The ops actor published on the cluster port hands out the
// coordinator's handle (coord_atom). A node that wants to talk to a peer
// connects to the peer's cluster port (asynchronously, with a timeout), asks
// for the coordinator and runs a challenge-response handshake:
//   A -> B  (hello_atom, id_A, addr_A, nonce_A)
//   B -> A  (id_B, addr_B, nonce_B, mac_B)    mac_B = HMAC(secret, "B" nonce_A nonce_B id_B id_A)
//   A -> B  (auth_atom, mac_A)                mac_A = HMAC(secret, "A" nonce_B nonce_A id_A id_B)
//   B -> A  ok
// The secret never travels. Only CAF nodes that completed the handshake may
// send (gossip_atom, from, bytes); anything else is logged and dropped. With
// no secret configured the macs are empty and the handshake only exchanges
// ids. Every peer handle is monitored: a connection drop (kill -9 gives an
// RST) makes the peer suspect at once (gossip::node::peer_unreachable); a
// frozen peer is caught by the middleman heartbeat and connection timeout
// that kura-node sets (CAF-0.17.md §4). Every request has a finite timeout.
// Thread safety: cluster_core is touched only on the multiplexer thread (the
// coordinator broker and the RESP broker); talk to the broker with messages.
#pragma once

#include "actors/cluster_wire.hpp"
#include "actors/ring_marks.hpp"
#include "gossip/node.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace kura::actors {

using coord_atom = caf::atom_constant<caf::atom("coord")>;
using hello_atom = caf::atom_constant<caf::atom("hello")>;
using auth_atom = caf::atom_constant<caf::atom("auth")>;
using gossip_atom = caf::atom_constant<caf::atom("gossip")>;
/// (gbatch_atom, from, frames): a peer batch as one buffer (cluster_wire.hpp),
/// sent only to peers that announced cap_framed_batch in the handshake.
using gbatch_atom = caf::atom_constant<caf::atom("gbatch")>;
using members_atom = caf::atom_constant<caf::atom("members")>;
using exec_atom = caf::atom_constant<caf::atom("exec")>;
/// A ring operation of the CLI, through the ops actor:
/// (cop_atom, op, args) -> sealed cluster_op_reply; op: status | ring | join | leave
/// | drain | undrain.
using cop_atom = caf::atom_constant<caf::atom("cop")>;

class cluster_core;

/// Runs a command on this node against its own copy (node/cluster_routing.cpp:
/// the owner's side of read-modify-write commands and the per-node part of
/// keyspace-wide ones); `reply` gets the RESP reply bytes exactly once.
using exec_fn = std::function<void(cluster_core&, std::vector<std::string> args,
                                   std::function<void(std::string)> reply)>;

struct cluster_settings {
  std::string name;               ///< kura.cluster.node-id
  std::string host = "127.0.0.1"; ///< where peers reach our cluster port
  uint16_t port = 0;              ///< our cluster port
  std::string advertise;          ///< host:port peers dial instead (a proxy, NAT); empty: host:port
  std::string resp_addr;       ///< host:port Redis clients reach our RESP port on (gossiped; MOVED)
  bool redirect_moved = false; ///< kura.cluster.redirect=moved (node/cluster_faces.hpp)
  std::vector<std::string> seeds; ///< host:port of seeds' cluster ports
  uint32_t replication_factor = 2;
  uint32_t write_acks = 2;
  std::string secret;                  ///< empty: no challenge
  uint64_t heartbeat_ms = 10'000;      ///< SWIM protocol period
  uint64_t sync_ms = 30'000;           ///< push-pull and anti-entropy period
  uint64_t request_timeout_ms = 2'000; ///< connect, handshake, fetch; writes: 2x
  uint64_t tick_ms = 50;               ///< how often timers run
  bool near_cache = true;
  uint64_t stream_rate = 0;           ///< kura.cluster.stream-rate (bytes/s, 0 = unlimited)
  uint64_t leave_timeout_ms = 60'000; ///< kura.cluster.leave-timeout
  uint64_t hedge_max_ms = 50;         ///< kura.cluster.hedge-delay (0 = no hedged reads)
  /// kura drain's mark and kura rebalance's token count at start (loaded
  /// from marks_dir), persisted there on every change (empty: not persisted).
  ring_marks marks;
  std::string marks_dir;
  exec_fn exec; ///< what runs forwarded commands here (unset: they are refused)
  /// Called once a second on the multiplexer thread (metrics).
  std::function<void(const cluster_core&)> report;
  /// Caps the expiry of every value written here (kura.retention.max-age,
  /// sensitive keys' max TTL): (key, expiry ms or 0, now ms) -> expiry. The
  /// capped expiry travels with the replicated entry. Unset: none.
  std::function<uint64_t(std::string_view, uint64_t, uint64_t)> cap_expiry;
  /// Whether a value of (key, bytes) fits this node's store (L3's whole
  /// budget, l3_fit): a write the store would refuse after its +OK is refused
  /// before it is made, with this status (node/cluster_routing.cpp
  /// `refused_value`). Unset: every value fits.
  std::function<status(std::string_view, size_t)> admit;
  /// Called on every tick once the node runs, after the store's own tick
  /// (kura.retention.max-age's sweep, node/cluster_security.hpp). Unset: none.
  std::function<void(cluster_core&, uint64_t now)> maintain;
  /// A peer the cluster handshake refused (wrong or no cluster secret, a
  /// malformed hello, our own node id): `why` names it (kura-node writes it
  /// to the audit log). Called on the multiplexer thread. Unset: log only.
  std::function<void(const std::string& why)> on_refused;
  /// `kura leave`: asks the process to shut down, which leaves gracefully
  /// (stop_cluster hands off, then the node exits). Unset: refused.
  std::function<void()> on_leave;
  /// Ring operations of the node's own (cop_atom ops the coordinator does
  /// not know: `kura rotate-key` on a cluster node, node/cluster_rotate.hpp),
  /// run on the multiplexer thread: (core, op, args, reply) -> whether `op`
  /// is one of them; it fills reply.error / reply.note. Unset: none.
  std::function<bool(cluster_core&, const std::string& op, const std::vector<std::string>& args,
                     cluster_op_reply& reply)>
      local_op;
};

/// The cluster state the RESP front end reaches without a hop. See the file
/// comment.
class cluster_core {
public:
  /// Gets the result to keep (it may move from it).
  using result_fn = std::function<void(gossip::client_result&)>;

  /// `store` is what the gossip core replicates into (kura-node: the node's
  /// persistent tiers, gossip/tier_store.hpp); nullptr = in memory only.
  explicit cluster_core(cluster_settings s, std::unique_ptr<gossip::replica_store> store = nullptr);

  const cluster_settings& settings() const noexcept { return s_; }
  gossip::node_id self_id() const noexcept { return gid_; }
  /// True once the node joined (or founded) the cluster.
  bool ready() const noexcept { return node_.has_value(); }

  // -- client calls (multiplexer thread) ----------------------------------------

  /// Node ids of the replicas of `key`, owner first (empty when not ready).
  std::vector<std::string> owners(std::string_view key) const;
  /// Writes (or deletes, with `tombstone`) `key`; `fn` runs once the write
  /// is acknowledged by write-acks copies, failed, or timed out. `flags`:
  /// entry_flags::hash for a hash value, 0 for a string. `at_ms`: the wall
  /// time the write's version is minted at (0: the clock now); a caller that
  /// checked a deadline passes the time it checked it at, so that a pause
  /// after the check cannot give the write a newer version (run_here).
  void write(std::string_view key, std::string_view value, uint64_t expiry_ms, bool tombstone,
             result_fn fn, uint8_t flags = 0, uint64_t at_ms = 0);
  /// Reads `key` locally when this node is a replica, else from the owner,
  /// falling over to the next replica on a timeout.
  void read(const std::string& key, result_fn fn);
  /// read() when this node answers `key` from its own copy at once
  /// (gossip::node::read_here): the answer, a view valid until the store is
  /// next used (into `scratch` or the store's memory); nullopt: nothing was
  /// done, read() it.
  std::optional<gossip::node::local_answer> read_here(std::string_view key, entry& scratch);
  /// Calls waiting for an answer.
  size_t in_flight() const noexcept { return waiting_.size() + forwards_.size(); }
  /// What this node holds for `key` (tombstones included), no network.
  std::optional<entry> local(std::string_view key) const;
  /// The live members of the ring (self included), sorted.
  std::vector<gossip::node_id> ring_members() const;
  /// Node ids of the replicas of `key`, owner first.
  std::vector<gossip::node_id> replica_ids(std::string_view key) const;

  /// Node ids of the replicas of `key`, owner first, except that members
  /// not alive (suspect) go last: where a command runs at the owner.
  std::vector<gossip::node_id> exec_candidates(std::string_view key) const;

  using forward_fn = std::function<void(bool ok, std::string reply)>;
  /// Runs `args` on node `to` (settings().exec there; here when `to` is us);
  /// `fn(false, why)` when it got no answer: `why` is empty when the command
  /// certainly did not run there (no connection, refused), else what happened
  /// ("no answer within 2000 ms", "connection lost") — it may have run.
  /// `to` does not start a command after the sender stopped waiting for it
  /// (the request carries the deadline, by the sender's wall clock).
  void forward(gossip::node_id to, std::vector<std::string> args, forward_fn fn);
  /// Runs `fn` on the multiplexer thread after `ms` (WAIT's timeout).
  void after(uint64_t ms, std::function<void()> fn);
  /// The body of the Lua script `sha` that SCRIPT LOAD (or EVAL) cached on
  /// this node, or nullopt (set by the RESP front end): EVALSHA travels to
  /// the key's owner as EVAL with it.
  std::function<std::optional<std::string>(std::string_view sha)> script_source;
  /// Client tracking (node/cluster_tracking.hpp), set by the RESP front end:
  /// every version this node's store takes (on the multiplexer thread), and
  /// the kura.node.track* / kura.node.invalidate commands peers send (true:
  /// answered). Unset: none.
  std::function<void(const entry&)> on_store_change;
  std::function<bool(const std::vector<std::string>&, const std::function<void(std::string)>&)>
      tracking_exec;
  /// The deadline (sender's wall clock, ms) of the forwarded command being
  /// handed to settings().exec right now; 0 for one that runs where it was
  /// sent. A command the owner holds back (node/cluster_routing.cpp: while
  /// it reads a catching-up key's newest version) is not run after it.
  uint64_t exec_deadline_ms = 0;
  /// The forwarded command being handed to settings().exec right now wants
  /// the versions it writes in front of its reply (exec_request::versions;
  /// node/cluster_routing.cpp tags them with tag_written).
  bool exec_tag_versions = false;
  /// The owner's per-slot queue of those commands (node/cluster_routing.cpp).
  std::shared_ptr<void> exec_gate;

  // -- the coordinator's side ----------------------------------------------------

  /// Starts the gossip core, joining through `seeds` (none: found a cluster).
  void start(uint64_t now, std::vector<gossip::node_id> seeds, uint64_t incarnation);
  status on_message(gossip::node_id from, std::string_view bytes, uint64_t now);
  void tick(uint64_t now);
  void peer_unreachable(gossip::node_id peer, uint64_t now);
  void leave(uint64_t now);
  /// kura drain (on) / undrain (off) of this node (gossip::node::drain),
  /// persisted first (settings().marks_dir); returns why it failed.
  std::string drain(bool on, uint64_t now);
  /// kura rebalance: this node's token count (0 = default), persisted first.
  std::string set_tokens(uint32_t tokens, uint64_t now);
  /// Joins through `seed` after starting alone (see the coordinator).
  void join_via(gossip::node_id seed, uint64_t now);
  /// Commits the store's pending writes now (leave, shutdown).
  void flush_store();
  /// Several messages from one peer (one CAF message): handled in order,
  /// answered in one pump.
  status on_messages(gossip::node_id from, std::vector<std::string>& msgs, uint64_t now);
  /// A peer batch (cluster_wire.hpp: one buffer of framed envelopes, one CAF
  /// message): false when the buffer is corrupt (`why` says how; none of its
  /// messages was handled), else true with `why` = the first message the core
  /// refused (ok: none); handled in order, answered in one pump.
  bool on_frames(gossip::node_id from, std::string_view frames, uint64_t now, status& why);
  /// Delivers finished calls and hands the outbox to `send_frames`: what is
  /// held for a peer goes out as one CAF message.
  void pump();
  /// True while finished calls are being handed to their callbacks, one
  /// batch at a time (a peer batch of acks completes many writes at once).
  /// The RESP front end (`delivery_owner`) holds its replies meanwhile and
  /// sends each connection's with one send() in `after_delivery`, called
  /// once the batch is delivered, instead of one send() per reply.
  bool delivering() const noexcept { return delivering_ > 0; }
  std::function<void()> after_delivery;
  const void* delivery_owner = nullptr;
  /// Sends the `count` encoded gossip messages held for one peer, framed into
  /// one buffer (append_frame), as one CAF message (set by the coordinator
  /// broker, which sends a peer of an older version the vector form).
  std::function<void(gossip::node_id, std::string frames, size_t count)> send_frames;
  /// Asks the coordinator to call pump() once the current event is done
  /// (set by the coordinator broker). Client calls (write/read), which come
  /// from the RESP broker, hold their messages until then, so a pipeline of
  /// commands costs one CAF message per peer instead of one per command.
  std::function<void()> schedule_flush;
  /// Gossip messages sent, and the CAF messages that carried them.
  uint64_t gossip_sent() const noexcept { return gossip_sent_; }
  /// Commands forwarded to a peer (read-modify-write at the owner, the
  /// per-node part of keyspace-wide commands).
  uint64_t forwarded() const noexcept { return forwarded_; }
  /// gossip::node::gathering_slots now (0 before the node starts).
  size_t slots_gathering() const;
  uint64_t gossip_batches() const noexcept { return gossip_batches_; }
  /// Sends a sealed exec_request to a peer; the answer comes back through
  /// on_exec_reply(token, ...) (set by the coordinator broker).
  std::function<void(gossip::node_id, std::string, uint64_t token)> send_exec;
  /// Several sealed exec_requests to one peer as one request; the answers
  /// come back through on_exec_reply, one per token (set by the coordinator).
  std::function<void(gossip::node_id, std::vector<std::string>, std::vector<uint64_t> tokens)>
      send_exec_batch;
  void on_exec_reply(uint64_t token, bool ok, std::string reply);

  /// "id@host:port" of a member (empty: unknown).
  std::string addr_of(gossip::node_id id) const;
  std::string name_of(gossip::node_id id) const;
  members_reply members() const;
  /// This node's data movement (kura members / status).
  move_row move_report() const;
  /// The ring as this node sees it (kura ring).
  std::vector<ring_row> ring_report() const;
  /// (slot, live keys, key + value bytes) of every slot this node holds keys
  /// of (reads every live value once: kura rebalance, kura ring).
  std::vector<uint64_t> slot_stats() const;
  /// A graceful leave handed everything off (or never started: false).
  bool leave_done() const { return node_ && node_->leave_done(); }
  const gossip::node* core() const { return node_ ? &*node_ : nullptr; }
  /// The gossip core, for KURA.ERASE's steps (node/cluster_erase.hpp).
  gossip::node* core_mut() { return node_ ? &*node_ : nullptr; }

private:
  /// pump() for client calls: deliver results, hold messages for the flush.
  void pump_deferred();
  /// Persists `m` (settings().marks_dir), then takes it; returns why not.
  std::string keep_marks(const ring_marks& m);
  void take_outbox();
  /// Hands node_'s finished calls to their callbacks (delivering() meanwhile),
  /// then calls after_delivery.
  void deliver_results();
  void deliver(std::vector<gossip::client_result>& results);
  int delivering_ = 0;
  /// deliver_results' vector between calls (its storage is reused).
  std::vector<gossip::client_result> spare_results_;
  /// Per peer, the bytes of the last batch sent to it: a new batch's buffer
  /// is reserved at that size at once instead of doubling up to it.
  std::map<gossip::node_id, size_t> frames_hint_;
  cluster_settings s_;
  /// Gossip messages held for the flush, per peer, in order: framed into one
  /// buffer as they leave the core (one copy, no vector of strings).
  struct held_out {
    std::string frames;
    size_t count = 0;
  };
  std::map<gossip::node_id, held_out> held_;
  /// Forwarded commands held for the flush, per peer: (sealed request, token).
  std::map<gossip::node_id, std::vector<std::pair<std::string, uint64_t>>> held_exec_;
  void flush_exec();
  bool flush_scheduled_ = false;
  uint64_t gossip_sent_ = 0, gossip_batches_ = 0, forwarded_ = 0;
  uint64_t next_report_ms_ = 0;
  gossip::node_id gid_;
  std::unique_ptr<gossip::replica_store> store_; ///< until start() hands it to node_
  std::optional<gossip::node> node_;
  uint64_t next_sweep_ms_ = 0;
  uint64_t store_errors_ = 0;
  std::unordered_map<uint64_t, result_fn> waiting_;
  std::unordered_map<uint64_t, forward_fn> forwards_;
  uint64_t next_token_ = 1;
  std::multimap<uint64_t, std::function<void()>> timers_; ///< due ms -> fn
};

/// What spawn_cluster started.
struct cluster_handles {
  std::shared_ptr<cluster_core> core;
  caf::actor coordinator;
};

/// Spawns the coordinator broker (in `sys`, which loaded io::middleman). It
/// connects to the seeds and joins; until then core->ready() is false.
cluster_handles spawn_cluster(caf::actor_system& sys, cluster_settings s, uint64_t incarnation,
                              std::unique_ptr<gossip::replica_store> store = nullptr);

/// Graceful leave: gossips `left`, hands off, then stops the coordinator
/// (waits at most `wait_ms`). Call from a non-actor thread.
void stop_cluster(caf::actor_system& sys, const cluster_handles& h, uint64_t wait_ms);

/// HMAC-SHA256 of `data` under `key`, hex-encoded ("" when key is empty).
std::string cluster_mac(const std::string& key, const std::string& data);

/// Whether a command forwarded to a key's owner that did not answer (it may
/// have run there) may be run by the next replica: only when a second run
/// changes nothing and answers the same (SET without NX/XX/GET, SETEX,
/// PSETEX, HMSET, and WATCH's version read). Every other command gets
/// outcome_unknown() instead, as a Redis Cluster client sees a timeout.
bool rerun_safe(const std::vector<std::string>& args);

/// The error of a read the gossip core could not answer (client_result::ok
/// false), without '-' and CRLF: "CLUSTERDOWN ..." when no replica answered
/// in time, "TRYAGAIN ..." when none could vouch that the key is absent (the
/// ring is moving), as a Redis Cluster client expects; never nil.
std::string read_failed(gossip::read_failure why);

/// A forwarded command's reply with the versions it wrote at the owner in
/// front: "\x01" count "\n", then per key hlc " " node " " key-length "\n"
/// key, then the reply. The sender's on_exec_reply takes them off (and its
/// reads never serve an older version of those keys: gossip::node::
/// written_elsewhere), so a client sees only the reply.
std::string tag_written(const std::vector<std::pair<std::string, version>>& written,
                        std::string reply);
/// Takes tag_written's versions off `reply` (false: malformed, `reply`
/// unchanged); a reply without them is left as it is (true, none).
bool untag_written(std::string& reply, std::vector<std::pair<std::string, version>>& written);

/// The error "TIMEOUT ..." (without '-' and CRLF): the owner `who` did not answer
/// (`why`), so the command's outcome is unknown and it was not run again.
std::string outcome_unknown(const std::string& who, const std::string& why);

} // namespace kura::actors
