// Contract: SWIM membership (Das et al., 2002) with Lifeguard's refinements, as a
// deterministic state machine. It never reads a clock, never touches a socket and
// never blocks: it is driven only by `on_message(from, bytes, now)` and
// `tick(now)`, and it answers by appending to an outbox that the owner drains
// and hands to a transport (CAF in production, a simulated network in tests).
// `now` is the node's wall clock in ms; only differences of it are used here, so
// a skewed clock is harmless. Randomness comes from a seeded rng: the same seed,
// inputs and times give the same outputs.
//   * each protocol period it pings one member (randomised round robin); no ack
//     within the probe timeout -> ping-req through k random members; still no
//     ack by the end of the period -> the member is suspected;
//   * a suspected member that does not refute (by gossiping alive with a higher
//     incarnation) within the suspicion timeout is declared dead;
//   * news rides on pings and acks (dissemination.hpp), at most ~log(n) times;
//   * every sync interval a full state push-pull with one random member, and a
//     reconnect attempt to one random dead member, heals what gossip missed and
//     merges partitions after they heal;
//   * join is a push-pull through seeds; leave gossips `left`; a restarted node
//     learns its old incarnation from others and refutes with a higher one.
// Thread safety: not thread-safe; a membership is owned by one actor.
#pragma once

#include "gossip/dissemination.hpp"
#include "gossip/local_health.hpp"
#include "gossip/messages.hpp"
#include "gossip/suspicion.hpp"
#include "gossip/types.hpp"
#include "tiers/random.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kura::gossip {

/// Membership settings. Defaults follow the original specification (heartbeat
/// 10 s, sync 30 s); tests and the simulator use short periods on a fake clock.
struct membership_config {
  node_id self = no_node;
  std::string addr;                    ///< how others reach us (opaque here)
  std::vector<node_id> seeds;          ///< join through these (self is skipped)
  uint64_t probe_interval_ms = 10'000; ///< the heartbeat / protocol period
  uint64_t probe_timeout_ms = 3'000;   ///< direct ack deadline before ping-req
  uint32_t indirect_checks = 3;        ///< k members asked to ping-req
  uint32_t suspicion_mult = 4;         ///< min suspicion = mult * log10(n) * period
  uint32_t suspicion_max_mult = 6;     ///< max suspicion = max_mult * min
  uint32_t retransmit_mult = 4;        ///< piggyback limit = mult * ceil(log10(n+1))
  uint64_t sync_interval_ms = 30'000;  ///< full state push-pull period
  size_t max_piggyback = 32;           ///< updates per message (~20 B each; fits a 1400 B datagram)
  uint64_t dead_reap_ms = 24ull * 3600 * 1000; ///< forget dead members after this
  bool lifeguard = true;                       ///< local health scaling of periods
};

/// What this node currently believes about one member.
struct member_info {
  node_id id = no_node;
  std::string addr;
  uint64_t inc = 0;
  member_state state = member_state::alive;
  uint64_t since_ms = 0; ///< local time of the last state change
};

/// A state change this node made (for checkers and metrics).
struct member_event {
  node_id id = no_node;
  uint64_t inc = 0;
  member_state state = member_state::alive;
  uint64_t at_ms = 0;
};

class membership {
public:
  /// `out` receives every message to send; it must outlive the membership.
  membership(membership_config cfg, uint64_t rng_seed, outbox& out);

  /// Starts the node at `now`: alive at incarnation `inc`, joining via seeds.
  void start(uint64_t now, uint64_t inc = 0);

  /// Joins (again) through `seed`: a node that started alone because its
  /// seeds were unreachable (a restart with its data while they were down)
  /// merges into their cluster by the same push-pull a join uses. `seed` is
  /// added to the seeds that are asked again when we are alone.
  void join_via(node_id seed, uint64_t now);

  /// Graceful leave: gossips `left` for ourselves and stops probing. Keep
  /// delivering messages and ticks for a few periods so the news spreads.
  void leave(uint64_t now);
  /// Drain (on) / undrain (off): this node stays a live member but keeps out
  /// of the ring's placement. Gossiped with a new incarnation as the tag
  /// "#drained" of its address, so every member computes the same ring. The
  /// owner persists it (a node configured with the tag starts drained).
  void set_drained(bool on, uint64_t now);
  /// kura rebalance: this node's token count in the ring (0 = the ring's
  /// default), gossiped with a new incarnation as the tag "#t=N" of its
  /// address, so every member builds the same weighted ring.
  void set_tokens(uint32_t tokens, uint64_t now);
  /// A member address that carries the drain mark.
  static bool addr_drained(std::string_view addr) { return addr_tag(addr, "drained") != npos_tag; }
  /// The token count a member address carries (0: none, the default).
  static uint32_t addr_tokens(std::string_view addr);
  /// The address without its tags ("#drained", "#t=N").
  static std::string_view addr_base(std::string_view addr);
  /// `base` with the tags of a token count (0: none) and the drain mark.
  static std::string tagged_addr(std::string_view base, uint32_t tokens, bool drained);
  /// Token counts of the ring members that carry one (the others: default).
  const std::map<node_id, uint32_t>& ring_tokens() const { return ring_tokens_; }

