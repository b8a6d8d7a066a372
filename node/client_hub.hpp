// What the connections of one node know about each other: the client list
// (CLIENT LIST / KILL), pub/sub (SUBSCRIBE, PSUBSCRIBE, PUBLISH) and client
// tracking, the server side of client-side caching (CLIENT TRACKING).
//
// Tracking follows Redis 6+: in the default mode the hub remembers which
// clients read which keys (read-only commands, OPTIN/OPTOUT deciding per
// command) and, when such a key changes, sends each of them one invalidation
// and forgets the pair (the client reads again to track again). In BCAST mode a
// client names key prefixes (none = every key) and hears about every change
// under them, read or not. NOLOOP skips changes the client made itself.
// Invalidations go as RESP3 pushes (`>2 invalidate [keys]`) to RESP3 clients,
// or to the REDIRECT client: a RESP3 one gets the push, a RESP2 one gets a
// pub/sub message on `__redis__:invalidate` if it subscribed to it.
//
// `key_changed` is the one entry point for every change: the command table
// calls it for each key of a write command, FLUSHALL calls `flushed`, the
// broker's timer calls `expire_due` for tracked keys whose expiry passed, and
// a cluster coordinator can call `key_changed` for changes made elsewhere.
// While no client tracks, `active()` is false and writes cost one branch.
//
// Bytes for a connection leave through `deliver(client id, bytes)`, which the
// RESP broker installs (unit tests capture them).
// Thread safety: not thread-safe; owned by the RESP broker with its keyspace.
#pragma once

#include "node/command_registry.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <queue>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace kura::node {

/// CLIENT TRACKING option bits (session::tracking_flags).
namespace tracking_flag {
enum : uint32_t {
  bcast = 1u << 0,
  optin = 1u << 1,
  optout = 1u << 2,
  noloop = 1u << 3,
  broken_redirect = 1u << 4,
};
} // namespace tracking_flag

class client_hub {
public:
  using deliver_fn = std::function<void(uint64_t client, std::string_view bytes)>;

  // -- clients -----------------------------------------------------------------

  void add_client(session& s) { clients_[s.id] = &s; }
  /// Forgets a client: its subscriptions and tracking state go with it.
  void remove_client(uint64_t id);
  session* client(uint64_t id) const;
  const std::map<uint64_t, session*>& clients() const noexcept { return clients_; }
  void set_deliver(deliver_fn f) { deliver_ = std::move(f); }
  /// Sends bytes to a client's connection (dropped when no broker listens).
  /// Bytes for the client whose command is running wait until its reply is
  /// out (end_command), so a push never lands inside a reply (EXEC's array).
  void deliver(uint64_t id, std::string_view bytes) {
    if (id != 0 && id == running_) {
      held_.append(bytes.data(), bytes.size());
      return;
    }
    if (deliver_)
      deliver_(id, bytes);
  }
  /// Client `id`'s command starts (its pushes are held).
  void begin_command(uint64_t id) { running_ = id; }
  /// The reply is written: flushes BCAST and sends the held pushes.
  void end_command() {
    flush_bcast();
    uint64_t id = running_;
    running_ = 0;
    if (!held_.empty()) {
      std::string b = std::move(held_);
      held_.clear();
      deliver(id, b);
    }
  }

  // -- pub/sub -----------------------------------------------------------------

  /// Adds a subscription; false when the client had it already.
  bool subscribe(session& s, std::string_view channel);
  bool unsubscribe(session& s, std::string_view channel);
  bool psubscribe(session& s, std::string_view pattern);
  bool punsubscribe(session& s, std::string_view pattern);
  /// Shard channels (SSUBSCRIBE/SPUBLISH, Redis 7): a namespace of their own;
  /// on one node a shard channel reaches the subscribers of this node.
  bool ssubscribe(session& s, std::string_view channel);
  bool sunsubscribe(session& s, std::string_view channel);
  std::vector<std::string> shard_channels_of(uint64_t id) const;
  /// Delivers `msg` as an "smessage" to the subscribers of shard `channel`.
  size_t spublish(std::string_view channel, std::string_view msg);
  std::vector<std::string> channels_of(uint64_t id) const;
  std::vector<std::string> patterns_of(uint64_t id) const;
  /// Delivers `msg` to subscribers of `channel` and of matching patterns;
  /// returns how many received it.
  size_t publish(std::string_view channel, std::string_view msg);
  /// Channels with at least one subscriber (matching `pattern` if given).
  std::vector<std::string> active_channels(std::string_view pattern) const;
  size_t subscribers(std::string_view channel) const;
  size_t pattern_count() const noexcept { return patterns_.size(); }
  size_t channel_count() const noexcept { return channels_.size(); }

  // -- tracking ------------------------------------------------------------------

