// The Redis command set kura serves, CAF-free: for each parsed request,
// `plan` says what must come from L3 first (the keys the command reads that
// memory does not hold, or a key listing for KEYS/SCAN/DBSIZE/RANDOMKEY), and
// `execute` runs it against the keyspace and appends the RESP2 reply. Error
// replies use Redis's wording, because clients and Redis's test suite match
// on them. The commands themselves live in family files (node/cmd_*.cpp)
// around node/command_registry.hpp; this class wires the registry, the
// keyspace and the shared state together. The RESP broker drives this; unit
// tests drive it directly.
// Thread safety: not thread-safe; owned by the RESP broker with its keyspace.
#pragma once

#include "actors/keyspace.hpp"
#include "node/client_hub.hpp"
#include "node/command_registry.hpp"
#include "node/resp_writer.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kura::node {

using actors::glob_match;
using actors::keyspace;
using actors::staged_entries;

struct security_state;
struct security_config;

class command_table {
public:
  command_table(keyspace& ks, node_facts& facts);
  ~command_table();

  /// Applies kura.security.* (users, ACL file, audit log); "" or an error.
  std::string configure_security(const security_config& cfg);
  /// Users, ACL LOG and the audit log (protected mode asks it too).
  security_state& security() noexcept { return *sec_; }
  /// The body of the Lua script `sha` in this table's script cache (SCRIPT
  /// LOAD, EVAL), or nullopt (node/cmd_script.cpp).
  std::optional<std::string> script_body(std::string_view sha) const;

  /// Fills `out` with what `args` needs from L3 (kind none: run it now).
  void plan(const command_args& args, fetch_plan& out);
  /// The same for a connection: inside MULTI a command is only queued (no
  /// L3), and EXEC needs every key its queued commands and WATCH name.
  void plan(const command_args& args, const session& s, fetch_plan& out);
  /// The same when find(args[0]) is already known (`id`: the broker's
  /// read-ahead looked the name up once for both).
  void plan(const command_args& args, const session& s, fetch_plan& out, int id);

  /// Runs `args` and appends the reply. `lst` is L3's answer when plan asked
  /// for a listing (nullptr otherwise, or when L3 is off). Between MULTI and
  /// EXEC the command is checked and queued instead (+QUEUED).
  void execute(const command_args& args, session& s, out_buffer& out,
               const listing* lst = nullptr) {
    if (!args.empty())
      execute(args, s, out, lst, reg_.find(args[0]));
  }
  /// The same when find(args[0]) is already known (`id`, -1: unknown command).
  void execute(const command_args& args, session& s, out_buffer& out, const listing* lst, int id);

  /// A command that arrived while a script runs past busy-reply-threshold
  /// (the broker's busy pump): allow_busy commands (SCRIPT KILL, MULTI,
  /// DISCARD, QUIT ...) run, anything else gets -BUSY; inside MULTI that also
  /// aborts the transaction, and EXEC answers EXECABORT.
  void execute_busy(const command_args& args, session& s, out_buffer& out);
  /// While a script runs long, the broker serves other clients through `f`
  /// (argument: the session id running the script).
  void set_busy_pump(std::function<void(uint64_t)> f) { state_.busy_pump = std::move(f); }

  /// Cluster hook: keys of one transaction must share a slot (CROSSSLOT).
  void set_slot_function(std::function<uint16_t(std::string_view)> f) {
    state_.slot_of = std::move(f);
  }
  /// Cluster hook: why a command may not be queued inside MULTI (an error
  /// reply without '-'; "" = it may), checked after the ACL: the transaction
  /// is aborted, EXEC answers EXECABORT (node/cluster_routing.hpp
  /// queue_refusal: keyspace-wide commands).
  void set_queue_check(std::function<std::string(const command_args&)> f) {
    queue_check_ = std::move(f);
  }
  /// The table's shared state (node/cluster_exec.cpp wraps its `run`).
  command_state& state() noexcept { return state_; }

  /// Command names (lower case; subcommands as "parent|sub") in id order, and
  /// their stats.
  const std::vector<std::string>& names() const noexcept { return reg_.names(); }
  const std::vector<command_stats>& stats() const noexcept { return reg_.stats(); }
  void reset_stats();
  uint64_t total_commands() const noexcept { return state_.total_commands; }

  /// Id of a command name (any case), -1 if unknown.
  int find(std::string_view name) const { return reg_.find(name); }

  /// The registry (COMMAND's facts, key positions for routing and ACLs).
  const command_registry& registry() const noexcept { return reg_; }

  /// Clients, pub/sub and tracking (the broker registers its connections
  /// and installs the delivery of pushes).
  client_hub& hub() noexcept { return hub_; }
  /// True (once) when CLIENT KILL marked other clients since the last call.
  bool take_kills() noexcept {
    bool k = state_.kills_pending;
    state_.kills_pending = false;
    return k;
  }

private:
  /// run()'s wall-clock reading and when (mono ns) it was taken (keyspace::pin_now).
  static constexpr uint64_t pin_reuse_ns = 100'000;
  uint64_t pinned_ms_ = 0;
  uint64_t pinned_mono_ = 0;
  void after_command(const command_args& a, const command_spec& sp, int id, session& s,
                     bool failed);
  void run(const command_args& a, int id, session& s, out_buffer& out, const listing* lst);
  void queue(const command_args& a, int id, session& s, out_buffer& out);
  /// Why a command with `flags` may not run now (Redis's OOM / NOREPLICAS
  /// error without '-'), or nullptr.
  const char* refusal(uint32_t flags) const;
  bool tx_control(int id) const noexcept {
    return id == id_multi_ || id == id_exec_ || id == id_discard_ || id == id_watch_ ||
           id == id_quit_;
  }

  keyspace& ks_;
  node_facts& facts_;
  command_registry reg_;
  command_state state_;
  std::function<std::string(const command_args&)> queue_check_;
  client_hub hub_;
  int caching_id_ = -1;
  int id_multi_ = -1, id_exec_ = -1, id_discard_ = -1, id_watch_ = -1, id_quit_ = -1;
  int id_flushall_ = -1, id_flushdb_ = -1;
  std::unique_ptr<security_state> sec_;
};

/// Rewrites the RESP2 nulls ($-1, *-1) of the replies in out[from..] as
/// RESP3's null (_), for clients that said HELLO 3.
void resp3_nulls(out_buffer& out, size_t from);

/// What RESP3 changes in a routed command's reply besides nulls: HGETALL's
/// flat array is a map, HRANDFIELD ... WITHVALUES gives [field, value] pairs.
enum class resp3_shape : uint8_t { plain, map, pairs };
resp3_shape resp3_shape_of(const std::vector<std::string_view>& a);
/// A routed command's reply (a cluster node builds those in RESP2) as a
/// RESP3 client gets it from a lone node: nulls as `_`, and `shape`.
void resp3_routed(resp3_shape shape, out_buffer& out);

} // namespace kura::node