  /// Feeds raw bytes from `from`; decode errors are returned, never thrown.
  status on_message(node_id from, std::string_view bytes, uint64_t now);
  /// Feeds an already decoded message; returns false if it is not membership's.
  bool handle(node_id from, const message& msg, uint64_t now);

  /// Advances timers: probes, suspicion timeouts, push-pull, join retries.
  void tick(uint64_t now);

  /// The transport lost its connection to `id` (a reset, not a slow probe):
  /// suspect it now instead of waiting for the next failed probe. No-op for
  /// ourselves and for members not alive.
  void report_unreachable(node_id id, uint64_t now);

  // -- the view -------------------------------------------------------------

  /// Sorted ids of the members in the ring: alive or suspect, self included
  /// unless we left. Equal on all nodes once gossip has converged.
  const std::vector<node_id>& ring_members() const { return ring_members_; }
  /// Bumped whenever ring_members() changes.
  uint64_t view_version() const { return view_version_; }
  /// Our belief about a member (nullopt: never heard of it).
  std::optional<member_info> info(node_id id) const;
  const std::map<node_id, member_info>& members() const { return members_; }
  bool is_alive(node_id id) const; ///< alive or suspect
  bool is_dead(node_id id) const;  ///< dead or left
  bool is_suspect(node_id id) const;
  uint64_t incarnation() const { return inc_; }
  bool joined() const { return joined_; }
  bool left() const { return leaving_; }
  uint32_t health_score() const { return health_.score(); }
  /// Membership news still waiting to be piggybacked.
  size_t pending_broadcasts() const { return queue_.size(); }
  const membership_config& config() const { return cfg_; }

  /// State changes made by this node, oldest first (checkers read these).
  const std::vector<member_event>& events() const { return events_; }

  struct counters {
    uint64_t pings = 0, ping_reqs = 0, acks = 0, nacks = 0, push_pulls = 0;
    uint64_t suspicions = 0, refutations = 0, deaths = 0, failed_probes = 0;
  };
  const counters& stats() const { return stats_; }

private:
  // -- probing --
  void start_probe(uint64_t now);
  void finish_probe(uint64_t now);
  std::optional<node_id> next_probe_target();
  std::vector<node_id> random_members(size_t k, node_id exclude1, node_id exclude2);
  // -- state merging --
  void apply(const member_update& u, uint64_t now, bool from_sync);
  void refute(uint64_t seen_inc, uint64_t now);
  void set_state(member_info& m, member_state st, uint64_t inc, uint64_t now, node_id by);
  void suspect(node_id id, uint64_t inc, node_id by, uint64_t now);
  void recompute_view();
  member_update self_update() const;
  member_update update_of(const member_info& m, node_id from) const;
  std::vector<member_update> piggyback();
  void send(node_id to, const message& m);
  void send_push_pull(node_id to, bool join, bool reply);
  size_t cluster_size() const { return ring_members_.size() < 1 ? 1 : ring_members_.size(); }
  static constexpr size_t npos_tag = std::string_view::npos;
  /// Where tag `name` ("drained", or "t" for "t=N") starts in `addr` (npos_tag: absent).
  static size_t addr_tag(std::string_view addr, std::string_view name);
  /// Rebuilds our address from its base and tags, with a new incarnation.
  void set_self_addr(std::string addr, uint64_t now);

  membership_config cfg_;
  rng rng_;
  outbox& out_;
  dissemination_queue queue_;
  suspicion_timers suspicions_;
  local_health health_;

  uint64_t inc_ = 0;
  bool started_ = false;
  bool joined_ = false;
  bool leaving_ = false;
  std::map<node_id, member_info> members_;
  std::vector<node_id> ring_members_;
  std::map<node_id, uint32_t> ring_tokens_;
  uint64_t view_version_ = 0;
  std::vector<member_event> events_;

  // probe state
  uint64_t next_seq_ = 1;
  uint64_t next_probe_ms_ = 0;
  std::vector<node_id> probe_order_;
  size_t probe_pos_ = 0;
  struct probe {
    node_id target = no_node;
    uint64_t seq = 0;
    uint64_t started = 0;
    uint64_t target_inc = 0;
    bool acked = false;
    bool indirect_sent = false;
    uint32_t indirect_count = 0;
    uint32_t nacks = 0;
  };
  std::optional<probe> probe_;
  // indirect probes we relay for others: our seq -> (requester, their seq)
  struct relay {
    node_id requester = no_node;
    uint64_t their_seq = 0;
    node_id target = no_node;
    uint64_t nack_at = 0;
    uint64_t expires = 0;
    bool nacked = false;
  };
  std::map<uint64_t, relay> relays_;
  uint64_t next_sync_ms_ = 0;
  uint64_t next_join_ms_ = 0;
  uint64_t alone_since_ms_ = 0;
  counters stats_;
};

} // namespace kura::gossip