  /// True while any client tracks: the command table skips tracking otherwise.
  bool active() const noexcept { return tracking_clients_ > 0; }
  size_t tracking_clients() const noexcept { return tracking_clients_; }
  size_t tracked_keys() const noexcept { return keys_.size(); }
  /// Sum over tracked keys of the clients tracking each (INFO tracking_total_items).
  size_t tracked_items() const noexcept;
  size_t tracked_prefixes() const noexcept { return prefixes_.size(); }
  /// tracking-table-max-keys (0 = no limit): above it, reading clients lose
  /// tracked keys (with an invalidation), as in Redis.
  void set_max_keys(uint64_t n);
  uint64_t max_keys() const noexcept { return max_keys_; }
  /// Some client tracks in BCAST mode.
  bool has_bcast() const noexcept { return !prefixes_.empty(); }
  /// Every BCAST prefix some client tracks ("" = every key), sorted.
  std::vector<std::string> all_prefixes() const {
    std::vector<std::string> out;
    for (auto& [p, ids] : prefixes_)
      out.push_back(p);
    return out;
  }
  /// CLIENT TRACKING ON (again: options change, prefixes add up); returns an
  /// error message or "".
  std::string enable_tracking(session& s, uint32_t flags, uint64_t redirect,
                              const std::vector<std::string>& prefixes);
  void disable_tracking(session& s);
  /// BCAST prefixes of a client.
  std::vector<std::string> prefixes_of(uint64_t id) const;
  /// A read-only command of `s` read `key` (`present`: it exists; expiry_ms
  /// 0 = none): remember it when the client's mode says so.
  void key_read(session& s, std::string_view key, bool present, uint64_t expiry_ms);
  /// Whether a read of `s` now is tracked (its mode; OPTIN/OPTOUT's CACHING).
  static bool wants(const session& s);
  /// key_read without the mode check: a cluster node decides when the
  /// routed read starts and records the keys when its reply is in.
  void track_key(session& s, std::string_view key, bool present, uint64_t expiry_ms);
  /// A tracked key's expiry learned later (a cluster node asks the owner):
  /// it is invalidated then.
  void key_expires(std::string_view key, uint64_t expiry_ms);
  bool tracks(std::string_view key) const { return keys_.count(std::string{key}) != 0; }
  /// THE entry point: `key` changed (by client `origin`, 0 = not a client:
  /// expiry, eviction, another node). Sends the invalidations.
  void key_changed(std::string_view key, uint64_t origin = 0);
  /// Every key changed (FLUSHALL): a null invalidation to every tracking client.
  void flushed(uint64_t origin = 0);
  /// BCAST changes collected since the last call: one invalidation per
  /// prefix and client (the command table calls it after each command).
  void flush_bcast();
  /// A write of `key` with `expiry_ms` (0 = none) under a BCAST prefix: its
  /// expiry invalidates it then (expire_due).
  void key_written(std::string_view key, uint64_t expiry_ms);
  /// Invalidates tracked keys whose expiry is at or before `now_ms`, and
  /// BCAST-covered written keys whose expiry passed and that `exists` (when
  /// given) no longer finds; then flushes BCAST.
  void expire_due(uint64_t now_ms, const std::function<bool(std::string_view)>& exists = {});
  /// Checks up to `budget` tracked keys that existed when read (round robin)
  /// and invalidates those `exists(key)` no longer finds: changes no command
  /// made, such as evictions from memory when memory is the only tier.
  template <class Exists>
  void probe(size_t budget, Exists&& exists) {
    for (size_t n = 0; n < budget && !probe_.empty(); ++n) {
      if (probe_next_ >= probe_.size())
        probe_next_ = 0;
      auto& k = probe_[probe_next_];
      bool gone = keys_.count(k) == 0; // invalidated already: forget it
      if (!gone && !exists(std::string_view{k})) {
        std::string key = k;
        key_changed(key, 0);
        gone = true;
      }
      if (gone) {
        probe_[probe_next_] = std::move(probe_.back());
        probe_.pop_back();
      } else {
        ++probe_next_;
      }
    }
  }

private:
  /// keys == nullptr: every key (FLUSHALL's null invalidation)
  void send_invalidation(session& to, const std::vector<std::string>* keys);
  void drop_tracking(uint64_t id);

  std::map<uint64_t, session*> clients_;
  deliver_fn deliver_;
  // pub/sub
  std::unordered_map<std::string, std::set<uint64_t>> channels_;
  std::unordered_map<std::string, std::set<uint64_t>> shard_channels_;
  std::map<std::string, std::set<uint64_t>> patterns_;
  // tracking
  size_t tracking_clients_ = 0;
  std::unordered_map<std::string, std::unordered_set<uint64_t>> keys_; ///< default mode
  std::map<std::string, std::set<uint64_t>> prefixes_;                 ///< BCAST ("" = all)
  using due = std::pair<uint64_t, std::string>;
  std::priority_queue<due, std::vector<due>, std::greater<due>> expiries_;
  std::priority_queue<due, std::vector<due>, std::greater<due>> bcast_expiries_;
  /// BCAST prefix -> (key, client that changed it) since flush_bcast
  std::map<std::string, std::vector<std::pair<std::string, uint64_t>>> bcast_pending_;
  std::vector<std::string> probe_; ///< tracked keys that existed when read
  uint64_t max_keys_ = 1000000;    ///< tracking-table-max-keys
  uint64_t running_ = 0;           ///< client whose command runs (pushes held)
  std::string held_;               ///< its held pushes
  void enforce_max_keys();
  size_t probe_next_ = 0;
};

/// Appends the RESP3 push / RESP2 pub/sub frame `kind channel payload` where
/// payload is a bulk string (messages).
void put_pubsub_message(out_buffer& out, int resp, std::string_view kind, std::string_view channel,
                        std::string_view payload);

} // namespace kura::node
